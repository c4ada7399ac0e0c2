/**
 * The SwiGLU gate silu(g) ⊙ u as one kernel forward and one backward on the wasm backend
 * (wasm-simd.ts `gateFwd`, `gateBwd`), given s = σ(g) from tfjs's own Sigmoid kernel:
 *   y = (g·s)·u;   ∂L/∂u = dy·a,  ∂L/∂g = (dy·u)·(s·(1 + g − a))   with a = g·s.
 * With tfjs ops the gradient alone is six kernels over [tokens, hidden] tensors.
 *
 * Only where it applies: the wasm backend with SIMD, float32. Callers check
 * `gateKernelAvailable` and otherwise compose tfjs ops (src/model/layers.ts).
 */
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { tf } from './tf';
import { registerWasmKernel, requireSimd, simdActive } from './wasm-simd';

type TensorInfo = tf.TensorInfo;
type KernelArgs = { inputs: Record<string, TensorInfo>; backend: BackendWasm };

const FORWARD = 'NoteLLM2GateFwd';
const BACKWARD = 'NoteLLM2GateBwd';

/** Whether the kernels run here. */
export function gateKernelAvailable(): boolean {
  return simdActive();
}

function forwardWasm({ inputs, backend }: KernelArgs): TensorInfo {
  const { g, s, u } = inputs;
  const simd = requireSimd(backend, 'gate-kernel');
  const y = backend.makeOutput(g.shape, 'float32');
  const [gv, sv, uv, yv] = [g, s, u, y].map((t) => backend.typedArrayFromHeap(t) as Float32Array);
  const n = gv.length, bulk = n - (n % 4);
  if (bulk > 0) simd.gateFwd(gv.byteOffset, sv.byteOffset, uv.byteOffset, yv.byteOffset, bulk);
  for (let i = bulk; i < n; i++) yv[i] = gv[i] * sv[i] * uv[i];
  return y;
}

function backwardWasm({ inputs, backend }: KernelArgs): TensorInfo[] {
  const { dy, g, u, s } = inputs;
  const simd = requireSimd(backend, 'gate-kernel');
  const dg = backend.makeOutput(g.shape, 'float32');
  const du = backend.makeOutput(g.shape, 'float32');
  const [dyv, gv, uv, sv, dgv, duv] = [dy, g, u, s, dg, du].map((t) => backend.typedArrayFromHeap(t) as Float32Array);
  const n = gv.length, bulk = n - (n % 4);
  if (bulk > 0) simd.gateBwd(dyv.byteOffset, gv.byteOffset, uv.byteOffset, sv.byteOffset, dgv.byteOffset, duv.byteOffset, bulk);
  for (let i = bulk; i < n; i++) {
    const a = gv[i] * sv[i];
    duv[i] = dyv[i] * a;
    dgv[i] = dyv[i] * uv[i] * (sv[i] * (1 + gv[i] - a));
  }
  return [dg, du];
}

function check(...ts: tf.Tensor[]): void {
  for (const t of ts) {
    if (t.dtype !== 'float32' || !tf.util.arraysEqual(t.shape, ts[0].shape)) {
      throw new Error(`gate kernel: operands must be float32 of one shape, got ${ts.map((x) => `${x.dtype} [${x.shape}]`).join(', ')}`);
    }
  }
  if (!gateKernelAvailable()) throw new Error(`gate kernel: not available on backend "${tf.getBackend()}"`);
  registerWasmKernel(FORWARD, forwardWasm);
  registerWasmKernel(BACKWARD, backwardWasm);
}

/** y = (g·s)·u with s = σ(g). */
export function gateForward(g: tf.Tensor, s: tf.Tensor, u: tf.Tensor): tf.Tensor {
  check(g, s, u);
  return tf.engine().runKernel(FORWARD, { g, s, u }, {}) as tf.Tensor;
}

/** [∂L/∂g, ∂L/∂u] of y = silu(g)·u, given s = σ(g). */
export function gateBackward(dy: tf.Tensor, g: tf.Tensor, u: tf.Tensor, s: tf.Tensor): [tf.Tensor, tf.Tensor] {
  check(dy, g, u, s);
  const out = tf.engine().runKernel(BACKWARD, { dy, g, u, s }, {}) as tf.Tensor[];
  return [out[0], out[1]];
}
