import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ablationBarsFigure,
  projectionFigure,
  recallCurveFigure,
  recallCurveFigures,
  recallCurveSelectorFigure,
  saliencyFigure,
  trainingCurvesFigure,
} from '../../src/viz/figures';
import { metricStd, sampleStd, subsetNames } from '../../src/viz/results';
import type { Results } from '../../src/viz/types';
import { CURVES, EMBEDDINGS, RESULTS, SALIENCY } from './fixture';

const close = (a: number, b: number, eps = 1e-9) => assert.ok(Math.abs(a - b) < eps, `${a} ≠ ${b}`);

test('recall curve: one line per preset, x = K sorted, log axis, y = recall', () => {
  const fig = recallCurveFigure(RESULTS);
  assert.equal(fig.data.length, 2);
  assert.deepEqual(fig.data.map((t) => t.name), ['basic (3 seeds)', 'notellm2 (3 seeds)']);
  assert.deepEqual(fig.data[0].x, [10, 100, 1000]);
  assert.deepEqual(fig.data[0].y, [0.3, 0.6, 0.9]);
  assert.deepEqual(fig.data[1].y, [0.4, 0.75, 0.97]);
  const xaxis = fig.layout.xaxis as { type: string; tickvals: number[] };
  assert.equal(xaxis.type, 'log');
  assert.deepEqual(xaxis.tickvals, [10, 100, 1000]);
  // Stored std is used as-is for basic.
  assert.deepEqual(fig.data[0].error_y?.array, [0.02, 0.05, 0.01]);
  // notellm2 has no stored std: sample std over its three seeds (0.36, 0.40, 0.44 → 0.04).
  const e = fig.data[1].error_y!.array;
  close(e[0], 0.04, 1e-12);
  close(e[1], 0.05, 1e-12);
  close(e[2], 0.01, 1e-12);
});

test('recall curve keys sort numerically (R@5 before R@10 before R@50), not as strings', () => {
  const r: Results = { dataset: 'd', backend: 'cpu', seed: 0, variants: [{ name: 'a', metrics: { 'R@50': 0.5, 'R@10': 0.2, 'R@5': 0.1, MRR: 0.3 } }] };
  const fig = recallCurveFigure(r);
  assert.deepEqual(fig.data[0].x, [5, 10, 50]);
  assert.deepEqual(fig.data[0].y, [0.1, 0.2, 0.5]);
  assert.equal(fig.data[0].error_y, undefined, 'single seed: no error bars');
});

test('recall curves per subset: all + each subset, values from that subset', () => {
  const figs = recallCurveFigures(RESULTS);
  assert.deepEqual(figs.map((f) => f.subset), ['all', 'image-heavy', 'text-heavy']);
  assert.deepEqual(figs[1].figure.data[0].y, [0.2, 0.5, 0.8]);
  assert.deepEqual(figs[2].figure.data[1].y, [0.42, 0.76, 0.98]);
  // basic's stored subset std on image-heavy.
  assert.deepEqual(figs[1].figure.data[0].error_y?.array, [0.03, 0.04, 0.02]);
  // notellm2's seeds record only image-heavy R@100: std of 0.70, 0.74, 0.78 = 0.04; others unknown (NaN).
  const e = figs[1].figure.data[1].error_y!.array;
  assert.ok(Number.isNaN(e[0]) && Number.isNaN(e[2]));
  close(e[1], 0.04, 1e-12);
  assert.throws(() => recallCurveFigure(RESULTS, { subset: 'nope' }), /subset "nope".*all, image-heavy, text-heavy/);
  assert.throws(() => recallCurveFigure(RESULTS, { presets: ['micl'] }), /preset "micl".*basic, notellm2/);
});

test('recall selector: traces of every subset, only the first subset visible, buttons switch visibility', () => {
  const fig = recallCurveSelectorFigure(RESULTS);
  assert.equal(fig.data.length, 6);
  assert.deepEqual(fig.data.map((t) => t.visible), [true, true, false, false, false, false]);
  const menu = (fig.layout.updatemenus as { buttons: { label: string; args: [{ visible: boolean[] }] }[] }[])[0];
  assert.deepEqual(menu.buttons.map((b) => b.label), ['all', 'image-heavy', 'text-heavy']);
  assert.deepEqual(menu.buttons[2].args[0].visible, [false, false, false, false, true, true]);
});

test('ablation bars: grouped by subset, one bar per preset, error bars = given std', () => {
  const fig = ablationBarsFigure(RESULTS);
  assert.equal(fig.layout.barmode, 'group');
  assert.equal((fig.layout.yaxis as { title: { text: string } }).title.text, 'R@100');
  assert.deepEqual(fig.data.map((t) => t.type), ['bar', 'bar']);
  assert.deepEqual(fig.data[0].x, ['all queries', 'image-heavy', 'text-heavy']);
  assert.deepEqual(fig.data[0].y, [0.6, 0.5, 0.7]);
  assert.deepEqual(fig.data[0].error_y?.array, [0.05, 0.04, 0.06]);
  assert.deepEqual(fig.data[1].y, [0.75, 0.74, 0.76]);
  const e = fig.data[1].error_y!.array;
  close(e[0], 0.05, 1e-12);
  close(e[1], 0.04, 1e-12);
  assert.ok(Number.isNaN(e[2]));
  const r10 = ablationBarsFigure(RESULTS, { metric: 'R@10', subsets: ['text-heavy'] });
  assert.deepEqual(r10.data.map((t) => t.y), [[0.4], [0.42]]);
  assert.deepEqual(r10.data[0].error_y?.array, [0.01]);
  assert.throws(() => ablationBarsFigure(RESULTS, { metric: 'R@7' }), /no variant records "R@7"; recorded: R@10, R@100, R@1000/);
});

test('ablation bars default to the largest K when R@100 is absent', () => {
  const r: Results = { dataset: 'd', backend: 'cpu', seed: 0, variants: [{ name: 'a', metrics: { 'R@5': 0.1, 'R@20': 0.4 } }] };
  const fig = ablationBarsFigure(r);
  assert.deepEqual(fig.data[0].y, [0.4]);
  assert.equal(fig.data[0].error_y, undefined);
});

test('sampleStd and metricStd: n−1 denominator, stored value wins over seeds', () => {
  close(sampleStd([1, 2, 3, 4]), Math.sqrt(5 / 3));
  assert.equal(sampleStd([5]), 0);
  assert.equal(metricStd(RESULTS.variants[0], 'all', 'R@100'), 0.05); // stored, seeds would give 0.05 too
  const v = { ...RESULTS.variants[0], metricsStd: { 'R@100': 0.123 } };
  assert.equal(metricStd(v, 'all', 'R@100'), 0.123);
  assert.deepEqual(subsetNames(RESULTS), ['all', 'image-heavy', 'text-heavy']);
});

test('saliency: one column per preset, S_v/S_t/S_o against layer index, attention row, shared y', () => {
  const fig = saliencyFigure(SALIENCY);
  // 2 presets × (3 saliency + 2 attention) traces.
  assert.equal(fig.data.length, 10);
  const sv2 = fig.data.find((t) => t.name?.startsWith('S_v') && t.xaxis === 'x2')!;
  assert.deepEqual(sv2.x, [0, 1, 2, 3]);
  SALIENCY[1].layers.forEach((l, i) => close(sv2.y[i], l.sv));
  const attn = fig.data.filter((t) => t.yaxis === 'y3' || t.yaxis === 'y4');
  assert.equal(attn.length, 4);
  // Legend entries only from the first column, so each quantity is listed once.
  assert.deepEqual(fig.data.filter((t) => t.showlegend).map((t) => t.xaxis), ['x', 'x', 'x', 'x3', 'x3']);
  assert.equal((fig.layout.yaxis2 as { matches: string }).matches, 'y');
  const d1 = (fig.layout.xaxis as { domain: number[] }).domain, d2 = (fig.layout.xaxis2 as { domain: number[] }).domain;
  assert.ok(d1[1] < d2[0], 'columns side by side, not overlapping');
  const only = saliencyFigure(SALIENCY, { presets: ['notellm2'] });
  assert.equal(only.data.filter((t) => t.name?.startsWith('S_')).length, 3);
  assert.throws(() => saliencyFigure(SALIENCY, { presets: ['micl'] }), /"micl" has no saliency; available: basic, notellm2/);
  const noAttn = saliencyFigure([{ preset: 'p', layers: [{ sv: 0.1, st: 0.2, so: 0.7 }] }]);
  assert.equal(noAttn.data.length, 3);
  assert.equal(noAttn.layout.yaxis3, undefined);
});

test('projection: one trace per category, PCA coordinates separate the two clusters along PC1', () => {
  const fig = projectionFigure(EMBEDDINGS);
  assert.deepEqual(fig.data.map((t) => t.name), ['animal', 'fruit']);
  assert.equal(fig.data[0].x.length + fig.data[1].x.length, 12);
  // The clusters sit at x ≈ −1.x and +1.x: PC1 (sign fixed to its largest entry, +x) splits them.
  assert.ok((fig.data[0].x as number[]).every((x) => x < 0));
  assert.ok((fig.data[1].x as number[]).every((x) => x > 0));
  assert.match((fig.layout.xaxis as { title: { text: string } }).title.text, /^PC1 \(\d+\.\d% of variance\)$/);
});

test('training curves: loss on top, τ below, one line per preset', () => {
  const fig = trainingCurvesFigure(CURVES);
  assert.equal(fig.data.length, 4);
  const loss = fig.data.filter((t) => t.yaxis === 'y');
  const tau = fig.data.filter((t) => t.yaxis === 'y2');
  assert.deepEqual(loss.map((t) => t.name), ['basic', 'notellm2']);
  assert.deepEqual(loss[0].x, CURVES[0].points.map((p) => p.step));
  assert.deepEqual(tau[1].y, CURVES[1].points.map((p) => p.tau));
  const lossOnly = trainingCurvesFigure([{ preset: 'x', seed: 3, points: [{ step: 0, loss: 1 }, { step: 1, loss: 0.5 }] }]);
  assert.equal(lossOnly.data.length, 1);
  assert.equal(lossOnly.data[0].name, 'x seed 3');
});

test('figures are plain JSON: a round trip through JSON keeps them intact', () => {
  for (const fig of [recallCurveFigure(RESULTS), ablationBarsFigure(RESULTS, { subsets: ['all'] }), saliencyFigure(SALIENCY), trainingCurvesFigure(CURVES)]) {
    assert.deepEqual(JSON.parse(JSON.stringify(fig)), fig);
  }
});
