/**
 * Dense building blocks: Linear, LayerNorm, RMSNorm, GELU and SwiGLU MLPs, and the
 * `mlp2x_gelu` projector (PAPER.md "Architecture": Linear → GELU → Linear into the LLM width).
 *
 * Dimension legend: b batch, t tokens, d width (in), e width (out), f MLP hidden width.
 *
 * Every apply() accepts any rank ≥ 2 with the feature axis last and is a pure function of its
 * input and the store's variables (safe inside tf.tidy and tf.variableGrads).
 */
import { tf } from '../backend';
import type { ParamStore } from './params';

/** Standard deviation used for weight init when a config does not say. */
export const DEFAULT_INIT_STD = 0.02;

export interface LinearOptions {
  /** Whether to add a bias. Defaults to true. */
  bias?: boolean;
  /** Std of the truncated-normal weight init. Defaults to 0.02. */
  initStd?: number;
}

/**
 * y = x·W + b with W stored [in, out] so the product needs no transpose (the wasm backend's
 * transposed matMul is far slower). Inputs of rank > 2 are folded to one 2-D product
 * [b·t, d]·[d, e], the shape dense kernels are fastest at.
 * Params: `<path>.weight` [in, out], `<path>.bias` [out].
 */
export class Linear {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | null;

  constructor(
    store: ParamStore,
    readonly path: string,
    readonly inDim: number,
    readonly outDim: number,
    opts: LinearOptions = {},
  ) {
    const std = opts.initStd ?? DEFAULT_INIT_STD;
    this.weight = store.param(`${path}.weight`, [inDim, outDim], { kind: 'normal', std });
    this.bias = (opts.bias ?? true) ? store.param(`${path}.bias`, [outDim], { kind: 'zeros' }) : null;
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
      let y: tf.Tensor = tf.matMul(x2, this.weight as tf.Tensor2D); // [b·t, e]
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

  /** [..., d] → [..., d] */
  apply<T extends tf.Tensor>(x: T): T {
    return tf.tidy(() => {
      checkLast(x, this.dim, `RMSNorm ${this.path}`);
      const ms = tf.mean(tf.square(x), x.rank - 1, true);
      return tf.mul(tf.mul(x, tf.rsqrt(tf.add(ms, this.eps))), this.weight) as T;
    });
  }
}

function checkLast(x: tf.Tensor, dim: number, who: string): void {
  const last = x.shape[x.shape.length - 1];
  if (last !== dim) throw new Error(`${who}: input feature size ${last} (shape [${x.shape}]), expected ${dim}`);
}

/** Exact GELU, x·Φ(x) = 0.5·x·(1 + erf(x/√2)) (what torch.nn.GELU and LLaVA's projector use). */
export function gelu<T extends tf.Tensor>(x: T): T {
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))) as T);
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

/**
 * Linear → GELU → Linear. Params `<path>.fc1` [d, f] and `<path>.fc2` [f, e].
 * Used as the ViT / Q-Former MLP and, with f = e = the LLM width, as the `mlp2x_gelu` projector.
 */
export class GeluMLP {
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(store: ParamStore, readonly path: string, inDim: number, hidden: number, outDim: number, opts: MlpOptions = {}) {
    const lin = { bias: opts.bias ?? true, initStd: opts.initStd };
    this.fc1 = new Linear(store, `${path}.fc1`, inDim, hidden, lin);
    this.fc2 = new Linear(store, `${path}.fc2`, hidden, outDim, lin);
  }

  /** [..., d] → [..., e] */
  apply<T extends tf.Tensor>(x: T): T {
    return tf.tidy(() => this.fc2.apply(gelu(this.fc1.apply(x))));
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

  constructor(store: ParamStore, readonly path: string, dim: number, hidden: number, opts: MlpOptions = {}) {
    const lin = { bias: opts.bias ?? false, initStd: opts.initStd };
    this.gate = new Linear(store, `${path}.gate`, dim, hidden, lin);
    this.up = new Linear(store, `${path}.up`, dim, hidden, lin);
    this.down = new Linear(store, `${path}.down`, hidden, dim, lin);
  }

  /** [..., d] → [..., d] */
  apply<T extends tf.Tensor>(x: T): T {
    return tf.tidy(() => this.down.apply(tf.mul(silu(this.gate.apply(x)), this.up.apply(x)) as T));
  }
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
