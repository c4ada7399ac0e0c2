import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pca } from '../../src/viz/pca';
import { Rng } from '../../src/backend/rng';

const close = (a: number, b: number, eps: number, what = '') => assert.ok(Math.abs(a - b) < eps, `${what} ${a} ≠ ${b}`);

test('pca: points on a known line recover its direction and variance', () => {
  // Points t·(3, 4)/5 + small orthogonal jitter: first axis = (0.6, 0.8), variance = var(t).
  const ts = [-2, -1, 0, 1, 2, 3];
  // Jitter signs s sum to 0 and are uncorrelated with t, so they cannot tilt the axis.
  const s = [1, -1, 0, 0, -1, 1];
  const pts = ts.map((t, i) => [0.6 * t - 0.8 * 0.01 * s[i] + 10, 0.8 * t + 0.6 * 0.01 * s[i] - 5]);
  const r = pca(pts);
  close(r.components[0][0], 0.6, 1e-9, 'axis x');
  close(r.components[0][1], 0.8, 1e-9, 'axis y');
  const mean = ts.reduce((a, b) => a + b) / ts.length;
  const varT = ts.reduce((a, t) => a + (t - mean) ** 2, 0) / (ts.length - 1);
  close(r.variance[0], varT, 1e-3, 'variance');
  close(r.mean[0], 10 + 0.6 * mean, 1e-9, 'mean');
  // Second axis is orthogonal to the first; coordinates on PC1 are t − mean(t).
  close(r.components[0][0] * r.components[1][0] + r.components[0][1] * r.components[1][1], 0, 1e-9, 'orthogonal');
  r.coords.forEach((c, i) => close(c[0], ts[i] - mean, 1e-3, `coord ${i}`));
  close(r.varianceRatio[0] + r.varianceRatio[1], 1, 1e-9, 'ratios sum');
});

test('pca: axis-aligned anisotropic cloud gives the axes in variance order, sign fixed positive', () => {
  // Std 5 along z, 2 along x, 0.5 along y in 3-D: components are ±e_z, ±e_x, ±e_y → with the
  // sign convention exactly e_z, e_x, e_y.
  const rng = new Rng(3);
  const pts = Array.from({ length: 400 }, () => [2 * rng.normal(), 0.5 * rng.normal(), 5 * rng.normal()]);
  const r = pca(pts, { k: 3 });
  const expected = [[0, 0, 1], [1, 0, 0], [0, 1, 0]];
  r.components.forEach((c, k) => c.forEach((v, j) => close(v, expected[k][j], 0.05, `component ${k}[${j}]`)));
  assert.ok(r.variance[0] > r.variance[1] && r.variance[1] > r.variance[2]);
  close(Math.sqrt(r.variance[0]), 5, 0.5, 'std along z');
});

test('pca: fewer points than dimensions (Gram path) matches the covariance path', () => {
  const rng = new Rng(11);
  const base = Array.from({ length: 5 }, () => Array.from({ length: 8 }, () => rng.normal()));
  const gram = pca(base); // n = 5 < d = 8
  // Each returned axis must be an eigenvector of the covariance: C v = λ v.
  const n = base.length, d = 8;
  const mean = Array.from({ length: d }, (_, j) => base.reduce((a, p) => a + p[j], 0) / n);
  for (let k = 0; k < 2; k++) {
    const v = gram.components[k];
    const cv = Array.from({ length: d }, (_, a) => base.reduce((s, p) => s + (p[a] - mean[a]) * p.reduce((t, x, b) => t + (x - mean[b]) * v[b], 0), 0) / (n - 1));
    cv.forEach((x, a) => close(x, gram.variance[k] * v[a], 1e-6, `Cv=λv comp ${k} dim ${a}`));
  }
});

test('pca: deterministic across calls and seeds; bad input named', () => {
  const pts = [[1, 2, 3], [2, 1, 0], [0, 0, 1], [3, 3, 3]];
  assert.deepEqual(pca(pts), pca(pts));
  const a = pca(pts, { seed: 1 }), b = pca(pts, { seed: 99 });
  a.components.forEach((c, k) => c.forEach((v, j) => close(v, b.components[k][j], 1e-6, 'seed independence')));
  assert.throws(() => pca([[1, 2]]), /at least 2 points/);
  assert.throws(() => pca([[1, 2], [1]]), /point 1 has 1 dimensions, point 0 has 2/);
  assert.throws(() => pca([[1, 2], [1, NaN]]), /point 1 dimension 1 is not finite/);
  assert.throws(() => pca(pts, { k: 4 }), /k must be an integer in 1\.\.3/);
  // Identical points: zero variance, zero coordinates, no NaN.
  const z = pca([[1, 1], [1, 1], [1, 1]]);
  assert.ok(z.coords.flat().every((x) => x === 0));
  assert.ok(z.varianceRatio.every((x) => x === 0));
});
