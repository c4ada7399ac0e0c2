/**
 * Products with frozen matrices kept outside the backend (src/backend/native-matmul.ts): the
 * value and the gradient against the same product with the weight uploaded, on wasm and cpu,
 * on ONNX Runtime; the weight never becomes a tensor.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, NativeMatrix, nativeMatMul, Rng, setGemm, tf } from '../../src/backend';
import { nativeAddLowRank } from '../../src/backend/native-matmul';
import { onCpu } from './helpers';

before(async () => {
  await initBackend('wasm');
});

/** Max |a − b| over two equal-length arrays. */
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** y = x·W and ∂(Σ y ⊙ c)/∂x, native vs uploaded. */
function compare(m: number, k: number, n: number, seed: number): { value: number; grad: number } {
  const rng = new Rng(seed);
  const wData = rng.normalArray(k * n, 1);
  const xData = rng.normalArray(m * k, 1);
  const cData = rng.normalArray(m * n, 1);
  const w = new NativeMatrix(Float32Array.from(wData), k, n, 'test weight');
  try {
    return tf.tidy(() => {
      const x = tf.tensor2d(xData, [m, k]);
      const c = tf.tensor2d(cData, [m, n]);
      const wt = tf.tensor2d(wData, [k, n]);
      const native = tf.valueAndGrad((xi: tf.Tensor) => tf.sum(tf.mul(nativeMatMul(xi as tf.Tensor2D, w), c)));
      const uploaded = tf.valueAndGrad((xi: tf.Tensor) => tf.sum(tf.mul(tf.matMul(xi as tf.Tensor2D, wt), c)));
      const a = native(x), b = uploaded(x);
      const ya = nativeMatMul(x, w).dataSync(), yb = tf.matMul(x, wt).dataSync();
      return { value: maxDiff(ya, yb), grad: maxDiff(a.grad.dataSync(), b.grad.dataSync()) };
    });
  } finally {
    w.release();
  }
}

test('nativeMatMul: value and gradient match the uploaded product (wasm, ORT), odd shapes', () => {
  for (const [m, k, n] of [[1, 1, 1], [7, 13, 5], [64, 96, 160], [130, 33, 257]]) {
    const d = compare(m, k, n, m + k + n);
    assert.ok(d.value < 1e-4 * Math.sqrt(k), `[${m},${k}]·[${k},${n}] value differs by ${d.value}`);
    assert.ok(d.grad < 1e-4 * Math.sqrt(n), `[${m},${k}]·[${k},${n}] gradient differs by ${d.grad}`);
  }
});

test('nativeMatMul: the weight never becomes a tensor; no tensor leaks', () => {
  const before = tf.memory();
  const w = new NativeMatrix(new Float32Array(256 * 512).fill(0.5), 256, 512);
  const after = tf.memory();
  assert.equal(after.numTensors, before.numTensors);
  assert.equal(after.numBytes, before.numBytes);
  assert.equal(w.bytes, 256 * 512 * 4);
  const x = tf.ones([3, 256]) as tf.Tensor2D;
  const y = nativeMatMul(x, w);
  assert.deepEqual(y.shape, [3, 512]);
  assert.ok(Math.abs(y.dataSync()[0] - 128) < 1e-3);
  tf.dispose([x, y]);
  assert.equal(tf.memory().numTensors, before.numTensors);
  w.release();
  assert.throws(() => nativeMatMul(tf.ones([1, 256]) as tf.Tensor2D, w), /was released/);
});

test('nativeMatMul: the cpu backend agrees, and NOTELLM2_GEMM=backend leaves the native path as it is', async () => {
  const onCpuDiff = await onCpu(() => compare(9, 17, 11, 3));
  assert.ok(onCpuDiff.value < 1e-4 && onCpuDiff.grad < 1e-4, JSON.stringify(onCpuDiff));
  setGemm('backend');
  try {
    const d = compare(9, 17, 11, 4);
    assert.ok(d.value < 1e-4 && d.grad < 1e-4, JSON.stringify(d));
  } finally {
    setGemm('auto');
  }
});

test('nativeMatMul: a shape mismatch names the matrix and both shapes', () => {
  const w = new NativeMatrix(new Float32Array(6), 2, 3, 'lm.layers.0.attn.q.weight');
  try {
    assert.throws(() => nativeMatMul(tf.ones([4, 3]) as tf.Tensor2D, w), /lm\.layers\.0\.attn\.q\.weight.*\[m, 2\].*\[4,3\]/);
  } finally {
    w.release();
  }
  assert.throws(() => new NativeMatrix(new Float32Array(5), 2, 3, 'bad'), /bad: 5 values for shape \[2, 3\]/);
});

test('nativeMatMul with transpose: x·Wᵀ and its gradient dy·W, against the uploaded product', () => {
  const rng = new Rng(21);
  const [m, k, n] = [6, 11, 9];
  const wData = rng.normalArray(k * n, 1); // W [k, n]; x [m, n] · Wᵀ → [m, k]
  const w = new NativeMatrix(Float32Array.from(wData), k, n);
  tf.tidy(() => {
    const x = tf.tensor2d(rng.normalArray(m * n, 1), [m, n]);
    const c = tf.tensor2d(rng.normalArray(m * k, 1), [m, k]);
    const wt = tf.tensor2d(wData, [k, n]);
    const a = tf.valueAndGrad((xi: tf.Tensor) => tf.sum(tf.mul(nativeMatMul(xi as tf.Tensor2D, w, true), c)))(x);
    const b = tf.valueAndGrad((xi: tf.Tensor) => tf.sum(tf.mul(tf.matMul(xi as tf.Tensor2D, wt, false, true), c)))(x);
    assert.ok(Math.abs(a.value.dataSync()[0] - b.value.dataSync()[0]) < 1e-4);
    assert.ok(maxDiff(a.grad.dataSync(), b.grad.dataSync()) < 1e-4);
    assert.deepEqual(nativeMatMul(x, w, true).shape, [m, k]);
  });
  w.release();
});

test('nativeAddLowRank: out = W + a·b in native memory (wasm and cpu), W untouched, no tensors left', async () => {
  const run = () => {
    const rng = new Rng(22);
    const [k, r, n] = [13, 3, 17];
    const wData = rng.normalArray(k * n, 1);
    const w = new NativeMatrix(Float32Array.from(wData), k, n);
    const out = new NativeMatrix(new Float32Array(k * n), k, n);
    const before = tf.memory().numTensors;
    const [a, b] = [tf.tensor2d(rng.normalArray(k * r, 1), [k, r]), tf.tensor2d(rng.normalArray(r * n, 1), [r, n])];
    nativeAddLowRank(w, a, b, out);
    const want = tf.tidy(() => tf.add(tf.tensor2d(wData, [k, n]), tf.matMul(a, b)).dataSync());
    tf.dispose([a, b]);
    assert.equal(tf.memory().numTensors, before);
    assert.equal(maxDiff(w.data, wData), 0);
    const d = maxDiff(out.data, want);
    assert.throws(() => tf.tidy(() => nativeAddLowRank(w, tf.zeros([k, r + 1]) as tf.Tensor2D, tf.zeros([r, n]) as tf.Tensor2D, out)), /do not fit/);
    w.release();
    out.release();
    return d;
  };
  assert.ok(run() < 1e-5);
  assert.ok((await onCpu(run)) < 1e-5);
});
