/**
 * The AdamW update as one kernel per parameter, and gradient norms read straight from the
 * backend's memory, on the CPU-side backends (wasm, cpu).
 *
 * Written with tfjs ops, one AdamW update of one parameter is ~15 kernels (and the global
 * gradient norm 3 more); on the reference stack (bench) that is ~690 kernel calls per step,
 * each paying ~7 µs of tfjs dispatch before touching any data. Here the update reads p, g, m,
 * v once and writes p′, m′, v′ once in a single loop, and Σg² is a plain loop over the
 * gradient's memory. On wasm the loop is 128-bit SIMD in float32 on the backend's own heap
 * (wasm-simd.ts; ≈ 6× faster than JavaScript here); on cpu, and for the last n mod 4
 * elements, a JavaScript loop in float64. Either way it is the formula of optim.ts and agrees
 * with the op-by-op path to float32 rounding.
 *
 * Other backends (a native tensorflow build) have no host-side memory to read: there
 * `fusedAdamWAvailable()` is false and the optimiser composes tfjs ops instead.
 */
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { tf } from './tf';
import { simdForBackend } from './wasm-simd';

type TensorInfo = tf.TensorInfo;

/** Kernel name registered on wasm and cpu. */
export const ADAMW_KERNEL = 'NoteLLM2AdamW';

const HOST_BACKENDS = ['wasm', 'cpu'];

/** Scalars of one AdamW update (optim.ts documents the formula). */
export interface AdamWScalars {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Bias corrections 1 − β1ᵗ and 1 − β2ᵗ. */
  bc1: number;
  bc2: number;
  /** Decoupled decay factor lr·wd (0 for parameters the filter excludes). */
  decay: number;
  /** Gradient multiplier (the clipping scale; 1 without clipping). */
  gradScale: number;
}

/** Whether the active backend runs the fused update (wasm or cpu). */
export function fusedAdamWAvailable(): boolean {
  return HOST_BACKENDS.includes(tf.getBackend());
}

/**
 * p′, m′, v′ from p, g, m, v (all the same length):
 *   g ← s·g;  m′ = β1·m + (1 − β1)·g;  v′ = β2·v + (1 − β2)·g²
 *   p′ = (1 − lr·wd)·p − lr·(m′/bc1) / (√(v′/bc2) + eps)
 */
export function adamwLoop(
  p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array,
  p1: Float32Array, m1: Float32Array, v1: Float32Array, s: AdamWScalars,
): void {
  const { beta1, beta2, eps, gradScale } = s;
  const c1 = 1 - beta1, c2 = 1 - beta2;
  const step = s.lr / s.bc1, invBc2 = 1 / s.bc2, keep = 1 - s.decay;
  const n = p.length;
  for (let i = 0; i < n; i++) {
    const gi = g[i] * gradScale;
    const mi = beta1 * m[i] + c1 * gi;
    const vi = beta2 * v[i] + c2 * gi * gi;
    m1[i] = mi;
    v1[i] = vi;
    p1[i] = keep * p[i] - (step * mi) / (Math.sqrt(vi * invBc2) + eps);
  }
}

function scalars(attrs: tf.NamedAttrMap): AdamWScalars {
  return attrs as unknown as AdamWScalars;
}

function adamwWasm(args: { inputs: Record<string, TensorInfo>; backend: BackendWasm; attrs: tf.NamedAttrMap }): TensorInfo[] {
  const { inputs, backend } = args;
  const { p, g, m, v } = inputs;
  const outs = [backend.makeOutput(p.shape, 'float32'), backend.makeOutput(p.shape, 'float32'), backend.makeOutput(p.shape, 'float32')];
  // Views after every allocation (an allocation can grow, and so replace, the wasm heap).
  const views = [p, g, m, v, ...outs].map((t) => backend.typedArrayFromHeap(t) as Float32Array);
  const s = scalars(args.attrs);
  const simd = simdForBackend(backend);
  const n = views[0].length;
  const bulk = simd ? n - (n % 4) : 0;
  if (simd && bulk > 0) {
    const [bp, bg, bm, bv, bp1, bm1, bv1] = views.map((x) => x.byteOffset);
    simd.adamw(bp, bg, bm, bv, bp1, bm1, bv1, bulk, s.gradScale, s.beta1, 1 - s.beta1, s.beta2, 1 - s.beta2, 1 / s.bc2, s.eps, s.lr / s.bc1, 1 - s.decay);
  }
  if (bulk < n) {
    const [vp, vg, vm, vv, vp1, vm1, vv1] = views.map((x) => x.subarray(bulk));
    adamwLoop(vp, vg, vm, vv, vp1, vm1, vv1, s);
  }
  return outs;
}

interface CpuLike {
  readSync(dataId: tf.DataId): unknown;
  makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): TensorInfo;
}

function adamwCpu(args: { inputs: Record<string, TensorInfo>; backend: CpuLike; attrs: tf.NamedAttrMap }): TensorInfo[] {
  const { inputs, backend } = args;
  const { p, g, m, v } = inputs;
  const read = (t: TensorInfo) => backend.readSync(t.dataId) as Float32Array;
  const n = tf.util.sizeFromShape(p.shape);
  const [p1, m1, v1] = [new Float32Array(n), new Float32Array(n), new Float32Array(n)];
  adamwLoop(read(p), read(g), read(m), read(v), p1, m1, v1, scalars(args.attrs));
  return [p1, m1, v1].map((a) => backend.makeTensorInfo([...p.shape], 'float32', a));
}

function ensureRegistered(backendName: string): void {
  if (tf.getKernel(ADAMW_KERNEL, backendName)) return;
  const kernelFunc = (backendName === 'wasm' ? adamwWasm : adamwCpu) as unknown as tf.KernelConfig['kernelFunc'];
  tf.registerKernel({ kernelName: ADAMW_KERNEL, backendName, kernelFunc });
}

/**
 * One fused AdamW update; returns new tensors [p′, m′, v′] (the inputs are left as they are,
 * so tensors sharing a parameter's memory never see it change). Throws on backends without
 * host memory (check fusedAdamWAvailable first) and on dtype or shape mismatches.
 */
export function adamwUpdate(
  p: tf.Tensor, g: tf.Tensor, m: tf.Tensor, v: tf.Tensor, s: AdamWScalars,
): [tf.Tensor, tf.Tensor, tf.Tensor] {
  const backendName = tf.getBackend();
  if (!HOST_BACKENDS.includes(backendName)) throw new Error(`adamwUpdate: backend "${backendName}" is not one of ${HOST_BACKENDS.join(', ')}`);
  for (const [name, t] of [['gradient', g], ['m', m], ['v', v]] as const) {
    if (t.dtype !== 'float32' || p.dtype !== 'float32') throw new Error(`adamwUpdate: parameter and ${name} must be float32, got ${p.dtype} and ${t.dtype}`);
    if (t.size !== p.size || !tf.util.arraysEqual(t.shape, p.shape)) {
      throw new Error(`adamwUpdate: ${name} has shape [${t.shape}], parameter has [${p.shape}]`);
    }
  }
  ensureRegistered(backendName);
  const out = tf.engine().runKernel(ADAMW_KERNEL, { p, g, m, v }, { ...s } as unknown as tf.NamedAttrMap) as tf.Tensor[];
  return [out[0], out[1], out[2]];
}

/**
 * Σ x² of a float32 tensor, accumulated in float64 straight from the backend's memory (no
 * kernel, no copy); null when the backend has no host memory or x is not float32.
 */
export function hostSumOfSquares(x: tf.Tensor): number | null {
  const backendName = tf.getBackend();
  if (x.dtype !== 'float32' || !HOST_BACKENDS.includes(backendName)) return null;
  const backend = tf.backend();
  let data: Float32Array;
  let s = 0;
  let bulk = 0;
  if (backendName === 'wasm') {
    data = (backend as unknown as BackendWasm).typedArrayFromHeap(x) as Float32Array;
    const simd = simdForBackend(backend);
    if (simd) {
      bulk = data.length - (data.length % 4);
      if (bulk > 0) s = simd.sumsq(data.byteOffset, bulk);
    }
  } else {
    data = (backend as unknown as CpuLike).readSync(x.dataId) as Float32Array;
  }
  for (let i = bulk; i < data.length; i++) s += data[i] * data[i];
  return s;
}
