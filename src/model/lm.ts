/**
 * Decoder-only causal language model in the LLaMA style (docs/method.md "Architecture": the LLM):
 * token embedding → N × [RMSNorm → causal attention with RoPE → residual,
 * RMSNorm → SwiGLU → residual] → final RMSNorm → LM head.
 *
 * The same stack holds Llama-family and Qwen2 checkpoints (src/model/hf/llama.ts imports them):
 * grouped-query attention (nKVHeads), a head width independent of the model width (headDim),
 * Qwen2's q/k/v biases without an o bias, a tied or absent LM head. Representation training
 * reads hidden states only, so the head may be left out entirely (head: 'none').
 *
 * It takes input EMBEDDINGS, not ids, so the caller can splice image tokens into the prompt
 * (early fusion); `embed(ids)` gives the text part.
 *
 * Padding convention: prompts are RIGHT-padded. With causal attention no real token sees a
 * pad that follows it, so no pad mask is needed; the caller reads each sequence's embedding
 * at its own last real index.
 *
 * Dimension legend: b batch, t tokens, d width, h query heads, kv key/value heads, hd head width,
 * v vocabulary, f SwiGLU hidden width.
 */
import { tf } from '../backend';
import { NativeMatrix, nativeMatMul } from '../backend/native-matmul';
import type { ParamStore } from './params';
import { DEFAULT_INIT_STD, Linear, RMSNorm, SwiGLUMLP, swigluHidden, type LinearOptions, type LoraOptions } from './layers';
import { MultiHeadAttention } from './attention';
import { blockVariables, fusedBlockForward } from './block-grad';
import { RoPE } from './rope';

/**
 * The LM head: `untied` a Linear(d → v) of its own at `head.weight` [d, v]; `tied` the token
 * embedding transposed (logits = h·Eᵀ, no parameter of its own); `none` no head at all
 * (representation training never computes logits).
 */
export type LMHead = 'untied' | 'tied' | 'none';
export const LM_HEADS: readonly LMHead[] = ['untied', 'tied', 'none'];

export interface LMConfig {
  /** Vocabulary size v. */
  vocabSize: number;
  /** Model width d. Defaults to 128. */
  dim?: number;
  /** Number of decoder layers. Defaults to 4. */
  nLayers?: number;
  /** Query heads h; must divide dim unless headDim is given. Defaults to 4. */
  nHeads?: number;
  /** Key/value heads kv (grouped-query attention, 1 = multi-query); must divide nHeads. Defaults to nHeads. */
  nKVHeads?: number;
  /** Width of one head, even (RoPE pairs features); q is nHeads·headDim wide. Defaults to dim / nHeads. */
  headDim?: number;
  /** SwiGLU hidden width f. Defaults to LLaMA's ⌈(8/3)·d⌉ rounded up to a multiple of 8. */
  mlpHidden?: number;
  /** RoPE base. Defaults to 10000. */
  ropeTheta?: number;
  /** RMSNorm epsilon. Defaults to 1e-6. */
  normEps?: number;
  /** Biases on q, k, v, o (LLaMA has none; Llama's `attention_bias` puts them on all four). Defaults to false. */
  attnBias?: boolean;
  /** Biases on q, k, v (Qwen2 has them, without one on o). Defaults to attnBias. */
  qkvBias?: boolean;
  /** Bias on o. Defaults to attnBias. */
  oBias?: boolean;
  /** Biases on the SwiGLU's gate, up and down (Llama's `mlp_bias`). Defaults to false. */
  mlpBias?: boolean;
  /** The LM head (see LMHead). Defaults to 'untied'. */
  head?: LMHead;
  /** Std of the weight and embedding init. Defaults to 0.02. */
  initStd?: number;
}

/** The fields every resolved config carries. */
type CoreLMField = 'vocabSize' | 'dim' | 'nLayers' | 'nHeads' | 'mlpHidden' | 'ropeTheta' | 'normEps' | 'attnBias' | 'initStd';
/** The fields a resolved config carries only where they differ from their default (see resolveLMConfig). */
type ExtensionLMField = 'nKVHeads' | 'headDim' | 'qkvBias' | 'oBias' | 'mlpBias' | 'head';

/**
 * A resolved config: every core field, and an extension field only where it differs from its
 * default — so a config that uses none of them is the same object, and the same JSON, as
 * before they existed (pretraining cache keys, resume checks and saved run configs compare
 * that JSON). Read the effective values through `lmLayout`.
 */
export type ResolvedLMConfig = Required<Pick<LMConfig, CoreLMField>> & Partial<Pick<LMConfig, ExtensionLMField>>;

/** The extension fields with their defaults applied. */
export type LMLayout = Required<Pick<LMConfig, ExtensionLMField>>;

/** The extension fields of a config with their defaults (the one place they live). */
export function lmLayout(cfg: Pick<LMConfig, ExtensionLMField | 'attnBias'> & { dim: number; nHeads: number }): LMLayout {
  const attnBias = cfg.attnBias ?? false;
  return {
    nKVHeads: cfg.nKVHeads ?? cfg.nHeads,
    headDim: cfg.headDim ?? cfg.dim / cfg.nHeads,
    qkvBias: cfg.qkvBias ?? attnBias,
    oBias: cfg.oBias ?? attnBias,
    mlpBias: cfg.mlpBias ?? false,
    head: cfg.head ?? 'untied',
  };
}

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
  if (cfg.headDim === undefined) {
    if (r.dim % r.nHeads !== 0 || (r.dim / r.nHeads) % 2 !== 0) {
      throw new Error(`LMConfig: dim (${r.dim}) / nHeads (${r.nHeads}) must be an even integer (RoPE pairs features)`);
    }
  } else if (!Number.isInteger(cfg.headDim) || cfg.headDim <= 0 || cfg.headDim % 2 !== 0) {
    throw new Error(`LMConfig.headDim must be a positive even integer (RoPE pairs features), got ${cfg.headDim}`);
  }
  if (cfg.nKVHeads !== undefined && (!Number.isInteger(cfg.nKVHeads) || cfg.nKVHeads <= 0 || r.nHeads % cfg.nKVHeads !== 0)) {
    throw new Error(`LMConfig.nKVHeads (${cfg.nKVHeads}) must be a positive divisor of nHeads (${r.nHeads})`);
  }
  if (cfg.head !== undefined && !LM_HEADS.includes(cfg.head)) {
    throw new Error(`LMConfig.head must be one of ${LM_HEADS.join(', ')}, got ${JSON.stringify(cfg.head)}`);
  }
  for (const key of ['attnBias', 'qkvBias', 'oBias', 'mlpBias'] as const) {
    if (cfg[key] !== undefined && typeof cfg[key] !== 'boolean') throw new Error(`LMConfig.${key} must be true or false, got ${JSON.stringify(cfg[key])}`);
  }
  // Extension fields are kept only where they differ from their default (ResolvedLMConfig).
  const defaults = lmLayout({ dim: r.dim, nHeads: r.nHeads, attnBias: r.attnBias });
  const given = lmLayout({ ...cfg, dim: r.dim, nHeads: r.nHeads, attnBias: r.attnBias });
  for (const key of Object.keys(defaults) as ExtensionLMField[]) {
    if (given[key] !== defaults[key]) (r as Record<string, unknown>)[key] = given[key];
  }
  return r;
}

/** The seven projections of a decoder layer (attention q, k, v, o; SwiGLU gate, up, down). */
export type LMProjection = 'q' | 'k' | 'v' | 'o' | 'gate' | 'up' | 'down';
export const LM_PROJECTIONS: readonly LMProjection[] = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'];

/** LoRA adapters on the same projections of every layer. */
export interface LMLoraConfig extends LoraOptions {
  /** Which projections carry an adapter. Defaults to q, k, v, o. */
  targets?: readonly LMProjection[];
}

/**
 * How a DecoderLM holds its weights beyond the defaults (every parameter a trainable
 * variable in the store). src/model/lm-train.ts derives these from a training mode.
 */
export interface DecoderLMOptions {
  /**
   * Frozen matrices held outside the backend, by the parameter path they stand for:
   * `<prefix>.embed.weight` [v, d], `<prefix>.layers.<i>.{attn.{q,k,v,o},mlp.{gate,up,down}}.weight`
   * [in, out], `<prefix>.head.weight` [d, v]. Those paths are not created in the store; every
   * entry must be one of them (an unknown path is an error).
   */
  native?: ReadonlyMap<string, NativeMatrix>;
  /** LoRA adapters (params `<projection path>.lora_a` / `.lora_b`). */
  lora?: LMLoraConfig;
  /**
   * How a layer's gradient is taken: 'autodiff' (tfjs's automatic gradient, op by op — the
   * default) or 'fused' (one hand-written backward per layer, model/block-grad.ts: the same
   * values with a fraction of the memory, what training at real size needs). Calls that ask
   * for attention masks or probabilities always take the autodiff path.
   */
  blockGrad?: 'autodiff' | 'fused';
}

/** Parameter path of a layer projection's weight (`lm.layers.3.attn.q.weight`). */
export function projectionPath(prefix: string, layer: number, p: LMProjection): string {
  const group = p === 'gate' || p === 'up' || p === 'down' ? 'mlp' : 'attn';
  return `${prefix}.layers.${layer}.${group}.${p}`;
}

/** Looks up native weights by path and records which were used. */
class WeightSource {
  readonly used = new Set<string>();
  constructor(readonly native: ReadonlyMap<string, NativeMatrix>, readonly lora: LMLoraConfig | undefined) {}

  get(path: string): NativeMatrix | undefined {
    const m = this.native.get(path);
    if (m) this.used.add(path);
    return m;
  }

  /** Options of the projection at `linearPath` (`lm.layers.0.attn.q`). */
  projection(linearPath: string, p: LMProjection): Pick<LinearOptions, 'native' | 'lora'> {
    const targets = this.lora?.targets ?? DEFAULT_LORA_TARGETS;
    const native = this.get(`${linearPath}.weight`);
    const lora = this.lora && targets.includes(p) ? { rank: this.lora.rank, alpha: this.lora.alpha } : undefined;
    return { ...(native ? { native } : {}), ...(lora ? { lora } : {}) };
  }
}

/** The projections LoRA adapts unless told otherwise: attention's q, k, v, o. */
export const DEFAULT_LORA_TARGETS: readonly LMProjection[] = ['q', 'k', 'v', 'o'];

/**
 * One pre-norm decoder layer; params under `<path>`: `attn_norm`, `attn.{q,k,v,o}`, `mlp_norm`,
 * `mlp.{gate,up,down}` (shapes in MultiHeadAttention and SwiGLUMLP).
 */
export class DecoderBlock {
  readonly attnNorm: RMSNorm;
  readonly attn: MultiHeadAttention;
  readonly mlpNorm: RMSNorm;
  readonly mlp: SwiGLUMLP;

  constructor(store: ParamStore, readonly path: string, cfg: ResolvedLMConfig, rope: RoPE, weights?: WeightSource) {
    const eps = { eps: cfg.normEps };
    const layout = lmLayout(cfg);
    const w = weights ?? new WeightSource(new Map(), undefined);
    const proj = (group: 'attn' | 'mlp', p: LMProjection) => w.projection(`${path}.${group}.${p}`, p);
    this.attnNorm = new RMSNorm(store, `${path}.attn_norm`, cfg.dim, eps);
    this.attn = new MultiHeadAttention(store, `${path}.attn`, {
      dim: cfg.dim, heads: cfg.nHeads, kvHeads: layout.nKVHeads, headDim: layout.headDim, kind: 'causal',
      qkvBias: layout.qkvBias, outBias: layout.oBias, rope, initStd: cfg.initStd,
    }, { q: proj('attn', 'q'), k: proj('attn', 'k'), v: proj('attn', 'v'), o: proj('attn', 'o') });
    this.mlpNorm = new RMSNorm(store, `${path}.mlp_norm`, cfg.dim, eps);
    this.mlp = new SwiGLUMLP(store, `${path}.mlp`, cfg.dim, cfg.mlpHidden, { bias: layout.mlpBias, initStd: cfg.initStd }, {
      gate: proj('mlp', 'gate'), up: proj('mlp', 'up'), down: proj('mlp', 'down'),
    });
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
  /**
   * Whether the input embeddings depend on something trained (a trainable token embedding,
   * image tokens from a trained connector). Defaults to true. With false, the leading layers
   * that have no trainable variables keep nothing for a backward pass (blockGrad 'fused'):
   * under last:N with a frozen embedding and text only, their activations never take heap room.
   */
  inputsNeedGrad?: boolean;
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

/**
 * Params under `<prefix>`: `embed.weight` [v, d], `layers.<i>.*`, `norm.weight` [d], and
 * `head.weight` [d, v] for an untied head only — each in the store unless `opts.native` holds
 * it (DecoderLMOptions); LoRA factors beside the projections they adapt.
 */
export class DecoderLM {
  readonly cfg: ResolvedLMConfig;
  /** The extension fields' effective values (GQA, head width, biases, head kind). */
  readonly layout: LMLayout;
  /** The frozen token embedding [v, d] when it lives outside the backend; null otherwise. */
  readonly nativeEmbedding: NativeMatrix | null;
  private readonly storeEmbedding: tf.Variable | null;
  readonly layers: DecoderBlock[];
  readonly norm: RMSNorm;
  /** The untied head's Linear; null for a tied head or none. */
  readonly head: Linear | null;
  readonly rope: RoPE;
  /** The options the model was built with (lm-train.ts reads them back to merge and export). */
  readonly options: DecoderLMOptions;

  constructor(cfg: LMConfig, store: ParamStore, readonly prefix = 'lm', opts: DecoderLMOptions = {}) {
    this.cfg = resolveLMConfig(cfg);
    const c = this.cfg;
    this.layout = lmLayout(c);
    this.options = opts;
    const weights = new WeightSource(opts.native ?? new Map(), opts.lora);
    if (opts.blockGrad !== undefined && opts.blockGrad !== 'autodiff' && opts.blockGrad !== 'fused') {
      throw new Error(`DecoderLM ${prefix}: blockGrad must be "autodiff" or "fused", got ${JSON.stringify(opts.blockGrad)}`);
    }
    if (opts.lora) {
      for (const t of opts.lora.targets ?? []) {
        if (!LM_PROJECTIONS.includes(t)) throw new Error(`DecoderLM ${prefix}: LoRA target "${t}" is not one of ${LM_PROJECTIONS.join(', ')}`);
      }
    }
    this.rope = new RoPE(this.layout.headDim, c.ropeTheta);
    const embedPath = `${prefix}.embed.weight`;
    this.nativeEmbedding = weights.get(embedPath) ?? null;
    if (this.nativeEmbedding) {
      const [v, d] = this.nativeEmbedding.shape;
      if (v !== c.vocabSize || d !== c.dim) throw new Error(`DecoderLM ${prefix}: native embedding is [${v}, ${d}], expected [${c.vocabSize}, ${c.dim}]`);
      this.storeEmbedding = null;
    } else {
      this.storeEmbedding = store.param(embedPath, [c.vocabSize, c.dim], { kind: 'normal', std: c.initStd });
    }
    this.layers = Array.from({ length: c.nLayers }, (_, i) => new DecoderBlock(store, `${prefix}.layers.${i}`, c, this.rope, weights));
    this.norm = new RMSNorm(store, `${prefix}.norm`, c.dim, { eps: c.normEps });
    this.head =
      this.layout.head === 'untied'
        ? new Linear(store, `${prefix}.head`, c.dim, c.vocabSize, { bias: false, initStd: c.initStd, native: weights.get(`${prefix}.head.weight`) })
        : null;
    const unused = [...weights.native.keys()].filter((k) => !weights.used.has(k));
    if (unused.length) {
      throw new Error(`DecoderLM ${prefix}: native weights for paths this model does not have: ${unused.slice(0, 6).join(', ')}${unused.length > 6 ? ', …' : ''}`);
    }
  }

  /** The token embedding variable [v, d]; an error when it is native (read `nativeEmbedding`). */
  get embedding(): tf.Variable {
    if (!this.storeEmbedding) throw new Error(`DecoderLM ${this.prefix}: the token embedding is frozen outside the backend (read .nativeEmbedding)`);
    return this.storeEmbedding;
  }

  /**
   * Token ids int32 [b, t] → embeddings [b, t, d]. A native (frozen) table is read on the host:
   * the rows are copied into one new tensor, which carries no gradient to the table.
   */
  embed(ids: tf.Tensor2D): tf.Tensor3D {
    return tf.tidy(() => {
      if (ids.rank !== 2 || ids.dtype !== 'int32') {
        throw new Error(`DecoderLM.embed: ids must be int32 [b, t], got ${ids.dtype} [${ids.shape}]`);
      }
      const table = this.nativeEmbedding;
      if (!table) return tf.gather(this.storeEmbedding as tf.Variable, ids) as tf.Tensor3D; // [b, t, d]
      const [b, t] = ids.shape;
      const d = table.cols;
      const idv = ids.dataSync() as Int32Array;
      const out = new Float32Array(idv.length * d);
      for (let i = 0; i < idv.length; i++) {
        const id = idv[i];
        if (!(id >= 0 && id < table.rows)) throw new Error(`DecoderLM.embed: token id ${id} is outside the vocabulary 0 … ${table.rows - 1}`);
        out.set(table.data.subarray(id * d, (id + 1) * d), i * d);
      }
      return tf.tensor3d(out, [b, t, d]);
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
      const fused = this.options.blockGrad === 'fused' && !opts.attnMasks && !opts.returnAttentions;
      // Leading layers without trainable variables, fed by inputs that need no gradient.
      let frozenLead = 0;
      if (fused && opts.inputsNeedGrad === false) {
        while (frozenLead < nLayers && !blockVariables(this.layers[frozenLead]).some((v) => v.trainable)) frozenLead++;
      }
      this.layers.forEach((layer, i) => {
        if (fused) {
          h = fusedBlockForward(layer, h, { save: i >= frozenLead });
          hiddenStates.push(h);
          return;
        }
        const r = layer.forward(h, opts.attnMasks?.[i], opts.returnAttentions ?? false);
        h = r.out;
        hiddenStates.push(h);
        if (r.probs) attentions.push(r.probs);
      });
      const last = this.norm.apply(h);
      return opts.returnAttentions ? { last, hiddenStates, attentions } : { last, hiddenStates };
    });
  }

  /** Hidden states [b, t, d] → next-token logits [b, t, v]; an error when the config has no head. */
  logits(h: tf.Tensor3D): tf.Tensor3D {
    const kind = this.layout.head;
    switch (kind) {
      case 'untied':
        return (this.head as Linear).apply(h);
      case 'tied':
        return tf.tidy(() => {
          const [b, t, d] = h.shape;
          if (d !== this.cfg.dim) throw new Error(`DecoderLM.logits: hidden states must be [b, t, ${this.cfg.dim}], got [${h.shape}]`);
          // [b·t, d] · Eᵀ with E [v, d]: the embedding matrix read as the output projection.
          const flat = tf.reshape(h, [b * t, d]) as tf.Tensor2D;
          const logits = this.nativeEmbedding ? nativeMatMul(flat, this.nativeEmbedding, true) : tf.matMul(flat, this.embedding as tf.Tensor2D, false, true);
          return tf.reshape(logits, [b, t, this.cfg.vocabSize]) as tf.Tensor3D;
        });
      case 'none':
        throw new Error(`DecoderLM ${this.prefix}: this model has no LM head (head: 'none'); configure head 'untied' or 'tied' to compute logits`);
      default: {
        const never: never = kind;
        throw new Error(`DecoderLM: unknown head ${never}; valid: ${LM_HEADS.join(', ')}`);
      }
    }
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
