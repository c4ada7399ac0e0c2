/**
 * Decoder-only causal language model in the LLaMA style (docs/method.md "Architecture": the LLM):
 * token embedding → N × [RMSNorm → causal attention with RoPE → residual,
 * RMSNorm → SwiGLU → residual] → final RMSNorm → LM head.
 *
 * It takes input EMBEDDINGS, not ids, so the caller can splice image tokens into the prompt
 * (early fusion); `embed(ids)` gives the text part.
 *
 * Padding convention: prompts are RIGHT-padded. With causal attention no real token sees a
 * pad that follows it, so no pad mask is needed; the caller reads each sequence's embedding
 * at its own last real index.
 *
 * Dimension legend: b batch, t tokens, d width, h heads, v vocabulary, f SwiGLU hidden width.
 */
import { tf } from '../backend';
import type { ParamStore } from './params';
import { DEFAULT_INIT_STD, Linear, RMSNorm, SwiGLUMLP, swigluHidden } from './layers';
import { MultiHeadAttention } from './attention';
import { RoPE } from './rope';

export interface LMConfig {
  /** Vocabulary size v. */
  vocabSize: number;
  /** Model width d. Defaults to 128. */
  dim?: number;
  /** Number of decoder layers. Defaults to 4. */
  nLayers?: number;
  /** Attention heads; must divide dim, dim/heads must be even (RoPE). Defaults to 4. */
  nHeads?: number;
  /** SwiGLU hidden width f. Defaults to LLaMA's ⌈(8/3)·d⌉ rounded up to a multiple of 8. */
  mlpHidden?: number;
  /** RoPE base. Defaults to 10000. */
  ropeTheta?: number;
  /** RMSNorm epsilon. Defaults to 1e-6. */
  normEps?: number;
  /** Biases on q, k, v, o (Qwen has them on q, k, v; LLaMA has none). Defaults to false. */
  attnBias?: boolean;
  /** Std of the weight and embedding init. Defaults to 0.02. */
  initStd?: number;
}

export type ResolvedLMConfig = Required<LMConfig>;

/** Applies LMConfig defaults (the one place they live) and validates. */
export function resolveLMConfig(cfg: LMConfig): ResolvedLMConfig {
  const dim = cfg.dim ?? 128;
  const r: ResolvedLMConfig = {
    vocabSize: cfg.vocabSize,
    dim,
    nLayers: cfg.nLayers ?? 4,
    nHeads: cfg.nHeads ?? 4,
    mlpHidden: cfg.mlpHidden ?? swigluHidden(dim),
    ropeTheta: cfg.ropeTheta ?? 10000,
    normEps: cfg.normEps ?? 1e-6,
    attnBias: cfg.attnBias ?? false,
    initStd: cfg.initStd ?? DEFAULT_INIT_STD,
  };
  for (const key of ['vocabSize', 'dim', 'nLayers', 'nHeads', 'mlpHidden'] as const) {
    if (!Number.isInteger(r[key]) || r[key] <= 0) throw new Error(`LMConfig.${key} must be a positive integer, got ${r[key]}`);
  }
  if (r.dim % r.nHeads !== 0 || (r.dim / r.nHeads) % 2 !== 0) {
    throw new Error(`LMConfig: dim (${r.dim}) / nHeads (${r.nHeads}) must be an even integer (RoPE pairs features)`);
  }
  return r;
}

/**
 * One pre-norm decoder layer; params under `<path>`: `attn_norm`, `attn.{q,k,v,o}`, `mlp_norm`,
 * `mlp.{gate,up,down}`.
 */
export class DecoderBlock {
  readonly attnNorm: RMSNorm;
  readonly attn: MultiHeadAttention;
  readonly mlpNorm: RMSNorm;
  readonly mlp: SwiGLUMLP;

  constructor(store: ParamStore, readonly path: string, cfg: ResolvedLMConfig, rope: RoPE) {
    const eps = { eps: cfg.normEps };
    this.attnNorm = new RMSNorm(store, `${path}.attn_norm`, cfg.dim, eps);
    this.attn = new MultiHeadAttention(store, `${path}.attn`, {
      dim: cfg.dim, heads: cfg.nHeads, kind: 'causal', bias: cfg.attnBias, rope, initStd: cfg.initStd,
    });
    this.mlpNorm = new RMSNorm(store, `${path}.mlp_norm`, cfg.dim, eps);
    this.mlp = new SwiGLUMLP(store, `${path}.mlp`, cfg.dim, cfg.mlpHidden, { initStd: cfg.initStd });
  }

  /** [b, t, d] → [b, t, d] (and the layer's attention [b, h, t, t] on request). */
  forward(x: tf.Tensor3D, attnMask?: tf.Tensor, returnProbs = false): { out: tf.Tensor3D; probs?: tf.Tensor4D } {
    return tf.tidy(() => {
      const a = this.attn.forward(this.attnNorm.apply(x), { attnMask, returnProbs });
      const h = tf.add(x, a.out) as tf.Tensor3D;
      const out = tf.add(h, this.mlp.apply(this.mlpNorm.apply(h))) as tf.Tensor3D;
      return a.probs ? { out, probs: a.probs } : { out };
    });
  }
}

export interface LMForwardOptions {
  /** One multiplicative mask per layer (A = P ⊙ M), each broadcastable to [b, h, t, t]. */
  attnMasks?: tf.Tensor[];
  /** Also return every layer's attention probabilities. Defaults to false. */
  returnAttentions?: boolean;
}

export interface LMOutput {
  /** Final-normed hidden states [b, t, d] (what the LM head and the note embedding read). */
  last: tf.Tensor3D;
  /**
   * nLayers + 1 entries [b, t, d]: [0] the input embeddings, [i] the output of layer i
   * (before the final norm — unlike Hugging Face, whose last entry is normed; that is `last`).
   */
  hiddenStates: tf.Tensor3D[];
  /** nLayers entries [b, h, t, t] when returnAttentions was set. */
  attentions?: tf.Tensor4D[];
}

/** Params under `<prefix>`: `embed.weight` [v, d], `layers.<i>.*`, `norm.weight` [d], `head.weight` [d, v]. */
export class DecoderLM {
  readonly cfg: ResolvedLMConfig;
  readonly embedding: tf.Variable;
  readonly layers: DecoderBlock[];
  readonly norm: RMSNorm;
  readonly head: Linear;
  readonly rope: RoPE;

  constructor(cfg: LMConfig, store: ParamStore, readonly prefix = 'lm') {
    this.cfg = resolveLMConfig(cfg);
    const c = this.cfg;
    this.rope = new RoPE(c.dim / c.nHeads, c.ropeTheta);
    this.embedding = store.param(`${prefix}.embed.weight`, [c.vocabSize, c.dim], { kind: 'normal', std: c.initStd });
    this.layers = Array.from({ length: c.nLayers }, (_, i) => new DecoderBlock(store, `${prefix}.layers.${i}`, c, this.rope));
    this.norm = new RMSNorm(store, `${prefix}.norm`, c.dim, { eps: c.normEps });
    this.head = new Linear(store, `${prefix}.head`, c.dim, c.vocabSize, { bias: false, initStd: c.initStd });
  }

  /** Token ids int32 [b, t] → embeddings [b, t, d]. */
  embed(ids: tf.Tensor2D): tf.Tensor3D {
    return tf.tidy(() => {
      if (ids.rank !== 2 || ids.dtype !== 'int32') {
        throw new Error(`DecoderLM.embed: ids must be int32 [b, t], got ${ids.dtype} [${ids.shape}]`);
      }
      return tf.gather(this.embedding, ids) as tf.Tensor3D; // [b, t, d]
    });
  }

  /** Runs the decoder stack on input embeddings [b, t, d]. */
  forward(inputsEmbeds: tf.Tensor3D, opts: LMForwardOptions = {}): LMOutput {
    return tf.tidy(() => {
      const { dim, nLayers } = this.cfg;
      if (inputsEmbeds.rank !== 3 || inputsEmbeds.shape[2] !== dim) {
        throw new Error(`DecoderLM.forward: inputsEmbeds must be [b, t, ${dim}], got [${inputsEmbeds.shape}]`);
      }
      if (opts.attnMasks && opts.attnMasks.length !== nLayers) {
        throw new Error(`DecoderLM.forward: attnMasks has ${opts.attnMasks.length} entries, expected one per layer (${nLayers})`);
      }
      const hiddenStates: tf.Tensor3D[] = [inputsEmbeds.clone()];
      const attentions: tf.Tensor4D[] = [];
      let h = inputsEmbeds;
      this.layers.forEach((layer, i) => {
        const r = layer.forward(h, opts.attnMasks?.[i], opts.returnAttentions ?? false);
        h = r.out;
        hiddenStates.push(h);
        if (r.probs) attentions.push(r.probs);
      });
      const last = this.norm.apply(h);
      return opts.returnAttentions ? { last, hiddenStates, attentions } : { last, hiddenStates };
    });
  }

  /** Hidden states [b, t, d] → next-token logits [b, t, v]. */
  logits(h: tf.Tensor3D): tf.Tensor3D {
    return this.head.apply(h);
  }
}

/**
 * Reads one token per example: h [b, t, d], index[i] ∈ [0, t) → [b, d]. This is how a note
 * embedding is taken from right-padded prompts (the last real token, or the token before
 * `<IMG_EMB>` under mICL; docs/method.md "Prompts"). A one-hot weighted sum rather than `gather`,
 * so its gradient needs no scatter kernel on any backend; the cost, b·t·d, is negligible.
 */
export function tokenAt(h: tf.Tensor3D, index: ArrayLike<number>): tf.Tensor2D {
  return tf.tidy(() => {
    const [b, t] = h.shape;
    if (index.length !== b) throw new Error(`tokenAt: ${index.length} indices for a batch of ${b}`);
    const sel = new Float32Array(b * t);
    for (let i = 0; i < b; i++) {
      const j = index[i];
      if (!Number.isInteger(j) || j < 0 || j >= t) throw new Error(`tokenAt: index[${i}] = ${j} is outside 0 … ${t - 1}`);
      sel[i * t + j] = 1;
    }
    return tf.sum(tf.mul(h, tf.tensor3d(sel, [b, t, 1])), 1) as tf.Tensor2D; // [b, d]
  });
}
