/**
 * The wasm copy kernels (Slice, SplitV, Concat, Identity in src/backend/wasm-kernels.ts)
 * against the cpu backend on random boxes, axes and dtypes, and their gradients.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf, Rng, assertNoTensorLeak } from '../../src/backend';
import { sliceInto } from '../../src/backend/wasm-kernels';
import { onCpu } from './helpers';


function randomShape(rng: Rng): number[] {
  const rank = 1 + rng.int(5);
  return Array.from({ length: rank }, () => 1 + rng.int(5));
}

test('sliceInto: hand-worked 2×3×4 box', () => {
  const x = Float32Array.from({ length: 24 }, (_, i) => i);
  const out = new Float32Array(2 * 2 * 2);
  sliceInto(x, [2, 3, 4], [0, 1, 1], [2, 2, 2], out);
  // rows (i, j) = (0,1), (0,2), (1,1), (1,2), columns 1..2: offsets 12·i + 4·j + 1
  assert.deepEqual(Array.from(out), [5, 6, 9, 10, 17, 18, 21, 22]);
});

test('slice, split, concat and gather on wasm equal the cpu backend (random shapes, float32/int32/bool)', async () => {
  await initBackend('wasm');
  const rng = new Rng(21);
  for (let trial = 0; trial < 60; trial++) {
    const shape = randomShape(rng);
    const size = shape.reduce((a, b) => a * b, 1);
    const dtype = (['float32', 'int32', 'bool'] as const)[trial % 3];
    const values = Array.from({ length: size }, () => (dtype === 'bool' ? rng.int(2) : rng.int(1000) - 500));
    const begin = shape.map((d) => rng.int(d));
    const sz = shape.map((d, i) => 1 + rng.int(d - begin[i]));
    const axis = rng.int(shape.length);
    const pick = rng.next();
    const rng2 = (n: number) => Math.floor(pick * n);
    const run = () =>
      tf.tidy(() => {
        const x = tf.tensor(values, shape, dtype);
        const sl = tf.slice(x, begin, sz).arraySync();
        const parts = tf.split(x, [1, shape[axis] - 1].filter((n) => n > 0), axis);
        const sp = parts.map((p) => p.arraySync());
        const y = tf.tensor(values.map((v) => (dtype === 'bool' ? 1 - v : v * 3)), shape, dtype);
        const cat = tf.concat([x, y, x], axis).arraySync();
        const ids = tf.tensor2d([[shape[axis] - 1, 0], [rng2(shape[axis]), 0]], [2, 2], 'int32');
        const ga = tf.gather(x, ids, axis).arraySync();
        return { sl, sp, cat, ga };
      });
    const w = run();
    const c = await onCpu(run);
    assert.deepEqual(w, c, `trial ${trial}: shape [${shape}] begin [${begin}] size [${sz}] axis ${axis} ${dtype}`);
  }
});

test('RoPE-shaped split/concat and their gradients equal cpu; clone survives its source', async () => {
  await initBackend('wasm');
  const rng = new Rng(8);
  const shape = [2, 5, 3, 8]; // [b, t, h, hd]
  const xs = rng.normalArray(2 * 5 * 3 * 8, 1);
  const w = rng.normalArray(2 * 5 * 3 * 8, 1);
  const f = () =>
    tf.tidy(() => {
      const x = tf.tensor(xs, shape);
      const W = tf.tensor(w, shape);
      const g = tf.grad((v: tf.Tensor) => {
        const [a, b] = tf.split(v, 2, 3);
        return tf.sum(tf.mul(tf.concat([tf.neg(b), a], 3), W));
      })(x);
      return g.dataSync().slice();
    });
  const gw = await assertNoTensorLeak(f);
  assert.throws(() => tf.tidy(() => tf.gather(tf.ones([3, 2]), tf.tensor1d([3], 'int32'))), /index value 3 is not in \[0, 2\]/);
  const gc = await onCpu(f);
  assert.deepEqual(Array.from(gw), Array.from(gc));
  const src = tf.tensor([1, 2, 3]);
  const copy = tf.clone(src);
  src.dispose();
  assert.deepEqual(Array.from(copy.dataSync()), [1, 2, 3]);
  copy.dispose();
});
