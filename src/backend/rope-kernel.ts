/**
 * RoPE's pair rotation as one kernel on the wasm backend (wasm-simd.ts `rotate`):
 *   y[i] = x[i]·cos − x[i + half]·sin,   y[i + half] = x[i + half]·cos + x[i]·sin
 * for x [b, t, h, 2·half] and tables [t, half]. Written with tfjs ops the same rotation takes
 * a product, two broadcast multiplies and an add forward and as many backward; here it is one
 * pass each way (the gradient is the same kernel with the sine negated).
 *
 * Only where it applies: the wasm backend with SIMD, half a multiple of 4. Callers check
 * `ropeKernelAvailable` and otherwise compose tfjs ops (src/model/rope.ts).
 */
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { tf } from './tf';
import { registerWasmKernel, requireSimd, simdActive } from './wasm-simd';

type TensorInfo = tf.TensorInfo;

export const ROPE_KERNEL = 'NoteLLM2RopeRotate';

/** Whether the rotation kernel runs here for this head width. */
export function ropeKernelAvailable(headDim: number): boolean {
  return headDim % 8 === 0 && simdActive();
}

function rotateWasm(args: { inputs: Record<string, TensorInfo>; backend: BackendWasm }): TensorInfo {
  const { inputs, backend } = args;
  const { x, cos, sin } = inputs;
  const [b, t, h, hd] = x.shape;
  const simd = requireSimd(backend, 'rope-kernel');
  const out = backend.makeOutput(x.shape, 'float32');
  // Views after the allocation (it can grow, and so replace, the wasm heap).
  const [xv, ov, cv, sv] = [x, out, cos, sin].map((u) => backend.typedArrayFromHeap(u) as Float32Array);
  simd.rotate(xv.byteOffset, ov.byteOffset, cv.byteOffset, sv.byteOffset, b * t, t, h, hd / 2);
  return out;
}

/**
 * y = rotate(x) with the tables cos, sin [t, hd/2]; x [b, t, h, hd] float32. No gradient of
 * its own: the caller wraps it (the gradient is rotate with −sin).
 */
export function ropeRotate(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor {
  if (x.rank !== 4 || x.dtype !== 'float32') throw new Error(`ropeRotate: x must be float32 [b, t, h, hd], got ${x.dtype} [${x.shape}]`);
  const [, t, , hd] = x.shape;
  for (const [name, tab] of [['cos', cos], ['sin', sin]] as const) {
    if (tab.rank !== 2 || tab.shape[0] !== t || tab.shape[1] !== hd / 2 || tab.dtype !== 'float32') {
      throw new Error(`ropeRotate: ${name} must be float32 [${t}, ${hd / 2}], got ${tab.dtype} [${tab.shape}]`);
    }
  }
  if (!ropeKernelAvailable(hd)) throw new Error(`ropeRotate: not available on backend "${tf.getBackend()}" for head width ${hd}`);
  registerWasmKernel(ROPE_KERNEL, rotateWasm);
  return tf.engine().runKernel(ROPE_KERNEL, { x, cos, sin }, {}) as tf.Tensor;
}
