/**
 * Multi-head scaled dot-product attention: causal, bidirectional or cross.
 *
 * Dimension legend: b batch, tq query tokens, tk key tokens, d width, dc context width
 * (cross-attention keys/values), h query heads, kv key/value heads (h by default; fewer under
 * grouped-query attention), g = h / kv query heads per key/value head, hd head width
 * (d / h by default).
 *
 * Grouped-query attention (GQA; kv = 1 is multi-query attention, MQA): query head i reads
 * key/value head ⌊i / g⌋, the layout of Llama and Qwen2 checkpoints (their q rows are grouped
 * that way). The g query heads sharing a key/value head are stacked along the query axis, so
 * one batched product per key/value head serves them all and k, v are never repeated.
 *
 * Saliency hook (docs/method.md "Modality saliency"): `attnMask` multiplies the softmax
 * probabilities, A = P ⊙ M, before they weight the values. The caller passes M as a tensor
 * it differentiates against (a ones tensor); then ∂L/∂M at M = 1 equals P ⊙ ∂L/∂A, exactly
 * the per-entry term of I_l = |Σ_h A_h ⊙ ∂L/∂A_h|.
 */
import { tf } from '../backend';
import type { ParamStore } from './params';
import { Linear, type LinearOptions } from './layers';
import { RoPE } from './rope';

/** Which tokens attend to which. */
export type AttentionKind = 'causal' | 'bidirectional' | 'cross';
export const ATTENTION_KINDS: readonly AttentionKind[] = ['causal', 'bidirectional', 'cross'];

/** Added to masked scores: finite (a fully masked row stays finite) and large enough that exp underflows to exactly 0. */
const MASKED = -1e9;

export interface AttentionConfig {
  /** Query / output width d. */
  dim: number;
  /** Number of query heads h; must divide dim unless headDim is given. */
  heads: number;
  /** Key/value heads kv (grouped-query attention); must divide heads. Defaults to heads. */
  kvHeads?: number;
  /** Width hd of one head; q is h·hd wide, which may differ from dim. Defaults to dim / heads. */
  headDim?: number;
  /** 'causal' (token i sees j ≤ i), 'bidirectional' (all tokens) or 'cross' (queries see a context). */
  kind: AttentionKind;
  /** Width of the context tokens for 'cross' (self-attention must leave it unset or = dim). Defaults to dim. */
  contextDim?: number;
  /** Whether q, k, v, o have biases. Defaults to true (LLaMA uses false). */
  bias?: boolean;
  /** Whether q, k, v have biases (Qwen2: yes, without one on o). Defaults to bias. */
  qkvBias?: boolean;
  /** Whether o has a bias. Defaults to bias. */
  outBias?: boolean;
  /** Rotary embedding applied to q and k (self-attention only). Defaults to none. */
  rope?: RoPE | null;
  /** Std of the weight init. Defaults to 0.02. */
  initStd?: number;
}

/** The four projections of an attention layer. */
export type AttentionProjection = 'q' | 'k' | 'v' | 'o';
export const ATTENTION_PROJECTIONS: readonly AttentionProjection[] = ['q', 'k', 'v', 'o'];

/** Per projection: a frozen native weight and/or a LoRA adapter (LinearOptions). */
export type ProjectionOptions<K extends string> = Partial<Record<K, Pick<LinearOptions, 'native' | 'lora'>>>;

export interface ResolvedAttentionConfig {
  dim: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  kind: AttentionKind;
  contextDim: number;
  bias: boolean;
  qkvBias: boolean;
  outBias: boolean;
  rope: RoPE | null;
  initStd: number | undefined;
}

export function resolveAttentionConfig(cfg: AttentionConfig): ResolvedAttentionConfig {
  if (!(ATTENTION_KINDS as readonly string[]).includes(cfg.kind)) {
    throw new Error(`attention.ts: kind "${cfg.kind}" is not one of ${ATTENTION_KINDS.join(', ')}`);
  }
  if (cfg.headDim === undefined) {
    if (!Number.isInteger(cfg.heads) || cfg.heads <= 0 || cfg.dim % cfg.heads !== 0) {
      throw new Error(`attention.ts: heads (${cfg.heads}) must be a positive divisor of dim (${cfg.dim})`);
    }
  } else {
    if (!Number.isInteger(cfg.heads) || cfg.heads <= 0) throw new Error(`attention.ts: heads must be a positive integer, got ${cfg.heads}`);
    if (!Number.isInteger(cfg.headDim) || cfg.headDim <= 0) throw new Error(`attention.ts: headDim must be a positive integer, got ${cfg.headDim}`);
  }
  const kvHeads = cfg.kvHeads ?? cfg.heads;
  if (!Number.isInteger(kvHeads) || kvHeads <= 0 || cfg.heads % kvHeads !== 0) {
    throw new Error(`attention.ts: kvHeads (${kvHeads}) must be a positive divisor of heads (${cfg.heads})`);
  }
  const bias = cfg.bias ?? true;
  const r: ResolvedAttentionConfig = {
    dim: cfg.dim,
    heads: cfg.heads,
    kvHeads,
    headDim: cfg.headDim ?? cfg.dim / cfg.heads,
    kind: cfg.kind,
    contextDim: cfg.contextDim ?? cfg.dim,
    bias,
    qkvBias: cfg.qkvBias ?? bias,
    outBias: cfg.outBias ?? bias,
    rope: cfg.rope ?? null,
    initStd: cfg.initStd,
  };
  if (r.kind !== 'cross' && r.contextDim !== r.dim) {
    throw new Error(`attention.ts: contextDim (${r.contextDim}) is only for kind "cross"; self-attention reads width dim (${r.dim})`);
  }
  if (r.rope && r.kind === 'cross') throw new Error('attention.ts: RoPE is for self-attention; kind "cross" must not set rope');
  if (r.rope && r.rope.headDim !== r.headDim) {
    throw new Error(
      cfg.headDim === undefined
        ? `attention.ts: RoPE head width ${r.rope.headDim} ≠ dim/heads = ${r.headDim}`
        : `attention.ts: RoPE head width ${r.rope.headDim} ≠ headDim = ${r.headDim}`,
    );
  }
  return r;
}

export interface AttentionOptions {
  /** Context tokens [b, tk, dc]; required for 'cross', rejected otherwise. */
  context?: tf.Tensor3D;
  /** Key padding [b, tk], 1 = keep, 0 = pad: padded keys get zero probability. */
  keyPadding?: tf.Tensor2D;
  /** Multiplies the probabilities (A = P ⊙ M), broadcastable to [b, h, tq, tk]. */
  attnMask?: tf.Tensor;
  /** Also return A = P ⊙ M [b, h, tq, tk]. Defaults to false. */
  returnProbs?: boolean;
  /** Position of the first query/key token for RoPE. Defaults to 0. */
  positionOffset?: number;
}

export interface AttentionOutput {
  /** [b, tq, d] */
  out: tf.Tensor3D;
  /** [b, h, tq, tk], present when returnProbs was set (one row per query head). */
  probs?: tf.Tensor4D;
}

/**
 * Params: `<path>.q` [d, h·hd], `<path>.k` [dc, kv·hd], `<path>.v` [dc, kv·hd],
 * `<path>.o` [h·hd, d] (each `.weight`, plus `.bias` where its switch is on); with the
 * defaults every one is [d, d] (or [dc, d]).
 */
export class MultiHeadAttention {
  readonly cfg: ResolvedAttentionConfig;
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly o: Linear;

  /** `projections` places a projection's weight outside the backend or adds a LoRA adapter to it. */
  constructor(store: ParamStore, readonly path: string, cfg: AttentionConfig, projections: ProjectionOptions<AttentionProjection> = {}) {
    this.cfg = resolveAttentionConfig(cfg);
    const { dim, contextDim, heads, kvHeads, headDim, qkvBias, outBias, initStd } = this.cfg;
    const qWidth = heads * headDim, kvWidth = kvHeads * headDim;
    this.q = new Linear(store, `${path}.q`, dim, qWidth, { bias: qkvBias, initStd, ...projections.q });
    this.k = new Linear(store, `${path}.k`, contextDim, kvWidth, { bias: qkvBias, initStd, ...projections.k });
    this.v = new Linear(store, `${path}.v`, contextDim, kvWidth, { bias: qkvBias, initStd, ...projections.v });
    this.o = new Linear(store, `${path}.o`, qWidth, dim, { bias: outBias, initStd, ...projections.o });
  }

  forward(x: tf.Tensor3D, opts: AttentionOptions = {}): AttentionOutput {
    return tf.tidy(() => {
      const { heads, kvHeads, headDim: hd, kind, rope } = this.cfg;
      const g = heads / kvHeads; // query heads per key/value head
      const [b, tq] = x.shape;
      let src: tf.Tensor3D;
      switch (kind) {
        case 'cross':
          if (!opts.context) throw new Error(`attention ${this.path}: kind "cross" needs opts.context [b, tk, ${this.cfg.contextDim}]`);
          if (opts.context.shape[0] !== b) throw new Error(`attention ${this.path}: context batch ${opts.context.shape[0]} ≠ query batch ${b}`);
          src = opts.context;
          break;
        case 'causal':
        case 'bidirectional':
          if (opts.context) throw new Error(`attention ${this.path}: kind "${kind}" is self-attention; opts.context is only for "cross"`);
          src = x;
          break;
        default: {
          const never: never = kind;
          throw new Error(`attention ${this.path}: unknown kind ${never}`);
        }
      }
      const tk = src.shape[1];

      let q = tf.reshape(this.q.apply(x), [b, tq, heads, hd]); // [b, tq, h, hd]
      let k = tf.reshape(this.k.apply(src), [b, tk, kvHeads, hd]); // [b, tk, kv, hd]
      const v = tf.transpose(tf.reshape(this.v.apply(src), [b, tk, kvHeads, hd]), [0, 2, 1, 3]); // [b, kv, tk, hd]
      // Scale q once (cheaper than scaling the [tq, tk] scores) — inside its rotation when
      // there is RoPE; k goes straight to [b, h, hd, tk] with one transpose so the product
      // needs no transposed matMul.
      const scale = 1 / Math.sqrt(hd);
      if (rope) {
        const off = opts.positionOffset ?? 0;
        q = rope.apply(q, off, scale);
        k = rope.apply(k, off);
      } else {
        q = tf.mul(q, scale);
      }
      const qh = tf.transpose(q, [0, 2, 1, 3]); // [b, h, tq, hd]
      const kt = tf.transpose(k, [0, 2, 3, 1]); // [b, kv, hd, tk]
      // GQA: heads kv·g … kv·g + g − 1 share key/value head kv; row-major [b, h, tq, hd] is
      // already [b, kv, g·tq, hd], so the grouping is a reshape (no copy) on each side.
      let scores: tf.Tensor =
        g === 1 ? tf.matMul(qh, kt) : tf.reshape(tf.matMul(tf.reshape(qh, [b, kvHeads, g * tq, hd]), kt), [b, heads, tq, tk]); // [b, h, tq, tk]

      if (kind === 'causal') {
        if (tq !== tk) throw new Error(`attention ${this.path}: causal self-attention needs tq = tk, got ${tq}, ${tk}`);
        scores = tf.add(scores, causalBias(tq)); // [tq, tk] broadcast
      }
      if (opts.keyPadding) {
        const kp = opts.keyPadding;
        if (kp.rank !== 2 || kp.shape[0] !== b || kp.shape[1] !== tk) {
          throw new Error(`attention ${this.path}: keyPadding must be [${b}, ${tk}], got [${kp.shape}]`);
        }
        const padBias = tf.mul(tf.sub(1, tf.cast(kp, 'float32')), MASKED); // [b, tk]: 0 keep, MASKED pad
        scores = tf.add(scores, tf.reshape(padBias, [b, 1, 1, tk]));
      }

      let probs = tf.softmax(scores) as tf.Tensor4D; // [b, h, tq, tk]
      if (opts.attnMask) probs = tf.mul(probs, opts.attnMask) as tf.Tensor4D;
      const ctx = g === 1 ? tf.matMul(probs, v) : tf.reshape(tf.matMul(tf.reshape(probs, [b, kvHeads, g * tq, tk]), v), [b, heads, tq, hd]); // [b, h, tq, hd]
      const merged = tf.reshape(tf.transpose(ctx, [0, 2, 1, 3]), [b, tq, heads * hd]) as tf.Tensor3D;
      const out = this.o.apply(merged);
      return opts.returnProbs ? { out, probs } : { out };
    });
  }
}

const causalCache = new Map<number, Float32Array>();

/** [t, t] additive mask: 0 on and below the diagonal, MASKED above (key j > query i). */
export function causalBias(t: number): tf.Tensor2D {
  let m = causalCache.get(t);
  if (!m) {
    m = new Float32Array(t * t);
    for (let i = 0; i < t; i++) for (let j = i + 1; j < t; j++) m[i * t + j] = MASKED;
    if (causalCache.size >= 64) causalCache.clear();
    causalCache.set(t, m);
  }
  return tf.tensor2d(m.slice(), [t, t]); // a copy: the cpu backend keeps the array it is given
}
