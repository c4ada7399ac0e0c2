/**
 * The statistics of docs/method.md "Uncertainty and paired comparisons", on cases small enough
 * to work out by hand: quantiles, bootstrap intervals whose replicate distribution is known
 * exactly, sign-flip and label permutation tests whose p-values come from enumeration.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  QueryBootstrap,
  bootstrapMean,
  labelPermutationTest,
  percentileInterval,
  quantileSorted,
  signFlipTest,
} from '../../src/eval/stats';

test('quantileSorted interpolates between order statistics (type 7); percentileInterval ignores NaN', () => {
  assert.equal(quantileSorted([1, 2, 3, 4], 0.5), 2.5);
  assert.equal(quantileSorted([1, 2, 3, 4], 0.25), 1.75);
  assert.equal(quantileSorted([1, 2, 3, 4], 0), 1);
  assert.equal(quantileSorted([1, 2, 3, 4], 1), 4);
  assert.ok(Number.isNaN(quantileSorted([], 0.5)));
  // 0.5 level: quantiles 0.25 and 0.75 of 0..4 → 1 and 3.
  assert.deepEqual(percentileInterval([4, NaN, 0, 2, 1, 3], 0.5), [1, 3]);
  assert.deepEqual(percentileInterval([NaN]), [NaN, NaN]);
  assert.throws(() => percentileInterval([1], 1), /level must be in \(0, 1\)/);
});

test('bootstrap of the mean of [0, 0, 1, 1]: replicate means follow Binomial(4, ½)/4 and the 80 % interval is [0.25, 0.75]', () => {
  const r = bootstrapMean([0, 0, 1, 1], { replicates: 4000, seed: 7, level: 0.8 });
  assert.equal(r.estimate, 0.5);
  // P(k/4) = C(4,k)/16: 1/16, 4/16, 6/16, 4/16, 1/16. The 10 % quantile falls in the k = 1 mass
  // (cumulative 0.0625 → 0.3125), the 90 % one in k = 3 (0.6875 → 0.9375).
  assert.deepEqual([r.lo, r.hi], [0.25, 0.75]);
  const exact = [1, 4, 6, 4, 1].map((c) => c / 16);
  exact.forEach((pk, k) => {
    const share = r.replicates.filter((x) => x === k / 4).length / 4000;
    const se = Math.sqrt((pk * (1 - pk)) / 4000);
    assert.ok(Math.abs(share - pk) < 4 * se, `P(mean = ${k}/4): ${share} vs exact ${pk}`);
  });
  // Fixed seed: identical replicates; another seed: another draw.
  assert.deepEqual(bootstrapMean([0, 0, 1, 1], { replicates: 4000, seed: 7, level: 0.8 }).replicates, r.replicates);
  assert.notDeepEqual(bootstrapMean([0, 0, 1, 1], { replicates: 4000, seed: 8, level: 0.8 }).replicates, r.replicates);
});

test('sign-flip test: p by enumeration of the 16 sign patterns of [1, 2, 3, −1] is 6/16; clusters flip as a unit', () => {
  // Observed sum 5. Writing a pattern as 7 − 2·(sum of the flipped absolute values {1, 2, 3, 1}),
  // |sum| ≥ 5 exactly when the flipped part sums to ≤ 1 ({}, {1}, {1'}) or ≥ 6 ({1,2,3}, {1',2,3}, all).
  const t = signFlipTest([1, 2, 3, -1]);
  assert.equal(t.exact, true);
  assert.equal(t.p, 6 / 16);
  assert.equal(t.statistic, 5 / 4);
  // Clusters {0, 1} and {2, 3} sum to 3 and 2: patterns ±3 ± 2 = 5, 1, −1, −5 → p = 2/4.
  assert.equal(signFlipTest([1, 2, 3, -1], { clusters: [0, 0, 1, 1] }).p, 0.5);
  // No difference at all: every pattern ties the observed 0.
  assert.equal(signFlipTest([0, 0, 0]).p, 1);
  // Monte Carlo beyond EXACT_SIGN_FLIP_MAX clusters: a constant positive shift over 40 queries is
  // reached only by the all-plus pattern (probability 2^-40), so p = (1 + 0) / (1 + 500).
  const mc = signFlipTest(new Array(40).fill(0.1), { resamples: 500, seed: 3 });
  assert.equal(mc.exact, false);
  assert.equal(mc.p, 1 / 501);
});

test('label permutation test: [1, 2] vs [3, 4] has p = 2/6 over the six ways to split four values', () => {
  // Group means of the splits: {1,2} −2, {1,3} −1, {1,4} 0, {2,3} 0, {2,4} 1, {3,4} 2.
  const t = labelPermutationTest([1, 2, 3, 4], [0, 1], [2, 3]);
  assert.equal(t.statistic, -2);
  assert.equal(t.p, 2 / 6);
  assert.equal(t.exact, true);
  assert.ok(Number.isNaN(labelPermutationTest([1, 2], [0, 1], []).p), 'an empty group has no test');
  // Monte Carlo: two well-separated groups of 20 → only permutations as extreme as the observed one count.
  const values = [...new Array(20).fill(0), ...new Array(20).fill(1)];
  const mc = labelPermutationTest(values, [...Array(20).keys()], [...Array(20).keys()].map((i) => i + 20), { resamples: 300, seed: 1 });
  assert.equal(mc.statistic, -1);
  assert.equal(mc.p, 1 / 301);
});

test('nested bootstrap: seeds are resampled too — two seeds at 0 and 1 give replicates 0, ½, 1 with probabilities ¼, ½, ¼', () => {
  const b = new QueryBootstrap({ v: { unit: 'v', values: [[0, 0, 0, 0], [1, 1, 1, 1]] } }, { replicates: 4000, seed: 2 });
  assert.equal(b.estimate('v'), 0.5);
  const r = b.replicateValues('v');
  const share = (x: number) => r.filter((y) => y === x).length / r.length;
  for (const [x, p] of [[0, 0.25], [0.5, 0.5], [1, 0.25]]) assert.ok(Math.abs(share(x) - p) < 0.03, `P(${x}) = ${share(x)}`);
  assert.deepEqual([b.interval('v').lo, b.interval('v').hi], [0, 1]);
});

test('paired differences: a constant per-query shift has a zero-width interval however noisy the arms; unpaired intervals are wide', () => {
  const a = [1, 0, 0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1];
  const b = a.map((x) => x + 0.1);
  const boot = new QueryBootstrap({ a: { unit: 'a', values: [a] }, b: { unit: 'b', values: [b] } }, { replicates: 500, permutations: 500, seed: 4 });
  const d = boot.difference('a', 'b');
  assert.ok(Math.abs(d.estimate + 0.1) < 1e-12);
  assert.ok(Math.abs(d.lo + 0.1) < 1e-12 && Math.abs(d.hi + 0.1) < 1e-12, `[${d.lo}, ${d.hi}]`);
  assert.equal(d.p, 1 / 501, 'only the all-equal sign patterns reach the observed sum');
  const ia = boot.interval('a');
  assert.ok(ia.hi - ia.lo > 0.3, 'the arm itself varies with the query draw');
  // Two arms of one unit share the seed draw; a subset restricts the queries.
  boot.addSubset('first-five', [0, 1, 2, 3, 4]);
  assert.equal(boot.estimate('a', 'first-five'), 0.6);
  assert.equal(boot.size('first-five'), 5);
  assert.equal(boot.differences([['a', 'b'], ['b', 'a']], 'first-five')[1].estimate.toFixed(12), '0.100000000000');
});

test('clusters are resampled whole: [1, 1, 0, 0] in clusters {0,1}, {2,3} only ever gives 0, ½ or 1', () => {
  const b = new QueryBootstrap({ v: { unit: 'v', values: [[1, 1, 0, 0]] } }, { replicates: 300, seed: 5, clusters: [7, 7, 9, 9] });
  const distinct = [...new Set(b.replicateValues('v'))].sort();
  assert.deepEqual(distinct, [0, 0.5, 1]);
  const plain = new QueryBootstrap({ v: { unit: 'v', values: [[1, 1, 0, 0]] } }, { replicates: 300, seed: 5 });
  assert.ok(plain.replicateValues('v').some((x) => x === 0.25 || x === 0.75), 'without clusters single queries are drawn');
});

test('QueryBootstrap refuses arms on different queries, inconsistent units, unknown names; an empty subset is NaN', () => {
  assert.throws(() => new QueryBootstrap({ a: { unit: 'a', values: [[1, 0]] }, b: { unit: 'b', values: [[1]] } }), /same queries/);
  assert.throws(() => new QueryBootstrap({ a: { unit: 'u', values: [[1], [0]] }, b: { unit: 'u', values: [[1]] } }), /disagree on the number of seeds/);
  const b = new QueryBootstrap({ a: { unit: 'a', values: [[1, 0]] } }, { replicates: 10 });
  assert.throws(() => b.interval('nope'), /no arm "nope"; arms are a/);
  assert.throws(() => b.interval('a', 'nope'), /no subset "nope"/);
  assert.throws(() => b.addSubset('bad', [2]), /names query 2 of 2/);
  b.addSubset('empty', []);
  const e = b.interval('a', 'empty');
  assert.ok(Number.isNaN(e.estimate) && Number.isNaN(e.lo) && Number.isNaN(e.hi));
  assert.ok(Number.isNaN(b.difference('a', 'a', 'empty').p));
});
