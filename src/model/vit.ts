/**
 * Vision Transformer (the vision encoder of docs/method.md "Architecture"; CLIP ViT-B/16 there,
 * a tiny one here): patchify by reshape → linear patch embedding → [CLS; patches] + learned
 * positions → pre-norm → N × [LayerNorm → bidirectional attention → residual, LayerNorm →
 * GELU MLP → residual] → final LayerNorm.
 *
 * The architecture fields of ViTConfig also describe the imported encoders (src/model/hf/vision.ts):
 * CLIP (no patch bias, quick GELU, the final norm on the pooled CLS only, an optional
 * projection) and SigLIP (no CLS, no pre-norm, tanh GELU, an attention-pooling head).
 *
 * It returns the global feature (the CLS token, or the attention-pooled output standing in for
 * it — what late fusion reads) and the patch tokens (what the connector turns into LLM tokens)
 * of a chosen layer.
 *
 * Dimension legend: b batch, hh/ww image height/width, c channels, p patch side,
 * n = (hh/p)·(ww/p) patches, t = n (+ 1 with a CLS token) tokens, d width, h heads, f MLP width.
 */
import { tf } from '../backend';
import type { ParamStore } from './params';
import { DEFAULT_INIT_STD, GELU_VARIANTS, GeluMLP, LayerNorm, Linear, type GeluVariant } from './layers';
import { MultiHeadAttention } from './attention';

/** The MLP activation of the blocks (and of an attention-pooling head). */
export type ViTActivation = GeluVariant;
export const VIT_ACTIVATIONS: readonly ViTActivation[] = GELU_VARIANTS;

/**
 * Which tokens the final LayerNorm normalises: 'all' — every token of the read layer (this
 * project's ViT; SigLIP's post_layernorm, so the pooling head reads normed tokens) or
 * 'pooled' — only the global feature (CLIP's post_layernorm on the CLS token; the tokens stay
 * as the blocks left them, which is what LLaVA-style connectors read from CLIP).
 */
export type ViTFinalNorm = 'all' | 'pooled';
export const VIT_FINAL_NORMS: readonly ViTFinalNorm[] = ['all', 'pooled'];

/**
 * How the global feature is formed: 'cls' — the CLS token; 'attention' — a learned probe
 * query attends over the tokens, then a residual MLP (SigLIP's multi-head attention pooling).
 */
export type ViTPooling = 'cls' | 'attention';
export const VIT_POOLINGS: readonly ViTPooling[] = ['cls', 'attention'];

export interface ViTConfig {
  /** Side of the square input images, in pixels. Defaults to 32. */
  imageSize?: number;
  /** Side of a square patch; must divide imageSize. Defaults to 8. */
  patchSize?: number;
  /** Image channels (NHWC, last axis). Defaults to 3. */
  channels?: number;
  /** Token width d. Defaults to 64. */
  dim?: number;
  /** Number of transformer blocks. Defaults to 2. */
  depth?: number;
  /** Attention heads; must divide dim. Defaults to 4. */
  heads?: number;
  /** MLP hidden width as a multiple of dim. Defaults to 4 (mlpDim / dim when mlpDim is given). */
  mlpRatio?: number;
  /** LayerNorm epsilon. Defaults to 1e-5. */
  normEps?: number;
  /** Std of the weight, CLS and position init. Defaults to 0.02. */
  initStd?: number;
  /** MLP hidden width f, for widths that are no exact multiple of dim. Defaults to mlpRatio × dim. */
  mlpDim?: number;
  /** Whether the patch embedding has a bias. Defaults to true (CLIP: false). */
  patchBias?: boolean;
  /** Whether a learned CLS token leads the tokens. Defaults to true (SigLIP: false). */
  classToken?: boolean;
  /** Whether a LayerNorm follows the embeddings (CLIP's pre_layrnorm). Defaults to true (SigLIP: false). */
  preNorm?: boolean;
  /** GELU variant of the MLPs. Defaults to 'gelu' (exact; CLIP: 'quick_gelu', SigLIP: 'gelu_tanh'). */
  activation?: ViTActivation;
  /** Which tokens the final LayerNorm normalises (see ViTFinalNorm). Defaults to 'all' (CLIP: 'pooled'). */
  finalNorm?: ViTFinalNorm;
  /** How the global feature is formed (see ViTPooling). Defaults to 'cls' (SigLIP: 'attention'). */
  pooling?: ViTPooling;
  /** Width of a bias-free projection of the global feature (CLIP's visual_projection); 0 = none. Defaults to 0. */
  projectionDim?: number;
}

/** The architecture fields of ViTConfig (those that describe imported encoders). */
export type ViTArchitecture = Required<Pick<ViTConfig, 'patchBias' | 'classToken' | 'preNorm' | 'activation' | 'finalNorm' | 'pooling' | 'projectionDim'>>;

/** This project's ViT: the defaults of the architecture fields (the one place they live). */
export const VIT_ARCHITECTURE_DEFAULTS: Readonly<ViTArchitecture> = {
  patchBias: true,
  classToken: true,
  preNorm: true,
  activation: 'gelu',
  finalNorm: 'all',
  pooling: 'cls',
  projectionDim: 0,
};

/**
 * Every size field resolved; an architecture field (and mlpDim) is present only when it
 * departs from its default, so the resolved config of this project's own ViT — saved configs,
 * pretraining cache keys — lists only the fields it uses. Read them through `vitArchitecture`
 * and `vitMlpDim`.
 */
export type ResolvedViTConfig = Required<Omit<ViTConfig, keyof ViTArchitecture | 'mlpDim'>> & Partial<ViTArchitecture> & { mlpDim?: number };

/** Applies ViTConfig defaults (the one place they live) and validates. */
export function resolveViTConfig(cfg: ViTConfig = {}): ResolvedViTConfig {
  const dim = cfg.dim ?? 64;
  const r: ResolvedViTConfig = {
    imageSize: cfg.imageSize ?? 32,
    patchSize: cfg.patchSize ?? 8,
    channels: cfg.channels ?? 3,
    dim,
    depth: cfg.depth ?? 2,
    heads: cfg.heads ?? 4,
    mlpRatio: cfg.mlpRatio ?? (cfg.mlpDim !== undefined ? cfg.mlpDim / dim : 4),
    normEps: cfg.normEps ?? 1e-5,
    initStd: cfg.initStd ?? DEFAULT_INIT_STD,
  };
  for (const key of ['imageSize', 'patchSize', 'channels', 'dim', 'depth', 'heads'] as const) {
    if (!Number.isInteger(r[key]) || r[key] <= 0) throw new Error(`ViTConfig.${key} must be a positive integer, got ${r[key]}`);
  }
  if (r.imageSize % r.patchSize !== 0) {
    throw new Error(`ViTConfig: patchSize (${r.patchSize}) must divide imageSize (${r.imageSize})`);
  }
  if (r.dim % r.heads !== 0) throw new Error(`ViTConfig: heads (${r.heads}) must divide dim (${r.dim})`);
  if (!(r.normEps > 0)) throw new Error(`ViTConfig.normEps must be positive, got ${r.normEps}`);
  if (cfg.mlpDim !== undefined) {
    if (!Number.isInteger(cfg.mlpDim) || cfg.mlpDim <= 0) throw new Error(`ViTConfig.mlpDim must be a positive integer, got ${cfg.mlpDim}`);
    if (cfg.mlpRatio !== undefined && cfg.mlpRatio * r.dim !== cfg.mlpDim && cfg.mlpRatio !== cfg.mlpDim / r.dim) {
      throw new Error(`ViTConfig: mlpRatio (${cfg.mlpRatio}) × dim (${r.dim}) ≠ mlpDim (${cfg.mlpDim}); give one of them`);
    }
    // Kept only when the ratio does not reproduce the width exactly in floating point.
    if (r.mlpRatio * r.dim !== cfg.mlpDim) r.mlpDim = cfg.mlpDim;
  } else if (!(r.mlpRatio > 0) || !Number.isInteger(r.mlpRatio * r.dim)) {
    throw new Error(`ViTConfig.mlpRatio (${r.mlpRatio}) × dim (${r.dim}) must be a positive integer`);
  }
  const arch = vitArchitecture(cfg);
  if (!VIT_ACTIVATIONS.includes(arch.activation)) {
    throw new Error(`ViTConfig.activation ${JSON.stringify(arch.activation)} is not one of ${VIT_ACTIVATIONS.join(', ')}`);
  }
  if (!VIT_FINAL_NORMS.includes(arch.finalNorm)) {
    throw new Error(`ViTConfig.finalNorm ${JSON.stringify(arch.finalNorm)} is not one of ${VIT_FINAL_NORMS.join(', ')}`);
  }
  if (!VIT_POOLINGS.includes(arch.pooling)) {
    throw new Error(`ViTConfig.pooling ${JSON.stringify(arch.pooling)} is not one of ${VIT_POOLINGS.join(', ')}`);
  }
  for (const key of ['patchBias', 'classToken', 'preNorm'] as const) {
    if (typeof arch[key] !== 'boolean') throw new Error(`ViTConfig.${key} must be true or false, got ${JSON.stringify(arch[key])}`);
  }
  if (!Number.isInteger(arch.projectionDim) || arch.projectionDim < 0) {
    throw new Error(`ViTConfig.projectionDim must be a non-negative integer (0 = none), got ${arch.projectionDim}`);
  }
  if (arch.pooling === 'cls' && !arch.classToken) {
    throw new Error("ViTConfig: pooling 'cls' needs classToken true; without a CLS token use pooling 'attention'");
  }
  for (const key of Object.keys(VIT_ARCHITECTURE_DEFAULTS) as (keyof ViTArchitecture)[]) {
    if (arch[key] !== VIT_ARCHITECTURE_DEFAULTS[key]) (r as Record<string, unknown>)[key] = arch[key];
  }
  return r;
}

/** The architecture fields of a (resolved or raw) config, defaults filled in. */
export function vitArchitecture(cfg: ViTConfig): ViTArchitecture {
  const d = VIT_ARCHITECTURE_DEFAULTS;
  return {
    patchBias: cfg.patchBias ?? d.patchBias,
    classToken: cfg.classToken ?? d.classToken,
    preNorm: cfg.preNorm ?? d.preNorm,
    activation: cfg.activation ?? d.activation,
    finalNorm: cfg.finalNorm ?? d.finalNorm,
    pooling: cfg.pooling ?? d.pooling,
    projectionDim: cfg.projectionDim ?? d.projectionDim,
  };
}

/** n, the patch tokens per image: (imageSize / patchSize)². */
export function vitPatchCount(cfg: Pick<ResolvedViTConfig, 'imageSize' | 'patchSize'>): number {
  return (cfg.imageSize / cfg.patchSize) ** 2;
}

/** MLP hidden width f of a resolved config. */
export function vitMlpDim(cfg: ResolvedViTConfig): number {
  return cfg.mlpDim ?? cfg.mlpRatio * cfg.dim;
}

/**
 * [b, hh, ww, c] → [b, n, p·p·c], patches in row-major grid order, features ordered
 * (row in patch, column in patch, channel) — the layout of a conv kernel [p, p, c, d], so
 * the patch embedding is the usual stride-p convolution. Only rank-4 reshapes/transposes.
 */
export function patchify(images: tf.Tensor4D, patchSize: number): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, hh, ww, c] = images.shape;
    const p = patchSize;
    if (hh % p !== 0 || ww % p !== 0) throw new Error(`patchify: image ${hh}×${ww} is not divisible into ${p}×${p} patches`);
    const gh = hh / p, gw = ww / p;
    const rows = tf.reshape(images, [b * gh, p, gw, p * c]); // [b·gh, py, gx, (px, c)]
    const grouped = tf.transpose(rows, [0, 2, 1, 3]); // [b·gh, gx, py, (px, c)]
    return tf.reshape(grouped, [b, gh * gw, p * p * c]) as tf.Tensor3D;
  });
}

/**
 * One pre-norm ViT block; params under `<path>`: `norm1`, `attn.{q,k,v,o}`, `norm2`, `mlp.{fc1,fc2}`
 * (CLIP's and SigLIP's encoder layers have this shape: layer_norm1, self_attn, layer_norm2, mlp).
 */
export class ViTBlock {
  readonly norm1: LayerNorm;
  readonly attn: MultiHeadAttention;
  readonly norm2: LayerNorm;
  readonly mlp: GeluMLP;

  constructor(store: ParamStore, readonly path: string, cfg: ResolvedViTConfig) {
    const eps = { eps: cfg.normEps };
    this.norm1 = new LayerNorm(store, `${path}.norm1`, cfg.dim, eps);
    this.attn = new MultiHeadAttention(store, `${path}.attn`, { dim: cfg.dim, heads: cfg.heads, kind: 'bidirectional', initStd: cfg.initStd });
    this.norm2 = new LayerNorm(store, `${path}.norm2`, cfg.dim, eps);
    this.mlp = new GeluMLP(store, `${path}.mlp`, cfg.dim, vitMlpDim(cfg), cfg.dim, { initStd: cfg.initStd, activation: vitArchitecture(cfg).activation });
  }

  /** [b, t, d] → [b, t, d] */
  forward(x: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      const h = tf.add(x, this.attn.forward(this.norm1.apply(x)).out) as tf.Tensor3D;
      return tf.add(h, this.mlp.apply(this.norm2.apply(h))) as tf.Tensor3D;
    });
  }
}

/**
 * SigLIP's multi-head attention pooling: a learned probe [d] is the single query of a
 * cross-attention over the tokens, then x + mlp(LayerNorm(x)) with the head's own norm and
 * MLP; the result is that one query's row. Params under `<path>`: `probe` [d],
 * `attn.{q,k,v,o}` (with biases), `norm`, `mlp.{fc1,fc2}`.
 */
export class AttentionPoolingHead {
  readonly probe: tf.Variable;
  readonly attn: MultiHeadAttention;
  readonly norm: LayerNorm;
  readonly mlp: GeluMLP;

  constructor(store: ParamStore, readonly path: string, cfg: ResolvedViTConfig) {
    const { dim, heads, initStd, normEps } = cfg;
    this.probe = store.param(`${path}.probe`, [dim], { kind: 'normal', std: initStd });
    this.attn = new MultiHeadAttention(store, `${path}.attn`, { dim, heads, kind: 'cross', bias: true, initStd });
    this.norm = new LayerNorm(store, `${path}.norm`, dim, { eps: normEps });
    this.mlp = new GeluMLP(store, `${path}.mlp`, dim, vitMlpDim(cfg), dim, { initStd, activation: vitArchitecture(cfg).activation });
  }

  /** tokens [b, t, d] → pooled [b, d] */
  apply(tokens: tf.Tensor3D): tf.Tensor2D {
    return tf.tidy(() => {
      const [b, , d] = tokens.shape;
      const query = tf.tile(tf.reshape(this.probe, [1, 1, d]), [b, 1, 1]) as tf.Tensor3D; // [b, 1, d]
      const x = this.attn.forward(query, { context: tokens }).out; // [b, 1, d]
      const y = tf.add(x, this.mlp.apply(this.norm.apply(x)));
      return tf.reshape(y, [b, d]) as tf.Tensor2D;
    });
  }
}

export interface ViTForwardOptions {
  /**
   * Which block's output to read: 1 … depth, or negative from the end (−1 = last, −2 = the
   * penultimate, LLaVA's choice); 0 = the embeddings before any block. Defaults to −1.
   */
  layer?: number;
}

export interface ViTOutput {
  /**
   * [b, d] the global feature, what late fusion reads as "CLS" (docs/method.md "Late fusion
   * gate"): the CLS token with pooling 'cls'; with pooling 'attention' (SigLIP, no CLS token)
   * the attention-pooled output, which stands in for it.
   */
  cls: tf.Tensor2D;
  /**
   * [b, n, d] the patch tokens, never the CLS token: normed by the final LayerNorm with
   * finalNorm 'all' (this project's ViT; SigLIP's last_hidden_state), the blocks' raw output
   * with finalNorm 'pooled' (CLIP's hidden states, as LLaVA reads them).
   */
  patches: tf.Tensor3D;
  /** [b, projectionDim] the projected global feature (CLIP's image_embeds), when projectionDim > 0. */
  projected?: tf.Tensor2D;
}

/**
 * Every intermediate of a full forward pass, named as transformers names them (for reference
 * checks). Without a pre-norm `hiddenStates[0]` is `embeddings`, and with finalNorm 'pooled'
 * `lastHiddenState` is `hiddenStates[depth]`: the same tensor (disposing it twice is harmless).
 */
export interface ViTTrace {
  /** [b, t, d] patch embeddings ([CLS; …] when there is one) plus positions, before any norm. */
  embeddings: tf.Tensor3D;
  /** depth + 1 entries [b, t, d]: [0] the input of the first block (after the pre-norm when there is one), [i] the output of block i − 1. */
  hiddenStates: tf.Tensor3D[];
  /** [b, t, d] the last block's output, through the final LayerNorm with finalNorm 'all'. */
  lastHiddenState: tf.Tensor3D;
  /** [b, d] the global feature (ViTOutput.cls). */
  pooled: tf.Tensor2D;
  /** [b, projectionDim] when projectionDim > 0. */
  projected?: tf.Tensor2D;
}

/**
 * Params under `<prefix>`: `patch_embed` [p·p·c, d] (+bias with patchBias), `cls` [d] (with
 * classToken), `pos` [t, d], `norm_pre` (with preNorm), `blocks.<i>.*`, `norm`, `head.*` (with
 * pooling 'attention'), `proj` [d, projectionDim] (with projectionDim > 0).
 */
export class ViT {
  readonly cfg: ResolvedViTConfig;
  readonly arch: ViTArchitecture;
  /** n, the patch tokens per image. */
  readonly numPatches: number;
  /** t = n (+ 1 with a CLS token), the tokens the blocks see. */
  readonly numTokens: number;
  readonly patchEmbed: Linear;
  readonly cls: tf.Variable | null;
  readonly pos: tf.Variable;
  readonly normPre: LayerNorm | null;
  readonly blocks: ViTBlock[];
  readonly norm: LayerNorm;
  readonly head: AttentionPoolingHead | null;
  readonly proj: Linear | null;

  constructor(cfg: ViTConfig, store: ParamStore, readonly prefix = 'vit') {
    this.cfg = resolveViTConfig(cfg);
    this.arch = vitArchitecture(this.cfg);
    const c = this.cfg;
    const a = this.arch;
    this.numPatches = vitPatchCount(c);
    this.numTokens = this.numPatches + (a.classToken ? 1 : 0);
    this.patchEmbed = new Linear(store, `${prefix}.patch_embed`, c.patchSize * c.patchSize * c.channels, c.dim, { initStd: c.initStd, bias: a.patchBias });
    this.cls = a.classToken ? store.param(`${prefix}.cls`, [c.dim], { kind: 'normal', std: c.initStd }) : null;
    this.pos = store.param(`${prefix}.pos`, [this.numTokens, c.dim], { kind: 'normal', std: c.initStd });
    // CLIP's ln_pre: normalises the summed embeddings before the first block.
    this.normPre = a.preNorm ? new LayerNorm(store, `${prefix}.norm_pre`, c.dim, { eps: c.normEps }) : null;
    this.blocks = Array.from({ length: c.depth }, (_, i) => new ViTBlock(store, `${prefix}.blocks.${i}`, c));
    this.norm = new LayerNorm(store, `${prefix}.norm`, c.dim, { eps: c.normEps });
    this.head = a.pooling === 'attention' ? new AttentionPoolingHead(store, `${prefix}.head`, c) : null;
    this.proj = a.projectionDim > 0 ? new Linear(store, `${prefix}.proj`, c.dim, a.projectionDim, { bias: false, initStd: c.initStd }) : null;
  }

  /** Resolves ViTForwardOptions.layer to a block count 0 … depth. */
  resolveLayer(layer = -1): number {
    const depth = this.cfg.depth;
    const n = layer < 0 ? depth + 1 + layer : layer;
    if (!Number.isInteger(layer) || n < 0 || n > depth) {
      throw new Error(`ViT.forward: layer ${layer} is out of range; valid are 0 … ${depth} or −1 … −${depth + 1}`);
    }
    return n;
  }

  /** images [b, hh, ww, c] → [b, t, d]: patch embeddings, the CLS token first when there is one, plus positions. */
  embed(images: tf.Tensor4D): tf.Tensor3D {
    return tf.tidy(() => {
      const { imageSize, channels, dim, patchSize } = this.cfg;
      const [b, hh, ww, c] = images.shape;
      if (images.rank !== 4 || hh !== imageSize || ww !== imageSize || c !== channels) {
        throw new Error(`ViT.forward: images must be [b, ${imageSize}, ${imageSize}, ${channels}] (NHWC), got [${images.shape}]`);
      }
      const tokens = this.patchEmbed.apply(patchify(images, patchSize)); // [b, n, d]
      const seq = this.cls ? tf.concat([tf.tile(tf.reshape(this.cls, [1, 1, dim]), [b, 1, 1]), tokens], 1) : tokens; // [b, t, d]
      return tf.add(seq, this.pos) as tf.Tensor3D;
    });
  }

  /** The final LayerNorm and the pooling: the read layer's tokens [b, t, d] → normed-or-not tokens and the global feature [b, d]. */
  private readOut(x: tf.Tensor3D): { tokens: tf.Tensor3D; pooled: tf.Tensor2D } {
    const [b, , d] = x.shape;
    const tokens = this.arch.finalNorm === 'all' ? this.norm.apply(x) : x;
    let pooled: tf.Tensor2D;
    switch (this.arch.pooling) {
      case 'cls':
        pooled = tf.reshape(tf.slice(tokens, [0, 0, 0], [b, 1, d]), [b, d]) as tf.Tensor2D;
        break;
      case 'attention':
        pooled = this.head!.apply(tokens);
        break;
      default: {
        const never: never = this.arch.pooling;
        throw new Error(`ViT: unknown pooling ${JSON.stringify(never)}; valid are ${VIT_POOLINGS.join(', ')}`);
      }
    }
    if (this.arch.finalNorm === 'pooled') pooled = this.norm.apply(pooled);
    return { tokens, pooled };
  }

  /**
   * images [b, hh, ww, c] (NHWC, already normalised) → the global feature [b, d] and the patch
   * tokens [b, n, d] of the chosen layer (see ViTOutput for which norm applies to which); the
   * final LayerNorm and the pooling read whichever layer is chosen.
   */
  forward(images: tf.Tensor4D, opts: ViTForwardOptions = {}): ViTOutput {
    return tf.tidy(() => {
      const nBlocks = this.resolveLayer(opts.layer);
      let x = this.embed(images);
      if (this.normPre) x = this.normPre.apply(x);
      for (let i = 0; i < nBlocks; i++) x = this.blocks[i].forward(x);
      const { tokens, pooled } = this.readOut(x);
      const [b, t, d] = tokens.shape;
      const first = t - this.numPatches; // 1 with a CLS token, else 0
      const out: ViTOutput = { cls: pooled, patches: tf.slice(tokens, [0, first, 0], [b, this.numPatches, d]) as tf.Tensor3D };
      if (this.proj) out.projected = this.proj.apply(pooled);
      return out as unknown as tf.TensorContainer;
    }) as unknown as ViTOutput;
  }

  /** A full forward pass keeping every intermediate (see ViTTrace). The caller disposes them. */
  trace(images: tf.Tensor4D): ViTTrace {
    return tf.tidy(() => {
      const embeddings = this.embed(images);
      let x = this.normPre ? this.normPre.apply(embeddings) : embeddings;
      const hiddenStates = [x];
      for (const block of this.blocks) {
        x = block.forward(x);
        hiddenStates.push(x);
      }
      const { tokens, pooled } = this.readOut(x);
      const out: ViTTrace = { embeddings, hiddenStates, lastHiddenState: tokens, pooled };
      if (this.proj) out.projected = this.proj.apply(pooled);
      return out as unknown as tf.TensorContainer;
    }) as unknown as ViTTrace;
  }
}
