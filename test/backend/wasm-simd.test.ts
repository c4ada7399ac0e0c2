import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, Rng, tf } from '../../src/backend';
import { adamwUpdate, type AdamWScalars } from '../../src/backend/fused-adamw';
import { setSimd, simdKernelsFor, simdModuleBytes } from '../../src/backend/wasm-simd';

before(async () => {
  await initBackend('wasm');
});
after(() => setSimd(true));

const S: AdamWScalars = { lr: 0.02, beta1: 0.9, beta2: 0.999, eps: 1e-8, bc1: 1 - 0.9 ** 5, bc2: 1 - 0.999 ** 5, decay: 0.02 * 0.01, gradScale: 0.8 };

/** Float64 AdamW for one element: [p′, m′, v′] and the magnitude the rounding error scales with. */
function ref(p: number, g: number, m: number, v: number): { out: number[]; mag: number[] } {
  const gs = g * S.gradScale;
  const m1 = S.beta1 * m + (1 - S.beta1) * gs;
  const v1 = S.beta2 * v + (1 - S.beta2) * gs * gs;
  const upd = (S.lr * m1) / S.bc1 / (Math.sqrt(v1 / S.bc2) + S.eps);
  const keep = (1 - S.decay) * p;
  return {
    out: [keep - upd, m1, v1],
    mag: [Math.abs(keep) + Math.abs(upd), S.beta1 * Math.abs(m) + Math.abs(gs), S.beta2 * v + gs * gs],
  };
}

test('the hand-assembled SIMD module validates and equals the float64 update for every length mod 4', () => {
  assert.ok(WebAssembly.validate(simdModuleBytes()));
  const memory = new WebAssembly.Memory({ initial: 1 });
  const simd = simdKernelsFor(memory)?.adamw;
  assert.ok(simd, 'this runtime has wasm SIMD');
  const heap = new Float32Array(memory.buffer);
  const rng = new Rng(9);
  for (const n of [4, 8, 12, 64, 1000]) {
    // seven arrays at element offsets that are not 16-byte aligned (odd multiples of 4 bytes)
    const base = Array.from({ length: 7 }, (_, k) => 1 + k * (n + 3));
    const [p, g, m, v] = base.slice(0, 4).map((b) => heap.subarray(b, b + n));
    p.set(rng.normalArray(n, 1));
    g.set(rng.normalArray(n, 0.1));
    m.set(rng.normalArray(n, 0.01));
    v.set(Float32Array.from(rng.normalArray(n, 0.03), (x) => x * x));
    const guard = base[6] + n;
    heap[guard] = 12345;
    simd!(...(base.map((b) => b * 4) as [number, number, number, number, number, number, number]), n,
      S.gradScale, S.beta1, 1 - S.beta1, S.beta2, 1 - S.beta2, 1 / S.bc2, S.eps, S.lr / S.bc1, 1 - S.decay);
    for (let i = 0; i < n; i++) {
      const r = ref(p[i], g[i], m[i], v[i]);
      for (let k = 0; k < 3; k++) {
        const got = heap[base[4 + k] + i];
        // float32 arithmetic: a few ulps of the operands' magnitude
        assert.ok(Math.abs(got - r.out[k]) <= 1e-6 * r.mag[k] + 1e-12, `n=${n} out ${k}[${i}]: ${got} vs ${r.out[k]}`);
      }
    }
    assert.equal(heap[guard], 12345, 'nothing written past the last output');
  }
});

test('on wasm the fused update runs the SIMD loop (float32) and agrees with the scalar loop (float64)', () => {
  const rng = new Rng(4);
  const n = 4 * 250 + 3; // SIMD bulk plus a scalar tail
  const mk = (std: number, square = false) => tf.tensor1d(Float32Array.from(rng.normalArray(n, std), (x) => (square ? x * x : x)));
  const [p, g, m, v] = [mk(1), mk(0.1), mk(0.01), mk(0.03, true)];
  const run = (on: boolean) => {
    setSimd(on);
    const out = adamwUpdate(p, g, m, v, S);
    const data = out.map((t) => Float32Array.from(t.dataSync()));
    tf.dispose(out);
    return data;
  };
  const simd = run(true), scalar = run(false);
  const pd = p.dataSync(), gd = g.dataSync(), md = m.dataSync(), vd = v.dataSync();
  let differing = 0;
  for (let i = 0; i < n; i++) {
    const r = ref(pd[i], gd[i], md[i], vd[i]);
    for (let k = 0; k < 3; k++) {
      assert.ok(Math.abs(simd[k][i] - scalar[k][i]) <= 1e-6 * r.mag[k] + 1e-12, `out ${k}[${i}]`);
      if (simd[k][i] !== scalar[k][i]) differing++;
    }
  }
  // float32 vs float64 arithmetic differ in the last bit somewhere: the SIMD path really ran
  assert.ok(differing > 0);
  // the tail (last n mod 4 elements) goes through the scalar loop in both runs
  for (let k = 0; k < 3; k++) assert.deepEqual(simd[k].subarray(n - 3), scalar[k].subarray(n - 3));
  tf.dispose([p, g, m, v]);
});

test('SIMD sum of squares: float64 accumulation over exactly n values at the given offset', async () => {
  const memory = new WebAssembly.Memory({ initial: 1 });
  const k = simdKernelsFor(memory)!;
  const heap = new Float32Array(memory.buffer);
  const rng = new Rng(2);
  for (const n of [0, 4, 8, 20, 4000]) {
    const start = 3; // byte offset 12: not 16-byte aligned
    heap.fill(1e6); // values outside the range would dominate the sum
    const x = heap.subarray(start, start + n);
    x.set(rng.normalArray(n, 3));
    const want = x.reduce((s, a) => s + a * a, 0);
    const got = k.sumsq(start * 4, n);
    assert.ok(Math.abs(got - want) <= 1e-12 * (want + 1), `n=${n}: ${got} vs ${want}`);
  }
});
