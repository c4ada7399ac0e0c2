/**
 * Figures, notebook display and the HTML report.
 */
export type {
  Figure, Trace, Layout, MetricMap, Results, ResultsVariant, SeedRun, SaliencyLayer, SaliencySeries,
  TrainingPoint, TrainingCurve, NoteView, Neighbour, NeighbourQuery, EmbeddingSet,
} from './types';
export {
  recallCurveFigure, recallCurveFigures, recallCurveSelectorFigure, ablationBarsFigure, defaultBarMetric,
  saliencyFigure, projectionFigure, trainingCurvesFigure, regimeHeatmapFigure, REGIME_QUANTITIES,
} from './figures';
export type { RecallCurveOptions, AblationBarOptions, ProjectionOptions, RegimeQuantity } from './figures';
export { pca } from './pca';
export type { PcaResult, PcaOptions } from './pca';
export {
  ALL_SUBSET, recallKeys, allRecallKeys, subsetNames, metricValue, metricStd, metricInterval, sampleStd, presetColour, isBaseline, resultRowsWithBaselines,
} from './results';
export { encodePng, pngDataUri, svgDataUri, imageDataUri } from './images';
export type { PixelImage } from './images';
export { neighboursHtml, neighbourGalleryHtml } from './neighbours';
export { figureHtml, figureTitleText, tableHtml, textTable, pageHtml, escapeHtml } from './html';
export type { TableInput } from './html';
export { show, showTable, showHtml, loadPlotly, inTslab, setDisplaySink, figureOutput, PLOTLY_MIME } from './display';
export type { DisplaySink, DisplayOutput, Snapshotter } from './display';
export { snapshotFigure, stopSnapshots } from './snapshot';
export type { Snapshot } from './snapshot';
export { loadRun } from './files';
export type { RunData } from './files';
export {
  writeReport, buildReport, reportFigures, renderPngs, recallTableRows, subsetTableRows, probeTableRows, claimTableRows, comparisonTableRows, regimeTableRows,
} from './report';
export type { ReportFigure, ReportOptions, WriteReportOptions, WrittenReport } from './report';
export { withChromium, launchChromium, findChromium, plotlyPng, CHROMIUM_ARGS } from './browser';
export type { ChromiumSession } from './browser';
export * from './report-data';
