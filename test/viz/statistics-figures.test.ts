/**
 * What the figures and the report make of a run's statistics: asymmetric 95 % error bars from
 * `intervals`, the baselines drawn beside the variants, the claims, comparisons and regime
 * sections, and the regime heatmaps (docs/method.md "Uncertainty and paired comparisons").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ablationBarsFigure, recallCurveFigure, regimeHeatmapFigure } from '../../src/viz/figures';
import { buildReport, claimTableRows, comparisonTableRows, recallTableRows, regimeTableRows, subsetTableRows } from '../../src/viz/report';
import type { Results } from '../../src/viz/types';
import type { RegimeCell } from '../../src/experiments/results';

const est = (estimate: number, lo: number, hi: number) => ({ estimate, lo, hi });
const cell = (lm: number, vision: number, gain: number): RegimeCell => ({
  cell: `lm${lm}x-vit${vision}x`,
  axes: { lm, vision },
  metric: 'R@100',
  basic: { full: est(0.5, 0.4, 0.6), textAlone: est(0.45, 0.35, 0.55), imageAlone: est(0.1, 0.05, 0.15) },
  neglectIndex: { imageAlone: est(0.2, 0.1, 0.3), textAlone: est(0.9, 0.8, 1) },
  neglect: { estimate: 0.35, lo: 0.25, hi: 0.45, p: 0.001, verdict: 'supported' },
  gains: { notellm2: { estimate: gain, lo: gain - 0.05, hi: gain + 0.05, p: 0.01, verdict: gain - 0.05 > 0 ? 'supported' : 'inconclusive' } },
});

const RESULTS: Results = {
  dataset: 'synth',
  backend: 'cpu',
  seed: 0,
  variants: [
    {
      name: 'basic',
      metrics: { 'R@10': 0.3, 'R@100': 0.6 },
      subsets: { text: { 'R@10': 0.2, 'R@100': 0.5 } },
      intervals: { metrics: { 'R@10': [0.25, 0.36], 'R@100': [0.55, 0.64] }, subsets: { text: { 'R@10': [0.1, 0.3], 'R@100': [0.4, 0.6] } }, probes: {}, probeSubsets: {} },
    },
  ],
  baselines: [
    {
      name: 'tfidf-text', modality: 'text', nQueries: 100, poolSize: 500,
      metrics: { 'R@10': 0.4, 'R@100': 0.9 }, subsets: { text: { 'R@10': 0.5, 'R@100': 0.95 } },
      probes: { zeroImage: { 'R@10': 0.4, 'R@100': 0.9 } }, probeSubsets: {},
      intervals: { metrics: { 'R@10': [0.35, 0.45], 'R@100': [0.85, 0.94] }, subsets: { text: { 'R@10': [0.4, 0.6], 'R@100': [0.9, 0.99] } }, probes: {}, probeSubsets: {} },
    },
  ],
  comparisons: [
    { a: 'basic', b: 'tfidf-text', input: 'full', subset: 'text', metric: 'R@10', nQueries: 50, diff: -0.3, lo: -0.4, hi: -0.2, p: 0.0005 },
    { a: 'basic', b: 'tfidf-text', input: 'full', subset: 'all', metric: 'R@10', nQueries: 100, diff: -0.1, lo: -0.2, hi: 0.01, p: 0.07 },
  ],
  claims: [
    { id: 'b', statement: 'mICL beats basic', metric: 'R@100', measured: [], comparisons: [], verdict: 'not run', note: 'not in the run: micl' },
  ],
  regimes: [cell(0, 0, 0.01), cell(4, 0, 0.2), cell(0, 1, -0.02)],
};

test('error bars are the asymmetric 95 % intervals; baselines are drawn dashed / hatched after the variants', () => {
  const curve = recallCurveFigure(RESULTS);
  assert.deepEqual(curve.data.map((t) => t.name), ['basic', 'tfidf-text']);
  const e = curve.data[0].error_y!;
  assert.equal(e.symmetric, false);
  assert.deepEqual(e.array.map((x) => +x.toFixed(6)), [0.06, 0.04]);
  assert.deepEqual(e.arrayminus!.map((x) => +x.toFixed(6)), [0.05, 0.05]);
  assert.equal(curve.data[1].line?.dash, 'dash');
  assert.match(curve.data[0].text![0], /\[0\.250, 0\.360\]/);
  const bars = ablationBarsFigure(RESULTS, { metric: 'R@100' });
  assert.deepEqual(bars.data.map((t) => t.name), ['basic', 'tfidf-text']);
  assert.deepEqual(bars.data[1].y, [0.9, 0.95]);
  assert.deepEqual((bars.data[1].marker as { pattern?: unknown }).pattern, { shape: '/' });
  assert.match(String(bars.layout.title?.text), /95 % interval over queries/);
});

test('tables: `mean [lo, hi]` cells and baseline rows; claims, comparisons and regime rows', () => {
  assert.deepEqual(recallTableRows(RESULTS).map((r) => r.variant), ['basic', 'tfidf-text (baseline)']);
  assert.equal(recallTableRows(RESULTS)[0]['R@10'], '0.300 [0.250, 0.360]');
  assert.equal(subsetTableRows(RESULTS, 'R@100')[1].text, '0.950 [0.900, 0.990]');
  assert.deepEqual(claimTableRows(RESULTS)[0], { claim: '(b) mICL beats basic', metric: 'R@100', measured: '', 'paired difference (points)': 'not in the run: micl', verdict: 'not run' });
  assert.deepEqual(comparisonTableRows(RESULTS, 'R@10', { subset: 'text' }), [{ difference: 'basic − tfidf-text', subset: 'text', n: 50, points: '−30.0', '95 % interval': '[−40.0, −20.0]', p: '<0.001' }]);
  const rows = regimeTableRows(RESULTS);
  assert.equal(rows.length, 3);
  assert.equal(rows[1]['notellm2 − basic (points)'], '+20.0 [+15.0, +25.0] supported');
  assert.equal(rows[0]['image neglected'], 'supported');
});

test('regime heatmap: LM budget on x, vision budget on y, missing cells NaN, intervals in the hover text', () => {
  const f = regimeHeatmapFigure(RESULTS, 'gain-notellm2');
  const t = f.data[0];
  assert.equal(t.type, 'heatmap');
  // x: ×0, ×4; y: ×0, ×1. Cell (lm 4, vision 1) was not run.
  assert.deepEqual((f.layout.xaxis as { ticktext: string[] }).ticktext, ['×0', '×4']);
  assert.deepEqual((f.layout.yaxis as { ticktext: string[] }).ticktext, ['×0', '×1']);
  assert.deepEqual(t.z![0], [0.01, 0.2]);
  assert.equal(t.z![1][0], -0.02);
  assert.ok(Number.isNaN(t.z![1][1]));
  const hover = t.hovertext as string[][];
  assert.match(hover[0][1], /^lm4x-vit0x: 0\.200 \[0\.150, 0\.250\]<br>p 0\.010, supported$/);
  assert.equal(hover[1][1], 'not run');
  assert.equal(t.zmin, -0.2, 'gains on a colour scale symmetric about 0');
  const n = regimeHeatmapFigure(RESULTS, 'neglect-image');
  assert.deepEqual(n.data[0].z![0], [0.2, 0.2]);
  assert.throws(() => regimeHeatmapFigure({ ...RESULTS, regimes: [] }, 'gain-micl'), /no regime map/);
});

test('report: claims, comparisons and regime sections with the heatmaps', () => {
  const { html, figures } = buildReport({ dir: '/tmp/x', results: RESULTS });
  for (const id of ['claims', 'comparisons', 'regimes']) assert.ok(html.includes(`id="${id}"`), id);
  assert.deepEqual(figures.filter((f) => f.id.startsWith('regime-')).map((f) => f.id), ['regime-neglect-image', 'regime-neglect-text', 'regime-gain-notellm2']);
  assert.ok(html.includes('Image neglect appears in: lm0x-vit0x, lm4x-vit0x, lm0x-vit1x.'));
  assert.ok(html.includes('tfidf-text (baseline)'));
});
