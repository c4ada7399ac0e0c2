/**
 * Vision Transformer (the vision encoder of docs/method.md "Architecture"; CLIP ViT-B/16 there,
 * a tiny one here): patchify by reshape → linear patch embedding → [CLS; patches] + learned
 * positions → pre-norm → N × [LayerNorm → bidirectional attention → residual, LayerNorm →
 * GELU MLP → residual] → final LayerNorm.
 *
 * It returns the CLS token (the global feature late fusion reads) and the patch tokens (what
 * the connector turns into LLM tokens) of a chosen layer.
 *
 * Dimension legend: b batch, hh/ww image height/width, c channels, p patch side,
 * n = (hh/p)·(ww/p) patches, d width, h heads.
 */
import { tf } from '../backend';
import type { ParamStore } from './params';
import { DEFAULT_INIT_STD, GeluMLP, LayerNorm, Linear } from './layers';
import { MultiHeadAttention } from './attention';

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
  /** MLP hidden width as a multiple of dim. Defaults to 4. */
  mlpRatio?: number;
  /** LayerNorm epsilon. Defaults to 1e-5. */
  normEps?: number;
  /** Std of the weight, CLS and position init. Defaults to 0.02. */
  initStd?: number;
}

export type ResolvedViTConfig = Required<ViTConfig>;

/** Applies ViTConfig defaults (the one place they live) and validates. */
export function resolveViTConfig(cfg: ViTConfig = {}): ResolvedViTConfig {
  const r: ResolvedViTConfig = {
    imageSize: cfg.imageSize ?? 32,
    patchSize: cfg.patchSize ?? 8,
    channels: cfg.channels ?? 3,
    dim: cfg.dim ?? 64,
    depth: cfg.depth ?? 2,
    heads: cfg.heads ?? 4,
    mlpRatio: cfg.mlpRatio ?? 4,
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
  if (!(r.mlpRatio > 0) || !Number.isInteger(r.mlpRatio * r.dim)) {
    throw new Error(`ViTConfig.mlpRatio (${r.mlpRatio}) × dim (${r.dim}) must be a positive integer`);
  }
  return r;
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

/** One pre-norm ViT block; params under `<path>`: `norm1`, `attn.{q,k,v,o}`, `norm2`, `mlp.{fc1,fc2}`. */
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
    this.mlp = new GeluMLP(store, `${path}.mlp`, cfg.dim, cfg.mlpRatio * cfg.dim, cfg.dim, { initStd: cfg.initStd });
  }

  /** [b, 1 + n, d] → [b, 1 + n, d] */
  forward(x: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      const h = tf.add(x, this.attn.forward(this.norm1.apply(x)).out) as tf.Tensor3D;
      return tf.add(h, this.mlp.apply(this.norm2.apply(h))) as tf.Tensor3D;
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
  /** [b, d] the CLS token. */
  cls: tf.Tensor2D;
  /** [b, n, d] the patch tokens. */
  patches: tf.Tensor3D;
}

/**
 * Params under `<prefix>`: `patch_embed` [p·p·c, d] (+bias), `cls` [d], `pos` [1 + n, d],
 * `norm_pre`, `blocks.<i>.*`, `norm`.
 */
export class ViT {
  readonly cfg: ResolvedViTConfig;
  readonly numPatches: number;
  readonly patchEmbed: Linear;
  readonly cls: tf.Variable;
  readonly pos: tf.Variable;
  readonly normPre: LayerNorm;
  readonly blocks: ViTBlock[];
  readonly norm: LayerNorm;

  constructor(cfg: ViTConfig, store: ParamStore, readonly prefix = 'vit') {
    this.cfg = resolveViTConfig(cfg);
    const c = this.cfg;
    this.numPatches = (c.imageSize / c.patchSize) ** 2;
    this.patchEmbed = new Linear(store, `${prefix}.patch_embed`, c.patchSize * c.patchSize * c.channels, c.dim, { initStd: c.initStd });
    this.cls = store.param(`${prefix}.cls`, [c.dim], { kind: 'normal', std: c.initStd });
    this.pos = store.param(`${prefix}.pos`, [1 + this.numPatches, c.dim], { kind: 'normal', std: c.initStd });
    // CLIP's ln_pre: normalises the summed embeddings before the first block.
    this.normPre = new LayerNorm(store, `${prefix}.norm_pre`, c.dim, { eps: c.normEps });
    this.blocks = Array.from({ length: c.depth }, (_, i) => new ViTBlock(store, `${prefix}.blocks.${i}`, c));
    this.norm = new LayerNorm(store, `${prefix}.norm`, c.dim, { eps: c.normEps });
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

  /**
   * images [b, hh, ww, c] (NHWC, already normalised) → CLS [b, d] and patches [b, n, d] of the
   * chosen layer, after the final LayerNorm (CLIP's ln_post), whichever layer is read.
   */
  forward(images: tf.Tensor4D, opts: ViTForwardOptions = {}): ViTOutput {
    return tf.tidy(() => {
      const { imageSize, channels, dim, patchSize } = this.cfg;
      const [b, hh, ww, c] = images.shape;
      if (images.rank !== 4 || hh !== imageSize || ww !== imageSize || c !== channels) {
        throw new Error(`ViT.forward: images must be [b, ${imageSize}, ${imageSize}, ${channels}] (NHWC), got [${images.shape}]`);
      }
      const nBlocks = this.resolveLayer(opts.layer);
      const n = this.numPatches;
      const tokens = this.patchEmbed.apply(patchify(images, patchSize)); // [b, n, d]
      const cls = tf.tile(tf.reshape(this.cls, [1, 1, dim]), [b, 1, 1]); // [b, 1, d]
      let x = tf.add(tf.concat([cls, tokens], 1), this.pos) as tf.Tensor3D; // [b, 1 + n, d]
      x = this.normPre.apply(x);
      for (let i = 0; i < nBlocks; i++) x = this.blocks[i].forward(x);
      const out = this.norm.apply(x);
      return {
        cls: tf.reshape(tf.slice(out, [0, 0, 0], [b, 1, dim]), [b, dim]) as tf.Tensor2D,
        patches: tf.slice(out, [0, 1, 0], [b, n, dim]) as tf.Tensor3D,
      };
    });
  }
}
