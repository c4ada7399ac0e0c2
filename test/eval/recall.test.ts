import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, assertNoTensorLeak, Rng, tf } from '../../src/backend';
import { allPairQueries, countAbovePartner, evaluateRecall, hitAt, keepPairs, RECALL_KS, transposeRows } from '../../src/eval/recall';
import { EmbeddingCatalogue } from '../../src/eval/catalogue';
import type { Pair } from '../../src/data/schema';

before(async () => {
  await initBackend();
});

/*
 * Hand-worked example. Six test pairs, walked in order:
 *   0 (n1, n2) visual  kept          used {n1, n2}
 *   1 (n2, n3) text    skipped: n2 was used (as a target)
 *   2 (n3, n4) text    kept          used {n1..n4}
 *   3 (n5, n1) visual  skipped: n1 was used (as a query)
 *   4 (n5, n6) visual  kept          used {n1..n6}
 *   5 (n6, n7) both    skipped: n6 was used
 * Queries: n1, n3, n5. Test notes n1..n8 (n8 is in no pair), so the pool is
 * {n2, n4, n6, n7, n8}: poolSize 5.
 *
 * 2-D embeddings (cosine = dot of the normalised vectors; n7 and n8 are scaled on purpose):
 *   n1 ( 1, 0)  n3 (0, 1)  n5 (−1, 0)                     queries
 *   n2 (0.6, 0.8)  n4 (1, 0)  n6 (−0.8, 0.6)  n7 (0, −2)  n8 (2.4, 1.8) = 3·(0.8, 0.6)
 *
 * Cosines (rows: query; columns: n2 n4 n6 n7 n8):
 *   n1:  0.6  1.0 −0.8  0.0  0.8   partner n2 = 0.6; higher: n4, n8        → rank 2
 *   n3:  0.8  0.0  0.6 −1.0  0.6   partner n4 = 0.0; higher: n2, n6, n8    → rank 3
 *   n5: −0.6 −1.0  0.8  0.0 −0.8   partner n6 = 0.8; nothing higher        → rank 0
 * With ks [1, 2, 3, 4, 5, 10], only K < 5 are reported: 1, 2, 3, 4.
 *   R@1 = 1/3 (n5)   R@2 = 1/3 (rank 2 is not < 2)   R@3 = 2/3   R@4 = 3/3
 * Subsets over kept pairs: visual = {n1 (rank 2), n5 (rank 0)}: R@1 1/2, R@2 1/2, R@3 1, R@4 1;
 *   text = {n3 (rank 3)}: R@1 0, R@2 0, R@3 0, R@4 1;  both = {} (its only pair was skipped).
 */
const PAIRS: Pair[] = [
  { a: 'n1', b: 'n2', label: 'visual' },
  { a: 'n2', b: 'n3', label: 'text' },
  { a: 'n3', b: 'n4', label: 'text' },
  { a: 'n5', b: 'n1', label: 'visual' },
  { a: 'n5', b: 'n6', label: 'visual' },
  { a: 'n6', b: 'n7', label: 'both' },
];
const EMB = new Map<string, Float32Array>([
  ['n1', new Float32Array([1, 0])],
  ['n2', new Float32Array([0.6, 0.8])],
  ['n3', new Float32Array([0, 1])],
  ['n4', new Float32Array([1, 0])],
  ['n5', new Float32Array([-1, 0])],
  ['n6', new Float32Array([-0.8, 0.6])],
  ['n7', new Float32Array([0, -2])],
  ['n8', new Float32Array([2.4, 1.8])],
]);

test('dedupe walk keeps pairs 0, 2, 4 of the hand-worked example', () => {
  const kept = keepPairs(PAIRS);
  assert.deepEqual(kept.map((k) => [k.index, k.query, k.target]), [[0, 'n1', 'n2'], [2, 'n3', 'n4'], [4, 'n5', 'n6']]);
  // A self-pair is never kept, and does not consume its note.
  assert.deepEqual(keepPairs([{ a: 'x', b: 'x' }, { a: 'x', b: 'y' }]).map((k) => k.index), [1]);
});

test('recall protocol on the hand-worked example: ranks, K cut by pool size, subsets', async () => {
  const r = await evaluateRecall(PAIRS, EMB, {
    ks: [1, 2, 3, 4, 5, 10],
    subsets: {
      visual: (p) => p.label === 'visual',
      text: (p) => p.label === 'text',
      both: (p) => p.label === 'both',
      query_n3: (p) => p.a === 'n3',
    },
  });
  assert.equal(r.poolSize, 5);
  assert.equal(r.nQueries, 3);
  assert.equal(r.nPairs, 6);
  assert.deepEqual(r.k, [1, 2, 3, 4]);
  assert.deepEqual(Array.from(r.ranks), [2, 3, 0]);
  assert.deepEqual(Array.from(r.ties), [0, 0, 0]);
  const third = 1 / 3;
  assert.deepEqual(r.recall, { 'R@1': third, 'R@2': third, 'R@3': 2 / 3, 'R@4': 1 });
  assert.deepEqual(r.subsets.visual, { nQueries: 2, recall: { 'R@1': 0.5, 'R@2': 0.5, 'R@3': 1, 'R@4': 1 } });
  assert.deepEqual(r.subsets.text, { nQueries: 1, recall: { 'R@1': 0, 'R@2': 0, 'R@3': 0, 'R@4': 1 } });
  assert.deepEqual(r.subsets.query_n3, r.subsets.text);
  assert.equal(r.subsets.both.nQueries, 0);
  assert.ok(Number.isNaN(r.subsets.both.recall['R@1']));
  // Same result from a catalogue, tiny chunks (one query row at a time), and explicit notes.
  const cat = EmbeddingCatalogue.fromEntries(EMB);
  const r2 = await evaluateRecall(PAIRS, cat, { ks: [1, 2, 3, 4], chunkElements: 1, notes: [...EMB.keys()] });
  assert.deepEqual(Array.from(r2.ranks), [2, 3, 0]);
  // Leaving n8 out of the test notes shrinks the pool to 4 and lowers n1's and n3's ranks.
  const r3 = await evaluateRecall(PAIRS, EMB, { ks: [1, 2, 3, 4], notes: ['n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7'] });
  assert.equal(r3.poolSize, 4);
  assert.deepEqual(r3.k, [1, 2, 3]);
  assert.deepEqual(Array.from(r3.ranks), [1, 2, 0]);
});

test('default K list: only K below the pool size (pool 50 → R@10, R@20; pool 51 → also R@50)', async () => {
  const rng = new Rng(3);
  const ids = Array.from({ length: 90 }, (_, i) => `m${i}`);
  const emb = new Map(ids.map((id) => [id, rng.normalArray(4, 1)]));
  const pairs: Pair[] = Array.from({ length: 40 }, (_, i) => ({ a: ids[i], b: ids[40 + i] }));
  const r = await evaluateRecall(pairs, emb);
  assert.equal(r.poolSize, 50); // 90 notes − 40 queries
  assert.deepEqual(r.k, [10, 20]);
  assert.deepEqual(Object.keys(r.recall), ['R@10', 'R@20']);
  emb.set('extra', rng.normalArray(4, 1));
  const r2 = await evaluateRecall(pairs, emb);
  assert.deepEqual(r2.k, [10, 20, 50]);
  assert.deepEqual(RECALL_KS, [10, 20, 50, 100, 1000, 10000, 100000, 1000000]);
});

test('ranks match a brute-force float64 ranking on random data, for every chunk size', async () => {
  const rng = new Rng(11);
  const D = 8, n = 120;
  const ids = Array.from({ length: n }, (_, i) => `x${i}`);
  const emb = new Map(ids.map((id) => [id, rng.normalArray(D, 1)]));
  // Random pairs with repeats, so the dedupe walk has work to do.
  const pairs: Pair[] = Array.from({ length: 80 }, () => ({ a: ids[rng.int(n)], b: ids[rng.int(n)] }));
  const kept = keepPairs(pairs);
  const queries = new Set(kept.map((k) => k.query));
  const pool = ids.filter((id) => !queries.has(id));
  const cos = (u: Float32Array, v: Float32Array) => {
    let d = 0, nu = 0, nv = 0;
    for (let k = 0; k < D; k++) { d += u[k] * v[k]; nu += u[k] * u[k]; nv += v[k] * v[k]; }
    return d / Math.sqrt(nu * nv);
  };
  const want = kept.map((k) => {
    const s = cos(emb.get(k.query)!, emb.get(k.target)!);
    return pool.filter((id) => cos(emb.get(k.query)!, emb.get(id)!) > s).length;
  });
  for (const chunkElements of [1, 500, 1 << 22]) {
    const r = await evaluateRecall(pairs, emb, { chunkElements });
    assert.deepEqual(Array.from(r.ranks), want, `chunkElements ${chunkElements}`);
    const r10 = want.filter((x) => x < 10).length / want.length;
    assert.ok(Math.abs(r.recall['R@10'] - r10) < 1e-12);
  }
});

test('ties: expected (default), optimistic and pessimistic; a collapsed model scores chance', async () => {
  assert.equal(hitAt(1, 0, 1, 'expected'), 0.5);
  assert.equal(hitAt(1, 0, 1, 'optimistic'), 1);
  assert.equal(hitAt(1, 0, 1, 'pessimistic'), 0);
  assert.equal(hitAt(3, 1, 4, 'expected'), 2 / 5);
  // q = (1, 0); pool: partner (1, 1), a duplicate (1, 1), and (0, 1). The partner ties with
  // one note: higher 0, ties 1 → R@1 = 1/2 (expected), 1 (optimistic), 0 (pessimistic).
  const emb = new Map([
    ['q', new Float32Array([1, 0])],
    ['p', new Float32Array([1, 1])],
    ['dup', new Float32Array([1, 1])],
    ['o', new Float32Array([0, 1])],
  ]);
  const pairs = [{ a: 'q', b: 'p' }];
  const e = await evaluateRecall(pairs, emb, { ks: [1, 2] });
  assert.deepEqual([Array.from(e.ranks), Array.from(e.ties)], [[0], [1]]);
  assert.deepEqual(e.recall, { 'R@1': 0.5, 'R@2': 1 });
  assert.equal((await evaluateRecall(pairs, emb, { ks: [1], ties: 'optimistic' })).recall['R@1'], 1);
  assert.equal((await evaluateRecall(pairs, emb, { ks: [1], ties: 'pessimistic' })).recall['R@1'], 0);
  // All embeddings equal: every pool note ties; R@10 over a pool of 100 is 10/100.
  const ids = Array.from({ length: 150 }, (_, i) => `c${i}`);
  const flat = new Map(ids.map((id) => [id, new Float32Array([0.3, 0.4, 0.5])]));
  const collapsed = await evaluateRecall(Array.from({ length: 50 }, (_, i) => ({ a: ids[i], b: ids[50 + i] })), flat);
  assert.equal(collapsed.poolSize, 100);
  assert.ok(Math.abs(collapsed.recall['R@10'] - 0.1) < 1e-12, `${collapsed.recall['R@10']}`);
});

/*
 * The 'all-pairs' protocol by hand. Notes x1 (1,0), x2 (1,1), x3 (0,1), x4 (−1,0), x5 (0,−1):
 * every cosine is 0, ±1 or ±f with f = 1/√2 read from one normalised row, so ties are exact.
 * Pairs: (x1,x2) a, (x2,x3) b, (x2,x1) a repeat, (x3,x1) a, (x4,x4) self, (x4,x5) b → four
 * distinct pairs, eight queries; pool = the four other notes, so K < 4.
 *   x1→x2  row x1: x2 f, x3 0, x4 −1, x5 0      higher 0, ties 0
 *   x2→x1  row x2: x1 f, x3 f, x4 −f, x5 −f     higher 0, ties 1 (x3)
 *   x2→x3  same row                             higher 0, ties 1 (x1)
 *   x3→x2  row x3: x1 0, x2 f, x4 0, x5 −1      higher 0, ties 0
 *   x3→x1  partner 0: x2 above, x4 level        higher 1, ties 1
 *   x1→x3  partner 0: x2 above, x5 level        higher 1, ties 1
 *   x4→x5  row x4: x1 −1, x2 −f, x3 0, x5 0     higher 0, ties 1 (x3)
 *   x5→x4  row x5: x1 0, x2 −f, x3 −1, x4 0     higher 0, ties 1 (x1)
 * Expected hits at K = 1: 1, ½, ½, 1, 0, 0, ½, ½ → R@1 = 4/8; at K = 2: all 1 but x3→x1 and
 * x1→x3 (½ each) → 7/8; R@3 = 1.
 */
test("'all-pairs' protocol on a hand-worked example: both directions, pool = every other note, one cluster per pair", async () => {
  const s = Math.SQRT1_2;
  const emb = new Map([
    ['x1', new Float32Array([1, 0])],
    ['x2', new Float32Array([s, s])],
    ['x3', new Float32Array([0, 1])],
    ['x4', new Float32Array([-1, 0])],
    ['x5', new Float32Array([0, -1])],
  ]);
  const pairs: Pair[] = [
    { a: 'x1', b: 'x2', label: 'a' },
    { a: 'x2', b: 'x3', label: 'b' },
    { a: 'x2', b: 'x1', label: 'a' },
    { a: 'x3', b: 'x1', label: 'a' },
    { a: 'x4', b: 'x4', label: 'b' },
    { a: 'x4', b: 'x5', label: 'b' },
  ];
  const q = allPairQueries(pairs);
  assert.deepEqual(q.map((k) => `${k.query}>${k.target}`), ['x1>x2', 'x2>x1', 'x2>x3', 'x3>x2', 'x3>x1', 'x1>x3', 'x4>x5', 'x5>x4']);
  assert.deepEqual(q.map((k) => k.cluster), [0, 0, 1, 1, 2, 2, 3, 3]);
  assert.deepEqual(q.map((k) => k.index), [0, 0, 1, 1, 3, 3, 5, 5]);
  const subsets = { a: (p: Pair) => p.label === 'a', b: (p: Pair) => p.label === 'b', fromX2: (p: Pair) => p.a === 'x2' };
  for (const chunkElements of [1, 1 << 22]) {
    const r = await evaluateRecall(pairs, emb, { protocol: 'all-pairs', ks: [1, 2, 3, 4, 10], subsets, chunkElements });
    assert.equal(r.protocol, 'all-pairs');
    assert.equal(r.poolSize, 4);
    assert.deepEqual(r.k, [1, 2, 3]);
    assert.deepEqual(Array.from(r.ranks), [0, 0, 0, 0, 1, 1, 0, 0]);
    assert.deepEqual(Array.from(r.ties), [0, 1, 1, 0, 1, 1, 1, 1]);
    assert.deepEqual(r.recall, { 'R@1': 0.5, 'R@2': 7 / 8, 'R@3': 1 });
    assert.deepEqual(Array.from(r.clusters!), [0, 0, 1, 1, 2, 2, 3, 3]);
    // Subsets see the reversed pair: the query side of x2→x1 is x2.
    assert.deepEqual(r.subsetQueries, { a: [0, 1, 4, 5], b: [2, 3, 6, 7], fromX2: [1, 2] });
    assert.deepEqual(r.subsets.a.recall, { 'R@1': 1.5 / 4, 'R@2': 3 / 4, 'R@3': 1 });
  }
  // The reference protocol on the same data is unchanged: no clusters, queries x1, x4 (pair 1 and 3 skip).
  const ref = await evaluateRecall(pairs, emb, { ks: [1, 2] });
  assert.equal(ref.protocol, 'reference');
  assert.equal(ref.clusters, undefined);
  assert.deepEqual(ref.kept.map((k) => k.query), ['x1', 'x4']);
  await assert.rejects(evaluateRecall(pairs, emb, { protocol: 'pairs' as never }), /"pairs" is not one of reference, all-pairs/);
  const poolT = tf.tensor2d(transposeRows(new Float32Array([1, 0, 0, 1]), 2, 2), [2, 2]);
  await assert.rejects(countAbovePartner(new Float32Array([1, 0]), poolT, new Int32Array([1]), undefined, new Int32Array([1])), /excludes column 1: its partner/);
  poolT.dispose();
});

test("'all-pairs' ranks match a brute-force float64 ranking over every note but the query", async () => {
  const rng = new Rng(12);
  const D = 6, n = 70;
  const ids = Array.from({ length: n }, (_, i) => `y${i}`);
  const emb = new Map(ids.map((id) => [id, rng.normalArray(D, 1)]));
  const pairs: Pair[] = Array.from({ length: 50 }, () => ({ a: ids[rng.int(n)], b: ids[rng.int(n)] }));
  const cos = (u: Float32Array, v: Float32Array) => {
    let d = 0, nu = 0, nv = 0;
    for (let k = 0; k < D; k++) { d += u[k] * v[k]; nu += u[k] * u[k]; nv += v[k] * v[k]; }
    return d / Math.sqrt(nu * nv);
  };
  const want = allPairQueries(pairs).map((k) => {
    const s = cos(emb.get(k.query)!, emb.get(k.target)!);
    return ids.filter((id) => id !== k.query && cos(emb.get(k.query)!, emb.get(id)!) > s).length;
  });
  const r = await evaluateRecall(pairs, emb, { protocol: 'all-pairs', chunkElements: 300 });
  assert.equal(r.poolSize, n - 1);
  assert.deepEqual(Array.from(r.ranks), want);
  assert.ok(Array.from(r.ties).every((t) => t === 0), 'random vectors do not tie');
});

test('errors name the missing note and the pair', async () => {
  await assert.rejects(evaluateRecall([{ a: 'n1', b: 'zz' }], EMB), /target "zz" of test pair 0 is not among the test notes/);
  await assert.rejects(evaluateRecall([{ a: 'qq', b: 'n2' }], EMB), /no embedding for query of test pair 0 "qq"/);
  const withNaN = new Map(EMB);
  withNaN.set('n8', new Float32Array([NaN, 1]));
  await assert.rejects(evaluateRecall(PAIRS, withNaN), /non-finite scores/);
  await assert.rejects(evaluateRecall(PAIRS, EMB, { ties: 'random' as never }), /"random" is not one of expected, optimistic, pessimistic/);
});

test('no tensor leak in the recall computation', async () => {
  await evaluateRecall(PAIRS, EMB); // warm-up
  await assertNoTensorLeak(async () => {
    await evaluateRecall(PAIRS, EMB, { chunkElements: 5 });
    const poolT = tf.tensor2d(transposeRows(new Float32Array([1, 0, 0, 1]), 2, 2), [2, 2]);
    await countAbovePartner(new Float32Array([1, 0]), poolT, new Int32Array([1]));
    await countAbovePartner(new Float32Array([1, 0]), poolT, new Int32Array([1]), 1, new Int32Array([0]));
    await evaluateRecall(PAIRS, EMB, { protocol: 'all-pairs', chunkElements: 5 });
    poolT.dispose();
  });
});
