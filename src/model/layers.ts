/**
 * Dense building blocks: Linear, LayerNorm, RMSNorm, GELU and SwiGLU MLPs, and the
 * `mlp2x_gelu` projector (docs/method.md "Architecture": Linear → GELU → Linear into the LLM width).
 *
 * Dimension legend: b batch, t tokens, d width (in), e width (out), f MLP hidden width.
 *
 * Every apply() accepts any rank ≥ 2 with the feature axis last and is a pure function of its
 * input and the store's variables (safe inside tf.tidy and tf.variableGrads).
 */
import { tf } from '../backend';
import { rmsNormBackward, rmsNormForward, rmsNormKernelAvailable } from '../backend/rmsnorm-kernel';
import { gateBackward, gateForward, gateKernelAvailable } from '../backend/gate-kernel';
import { NativeMatrix, nativeMatMul } from '../backend/native-matmul';
import type { ParamStore } from './params';

/** Standard deviation used for weight init when a config does not say. */
export const DEFAULT_INIT_STD = 0.02;

export interface LinearOptions {
  /** Whether to add a bias. Defaults to true. */
  bias?: boolean;
  /** Std of the truncated-normal weight init. Defaults to 0.02. */
  initStd?: number;
  /**
   * A frozen weight [in, out] held outside the backend (NativeMatrix): the product runs on
   * ONNX Runtime reading it where it lies, and `<path>.weight` is not created in the store.
   */
  native?: NativeMatrix;
  /** A low-rank adapter added to the (usually frozen) weight; see LoraOptions. */
  lora?: LoraOptions;
}

/**
 * LoRA (Hu et al. 2021): y = x·W + (alpha/rank)·(x·A)·B with A [in, rank] and B [rank, out] in
 * the store at `<path>.lora_a` / `<path>.lora_b`. B starts at zero, so an adapted layer starts
 * as exactly the base layer; A starts random (truncated normal, std 1/√(3·in): the variance of
 * PEFT's Kaiming-uniform init with bound 1/√in) so that B's first gradient is not zero.
 */
export interface LoraOptions {
  rank: number;
  /** The scale is alpha / rank. */
  alpha: number;
}

/** Parameter paths of a Linear's LoRA factors. */
export function loraPaths(path: string): { a: string; b: string } {
  return { a: `${path}.lora_a`, b: `${path}.lora_b` };
}

/**
 * y = x·W + b with W stored [in, out] so the product needs no transpose (the wasm backend's
 * transposed matMul is far slower). Inputs of rank > 2 are folded to one 2-D product
 * [b·t, d]·[d, e], the shape dense kernels are fastest at.
 * Params: `<path>.weight` [in, out] (unless the weight is native), `<path>.bias` [out], and
 * with LoRA `<path>.lora_a` [in, r], `<path>.lora_b` [r, out].
 */
export class Linear {
  private readonly storeWeight: tf.Variable | null;
  /** The frozen weight [in, out] when it lives outside the backend; null otherwise. */
  readonly native: NativeMatrix | null;
  readonly bias: tf.Variable | null;
  /** LoRA factors A [in, r], B [r, out] and their scale alpha/r; null without an adapter. */
  readonly lora: { a: tf.Variable; b: tf.Variable; rank: number; alpha: number; scale: number } | null;

  constructor(
    store: ParamStore,
    readonly path: string,
    readonly inDim: number,
    readonly outDim: number,
    opts: LinearOptions = {},
  ) {
    const std = opts.initStd ?? DEFAULT_INIT_STD;
    if (opts.native) {
      if (opts.native.rows !== inDim || opts.native.cols !== outDim) {
        throw new Error(`Linear ${path}: native weight is [${opts.native.shape}], expected [${inDim}, ${outDim}]`);
      }
      this.native = opts.native;
      this.storeWeight = null;
    } else {
      this.native = null;
      this.storeWeight = store.param(`${path}.weight`, [inDim, outDim], { kind: 'normal', std });
    }
    this.bias = (opts.bias ?? true) ? store.param(`${path}.bias`, [outDim], { kind: 'zeros' }) : null;
    if (opts.lora) {
      const { rank, alpha } = opts.lora;
      if (!Number.isInteger(rank) || rank <= 0) throw new Error(`Linear ${path}: LoRA rank must be a positive integer, got ${rank}`);
      if (!(Number.isFinite(alpha) && alpha > 0)) throw new Error(`Linear ${path}: LoRA alpha must be a positive number, got ${alpha}`);
      const p = loraPaths(path);
      const a = store.param(p.a, [inDim, rank], { kind: 'normal', std: 1 / Math.sqrt(3 * inDim) });
      const b = store.param(p.b, [rank, outDim], { kind: 'zeros' });
      this.lora = { a, b, rank, alpha, scale: alpha / rank };
    } else {
      this.lora = null;
    }
  }

  /** The weight variable [in, out]; an error when the weight is native (read `native` instead). */
  get weight(): tf.Variable {
    if (!this.storeWeight) throw new Error(`Linear ${this.path}: the weight is frozen outside the backend (read .native)`);
    return this.storeWeight;
  }

  /** [..., in] → [..., out] */
  apply<T extends tf.Tensor>(x: T): T {
    return tf.tidy(() => {
      const shape = x.shape;
      const last = shape[shape.length - 1];
      if (last !== this.inDim) {
        throw new Error(`Linear ${this.path}: input feature size ${last} (shape [${shape}]), expected ${this.inDim}`);
      }
      const x2 = shape.length === 2 ? (x as unknown as tf.Tensor2D) : tf.reshape(x, [-1, this.inDim]) as tf.Tensor2D;
      let y: tf.Tensor = this.native ? nativeMatMul(x2, this.native) : tf.matMul(x2, this.storeWeight as tf.Tensor2D); // [b·t, e]
      if (this.lora) {
        // (alpha/r)·(x·A)·B, the scale applied to the narrow [b·t, r] product.
        const xa = tf.mul(tf.matMul(x2, this.lora.a as tf.Tensor2D), this.lora.scale) as tf.Tensor2D;
        y = tf.add(y, tf.matMul(xa, this.lora.b as tf.Tensor2D));
      }
      if (this.bias) y = tf.add(y, this.bias);
      return (shape.length === 2 ? y : tf.reshape(y, [...shape.slice(0, -1), this.outDim])) as T;
    });
  }
}

export interface NormOptions {
  /** Added to the variance before the square root. Defaults to 1e-5 (LayerNorm) / 1e-6 (RMSNorm). */
  eps?: number;
}

/** LayerNorm over the last axis with learned gain and bias. Params: `<path>.weight`, `<path>.bias` [d]. */
export class LayerNorm {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;
  readonly eps: number;

  constructor(store: ParamStore, readonly path: string, readonly dim: number, opts: NormOptions = {}) {
    this.eps = opts.eps ?? 1e-5;
    this.weight = store.param(`${path}.weight`, [dim], { kind: 'ones' });
    this.bias = store.param(`${path}.bias`, [dim], { kind: 'zeros' });
  }

  /** [..., d] → [..., d] */
  apply<T extends tf.Tensor>(x: T): T {
    return tf.tidy(() => {
      checkLast(x, this.dim, `LayerNorm ${this.path}`);
      const axis = x.rank - 1;
      const mean = tf.mean(x, axis, true);
      const xc = tf.sub(x, mean);
      const variance = tf.mean(tf.square(xc), axis, true);
      const y = tf.mul(xc, tf.rsqrt(tf.add(variance, this.eps)));
      return tf.add(tf.mul(y, this.weight), this.bias) as T;
    });
  }
}

/** RMSNorm (LLaMA): x / sqrt(mean(x²) + eps) · g. Params: `<path>.weight` [d]. */
export class RMSNorm {
  readonly weight: tf.Variable;
  readonly eps: number;

  constructor(store: ParamStore, readonly path: string, readonly dim: number, opts: NormOptions = {}) {
    this.eps = opts.eps ?? 1e-6;
    this.weight = store.param(`${path}.weight`, [dim], { kind: 'ones' });
  }

  /**
   * [..., d] → [..., d]. The gradient is written out (tf.customGrad) rather than derived op
   * by op: with xr = x·r, r = (mean(x²) + eps)^(−1/2) and g = dy ⊙ w,
   *   ∂L/∂x = r · (g − xr · mean(g ⊙ xr)),   ∂L/∂w = Σ_rows dy ⊙ xr
   * — about half the kernels of the automatic gradient, the same values.
   */
  apply<T extends tf.Tensor>(x: T): T {
    checkLast(x, this.dim, `RMSNorm ${this.path}`);
    return rmsNorm(x, this.weight, this.eps) as T;
  }
}

/** A two-input op with a hand-written gradient (tfjs's customGrad, typed for this use). */
type TwoInputGrad = (
  a: tf.Tensor,
  b: tf.Tensor,
  save: tf.GradSaveFunc,
) => { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor[] };

function customGrad2(f: TwoInputGrad): (a: tf.Tensor, b: tf.Tensor) => tf.Tensor {
  return tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (a: tf.Tensor, b: tf.Tensor) => tf.Tensor;
}

function rmsNorm(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  const axis = x.rank - 1;
  const d = x.shape[axis];
  if (x.dtype === 'float32' && rmsNormKernelAvailable(d)) {
    // wasm: one SIMD kernel each way (backend/rmsnorm-kernel.ts), the same formulas.
    const k = customGrad2((xIn, w, save) => {
      const [y, r] = rmsNormForward(xIn, w, eps);
      save([xIn, w, r]);
      return { value: y, gradFunc: (dy, [sx, sw, sr]) => rmsNormBackward(dy, sx, sw, sr) };
    });
    return k(x, weight);
  }
  const f = customGrad2((xIn, w, save) => {
    const r = tf.rsqrt(tf.add(tf.mean(tf.square(xIn), axis, true), eps)); // [..., 1]
    const xr = tf.mul(xIn, r); // [..., d]
    save([xr, r, w]);
    return {
      value: tf.mul(xr, w),
      gradFunc: (dyT, saved) => {
        const [sxr, sr, sw] = saved;
        const g = tf.mul(dyT, sw);
        const dx = tf.mul(sr, tf.sub(g, tf.mul(sxr, tf.mean(tf.mul(g, sxr), axis, true))));
        // Σ over rows as a product with a ones row: a reduction over the leading axis makes
        // the wasm backend transpose first (several times slower than the product).
        const rows = tf.reshape(tf.mul(dyT, sxr), [-1, d]) as tf.Tensor2D; // [n, d]
        const dw = tf.reshape(tf.matMul(tf.ones([1, rows.shape[0]]) as tf.Tensor2D, rows), [d]);
        return [dx, dw];
      },
    };
  });
  return f(x, weight);
}

function checkLast(x: tf.Tensor, dim: number, who: string): void {
  const last = x.shape[x.shape.length - 1];
  if (last !== dim) throw new Error(`${who}: input feature size ${last} (shape [${x.shape}]), expected ${dim}`);
}

/** Exact GELU, x·Φ(x) = 0.5·x·(1 + erf(x/√2)) (what torch.nn.GELU and LLaVA's projector use). */
export function gelu<T extends tf.Tensor>(x: T): T {
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))) as T);
}

/** GELU with the tanh approximation, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (SigLIP's `gelu_pytorch_tanh`, also `gelu_new`). */
export function geluTanh<T extends tf.Tensor>(x: T): T {
  return tf.tidy(() => {
    const cube = tf.mul(tf.square(x), x); // x·x·x: pow's gradient would take log of negative bases
    const inner = tf.mul(tf.add(x, tf.mul(cube, 0.044715)), Math.sqrt(2 / Math.PI));
    return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(inner))) as T;
  });
}

/** OpenAI CLIP's quick GELU, x·σ(1.702·x). */
export function quickGelu<T extends tf.Tensor>(x: T): T {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(tf.mul(x, 1.702))) as T);
}

/** The GELU variants of the encoders this project runs: exact (erf), tanh-approximated, and CLIP's quick GELU. */
export type GeluVariant = 'gelu' | 'gelu_tanh' | 'quick_gelu';
export const GELU_VARIANTS: readonly GeluVariant[] = ['gelu', 'gelu_tanh', 'quick_gelu'];

/** Applies the named GELU variant. */
export function applyGelu<T extends tf.Tensor>(variant: GeluVariant, x: T): T {
  switch (variant) {
    case 'gelu':
      return gelu(x);
    case 'gelu_tanh':
      return geluTanh(x);
    case 'quick_gelu':
      return quickGelu(x);
    default: {
      const never: never = variant;
      throw new Error(`applyGelu: unknown variant ${JSON.stringify(never)}; valid are ${GELU_VARIANTS.join(', ')}`);
    }
  }
}

/** SiLU / swish, x·σ(x) (LLaMA's gate activation). */
export function silu<T extends tf.Tensor>(x: T): T {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(x)) as T);
}

export interface MlpOptions {
  /** Whether the linear layers have biases. Defaults to true for GeluMLP, false for SwiGLU. */
  bias?: boolean;
  /** Std of the weight init. Defaults to 0.02. */
  initStd?: number;
}

export interface GeluMlpOptions extends MlpOptions {
  /** Which GELU sits between the layers. Defaults to 'gelu' (exact). */
  activation?: GeluVariant;
}

/**
 * Linear → GELU → Linear. Params `<path>.fc1` [d, f] and `<path>.fc2` [f, e].
 * Used as the ViT / Q-Former MLP and, with f = e = the LLM width, as the `mlp2x_gelu` projector.
 */
export class GeluMLP {
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly activation: GeluVariant;

  constructor(store: ParamStore, readonly path: string, inDim: number, hidden: number, outDim: number, opts: GeluMlpOptions = {}) {
    const lin = { bias: opts.bias ?? true, initStd: opts.initStd };
    this.activation = opts.activation ?? 'gelu';
    if (!GELU_VARIANTS.includes(this.activation)) {
      throw new Error(`GeluMLP ${path}: activation ${JSON.stringify(this.activation)} is not one of ${GELU_VARIANTS.join(', ')}`);
    }
    this.fc1 = new Linear(store, `${path}.fc1`, inDim, hidden, lin);
    this.fc2 = new Linear(store, `${path}.fc2`, hidden, outDim, lin);
  }

  /** [..., d] → [..., e] */
  apply<T extends tf.Tensor>(x: T): T {
    return tf.tidy(() => this.fc2.apply(applyGelu(this.activation, this.fc1.apply(x))));
  }
}

/**
 * LLaMA's SwiGLU MLP: down( silu(gate(x)) ⊙ up(x) ).
 * Params `<path>.gate` [d, f], `<path>.up` [d, f], `<path>.down` [f, d].
 */
export class SwiGLUMLP {
  readonly gate: Linear;
  readonly up: Linear;
  readonly down: Linear;

  /** `projections` places a projection's weight outside the backend or adds a LoRA adapter to it. */
  constructor(
    store: ParamStore,
    readonly path: string,
    dim: number,
    hidden: number,
    opts: MlpOptions = {},
    projections: Partial<Record<'gate' | 'up' | 'down', Pick<LinearOptions, 'native' | 'lora'>>> = {},
  ) {
    const lin = { bias: opts.bias ?? false, initStd: opts.initStd };
    this.gate = new Linear(store, `${path}.gate`, dim, hidden, { ...lin, ...projections.gate });
    this.up = new Linear(store, `${path}.up`, dim, hidden, { ...lin, ...projections.up });
    this.down = new Linear(store, `${path}.down`, hidden, dim, { ...lin, ...projections.down });
  }

  /** [..., d] → [..., d] */
  apply<T extends tf.Tensor>(x: T): T {
    return tf.tidy(() => this.down.apply(siluGate(this.gate.apply(x), this.up.apply(x)) as T));
  }
}

/**
 * silu(g) ⊙ u with its gradient written out (tf.customGrad): with s = σ(g), a = g·s,
 *   ∂L/∂u = dy ⊙ a,   ∂L/∂g = dy ⊙ u ⊙ s ⊙ (1 + g − a)
 * (σ′ = s(1 − s), so d(g·s)/dg = s + g·s(1 − s) = s(1 + g − a)) — six kernels backward
 * where the automatic gradient takes about twelve.
 */
export function siluGate(g: tf.Tensor, u: tf.Tensor): tf.Tensor {
  if (g.dtype === 'float32' && u.dtype === 'float32' && gateKernelAvailable()) {
    // wasm: σ by tfjs, the rest one SIMD kernel each way (backend/gate-kernel.ts).
    const k = customGrad2((gIn, uIn, save) => {
      const sg = tf.sigmoid(gIn);
      save([gIn, uIn, sg]);
      return { value: gateForward(gIn, sg, uIn), gradFunc: (dy, [sg0, su, ss]) => gateBackward(dy, sg0, su, ss) };
    });
    return k(g, u);
  }
  const f = customGrad2((gIn, uIn, save) => {
    const sg = tf.sigmoid(gIn);
    const a = tf.mul(gIn, sg);
    save([gIn, uIn, sg, a]);
    return {
      value: tf.mul(a, uIn),
      gradFunc: (dyT, saved) => {
        const [sg0, su, ss, sa] = saved;
        const du = tf.mul(dyT, sa);
        const dg = tf.mul(tf.mul(dyT, su), tf.mul(ss, tf.add(tf.sub(sg0, sa), 1)));
        return [dg, du];
      },
    };
  });
  return f(g, u);
}

/**
 * LLaVA's `mlp2x_gelu` projector: Linear(in → out) → GELU → Linear(out → out), with biases.
 * Params `<path>.fc1` [in, out], `<path>.fc2` [out, out].
 */
export function mlp2xGelu(store: ParamStore, path: string, inDim: number, outDim: number, initStd?: number): GeluMLP {
  return new GeluMLP(store, path, inDim, outDim, outDim, { bias: true, initStd });
}

/** LLaMA's SwiGLU hidden width for model width d: 2/3 · 4d rounded up to a multiple of `multiple`. */
export function swigluHidden(dim: number, multiple = 8): number {
  const h = Math.floor((2 * 4 * dim) / 3);
  return multiple * Math.ceil(h / multiple);
}
