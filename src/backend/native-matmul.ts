/**
 * Frozen matrices kept outside the backend's memory, and products with them.
 *
 * The wasm backend's heap is capped at 4 GB, and a frozen weight needs none of what the heap
 * is for: no gradient, no optimiser moments. A `NativeMatrix` keeps its float32 values in an
 * ordinary ArrayBuffer (Node's memory, outside both the wasm heap and V8's managed heap);
 * `nativeMatMul(x, W)` runs x·W, and its gradient dy·Wᵀ, on ONNX Runtime's GEMM reading W
 * where it lies, with x, dy and the result on the backend (on wasm: read from and written to
 * the heap in place). Only the activations and the trainable parameters then take heap room,
 * which is what lets a LoRA or last-N fine-tune of a large imported LLM fit
 * (docs/architecture.md "Compute").
 *
 * Where ONNX Runtime is not usable (a native tfjs backend, or it failed to load) the product
 * falls back to uploading W for the one product and freeing it straight after.
 *
 * Dimension legend: m rows of x, k = W's rows, n = W's columns.
 */
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { tf } from './tf';
import { nativeGemm } from './gemm';

const KERNEL = 'NoteLLM2NativeMatMul';

/** A frozen [rows, cols] float32 matrix in Node's memory. */
export class NativeMatrix {
  private static nextId = 1;
  private static readonly live = new Map<number, NativeMatrix>();
  readonly id: number;

  /** `data` is kept, not copied: the caller hands it over. */
  constructor(readonly data: Float32Array, readonly rows: number, readonly cols: number, readonly name = 'native matrix') {
    if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows <= 0 || cols <= 0) throw new Error(`NativeMatrix ${name}: shape [${rows}, ${cols}] must be positive integers`);
    if (data.length !== rows * cols) throw new Error(`NativeMatrix ${name}: ${data.length} values for shape [${rows}, ${cols}] (${rows * cols} expected)`);
    this.id = NativeMatrix.nextId++;
    NativeMatrix.live.set(this.id, this);
  }

  /** Copies a tensor's values out of the backend (the caller may then dispose the tensor). */
  static fromTensor(t: tf.Tensor, name?: string): NativeMatrix {
    if (t.rank !== 2 || t.dtype !== 'float32') throw new Error(`NativeMatrix.fromTensor: expected a float32 matrix, got ${t.dtype} [${t.shape}]`);
    const [rows, cols] = t.shape as [number, number];
    return new NativeMatrix(Float32Array.from(t.dataSync() as Float32Array), rows, cols, name);
  }

  static byId(id: number): NativeMatrix {
    const m = NativeMatrix.live.get(id);
    if (!m) throw new Error(`${KERNEL}: native matrix #${id} was released`);
    return m;
  }

  get shape(): [number, number] {
    return [this.rows, this.cols];
  }

  /** Bytes held outside the backend. */
  get bytes(): number {
    return this.data.byteLength;
  }

  /** Forgets the matrix (its memory goes with the last reference to `data`). */
  release(): void {
    NativeMatrix.live.delete(this.id);
  }
}

type TensorInfo = tf.TensorInfo;
interface KernelArgs {
  inputs: { x: TensorInfo };
  backend: unknown;
  attrs: { id: number; transpose: boolean };
}

/** out [m, n] = x [m, k] · op(W), op = transpose when asked; run on ORT. */
function kernel({ inputs, backend, attrs }: KernelArgs): TensorInfo {
  const { x } = inputs;
  const w = NativeMatrix.byId(attrs.id);
  const g = nativeGemm();
  if (!g) throw new Error(`${KERNEL}: ONNX Runtime is not usable on backend "${tf.getBackend()}"`);
  const [m, k] = x.shape;
  const n = attrs.transpose ? w.rows : w.cols;
  if (tf.getBackend() === 'wasm') {
    const b = backend as BackendWasm;
    const out = b.makeOutput([m, n], 'float32');
    // Views taken after makeOutput: an allocation may grow (and move) the heap.
    const xv = b.typedArrayFromHeap(x) as Float32Array;
    const ov = b.typedArrayFromHeap(out) as Float32Array;
    g.matMul(xv, [m, k], w.data, [w.rows, w.cols], false, attrs.transpose, ov, [m, n]);
    return out;
  }
  const cpu = backend as { readSync(id: tf.DataId): unknown; makeTensorInfo(s: number[], d: 'float32', v: Float32Array): TensorInfo };
  const ov = new Float32Array(m * n);
  g.matMul(cpu.readSync(x.dataId) as Float32Array, [m, k], w.data, [w.rows, w.cols], false, attrs.transpose, ov, [m, n]);
  return cpu.makeTensorInfo([m, n], 'float32', ov);
}

for (const backendName of ['wasm', 'cpu']) {
  if (!tf.getKernel(KERNEL, backendName)) {
    tf.registerKernel({ kernelName: KERNEL, backendName, kernelFunc: kernel as unknown as tf.KernelConfig['kernelFunc'] });
  }
}

/**
 * x [m, k] · op(W) without W entering the backend when ORT can run it; no gradient (a
 * hand-written backward pass calls it for dy · Wᵀ).
 */
export function nativeProduct(x: tf.Tensor2D, w: NativeMatrix, transpose = false): tf.Tensor2D {
  return product(x, w, transpose);
}

function product(x: tf.Tensor2D, w: NativeMatrix, transpose: boolean): tf.Tensor2D {
  const k = transpose ? w.cols : w.rows;
  if (x.rank !== 2 || x.shape[1] !== k || x.dtype !== 'float32') {
    throw new Error(`nativeMatMul(${w.name}): x must be float32 [m, ${k}], got ${x.dtype} [${x.shape}]`);
  }
  if (nativeGemm()) return tf.engine().runKernel(KERNEL, { x }, { id: w.id, transpose } as unknown as tf.NamedAttrMap) as tf.Tensor2D;
  return tf.tidy(() => tf.matMul(x, tf.tensor2d(w.data, [w.rows, w.cols]), false, transpose));
}

/**
 * x [m, k] · W [k, n] → [m, n], differentiable in x (W is frozen: it has no gradient).
 * With `transpose`, x [m, n] · Wᵀ → [m, k] (a tied LM head reading a frozen [v, d] embedding),
 * whose gradient is dy · W.
 */
export function nativeMatMul(x: tf.Tensor2D, w: NativeMatrix, transpose = false): tf.Tensor2D {
  type OneInputGrad = (xi: tf.Tensor) => { value: tf.Tensor; gradFunc: (dy: tf.Tensor) => tf.Tensor };
  const f: OneInputGrad = (xi) => ({
    value: product(xi as tf.Tensor2D, w, transpose),
    gradFunc: (dy) => product(dy as tf.Tensor2D, w, !transpose),
  });
  return (tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (x: tf.Tensor) => tf.Tensor)(x) as tf.Tensor2D;
}

/**
 * out = W + a·b for a frozen W [k, n], a [k, r] and b [r, n] on the backend (a LoRA update
 * s·A·B merged into its base weight), written into `out` (a NativeMatrix of W's shape, reused
 * from call to call). On ONNX Runtime it reads W, a and b where they lie; elsewhere it runs on
 * the backend and reads the result back.
 */
export function nativeAddLowRank(w: NativeMatrix, a: tf.Tensor2D, b: tf.Tensor2D, out: NativeMatrix): void {
  const [k, r] = a.shape;
  const n = b.shape[1];
  if (k !== w.rows || n !== w.cols || b.shape[0] !== r || out.rows !== k || out.cols !== n || out === w) {
    throw new Error(`nativeAddLowRank(${w.name}): W [${w.shape}] + a [${a.shape}]·b [${b.shape}] → out [${out.shape}] do not fit`);
  }
  const g = nativeGemm();
  const backend = tf.backend() as unknown as BackendWasm & { readSync(id: tf.DataId): unknown };
  if (g && tf.getBackend() === 'wasm') {
    g.matMulAdd(backend.typedArrayFromHeap(a) as Float32Array, [k, r], backend.typedArrayFromHeap(b) as Float32Array, [r, n], w.data, out.data);
    return;
  }
  if (g) {
    g.matMulAdd(backend.readSync(a.dataId) as Float32Array, [k, r], backend.readSync(b.dataId) as Float32Array, [r, n], w.data, out.data);
    return;
  }
  const y = tf.tidy(() => tf.add(tf.tensor2d(w.data, [k, n]), tf.matMul(a, b)));
  out.data.set(y.dataSync() as Float32Array);
  y.dispose();
}
