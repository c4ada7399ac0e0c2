import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { assertNoTensorLeak, initBackend, Rng, tf } from '../../src/backend';
import { adamwUpdate, hostSumOfSquares, type AdamWScalars } from '../../src/backend/fused-adamw';
import { AdamW } from '../../src/train/optim';
import { onCpu } from './helpers';

before(async () => {
  await initBackend('wasm');
});

/** The update written op by op with tfjs (the path other backends take). */
function composed(p: tf.Tensor, g: tf.Tensor, m: tf.Tensor, v: tf.Tensor, s: AdamWScalars): tf.Tensor[] {
  return tf.tidy(() => {
    const gs = tf.mul(g, s.gradScale);
    const m1 = tf.add(tf.mul(m, s.beta1), tf.mul(gs, 1 - s.beta1));
    const v1 = tf.add(tf.mul(v, s.beta2), tf.mul(tf.square(gs), 1 - s.beta2));
    const upd = tf.div(tf.div(m1, s.bc1), tf.add(tf.sqrt(tf.div(v1, s.bc2)), s.eps));
    return [tf.sub(tf.mul(p, 1 - s.decay), tf.mul(upd, s.lr)), m1, v1];
  });
}

const S: AdamWScalars = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, bc1: 1 - 0.9 ** 3, bc2: 1 - 0.999 ** 3, decay: 0.01 * 0.1, gradScale: 0.5 };

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (Math.abs(b[i]) + 1e-6));
  return worst;
}

function compareOnActiveBackend(): { rel: number[]; pBefore: number[]; pAfter: number[] } {
  const rng = new Rng(3);
  const shape = [37, 19];
  const n = 37 * 19;
  const p = tf.tensor(rng.normalArray(n, 1), shape);
  const g = tf.tensor(rng.normalArray(n, 0.1), shape);
  const m = tf.tensor(rng.normalArray(n, 0.01), shape);
  const v = tf.tensor(Float32Array.from(rng.normalArray(n, 1e-3), (x) => x * x), shape);
  const pBefore = Array.from(p.dataSync());
  const fused = adamwUpdate(p, g, m, v, S);
  const ref = composed(p, g, m, v, S);
  const rel = fused.map((t, i) => maxRelDiff(t.dataSync(), ref[i].dataSync()));
  const pAfter = Array.from(p.dataSync());
  tf.dispose([p, g, m, v, ...fused, ...ref]);
  return { rel, pBefore, pAfter };
}

test('fused AdamW update equals the op-by-op formula on wasm and cpu; inputs are not written', async () => {
  for (const r of [compareOnActiveBackend(), await onCpu(compareOnActiveBackend)]) {
    // float64 arithmetic with one rounding vs float32 rounding after every op
    for (const x of r.rel) assert.ok(x < 2e-5, `relative difference ${x}`);
    assert.deepEqual(r.pAfter, r.pBefore);
  }
});

test('fused AdamW: shape and dtype mismatches are refused with the operand named', () => {
  const p = tf.zeros([2, 3]);
  const bad = tf.zeros([3, 2]);
  assert.throws(() => adamwUpdate(p, bad, p, p, S), /gradient has shape \[3,2\], parameter has \[2,3\]/);
  const ints = tf.zeros([2, 3], 'int32');
  assert.throws(() => adamwUpdate(p, p, ints, p, S), /parameter and m must be float32/);
  tf.dispose([p, bad, ints]);
});

test('host Σx² reads the backend memory: equals tf.sum(x²); null for int tensors', async () => {
  const rng = new Rng(5);
  const x = rng.normalArray(1000, 2);
  const want = x.reduce((s, a) => s + a * a, 0);
  const t = tf.tensor1d(x);
  assert.ok(Math.abs(hostSumOfSquares(t)! - want) / want < 1e-12);
  const slice = tf.slice(t, [10], [5]); // a tensor made by a kernel, not uploaded
  assert.ok(Math.abs(hostSumOfSquares(slice)! - x.slice(10, 15).reduce((s, a) => s + a * a, 0)) < 1e-9);
  const i = tf.tensor1d([1, 2], 'int32');
  assert.equal(hostSumOfSquares(i), null);
  const onCpuSum = await onCpu(() => {
    const c = tf.tensor1d(x);
    const s = hostSumOfSquares(c);
    c.dispose();
    return s;
  });
  assert.ok(Math.abs(onCpuSum! - want) / want < 1e-12);
  tf.dispose([t, slice, i]);
});

test('AdamW fused and op-by-op runs train the same least-squares problem to the same weights', async () => {
  const run = (fused: boolean) => {
    const rng = new Rng(11);
    const x = tf.tensor2d(rng.normalArray(64 * 8, 1), [64, 8]);
    const y = tf.tensor2d(rng.normalArray(64 * 3, 1), [64, 3]);
    const W = tf.variable(tf.tensor2d(rng.normalArray(24, 0.1), [8, 3]));
    const b = tf.variable(tf.zeros([3]));
    const opt = new AdamW({ 'lin.weight': W, 'lin.bias': b }, { lr: 0.05, weightDecay: 0.1, clipNorm: 0.5, fused });
    const loss = () => tf.mean(tf.square(tf.sub(tf.add(tf.matMul(x, W), b), y))) as tf.Scalar;
    const losses = Array.from({ length: 20 }, () => opt.minimize(loss).loss);
    const out = { losses, W: Array.from(W.dataSync()), norm: opt.minimize(loss).gradNorm };
    opt.dispose();
    tf.dispose([x, y, W, b]);
    return out;
  };
  const a = run(true), b = run(false);
  assert.ok(a.losses[19] < a.losses[0] * 0.8, 'the loss should fall');
  assert.ok(maxRelDiff(a.W, b.W) < 1e-4, `weights differ by ${maxRelDiff(a.W, b.W)}`);
  assert.ok(maxRelDiff(a.losses, b.losses) < 1e-4);
  assert.ok(Math.abs(a.norm - b.norm) / b.norm < 1e-4);
});

test('fused AdamW: no tensor leak across steps', async () => {
  const W = tf.variable(tf.ones([4, 4]));
  const opt = new AdamW({ W }, { lr: 0.01 });
  const loss = () => tf.sum(tf.square(W)) as tf.Scalar;
  opt.minimize(loss);
  await assertNoTensorLeak(() => {
    for (let i = 0; i < 3; i++) opt.minimize(loss);
  });
  opt.dispose();
  W.dispose();
});
