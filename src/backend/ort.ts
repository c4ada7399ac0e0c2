/**
 * The one module that touches ONNX Runtime's native binding.
 *
 * tfjs kernels are synchronous, but `onnxruntime-node`'s public `InferenceSession.run`
 * returns a promise. Its native binding (`onnxruntime-node/dist/binding`) runs synchronously:
 * `new binding.InferenceSession()`, `loadModel(buffer, byteOffset, byteLength, options)`,
 * `run(feeds, fetches, options)`. That binding is internal API, so the package version is
 * pinned exactly in package.json and checked here (`ORT_VERSION`); a different version is
 * refused rather than trusted. Everything else in the project goes through `OrtGemm`.
 *
 * Inputs are wrapped without copying (the binding reads the typed array's memory), and the
 * output is written into a caller-supplied array (a pre-allocated fetch), so on the wasm
 * backend the product reads from and writes to the wasm heap directly.
 */
import { availableParallelism } from 'node:os';
import { gemmAddModel, matMulModel } from './onnx';

/** The onnxruntime-node version whose internal binding this module was written against. */
export const ORT_VERSION = '1.30.0';

interface OrtTensorCtor {
  new (type: 'float32', data: Float32Array, dims: readonly number[]): unknown;
}
interface BindingSession {
  loadModel(buffer: ArrayBuffer, byteOffset: number, byteLength: number, options: object): void;
  run(feeds: Record<string, unknown>, fetches: Record<string, unknown>, options: object): Record<string, unknown>;
  dispose(): void;
}
interface Binding {
  InferenceSession: new () => BindingSession;
}

export interface OrtGemmOptions {
  /** Intra-op threads per session (default: the cores available to this process). */
  threads?: number;
  /**
   * Whether idle intra-op workers spin-wait for the next product (ORT's default) instead of
   * sleeping. Spinning saves the wake-up latency between products but burns a core while
   * tfjs runs the element-wise work in between.
   */
  spin?: boolean;
}

/**
 * Synchronous float32 matrix products on ONNX Runtime's CPU kernels (MLAS).
 * Shapes: A [a0, a1] or [batchA, a0, a1], B likewise; transposes act on the last two axes;
 * batch dimensions broadcast when one of them is 1 (numpy rules).
 */
export class OrtGemm {
  readonly version: string;
  readonly threads: number;
  readonly spin: boolean;
  private readonly binding: Binding;
  private readonly Tensor: OrtTensorCtor;
  private readonly sessions = new Map<string, BindingSession>();

  private constructor(binding: Binding, Tensor: OrtTensorCtor, version: string, threads: number, spin: boolean) {
    this.binding = binding;
    this.Tensor = Tensor;
    this.version = version;
    this.threads = threads;
    this.spin = spin;
  }

  /** Loads onnxruntime-node; throws with the reason when it cannot be used here. */
  static load(options: OrtGemmOptions = {}): OrtGemm {
    /* eslint-disable @typescript-eslint/no-require-imports */
    const pkg = require('onnxruntime-node/package.json') as { version: string };
    if (pkg.version !== ORT_VERSION) {
      throw new Error(
        `ort.ts: onnxruntime-node ${pkg.version} is installed but this module uses its internal binding as of ` +
          `${ORT_VERSION}; pin "onnxruntime-node": "${ORT_VERSION}" in package.json`,
      );
    }
    const bindingModule = require('onnxruntime-node/dist/binding') as { binding: Binding; initOrt: () => void };
    const { Tensor } = require('onnxruntime-node') as { Tensor: OrtTensorCtor };
    /* eslint-enable @typescript-eslint/no-require-imports */
    bindingModule.initOrt();
    const threads = options.threads ?? availableParallelism();
    if (!Number.isInteger(threads) || threads < 1) throw new Error(`ort.ts: threads must be a positive integer, got ${threads}`);
    const gemm = new OrtGemm(bindingModule.binding, Tensor, pkg.version, threads, options.spin ?? true);
    // Fail here, not inside a kernel, if the runtime cannot run a product.
    const y = new Float32Array(1);
    gemm.matMul(Float32Array.of(2), [1, 1], Float32Array.of(3), [1, 1], false, false, y, [1, 1]);
    if (y[0] !== 6) throw new Error(`ort.ts: self-test product 2·3 gave ${y[0]}`);
    return gemm;
  }

  private session(rankA: 2 | 3, rankB: 2 | 3, transposeA: boolean, transposeB: boolean): BindingSession {
    return this.sessionFor(`${rankA}${rankB}${transposeA ? 'T' : 'N'}${transposeB ? 'T' : 'N'}`, () => matMulModel({ rankA, rankB, transposeA, transposeB }));
  }

  private sessionFor(key: string, model: () => Uint8Array): BindingSession {
    let s = this.sessions.get(key);
    if (!s) {
      const bytes = model();
      s = new this.binding.InferenceSession();
      s.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, {
        intraOpNumThreads: this.threads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
        enableCpuMemArena: true,
        enableMemPattern: false,
        // Flattened by the binding into session config entries ("session.intra_op.allow_spinning").
        extra: { session: { intra_op: { allow_spinning: this.spin ? '1' : '0' } } },
      });
      this.sessions.set(key, s);
    }
    return s;
  }

  /** Number of cached sessions (one per rank/transposition signature). */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /**
   * out = op(A) · op(B). `out` must hold exactly the product's elements and have the dims
   * `outDims` ([m, n] or [batch, m, n]); it is written in place.
   */
  matMul(
    a: Float32Array,
    aDims: readonly number[],
    b: Float32Array,
    bDims: readonly number[],
    transposeA: boolean,
    transposeB: boolean,
    out: Float32Array,
    outDims: readonly number[],
  ): void {
    const rankA = aDims.length, rankB = bDims.length;
    if ((rankA !== 2 && rankA !== 3) || (rankB !== 2 && rankB !== 3)) {
      throw new Error(`ort.ts: matMul takes rank-2 or rank-3 operands, got [${aDims}] and [${bDims}]`);
    }
    const s = this.session(rankA, rankB, transposeA, transposeB);
    s.run(
      { A: new this.Tensor('float32', a, aDims), B: new this.Tensor('float32', b, bDims) },
      { Y: new this.Tensor('float32', out, outDims) },
      {},
    );
  }

  /** out [m, n] = A [m, k] · B [k, n] + C [m, n] (C may be `out` itself only if ORT allows; pass distinct arrays). */
  matMulAdd(a: Float32Array, aDims: readonly [number, number], b: Float32Array, bDims: readonly [number, number], c: Float32Array, out: Float32Array): void {
    const [m, k] = aDims, [k2, n] = bDims;
    if (k !== k2 || a.length !== m * k || b.length !== k * n || c.length !== m * n || out.length !== m * n) {
      throw new Error(`ort.ts: matMulAdd shapes [${aDims}]·[${bDims}] + [${m}, ${n}] do not fit the arrays (${a.length}, ${b.length}, ${c.length}, ${out.length})`);
    }
    this.sessionFor('gemm-add', gemmAddModel).run(
      { A: new this.Tensor('float32', a, aDims), B: new this.Tensor('float32', b, bDims), C: new this.Tensor('float32', c, [m, n]) },
      { Y: new this.Tensor('float32', out, [m, n]) },
      {},
    );
  }

  dispose(): void {
    for (const s of this.sessions.values()) s.dispose();
    this.sessions.clear();
  }
}
