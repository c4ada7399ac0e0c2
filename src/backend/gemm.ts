/**
 * Which GEMM runs tfjs's matrix products, and the kernels that route them.
 *
 * Matrix products are nearly all of a training step (docs/architecture.md, "Compute"). On the CPU-side
 * tfjs backends (wasm, cpu) `BatchMatMul` and `_FusedMatMul` are re-registered with kernels
 * that hand products above `minFlops` to ONNX Runtime's native GEMM (ort.ts) and smaller ones
 * to the backend's own kernel (on wasm: with transposes materialised, wasm-kernels.ts).
 * tfjs computes matMul gradients with matMul, so forward and backward products both take
 * this route, as do evaluation products (query × pool scores).
 *
 * Selection: ORT when it loads, else the backend's own kernels; NOTELLM2_GEMM=ort|backend
 * overrides (an explicit "ort" that cannot load is an error, not a silent fallback).
 */
import { availableParallelism } from 'node:os';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { OrtGemm } from './ort';
import { tf } from './tf';
import { originalKernel, replaceKernel, wasmBatchMatMulTransposed, wasmFusedMatMulTransposed } from './wasm-kernels';

type TensorInfo = tf.TensorInfo;
type NamedAttrMap = tf.NamedAttrMap;
type KernelFunc = tf.KernelConfig['kernelFunc'];

export type GemmName = 'ort' | 'backend';
export const GEMM_NAMES: readonly GemmName[] = ['ort', 'backend'];

export interface GemmInfo {
  /** The GEMM that large products use now. */
  active: GemmName;
  /** The tfjs backend the kernels are installed on. */
  backend: string;
  /** Why this one (request, fallback reason). */
  reason: string;
  /** onnxruntime-node version and intra-op threads, when ORT is loaded. */
  ortVersion?: string;
  ortThreads?: number;
  ortSpin?: boolean;
  /**
   * Unbatched wasm products with fewer FLOPs (2·m·n·k) use the backend's kernel; batched
   * ones and cpu-backend ones below minFlops/4.
   */
  minFlops: number;
  /** Products run since load (or the last resetGemmStats) by each path. */
  calls: { ort: number; backend: number };
}

/**
 * Unbatched products on wasm with fewer FLOPs than this (2·m·n·k) use the wasm kernel.
 * Measured through tf.matMul on 2 shared cores: ORT's fixed cost is ≈ 25 µs per product,
 * XNNPACK's 2-D GEMM runs ≈ 25 GFLOP/s, and they cross near 64×64·64×64 (5·10^5 FLOPs).
 * Batched products on wasm (naive loop, ≈ 3 GFLOP/s) and every product on the cpu backend
 * (pure JS) are slower, so they switch at a quarter of this.
 */
export const DEFAULT_MIN_FLOPS = 2 ** 18;

/**
 * ONNX Runtime's workers sleep between products by default. Measured on the reference stack
 * (2 shared cores, interleaved runs, load ≈ 4): 2 threads sleeping 59–89 ms per step,
 * 1 thread 79–116 ms, 2 threads spinning 249 ms — and under heavy load (≈ 12) spinning took
 * 640–1830 ms against 220–290 sleeping: a spinning worker holds a core that tfjs's own
 * (single-threaded) kernels and other processes need between products.
 */
export const DEFAULT_ORT_SPIN = false;

const CPU_SIDE = ['wasm', 'cpu'];

let ort: OrtGemm | null = null;
let ortLoadError: string | null = null;
let active: GemmName = 'backend';
let reason = 'not initialised (call initBackend)';
const installedOn = new Set<string>();
let minFlops = DEFAULT_MIN_FLOPS;
const calls = { ort: 0, backend: 0 };

/**
 * NOTELLM2_ORT_THREADS (positive integer; default: available cores) and NOTELLM2_ORT_SPIN
 * (1 | 0; default see DEFAULT_ORT_SPIN) tune ONNX Runtime's intra-op thread pool.
 */
function ortOptionsFromEnv(): { threads?: number; spin: boolean } {
  const t = (process.env.NOTELLM2_ORT_THREADS ?? '').trim();
  const sp = (process.env.NOTELLM2_ORT_SPIN ?? '').trim();
  let threads: number | undefined;
  if (t !== '') {
    threads = Number(t);
    if (!Number.isInteger(threads) || threads < 1) throw new Error(`NOTELLM2_ORT_THREADS must be a positive integer, got "${t}"`);
  }
  if (sp !== '' && sp !== '0' && sp !== '1') throw new Error(`NOTELLM2_ORT_SPIN must be 1 or 0, got "${sp}"`);
  return { threads, spin: sp === '' ? DEFAULT_ORT_SPIN : sp === '1' };
}

function loadOrt(): OrtGemm | null {
  if (ort || ortLoadError) return ort;
  try {
    ort = OrtGemm.load(ortOptionsFromEnv());
  } catch (err) {
    ortLoadError = err instanceof Error ? err.message : String(err);
  }
  return ort;
}

/**
 * The ONNX Runtime GEMM for products whose operand lives outside the backend (native-matmul.ts),
 * or null when ORT cannot be used here (not a CPU-side backend, or it failed to load). It
 * ignores NOTELLM2_GEMM: that switch chooses how tfjs's own products run.
 */
export function nativeGemm(): OrtGemm | null {
  if (!CPU_SIDE.includes(tf.getBackend())) return null;
  const g = loadOrt();
  if (g) calls.ort++;
  return g;
}

/** The intra-op thread count ORT loads with: NOTELLM2_ORT_THREADS, else the cores available. */
export function defaultOrtThreads(): number {
  return ortOptionsFromEnv().threads ?? availableParallelism();
}

/** ORT instances by thread count, kept so that switching back and forth is free. */
const ortByThreads = new Map<number, OrtGemm>();

/**
 * Switches ONNX Runtime to another intra-op thread count (default: defaultOrtThreads()).
 * Sessions belong to a thread pool, so each count gets its own instance, created once and
 * kept (idle pools sleep). Lets one process compare thread counts (the bench); no-op when
 * ORT is not loaded.
 */
export function setOrtThreads(threads = defaultOrtThreads()): void {
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`setOrtThreads: expected a positive integer, got ${threads}`);
  if (!ort || ort.threads === threads) return;
  ortByThreads.set(ort.threads, ort);
  ort = ortByThreads.get(threads) ?? OrtGemm.load({ threads, spin: ort.spin });
  ortByThreads.set(threads, ort);
}

/** Whether ONNX Runtime can be used here (loads it once, without changing the active GEMM). */
export function ortAvailable(): boolean {
  return loadOrt() !== null;
}

/** The active GEMM and how it was chosen. */
export function gemmInfo(): GemmInfo {
  return {
    active,
    backend: tf.getBackend(),
    reason,
    ...(ort ? { ortVersion: ort.version, ortThreads: ort.threads, ortSpin: ort.spin } : {}),
    minFlops,
    calls: { ...calls },
  };
}

export function resetGemmStats(): void {
  calls.ort = 0;
  calls.backend = 0;
}

/** Size threshold below which the backend's own kernel runs (0 sends every product to ORT). */
export function setGemmMinFlops(flops: number): void {
  if (!Number.isFinite(flops) || flops < 0) throw new Error(`setGemmMinFlops: expected a non-negative number, got ${flops}`);
  minFlops = flops;
}

/**
 * Chooses the GEMM at run time: "ort" (throws when ONNX Runtime cannot load or the backend
 * is not wasm/cpu), "backend", or "auto" (ORT when it loads). Used by initBackend with
 * NOTELLM2_GEMM, and by the bench to compare both on one process.
 */
export function setGemm(want: GemmName | 'auto'): GemmInfo {
  const backend = tf.getBackend();
  if (want !== 'auto' && !(GEMM_NAMES as readonly string[]).includes(want)) {
    throw new Error(`NOTELLM2_GEMM/gemm "${want}" is not one of ${GEMM_NAMES.join(', ')}, auto`);
  }
  if (!CPU_SIDE.includes(backend)) {
    if (want === 'ort') throw new Error(`gemm "ort" needs the wasm or cpu backend; "${backend}" is active`);
    active = 'backend';
    reason = `native tfjs backend "${backend}" runs its own GEMM`;
    return gemmInfo();
  }
  installKernels(backend);
  if (want === 'backend') {
    active = 'backend';
    reason = 'requested "backend"';
  } else if (loadOrt()) {
    active = 'ort';
    reason = want === 'ort' ? 'requested "ort"' : 'onnxruntime-node loaded';
  } else if (want === 'ort') {
    throw new Error(`gemm "ort" was requested but onnxruntime-node could not be used: ${ortLoadError}`);
  } else {
    active = 'backend';
    reason = `onnxruntime-node unavailable (${ortLoadError}); using the ${backend} kernels`;
  }
  return gemmInfo();
}

/** Reads NOTELLM2_GEMM (ort | backend | auto, default auto) and applies it. */
export function initGemm(): GemmInfo {
  const env = (process.env.NOTELLM2_GEMM ?? '').trim();
  return setGemm(env === '' ? 'auto' : (env as GemmName | 'auto'));
}

// ---------------------------------------------------------------------------------------
// Routing kernels

interface Plan {
  aDims: number[];
  bDims: number[];
  outDims: number[]; // the dims ORT writes ([m, n] or [batch, m, n])
  outShape: number[]; // the tfjs output shape
}

/**
 * Maps a tfjs BatchMatMul onto the ORT graph shapes, or null when the product should stay on
 * the backend (non-float32, below the size threshold, or a batch broadcast tfjs's kernels
 * handle themselves).
 */
function plan(backendName: string, a: TensorInfo, b: TensorInfo, transposeA: boolean, transposeB: boolean): Plan | null {
  if (a.dtype !== 'float32' || b.dtype !== 'float32') return null;
  const ra = a.shape.length, rb = b.shape.length;
  if (ra < 2 || rb < 2) return null;
  const [a0, a1] = a.shape.slice(-2), [b0, b1] = b.shape.slice(-2);
  const m = transposeA ? a1 : a0, k = transposeA ? a0 : a1;
  const kb = transposeB ? b1 : b0, n = transposeB ? b0 : b1;
  if (k !== kb) return null; // the backend's kernel reports the mismatch
  const batchA = tf.util.sizeFromShape(a.shape.slice(0, -2));
  const batchB = tf.util.sizeFromShape(b.shape.slice(0, -2));
  let outBatch: number[];
  try {
    outBatch = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  } catch {
    return null;
  }
  const batch = Math.max(batchA, batchB);
  if ((batchA !== batchB && batchA !== 1 && batchB !== 1) || tf.util.sizeFromShape(outBatch) !== batch) return null;
  if (m * n * k === 0) return null;
  const threshold = backendName === 'wasm' && batch === 1 ? minFlops : minFlops / 4;
  if (2 * batch * m * n * k < threshold) return null;
  const outShape = [...outBatch, m, n];
  if (batchA === 1 && batchB === 1) {
    return { aDims: [a0, a1], bDims: [b0, b1], outDims: [m, n], outShape };
  }
  if (batchB === 1 && !transposeA) {
    // [batch, m, k] · [k, n]: one GEMM over batch·m rows (the common x·W of a linear layer).
    return { aDims: [batchA * m, k], bDims: [b0, b1], outDims: [batchA * m, n], outShape };
  }
  return { aDims: [batchA, a0, a1], bDims: [batchB, b0, b1], outDims: [batch, m, n], outShape };
}

/** Runs a planned product on ORT, allocating the output on `backend`. */
function runOrt(backendName: string, backend: unknown, a: TensorInfo, b: TensorInfo, p: Plan, ta: boolean, tb: boolean): TensorInfo {
  const g = ort as OrtGemm;
  calls.ort++;
  if (backendName === 'wasm') {
    const w = backend as BackendWasm;
    const out = w.makeOutput(p.outShape, 'float32');
    // Views on the wasm heap, taken after makeOutput (an allocation can grow the heap).
    const av = w.typedArrayFromHeap(a) as Float32Array;
    const bv = w.typedArrayFromHeap(b) as Float32Array;
    const ov = w.typedArrayFromHeap(out) as Float32Array;
    g.matMul(av, p.aDims, bv, p.bDims, ta, tb, ov, p.outDims);
    return out;
  }
  const cpu = backend as { readSync(id: tf.DataId): unknown; makeTensorInfo(s: number[], d: 'float32', v: Float32Array): TensorInfo };
  const av = cpu.readSync(a.dataId) as Float32Array;
  const bv = cpu.readSync(b.dataId) as Float32Array;
  const ov = new Float32Array(tf.util.sizeFromShape(p.outShape));
  g.matMul(av, p.aDims, bv, p.bDims, ta, tb, ov, p.outDims);
  return cpu.makeTensorInfo(p.outShape, 'float32', ov);
}

function backendBatchMatMul(backendName: string): KernelFunc {
  return backendName === 'wasm'
    ? (wasmBatchMatMulTransposed as unknown as KernelFunc)
    : originalKernel('BatchMatMul', backendName);
}

function backendFusedMatMul(backendName: string): KernelFunc {
  return backendName === 'wasm'
    ? (wasmFusedMatMulTransposed as unknown as KernelFunc)
    : originalKernel('_FusedMatMul', backendName);
}

type ProductArgs = Parameters<KernelFunc>[0];

/** How a product kernel call runs: an ORT plan for its operands, or null for the backend's own kernel. */
function ortRoute(backendName: string, args: ProductArgs): { a: TensorInfo; b: TensorInfo; ta: boolean; tb: boolean; p: Plan } | null {
  const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
  const attrs = args.attrs as NamedAttrMap;
  const ta = Boolean(attrs.transposeA), tb = Boolean(attrs.transposeB);
  const p = active === 'ort' && ort ? plan(backendName, a, b, ta, tb) : null;
  if (!p) calls.backend++;
  return p ? { a, b, ta, tb, p } : null;
}

function routedBatchMatMul(backendName: string): KernelFunc {
  const fallback = backendBatchMatMul(backendName);
  return (args) => {
    const r = ortRoute(backendName, args);
    return r ? runOrt(backendName, args.backend, r.a, r.b, r.p, r.ta, r.tb) : fallback(args);
  };
}

/** Applies one of tfjs's fusable activations with the backend's kernels. */
function activate(backendName: string, backend: unknown, x: TensorInfo, attrs: NamedAttrMap, prelu?: TensorInfo): TensorInfo {
  const run = (name: string, inputs: Record<string, TensorInfo>, kattrs: NamedAttrMap = {}): TensorInfo => {
    const k = tf.getKernel(name, backendName);
    if (!k) throw new Error(`gemm.ts: backend "${backendName}" has no ${name} kernel for the fused activation`);
    return k.kernelFunc({ inputs, backend: backend as tf.KernelBackend, attrs: kattrs }) as TensorInfo;
  };
  switch (attrs.activation) {
    case 'linear':
    case undefined:
    case null:
      return x;
    case 'relu':
      return run('Relu', { x });
    case 'relu6':
      return run('Relu6', { x });
    case 'elu':
      return run('Elu', { x });
    case 'sigmoid':
      return run('Sigmoid', { x });
    case 'leakyrelu':
      return run('LeakyRelu', { x }, { alpha: (attrs.leakyreluAlpha as number) ?? 0.2 });
    case 'prelu':
      if (!prelu) throw new Error('gemm.ts: _FusedMatMul with activation "prelu" needs preluActivationWeights');
      return run('Prelu', { x, alpha: prelu });
    default:
      throw new Error(
        `gemm.ts: _FusedMatMul activation "${String(attrs.activation)}" is not one of linear, relu, relu6, elu, sigmoid, leakyrelu, prelu`,
      );
  }
}

function routedFusedMatMul(backendName: string): KernelFunc {
  const fallback = backendFusedMatMul(backendName);
  return (args) => {
    const r = ortRoute(backendName, args);
    if (!r) return fallback(args);
    const { bias, preluActivationWeights } = args.inputs as { bias?: TensorInfo; preluActivationWeights?: TensorInfo };
    const attrs = args.attrs as NamedAttrMap;
    const backend = args.backend as { disposeData(id: tf.DataId): void };
    const temps: TensorInfo[] = [];
    try {
      let y = runOrt(backendName, args.backend, r.a, r.b, r.p, r.ta, r.tb);
      if (bias) {
        temps.push(y);
        const add = tf.getKernel('Add', backendName);
        if (!add) throw new Error(`gemm.ts: backend "${backendName}" has no Add kernel`);
        y = add.kernelFunc({ inputs: { a: y, b: bias }, backend: args.backend, attrs: {} }) as TensorInfo;
      }
      const z = activate(backendName, args.backend, y, attrs, preluActivationWeights);
      if (z !== y) temps.push(y);
      return z;
    } finally {
      for (const t of temps) backend.disposeData(t.dataId);
    }
  };
}

/** Registers the routing kernels (and, on wasm, the wasm fast paths) on a backend once. */
function installKernels(backendName: string): void {
  if (installedOn.has(backendName)) return;
  // Resolve the originals before replacing anything.
  originalKernel('BatchMatMul', backendName);
  originalKernel('_FusedMatMul', backendName);
  const base = tf.getKernel('BatchMatMul', backendName) as tf.KernelConfig;
  const fused = tf.getKernel('_FusedMatMul', backendName) as tf.KernelConfig;
  replaceKernel({ ...base, kernelFunc: routedBatchMatMul(backendName) });
  replaceKernel({ ...fused, kernelFunc: routedFusedMatMul(backendName) });
  installedOn.add(backendName);
}
