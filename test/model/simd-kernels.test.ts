import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { assertNoTensorLeak, initBackend, tf } from '../../src/backend';
import { ropeKernelAvailable, ropeRotate } from '../../src/backend/rope-kernel';
import { setSimd } from '../../src/backend/wasm-simd';
import { RoPE } from '../../src/model/rope';
import { RMSNorm, siluGate } from '../../src/model/layers';
import { gateKernelAvailable } from '../../src/backend/gate-kernel';
import { ParamStore } from '../../src/model/params';
import { rmsNormKernelAvailable } from '../../src/backend/rmsnorm-kernel';
import { checkInputGrad, projLoss, randn } from './helpers';

before(async () => {
  await initBackend('wasm');
});
after(() => setSimd(true));

/** RoPE output and its input gradient under a fixed projection, by the kernel or by tfjs ops. */
function run(useKernel: boolean, hd: number, scale: number): { y: Float32Array; dx: Float32Array } {
  setSimd(useKernel);
  try {
    assert.equal(ropeKernelAvailable(hd), useKernel);
    const rope = new RoPE(hd);
    const x = randn([2, 5, 3, hd], 21);
    const y = tf.tidy(() => rope.apply(x, 3, scale));
    const dx = tf.grad((v: tf.Tensor) => projLoss(rope.apply(v, 3, scale)))(x);
    const out = { y: Float32Array.from(y.dataSync()), dx: Float32Array.from(dx.dataSync()) };
    tf.dispose([x, y, dx]);
    return out;
  } finally {
    setSimd(true);
  }
}

test('RoPE kernel (wasm SIMD) equals the tfjs-op rotation: output bit for bit, gradient to rounding', () => {
  for (const hd of [8, 32]) {
    for (const scale of [1, 0.125]) {
      const k = run(true, hd, scale), o = run(false, hd, scale);
      if (scale === 1) assert.deepEqual(k.y, o.y, `hd ${hd}: forward`);
      else k.y.forEach((v, i) => assert.ok(Math.abs(v - o.y[i]) <= 1e-6 * (1 + Math.abs(o.y[i])), `hd ${hd} scaled y[${i}]`));
      k.dx.forEach((v, i) => assert.ok(Math.abs(v - o.dx[i]) <= 1e-5 * (1 + Math.abs(o.dx[i])), `hd ${hd} dx[${i}]: ${v} vs ${o.dx[i]}`));
    }
  }
});

test('RoPE kernel gradient vs central finite differences; no tensor leak', async () => {
  const rope = new RoPE(8);
  assert.ok(ropeKernelAvailable(8));
  const x = randn([2, 4, 2, 8], 5);
  checkInputGrad(x, (v) => projLoss(rope.apply(v, 1, 0.5)), { directions: 3 });
  await assertNoTensorLeak(() => {
    const g = tf.grad((v: tf.Tensor) => projLoss(rope.apply(v, 1, 0.5)))(x);
    g.dispose();
  });
  x.dispose();
});

test('ropeRotate: shape errors name the table and the expected shape; head widths not a multiple of 8 use tfjs ops', () => {
  const x = tf.zeros([1, 3, 2, 8]);
  const bad = tf.zeros([3, 3]);
  const ok = tf.zeros([3, 4]);
  assert.throws(() => ropeRotate(x, bad, ok), /cos must be float32 \[3, 4\], got float32 \[3,3\]/);
  assert.equal(ropeKernelAvailable(4), false);
  assert.equal(ropeKernelAvailable(12), false);
  tf.dispose([x, bad, ok]);
});

/** RMSNorm output, input gradient and weight gradient, by the kernel or by tfjs ops. */
function runRms(useKernel: boolean, d: number): { y: Float32Array; dx: Float32Array; dw: Float32Array } {
  setSimd(useKernel);
  try {
    assert.equal(rmsNormKernelAvailable(d), useKernel);
    const s = new ParamStore(3);
    const norm = new RMSNorm(s, 'n', d);
    tf.tidy(() => norm.weight.assign(tf.add(1, tf.mul(0.3, randn([d], 8)))));
    const x = randn([2, 5, d], 13);
    const y = tf.tidy(() => norm.apply(x));
    const { grads } = tf.variableGrads(() => projLoss(norm.apply(x)), [norm.weight]);
    const dx = tf.grad((v: tf.Tensor) => projLoss(norm.apply(v)))(x);
    const out = { y: Float32Array.from(y.dataSync()), dx: Float32Array.from(dx.dataSync()), dw: Float32Array.from(grads[norm.weight.name].dataSync()) };
    tf.dispose([x, y, dx, ...Object.values(grads)]);
    s.dispose();
    return out;
  } finally {
    setSimd(true);
  }
}

test('RMSNorm kernel (wasm SIMD) equals the tfjs-op RMSNorm: output and both gradients to float32 rounding', () => {
  for (const d of [4, 16, 128]) {
    const k = runRms(true, d), o = runRms(false, d);
    for (const key of ['y', 'dx', 'dw'] as const) {
      k[key].forEach((v, i) => assert.ok(Math.abs(v - o[key][i]) <= 2e-5 * (1 + Math.abs(o[key][i])), `d ${d} ${key}[${i}]: ${v} vs ${o[key][i]}`));
    }
  }
});

test('RMSNorm kernel: no tensor leak across forward and backward', async () => {
  const s = new ParamStore(1);
  const norm = new RMSNorm(s, 'n', 8);
  const x = randn([3, 8], 2);
  assert.ok(rmsNormKernelAvailable(8));
  await assertNoTensorLeak(() => {
    const { value, grads } = tf.variableGrads(() => projLoss(norm.apply(x)), [norm.weight]);
    value.dispose();
    Object.values(grads).forEach((g) => g.dispose());
  });
  x.dispose();
  s.dispose();
});

test('SwiGLU gate kernel (wasm SIMD) equals the tfjs-op gate: output and both gradients, any length', () => {
  const run = (useKernel: boolean, shape: number[]) => {
    setSimd(useKernel);
    try {
      assert.equal(gateKernelAvailable(), useKernel);
      const g = randn(shape, 31, 2), u = randn(shape, 32);
      const y = tf.tidy(() => siluGate(g, u));
      const [dg, du] = tf.grads((a: tf.Tensor, b: tf.Tensor) => projLoss(siluGate(a, b)))([g, u]);
      const out = [y, dg, du].map((t) => Float32Array.from(t.dataSync()));
      tf.dispose([g, u, y, dg, du]);
      return out;
    } finally {
      setSimd(true);
    }
  };
  for (const shape of [[2, 3, 8], [3, 5, 7]]) { // 105 elements: a SIMD bulk and a scalar tail
    const k = run(true, shape), o = run(false, shape);
    ['y', 'dg', 'du'].forEach((name, j) =>
      k[j].forEach((v, i) => assert.ok(Math.abs(v - o[j][i]) <= 1e-5 * (1 + Math.abs(o[j][i])), `[${shape}] ${name}[${i}]: ${v} vs ${o[j][i]}`)));
  }
});

test('SwiGLU gate kernel gradient vs central finite differences', () => {
  assert.ok(gateKernelAvailable());
  const u = randn([2, 3, 8], 40);
  const g = randn([2, 3, 8], 41, 1.5);
  checkInputGrad(g, (v) => projLoss(siluGate(v, u)), { directions: 3 });
  checkInputGrad(u, (v) => projLoss(siluGate(g, v)), { directions: 3 });
  tf.dispose([g, u]);
});
