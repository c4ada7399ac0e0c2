/**
 * Matrix products through every route (wasm transpose wrapper, the wasm kernel as shipped,
 * ONNX Runtime on wasm and on cpu, the cpu kernel) against a float64 reference, for every
 * transposition and batch rank, including broadcast batches.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf, Rng, setGemm, setGemmMinFlops, gemmInfo, resetGemmStats, DEFAULT_MIN_FLOPS } from '../../src/backend';
import { originalKernel } from '../../src/backend/wasm-kernels';
import { randomArr, refMatMul, roundingRatio, transposeLast, type Arr } from './helpers';

/** [a shape, b shape] of the logical (untransposed) operands. */
const CASES: Array<[string, number[], number[]]> = [
  ['2-D', [5, 7], [7, 3]],
  ['3-D', [3, 5, 7], [3, 7, 4]],
  ['4-D', [2, 3, 5, 6], [2, 3, 6, 4]],
  ['batched · matrix', [3, 5, 7], [7, 4]],
  ['matrix · batched', [5, 7], [3, 7, 4]],
  ['batch 1 · batched', [1, 5, 7], [3, 7, 4]],
  ['batched · batch 1', [3, 5, 7], [1, 7, 4]],
];
const TRANSPOSES: Array<[boolean, boolean]> = [[false, false], [true, false], [false, true], [true, true]];

function expectedShape(a: number[], b: number[]): number[] {
  const ba = a.slice(0, -2), bb = b.slice(0, -2);
  const batch = ba.length >= bb.length ? ba.map((d, i) => Math.max(d, bb[i - (ba.length - bb.length)] ?? 1)) : bb.map((d, i) => Math.max(d, ba[i - (bb.length - ba.length)] ?? 1));
  return [...batch, a[a.length - 2], b[b.length - 1]];
}

/** Runs `product` on every case and transposition; asserts shape and float32 accuracy. */
function checkAll(label: string, product: (A: tf.Tensor, B: tf.Tensor, ta: boolean, tb: boolean) => { shape: number[]; data: ArrayLike<number> }) {
  const rng = new Rng(11);
  for (const [name, sa, sb] of CASES) {
    const a = randomArr(rng, sa), b = randomArr(rng, sb);
    const ref = refMatMul(a, b);
    for (const [ta, tb] of TRANSPOSES) {
      const pa: Arr = ta ? transposeLast(a) : a, pb: Arr = tb ? transposeLast(b) : b;
      const A = tf.tensor(pa.data, pa.shape), B = tf.tensor(pb.data, pb.shape);
      const got = product(A, B, ta, tb);
      A.dispose();
      B.dispose();
      const what = `${label} ${name} transposeA=${ta} transposeB=${tb}`;
      assert.deepEqual(got.shape, expectedShape(sa, sb), `${what}: shape`);
      const r = roundingRatio(got.data, ref);
      assert.ok(r <= 1, `${what}: error ${r.toFixed(2)}× the float32 bound`);
    }
  }
}

function viaMatMul(A: tf.Tensor, B: tf.Tensor, ta: boolean, tb: boolean) {
  const y = tf.matMul(A, B, ta, tb);
  const out = { shape: y.shape, data: y.dataSync() };
  y.dispose();
  return out;
}

test('wasm: transpose wrapper (gemm=backend) matches the float64 reference', async () => {
  await initBackend('wasm');
  setGemm('backend');
  resetGemmStats();
  const backend = tf.backend() as unknown as { numDataIds(): number };
  const ids = backend.numDataIds();
  checkAll('wasm/backend', viaMatMul);
  assert.equal(backend.numDataIds(), ids, 'transposed copies are freed');
  assert.equal(gemmInfo().calls.ort, 0);
  assert.equal(gemmInfo().calls.backend, CASES.length * TRANSPOSES.length);
});

test('wasm: the kernel as shipped agrees (the wrapper changes speed, not numbers)', async () => {
  await initBackend('wasm');
  const shipped = originalKernel('BatchMatMul', 'wasm');
  const backend = tf.backend() as unknown as { readSync(id: tf.DataId): Float32Array; disposeData(id: tf.DataId): void };
  checkAll('wasm/shipped', (A, B, ta, tb) => {
    const out = shipped({ inputs: { a: A, b: B }, backend: tf.backend(), attrs: { transposeA: ta, transposeB: tb } }) as tf.TensorInfo;
    const data = backend.readSync(out.dataId).slice();
    backend.disposeData(out.dataId);
    return { shape: out.shape, data };
  });
});

test('wasm: ONNX Runtime products match the reference for every transposition and batch rank', async () => {
  await initBackend('wasm');
  setGemm('ort');
  setGemmMinFlops(0);
  resetGemmStats();
  const backend = tf.backend() as unknown as { numDataIds(): number };
  const ids = backend.numDataIds();
  checkAll('wasm/ort', viaMatMul);
  assert.equal(backend.numDataIds(), ids);
  assert.equal(gemmInfo().calls.ort, CASES.length * TRANSPOSES.length, 'every product went through ORT');
  setGemmMinFlops(DEFAULT_MIN_FLOPS);
});

test('cpu: ONNX Runtime and the cpu kernel both match the reference', async () => {
  await initBackend('cpu');
  setGemm('backend');
  checkAll('cpu/backend', viaMatMul);
  setGemm('ort');
  setGemmMinFlops(0);
  resetGemmStats();
  checkAll('cpu/ort', viaMatMul);
  assert.equal(gemmInfo().calls.ort, CASES.length * TRANSPOSES.length);
  setGemmMinFlops(DEFAULT_MIN_FLOPS);
  await initBackend('wasm');
});

test('size threshold: small products stay on the backend, large ones go to ORT', async () => {
  await initBackend('wasm');
  setGemm('ort');
  setGemmMinFlops(DEFAULT_MIN_FLOPS);
  resetGemmStats();
  tf.tidy(() => {
    tf.matMul(tf.ones([8, 8]), tf.ones([8, 8])).dataSync(); // 1 kFLOP
    const big = tf.matMul(tf.ones([128, 64]), tf.ones([64, 32])).dataSync(); // 524 kFLOP
    assert.equal(big[0], 64);
  });
  assert.deepEqual(gemmInfo().calls, { ort: 1, backend: 1 });
});

test('_FusedMatMul (bias + activation) with transposes: wrapper and ORT match the reference', async () => {
  await initBackend('wasm');
  const rng = new Rng(5);
  const a = randomArr(rng, [6, 9]), b = randomArr(rng, [9, 4]);
  const bias = rng.normalArray(4, 1);
  const ref = refMatMul(a, b);
  for (const gemm of ['backend', 'ort'] as const) {
    setGemm(gemm);
    setGemmMinFlops(0);
    resetGemmStats();
    for (const [ta, tb] of TRANSPOSES) {
      const pa = ta ? transposeLast(a) : a, pb = tb ? transposeLast(b) : b;
      for (const activation of ['linear', 'relu', 'elu'] as const) {
        const got = tf.tidy(() =>
          tf.fused
            .matMul({ a: tf.tensor2d(pa.data, pa.shape as [number, number]), b: tf.tensor2d(pb.data, pb.shape as [number, number]), transposeA: ta, transposeB: tb, bias: tf.tensor1d(bias), activation })
            .dataSync(),
        );
        for (let i = 0; i < got.length; i++) {
          const z = ref.y[i] + bias[i % 4];
          const want = activation === 'relu' ? Math.max(0, z) : activation === 'elu' ? (z > 0 ? z : Math.exp(z) - 1) : z;
          assert.ok(Math.abs(got[i] - want) < 1e-5 * (1 + ref.mag[i]), `${gemm} ${activation} ta=${ta} tb=${tb} [${i}]: ${got[i]} vs ${want}`);
        }
      }
    }
    if (gemm === 'ort') assert.equal(gemmInfo().calls.ort, TRANSPOSES.length * 3);
  }
  setGemmMinFlops(DEFAULT_MIN_FLOPS);
});

test('gradients of a matMul chain are equal on both GEMMs and leak no tensors', async () => {
  await initBackend('wasm');
  const rng = new Rng(3);
  const x = tf.tensor(rng.normalArray(4 * 6 * 8, 1), [4, 6, 8]);
  const w = tf.tensor(rng.normalArray(8 * 5, 1), [8, 5]);
  const f = (xx: tf.Tensor, ww: tf.Tensor) => {
    // tfjs's BatchMatMul gradient does not reduce broadcast batch axes, so x·W is taken 2-D.
    const h = tf.reshape(tf.matMul(tf.reshape(xx, [24, 8]), ww), [4, 6, 5]);
    const s = tf.matMul(h, h, false, true); // [4, 6, 6]
    return tf.sum(tf.square(s));
  };
  const grads = (): Float32Array[] => {
    const g = tf.grads(f);
    const before = tf.memory().numTensors;
    const [gx, gw] = g([x, w]);
    const out = [gx.dataSync().slice() as Float32Array, gw.dataSync().slice() as Float32Array];
    gx.dispose();
    gw.dispose();
    assert.equal(tf.memory().numTensors, before, 'forward + backward left no tensors');
    return out;
  };
  setGemm('backend');
  const [bx, bw] = grads();
  setGemm('ort');
  setGemmMinFlops(0);
  resetGemmStats();
  const [ox, ow] = grads();
  assert.ok(gemmInfo().calls.ort >= 6, `forward and backward products went to ORT (${gemmInfo().calls.ort})`);
  for (const [p, q] of [[bx, ox], [bw, ow]]) {
    for (let i = 0; i < p.length; i++) assert.ok(Math.abs(p[i] - q[i]) <= 1e-4 * (1 + Math.abs(p[i])), `grad [${i}] ${p[i]} vs ${q[i]}`);
  }
  x.dispose();
  w.dispose();
  setGemmMinFlops(DEFAULT_MIN_FLOPS);
});
