/**
 * UnsortedSegmentSum on wasm (absent from tfjs's wasm backend, provided in
 * src/backend/wasm-kernels.ts) against the cpu backend and a hand-worked example, and the
 * gradient of gather (embedding lookup) it enables.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf, Rng, assertNoTensorLeak } from '../../src/backend';
import { onCpu, read } from './helpers';


test('hand-worked example: rows summed into their segments, missing segments are zero', async () => {
  await initBackend('wasm');
  const y = tf.tidy(() =>
    tf.unsortedSegmentSum(tf.tensor2d([[1, 2], [3, 4], [5, 6], [7, 8]]), tf.tensor1d([2, 0, 2, -1], 'int32'), 4).arraySync(),
  );
  // id −1 is dropped; segment 1 and 3 receive nothing.
  assert.deepEqual(y, [[3, 4], [0, 0], [6, 8], [0, 0]]);
});

test('wasm segment sum equals the cpu backend (1-D, 2-D and 3-D x, float32 and int32)', async () => {
  await initBackend('wasm');
  const rng = new Rng(2);
  const cases: Array<{ shape: number[]; n: number; dtype: 'float32' | 'int32' }> = [
    { shape: [9], n: 4, dtype: 'float32' },
    { shape: [40, 16], n: 13, dtype: 'float32' },
    { shape: [12, 3, 5], n: 6, dtype: 'float32' },
    { shape: [30, 7], n: 5, dtype: 'int32' },
  ];
  for (const { shape, n, dtype } of cases) {
    const size = shape.reduce((a, b) => a * b, 1);
    const xs = dtype === 'int32' ? Int32Array.from({ length: size }, () => rng.int(100) - 50) : rng.normalArray(size, 1);
    const ids = Int32Array.from({ length: shape[0] }, () => rng.int(n));
    const wasm = read(() => tf.unsortedSegmentSum(tf.tensor(xs, shape, dtype), tf.tensor1d(ids, 'int32'), n));
    const cpu = await onCpu(() => read(() => tf.unsortedSegmentSum(tf.tensor(xs, shape, dtype), tf.tensor1d(ids, 'int32'), n)));
    assert.equal(wasm.length, cpu.length);
    for (let i = 0; i < wasm.length; i++) assert.ok(Math.abs(wasm[i] - cpu[i]) <= 1e-5, `shape ${shape} [${i}]: ${wasm[i]} vs ${cpu[i]}`);
  }
});

test('gradient of gather (embedding lookup) on wasm equals cpu and leaks nothing', async () => {
  await initBackend('wasm');
  const rng = new Rng(9);
  const vocab = 23, dim = 8, tokens = 30;
  const table = rng.normalArray(vocab * dim, 0.5);
  const ids = Int32Array.from({ length: tokens }, () => rng.int(vocab));
  ids[3] = ids[7] = ids[11] = 5; // a repeated id: its rows must accumulate
  const w = rng.normalArray(tokens * dim, 1);
  const grad = () =>
    tf.tidy(() => {
      const E = tf.tensor2d(table, [vocab, dim]);
      const W = tf.tensor2d(w, [tokens, dim]);
      const I = tf.tensor1d(ids, 'int32');
      const g = tf.grad((e: tf.Tensor) => tf.sum(tf.mul(tf.gather(e, I), W)))(E);
      return g.dataSync().slice();
    });
  const wasm = await assertNoTensorLeak(grad);
  const cpu = await onCpu(grad);
  // Hand check: d/dE[v] = Σ_{t : ids[t] = v} W[t].
  for (let d = 0; d < dim; d++) {
    let want = 0;
    for (let t = 0; t < tokens; t++) if (ids[t] === 5) want += w[t * dim + d];
    assert.ok(Math.abs(wasm[5 * dim + d] - want) < 1e-5, `row 5 dim ${d}`);
  }
  for (let i = 0; i < wasm.length; i++) assert.ok(Math.abs(wasm[i] - cpu[i]) <= 1e-6, `[${i}] ${wasm[i]} vs ${cpu[i]}`);
});
