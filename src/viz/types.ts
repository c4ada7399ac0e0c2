/**
 * Types shared by the figure builders, the notebook display helpers and the report.
 *
 * A figure is a plain plotly.js `{ data, layout }` object: it is JSON, so it can be tested
 * without a browser, written into an HTML page, or handed to `Plotly.newPlot` in a notebook.
 * Only the trace/layout fields this project uses are typed; plotly accepts many more, and the
 * index signatures let a caller add them without casts.
 */

import type { BaselineResult, Claim, Comparison, RecallIntervals, RegimeCell } from '../experiments/results';

/** One plotly trace (scatter lines/markers, bars, and the regime map's heatmaps). */
export interface Trace {
  type: 'scatter' | 'bar' | 'heatmap';
  name?: string;
  x: (number | string)[];
  y: number[];
  /** Heatmap values, z[row][column] (row ↔ y, column ↔ x). */
  z?: number[][];
  mode?: 'lines' | 'markers' | 'lines+markers' | 'text' | 'markers+text';
  /**
   * Error bars: `array[i]` is the length above point i and, when `symmetric` is false,
   * `arrayminus[i]` the length below (a 95 % interval); otherwise one standard deviation each
   * way. NaN = unknown, drawn without a bar.
   */
  error_y?: { type: 'data'; array: number[]; arrayminus?: number[]; symmetric?: boolean; visible: boolean };
  /** Which subplot axes the trace belongs to ('x', 'x2', …). */
  xaxis?: string;
  yaxis?: string;
  legendgroup?: string;
  showlegend?: boolean;
  text?: string[];
  hovertemplate?: string;
  marker?: Record<string, unknown>;
  line?: Record<string, unknown>;
  [extra: string]: unknown;
}

/** plotly layout; typed loosely on purpose (see the file comment). */
export type Layout = Record<string, unknown> & { title?: { text: string } };

/** A plotly figure spec. */
export interface Figure {
  data: Trace[];
  layout: Layout;
}

/** Metric name → value, e.g. `{ "R@10": 0.41, "R@100": 0.73 }`. */
export type MetricMap = Record<string, number>;

/**
 * One seed's numbers for a variant (the multi-seed extension of results.json, see
 * {@link ResultsVariant.seeds}).
 */
export interface SeedRun {
  seed: number;
  metrics: MetricMap;
  subsets?: Record<string, MetricMap>;
  trainSeconds?: number;
}

/**
 * One trained and evaluated variant of results.json.
 *
 * Multi-seed extension (backwards compatible with a single-seed file): when a variant was run
 * with several seeds, `metrics` / `subsets` hold the MEAN over seeds, `metricsStd` /
 * `subsetsStd` hold the sample standard deviation over seeds (n − 1 in the denominator; 0 for
 * one seed) with the same keys, and `seeds` lists each seed's own numbers. Readers that know
 * nothing about seeds keep working on the means.
 */
export interface ResultsVariant {
  name: string;
  config?: unknown;
  metrics: MetricMap;
  subsets?: Record<string, MetricMap>;
  probes?: Record<string, unknown>;
  trainSeconds?: number;
  metricsStd?: MetricMap;
  subsetsStd?: Record<string, MetricMap>;
  seeds?: SeedRun[];
  /** 95 % intervals over queries and seeds (docs/method.md "Uncertainty and paired comparisons"). */
  intervals?: RecallIntervals;
}

/** The results.json written by every run (docs/architecture.md "Contracts"). */
export interface Results {
  dataset: string;
  backend: string;
  seed: number;
  variants: ResultsVariant[];
  /** TF-IDF and colour-histogram rows, scored like the variants. */
  baselines?: BaselineResult[];
  comparisons?: Comparison[];
  claims?: Claim[];
  regimes?: RegimeCell[];
  [extra: string]: unknown;
}

/** Per-layer modality saliency of one preset (docs/method.md "Modality saliency"). */
export interface SaliencyLayer {
  /** Flow from image tokens to the target (final) token. */
  sv: number;
  /** Flow from text tokens to the target token. */
  st: number;
  /** Flow among the other tokens. */
  so: number;
  /** Plain attention mass from the final token to image tokens. */
  attnImage?: number;
  /** Plain attention mass from the final token to text tokens. */
  attnText?: number;
}

export interface SaliencySeries {
  preset: string;
  /** Index i is decoder layer i (0-based). */
  layers: SaliencyLayer[];
}

/** One point of a training curve. */
export interface TrainingPoint {
  step: number;
  loss: number;
  /** Temperature τ of the contrastive loss at this step, when it is learned or logged. */
  tau?: number;
  lr?: number;
}

export interface TrainingCurve {
  preset: string;
  seed?: number;
  points: TrainingPoint[];
}

/** A note as shown in a neighbour gallery. */
export interface NoteView {
  id: string;
  title: string;
  category?: string;
  /** An image URL, normally a `data:image/png;base64,…` or `data:image/svg+xml,…` URI. */
  image?: string;
}

export interface Neighbour extends NoteView {
  score?: number;
  /** True when the neighbour is the query's ground-truth related note. */
  relevant?: boolean;
}

export interface NeighbourQuery {
  query: NoteView;
  neighbours: Neighbour[];
}

/** Note embeddings to project, one row per note. */
export interface EmbeddingSet {
  preset?: string;
  points: { id?: string; category: string; title?: string; vector: ArrayLike<number> }[];
}
