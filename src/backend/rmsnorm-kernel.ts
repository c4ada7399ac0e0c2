/**
 * RMSNorm as one kernel forward and one backward on the wasm backend (wasm-simd.ts `rmsFwd`,
 * `rmsBwd`): y = x · r · w with r = 1/√(mean(x²) + eps) per row, and
 *   ∂L/∂x = r · (g − xr · mean(g ⊙ xr)),   ∂L/∂w = Σ_rows dy ⊙ xr   (g = dy ⊙ w, xr = x·r).
 * With tfjs ops that is ~6 kernels forward and ~9 backward over the activations; here one pass
 * each way (two sweeps of each row).
 *
 * Only where it applies: the wasm backend with SIMD, width a multiple of 4, float32. Callers
 * check `rmsNormKernelAvailable` and otherwise compose tfjs ops (src/model/layers.ts).
 */
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { tf } from './tf';
import { registerWasmKernel, requireSimd, simdActive } from './wasm-simd';

type TensorInfo = tf.TensorInfo;
type KernelArgs = { inputs: Record<string, TensorInfo>; backend: BackendWasm; attrs: tf.NamedAttrMap };

const FORWARD = 'NoteLLM2RmsNorm';
const BACKWARD = 'NoteLLM2RmsNormGrad';

/** Whether the kernels run here for width d. */
export function rmsNormKernelAvailable(d: number): boolean {
  return d % 4 === 0 && d > 0 && simdActive();
}

function forwardWasm({ inputs, backend, attrs }: KernelArgs): TensorInfo[] {
  const { x, w } = inputs;
  const d = x.shape[x.shape.length - 1];
  const rows = tf.util.sizeFromShape(x.shape) / d;
  const simd = requireSimd(backend, 'rmsnorm-kernel');
  const y = backend.makeOutput(x.shape, 'float32');
  const r = backend.makeOutput([...x.shape.slice(0, -1), 1], 'float32');
  const [xv, wv, yv, rv] = [x, w, y, r].map((t) => backend.typedArrayFromHeap(t) as Float32Array);
  simd.rmsFwd(xv.byteOffset, wv.byteOffset, yv.byteOffset, rv.byteOffset, rows, d, attrs.eps as number);
  return [y, r];
}

function backwardWasm({ inputs, backend }: KernelArgs): TensorInfo[] {
  const { dy, x, w, r } = inputs;
  const d = x.shape[x.shape.length - 1];
  const rows = tf.util.sizeFromShape(x.shape) / d;
  const simd = requireSimd(backend, 'rmsnorm-kernel');
  const dx = backend.makeOutput(x.shape, 'float32');
  const dw = backend.makeOutput([d], 'float32');
  const [dyv, xv, wv, rv, dxv, dwv] = [dy, x, w, r, dx, dw].map((t) => backend.typedArrayFromHeap(t) as Float32Array);
  simd.rmsBwd(dyv.byteOffset, xv.byteOffset, wv.byteOffset, rv.byteOffset, dxv.byteOffset, dwv.byteOffset, rows, d);
  return [dx, dw];
}

function check(x: tf.Tensor, w: tf.Tensor): number {
  const d = x.shape[x.rank - 1];
  if (x.dtype !== 'float32' || w.dtype !== 'float32') throw new Error(`rmsNorm kernel: x and w must be float32, got ${x.dtype}, ${w.dtype}`);
  if (w.rank !== 1 || w.shape[0] !== d) throw new Error(`rmsNorm kernel: w must be [${d}], got [${w.shape}]`);
  if (!rmsNormKernelAvailable(d)) throw new Error(`rmsNorm kernel: not available on backend "${tf.getBackend()}" for width ${d}`);
  registerWasmKernel(FORWARD, forwardWasm);
  registerWasmKernel(BACKWARD, backwardWasm);
  return d;
}

/** [y, r]: y = x·r·w and the per-row r [..., 1] the gradient needs. */
export function rmsNormForward(x: tf.Tensor, w: tf.Tensor, eps: number): [tf.Tensor, tf.Tensor] {
  check(x, w);
  const out = tf.engine().runKernel(FORWARD, { x, w }, { eps }) as tf.Tensor[];
  return [out[0], out[1]];
}

/** [∂L/∂x, ∂L/∂w] from the upstream gradient and the forward's x, w and r. */
export function rmsNormBackward(dy: tf.Tensor, x: tf.Tensor, w: tf.Tensor, r: tf.Tensor): [tf.Tensor, tf.Tensor] {
  check(x, w);
  if (!tf.util.arraysEqual(dy.shape, x.shape)) throw new Error(`rmsNorm kernel: dy has shape [${dy.shape}], x has [${x.shape}]`);
  const out = tf.engine().runKernel(BACKWARD, { dy, x, w, r }, {}) as tf.Tensor[];
  return [out[0], out[1]];
}
