/**
 * Fast-path kernels for the tfjs wasm backend (SIMD, XNNPACK).
 *
 * 1. Transpose wrapper for `BatchMatMul` / `_FusedMatMul` (registered through gemm.ts). The wasm kernel reaches XNNPACK's
 *    packed GEMM only for untransposed operands; with `transposeA`/`transposeB` it falls back
 *    to a naive loop (measured on 2 shared cores: 768×128·128×384 takes 3.0 ms plain, 33 ms
 *    with transposeA, 23 ms with transposeB). Every backward pass of a matMul asks for
 *    transposed operands, so training spent most of its time there. The wrapper materialises
 *    the transposed operand with the wasm `Transpose` kernel (a memory-bound copy, ~0.1 ms at
 *    these sizes) and calls the original kernel untransposed.
 *
 * 2. `UnsortedSegmentSum`, which the wasm backend lacks and which the gradient of `gather`
 *    (embedding lookups) needs. It sums rows of x on the wasm heap in JS typed-array loops:
 *    O(x.size) additions, a fraction of a millisecond for an embedding gradient
 *    ([B·T, D] = [768, 128]), so a C++ kernel would not pay for itself.
 *
 * 3. Copy kernels `Slice`, `SplitV`, `Concat`, `GatherV2` and `Identity`. tfjs's wasm versions are written
 *    in JS and (a) read the whole input through `readSync`, which copies it off the heap before
 *    every slice, and (b) copy row by row through `subarray` views, which costs an allocation per
 *    row — a split or concat of [b, t, h, hd] along hd makes thousands of short rows.
 *    These versions read the heap in place, copy short runs with plain loops, and make
 *    Identity share the buffer (reference-counted, as Reshape does) instead of copying.
 *
 * Multithreading (XNNPACK's pthreadpool) under Node was tried and is not used; see
 * `WASM_THREADS_FINDINGS` below.
 */
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { tf } from './tf';

type TensorInfo = tf.TensorInfo;
type KernelConfig = tf.KernelConfig;
type NamedAttrMap = tf.NamedAttrMap;
type KernelArgs = Parameters<KernelConfig['kernelFunc']>[0];

/**
 * What was found trying wasm threads in Node (tfjs 4.22), kept here because the answer
 * decides whether to revisit it:
 * - tfjs forces the `WASM_HAS_MULTITHREAD_SUPPORT` flag to false under Node
 *   (tfjs/issues/3830). Setting it to true (and setThreadsCount(2)) before
 *   `setBackend('wasm')` makes tfjs load the threaded-SIMD build, whose Emscripten pthread
 *   workers are started from a `blob:` URL; Node's `worker_threads.Worker` rejects it
 *   (ERR_WORKER_PATH: "must be an absolute path or a relative path starting with './'") and
 *   the backend fails to initialise. Working around it would mean patching Blob, URL and
 *   worker_threads inside tfjs's Emscripten loader — not worth it, given the next point.
 * - Even where the threaded build loads (browsers), only XNNPACK operators (the GEMM,
 *   convolutions) use the pool; tfjs's element-wise kernels stay single-threaded. On this
 *   project's machines the products run on ONNX Runtime's threaded GEMM instead (gemm.ts),
 *   which is where a second core pays off.
 */
export const WASM_THREADS_FINDINGS =
  'wasm threads not used: tfjs disables them in Node and its pthread workers load from blob: URLs, ' +
  'which Node worker_threads cannot start; products use ONNX Runtime threads instead';

let materialise = true;

/**
 * Turns the transpose wrapper off (the wasm kernel as shipped) or on (default). For the
 * bench's before/after figure; nothing else should need it.
 */
export function setTransposeWrapper(on: boolean): void {
  materialise = on;
}

export function transposeWrapperEnabled(): boolean {
  return materialise;
}

/** Swaps the last two axes of a rank ≥ 2 shape's permutation. */
function lastTwoSwapped(rank: number): number[] {
  const perm = Array.from({ length: rank }, (_, i) => i);
  perm[rank - 2] = rank - 1;
  perm[rank - 1] = rank - 2;
  return perm;
}

/** Original kernels, kept so the wrappers can call them and `uninstall` can restore them. */
const originals = new Map<string, KernelConfig>();

function original(kernelName: string, backendName: string): KernelConfig {
  const key = `${kernelName}/${backendName}`;
  let cfg = originals.get(key);
  if (!cfg) {
    const found = tf.getKernel(kernelName, backendName);
    if (!found) throw new Error(`wasm-kernels.ts: backend "${backendName}" has no ${kernelName} kernel to wrap`);
    cfg = found;
    originals.set(key, cfg);
  }
  return cfg;
}

/** Replaces (or adds) a kernel registration; keeps the original's setupFunc/disposeFunc. */
export function replaceKernel(cfg: KernelConfig): void {
  if (tf.getKernel(cfg.kernelName, cfg.backendName)) tf.unregisterKernel(cfg.kernelName, cfg.backendName);
  tf.registerKernel(cfg);
}

/** Restores a kernel saved by `original` (or removes one this module added). */
export function restoreKernel(kernelName: string, backendName: string): void {
  const key = `${kernelName}/${backendName}`;
  const cfg = originals.get(key);
  if (tf.getKernel(kernelName, backendName)) tf.unregisterKernel(kernelName, backendName);
  if (cfg) tf.registerKernel(cfg);
}

/** The backend's own kernel function for `kernelName` (as shipped, before any wrapping). */
export function originalKernel(kernelName: string, backendName: string): KernelConfig['kernelFunc'] {
  return original(kernelName, backendName).kernelFunc;
}

/**
 * Runs `fn` on a and b with transposeA/transposeB materialised by the wasm Transpose kernel,
 * then frees the temporary copies. `fn` receives untransposed operands.
 */
function withMaterialisedTransposes(
  backend: BackendWasm,
  a: TensorInfo,
  b: TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
  fn: (a: TensorInfo, b: TensorInfo) => TensorInfo,
): TensorInfo {
  const transpose = originalKernel('Transpose', 'wasm');
  const temps: TensorInfo[] = [];
  const materialise = (x: TensorInfo): TensorInfo => {
    const t = transpose({ inputs: { x }, backend, attrs: { perm: lastTwoSwapped(x.shape.length) } }) as TensorInfo;
    temps.push(t);
    return t;
  };
  try {
    return fn(transposeA ? materialise(a) : a, transposeB ? materialise(b) : b);
  } finally {
    for (const t of temps) backend.disposeData(t.dataId);
  }
}

/**
 * A wasm product kernel (BatchMatMul, or _FusedMatMul with its bias and activation) that
 * materialises transposed operands first, so the product takes the fast untransposed GEMM path.
 */
function materialisingKernel(name: 'BatchMatMul' | '_FusedMatMul') {
  return (args: {
    inputs: { a: TensorInfo; b: TensorInfo; bias?: TensorInfo; preluActivationWeights?: TensorInfo };
    backend: BackendWasm;
    attrs: NamedAttrMap;
  }): TensorInfo => {
    const { inputs, backend, attrs } = args;
    const transposeA = Boolean(attrs.transposeA);
    const transposeB = Boolean(attrs.transposeB);
    const base = originalKernel(name, 'wasm');
    if ((!transposeA && !transposeB) || !materialise) return base(args as unknown as KernelArgs) as TensorInfo;
    return withMaterialisedTransposes(backend, inputs.a, inputs.b, transposeA, transposeB, (a, b) =>
      base({
        inputs: { ...inputs, a, b },
        backend,
        attrs: { ...attrs, transposeA: false, transposeB: false },
      } as unknown as KernelArgs) as TensorInfo,
    );
  };
}

/** BatchMatMul on wasm with transposes materialised first (the fast GEMM path). */
export const wasmBatchMatMulTransposed = materialisingKernel('BatchMatMul');

/** _FusedMatMul (product + bias + activation) on wasm with transposes materialised first. */
export const wasmFusedMatMulTransposed = materialisingKernel('_FusedMatMul');

/**
 * UnsortedSegmentSum: out[s, ...] = Σ_{i : ids[i] = s} x[i, ...]. ids has the shape of x's
 * leading axes; out has shape [numSegments, ...x.shape.slice(ids.rank)]. Ids outside
 * [0, numSegments) contribute nothing (TensorFlow drops negative ids the same way).
 * Summation runs in index order, so results are deterministic.
 */
export function unsortedSegmentSumWasm(args: {
  inputs: { x: TensorInfo; segmentIds: TensorInfo };
  backend: BackendWasm;
  attrs: NamedAttrMap;
}): TensorInfo {
  const { inputs, backend, attrs } = args;
  const { x, segmentIds } = inputs;
  const numSegments = Number(attrs.numSegments);
  if (!Number.isInteger(numSegments) || numSegments < 0) {
    throw new Error(`UnsortedSegmentSum (wasm): numSegments must be a non-negative integer, got ${attrs.numSegments}`);
  }
  if (x.dtype !== 'float32' && x.dtype !== 'int32') {
    throw new Error(`UnsortedSegmentSum (wasm): x must be float32 or int32, got ${x.dtype}`);
  }
  const idRank = segmentIds.shape.length;
  for (let i = 0; i < idRank; i++) {
    if (segmentIds.shape[i] !== x.shape[i]) {
      throw new Error(
        `UnsortedSegmentSum (wasm): segmentIds shape [${segmentIds.shape}] must be a prefix of x shape [${x.shape}]`,
      );
    }
  }
  const inner = x.shape.slice(idRank);
  const rowSize = tf.util.sizeFromShape(inner);
  const out = backend.makeOutput([numSegments, ...inner], x.dtype);
  // Views are taken after makeOutput: an allocation may grow (and so detach) the heap.
  const ids = backend.typedArrayFromHeap(segmentIds) as Int32Array | Float32Array;
  if (x.dtype === 'float32') {
    segmentSumRows(backend.typedArrayFromHeap(x) as Float32Array, ids, backend.typedArrayFromHeap(out) as Float32Array, rowSize, numSegments);
  } else {
    segmentSumRows(backend.typedArrayFromHeap(x) as Int32Array, ids, backend.typedArrayFromHeap(out) as Int32Array, rowSize, numSegments);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Copy kernels

type Heap = Float32Array | Int32Array | Uint8Array;

/** dst[dstOff .. +len) = src[srcOff .. +len): a loop for short runs, memcpy for long ones. */
function copyRun(src: Heap, srcOff: number, dst: Heap, dstOff: number, len: number): void {
  if (len < 64) {
    for (let i = 0; i < len; i++) dst[dstOff + i] = src[srcOff + i];
  } else {
    dst.set(src.subarray(srcOff, srcOff + len), dstOff);
  }
}

/**
 * Copies the box `begin`/`size` of x (row-major, `shape`) into out, contiguous. Trailing axes
 * taken whole merge into one run, so the loop count is the number of runs, not elements.
 */
export function sliceInto(x: Heap, shape: readonly number[], begin: readonly number[], size: readonly number[], out: Heap): void {
  const rank = shape.length;
  if (size.some((d) => d === 0)) return;
  const strides = new Array<number>(rank);
  let acc = 1;
  for (let i = rank - 1; i >= 0; i--) {
    strides[i] = acc;
    acc *= shape[i];
  }
  // Merge trailing whole axes, then the first partial one, into the run.
  let d = rank - 1;
  let run = 1;
  while (d >= 0 && begin[d] === 0 && size[d] === shape[d]) {
    run *= size[d];
    d--;
  }
  if (d < 0) {
    copyRun(x, 0, out, 0, run);
    return;
  }
  run *= size[d];
  const base = begin.reduce((o, b, i) => o + b * strides[i], 0);
  // Odometer over axes 0..d-1.
  const outer = d;
  const idx = new Array<number>(outer).fill(0);
  let src = base;
  let dst = 0;
  const runs = size.slice(0, outer).reduce((a, b) => a * b, 1);
  for (let r = 0; r < runs; r++) {
    copyRun(x, src, out, dst, run);
    dst += run;
    for (let ax = outer - 1; ax >= 0; ax--) {
      idx[ax]++;
      src += strides[ax];
      if (idx[ax] < size[ax]) break;
      src -= size[ax] * strides[ax];
      idx[ax] = 0;
    }
  }
}

function sliceWasm(args: { inputs: { x: TensorInfo }; backend: BackendWasm; attrs: NamedAttrMap }): TensorInfo {
  const { inputs: { x }, backend, attrs } = args;
  if (x.dtype === 'string') return originalKernel('Slice', 'wasm')(args as unknown as KernelArgs) as TensorInfo;
  const [begin, size] = tf.slice_util.parseSliceParams(x as unknown as tf.Tensor, attrs.begin as number[], attrs.size as number[]);
  const out = backend.makeOutput(size, x.dtype);
  sliceInto(backend.typedArrayFromHeap(x) as Heap, x.shape, begin, size, backend.typedArrayFromHeap(out) as Heap);
  return out;
}

function splitVWasm(args: { inputs: { x: TensorInfo }; backend: BackendWasm; attrs: NamedAttrMap }): TensorInfo[] {
  const { inputs: { x }, backend, attrs } = args;
  if (x.dtype === 'string') return originalKernel('SplitV', 'wasm')(args as unknown as KernelArgs) as TensorInfo[];
  const axis = tf.util.parseAxisParam(attrs.axis as number, x.shape)[0];
  const sizes = tf.backend_util.prepareSplitSize(x as unknown as tf.Tensor, attrs.numOrSizeSplits as number[] | number, axis);
  const begin = new Array<number>(x.shape.length).fill(0);
  return sizes.map((s) => {
    const size = [...x.shape];
    size[axis] = s;
    const out = backend.makeOutput(size, x.dtype);
    // View taken after makeOutput (an allocation may grow the heap).
    sliceInto(backend.typedArrayFromHeap(x) as Heap, x.shape, begin, size, backend.typedArrayFromHeap(out) as Heap);
    begin[axis] += s;
    return out;
  });
}

function concatWasm(args: { inputs: TensorInfo[]; backend: BackendWasm; attrs: NamedAttrMap }): TensorInfo {
  const { inputs, backend, attrs } = args;
  if (inputs[0].dtype === 'string') return originalKernel('Concat', 'wasm')(args as unknown as KernelArgs) as TensorInfo;
  const axis = tf.util.parseAxisParam(attrs.axis as number, inputs[0].shape)[0];
  tf.backend_util.assertParamsConsistent(inputs.map((t) => t.shape), axis);
  const outShape = tf.backend_util.computeOutShape(inputs.map((t) => t.shape), axis);
  const parts = inputs.filter((t) => tf.util.sizeFromShape(t.shape) > 0);
  const out = backend.makeOutput(outShape, inputs[0].dtype);
  if (parts.length === 0) return out;
  const outer = tf.util.sizeFromShape(parts[0].shape.slice(0, axis));
  const inner = parts.map((t) => tf.util.sizeFromShape(t.shape.slice(axis)));
  const total = inner.reduce((a, b) => a + b, 0);
  const views = parts.map((t) => backend.typedArrayFromHeap(t) as Heap);
  const ov = backend.typedArrayFromHeap(out) as Heap;
  let col = 0;
  for (let i = 0; i < parts.length; i++) {
    const n = inner[i], v = views[i];
    for (let b = 0; b < outer; b++) copyRun(v, b * n, ov, b * total + col, n);
    col += n;
  }
  return out;
}

/**
 * GatherV2 (batchDims 0) as row copies: out[o, i, :] = x[o, ids[i], :] over the axis. The
 * shipped kernel walks element by element (≈ 50 ns per element here); embedding lookups copy
 * whole rows.
 */
function gatherWasm(args: { inputs: { x: TensorInfo; indices: TensorInfo }; backend: BackendWasm; attrs: NamedAttrMap }): TensorInfo {
  const { inputs: { x, indices }, backend, attrs } = args;
  if (x.dtype === 'string' || Number(attrs.batchDims ?? 0) !== 0) {
    return originalKernel('GatherV2', 'wasm')(args as unknown as KernelArgs) as TensorInfo;
  }
  const axis = tf.util.parseAxisParam(attrs.axis as number, x.shape)[0];
  const axisDim = x.shape[axis];
  const outer = tf.util.sizeFromShape(x.shape.slice(0, axis));
  const inner = tf.util.sizeFromShape(x.shape.slice(axis + 1));
  const nIdx = tf.util.sizeFromShape(indices.shape);
  const ids = backend.typedArrayFromHeap(indices) as Int32Array | Float32Array;
  for (let i = 0; i < nIdx; i++) {
    const v = ids[i];
    if (!(v >= 0 && v <= axisDim - 1)) throw new Error(`GatherV2: the index value ${v} is not in [0, ${axisDim - 1}]`);
  }
  const out = backend.makeOutput([...x.shape.slice(0, axis), ...indices.shape, ...x.shape.slice(axis + 1)], x.dtype);
  const xv = backend.typedArrayFromHeap(x) as Heap;
  const ov = backend.typedArrayFromHeap(out) as Heap;
  const idv = backend.typedArrayFromHeap(indices) as Int32Array | Float32Array; // fresh view after makeOutput
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < nIdx; i++) copyRun(xv, (o * axisDim + idv[i]) * inner, ov, (o * nIdx + i) * inner, inner);
  }
  return out;
}

/** Identity without a copy: the output shares x's buffer (reference-counted, like Reshape). */
function identityWasm(args: { inputs: { x: TensorInfo }; backend: BackendWasm }): TensorInfo {
  const { inputs: { x }, backend } = args;
  if (x.dtype === 'string') return originalKernel('Identity', 'wasm')(args as unknown as KernelArgs) as TensorInfo;
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
}

/** ys[ids[i]] += xs[i] row by row (rows of rowSize); ys is zeroed first. */
function segmentSumRows<A extends Float32Array | Int32Array>(xs: A, ids: Int32Array | Float32Array, ys: A, rowSize: number, numSegments: number): void {
  ys.fill(0);
  const n = ids.length;
  for (let i = 0; i < n; i++) {
    const s = ids[i];
    if (s < 0 || s >= numSegments) continue;
    const src = i * rowSize;
    const dst = s * rowSize;
    for (let j = 0; j < rowSize; j++) ys[dst + j] += xs[src + j];
  }
}

let ownSegmentSum = false;
let copyKernels = false;

/**
 * Adds UnsortedSegmentSum and the copy kernels to the wasm backend (idempotent). BatchMatMul/_FusedMatMul are
 * registered by gemm.ts, whose routing kernels call the transpose wrappers above for the
 * products that stay on wasm.
 */
export function installWasmKernels(): void {
  // Resolve the shipped kernels before anything replaces them.
  for (const name of ['BatchMatMul', '_FusedMatMul', 'Transpose', 'Slice', 'SplitV', 'Concat', 'Identity', 'GatherV2']) original(name, 'wasm');
  if (!copyKernels) {
    const k = (name: string, fn: unknown) => replaceKernel({ ...original(name, 'wasm'), kernelFunc: fn as KernelConfig['kernelFunc'] });
    k('Slice', sliceWasm);
    k('SplitV', splitVWasm);
    k('Concat', concatWasm);
    k('Identity', identityWasm);
    k('GatherV2', gatherWasm);
    copyKernels = true;
  }
  // Registered only where tfjs has none (a later release may ship its own; keep that one).
  if (!ownSegmentSum && !tf.getKernel('UnsortedSegmentSum', 'wasm')) {
    replaceKernel({
      kernelName: 'UnsortedSegmentSum',
      backendName: 'wasm',
      kernelFunc: unsortedSegmentSumWasm as unknown as KernelConfig['kernelFunc'],
    });
    ownSegmentSum = true;
  }
}
