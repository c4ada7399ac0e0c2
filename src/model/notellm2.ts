/**
 * The composed representation model — read this file first.
 *
 *   image ─► ViT ─► CLS, patches ─► connector ─► image tokens ─┐ (early fusion: spliced at <IMG>)
 *   note  ─► prompt (basic | mICL | text) ─► token embeddings ──┴► causal LM ─► h at n_m (and n_v)
 *   CLS ─► W_v ─► v ──► late-fusion gate(h, v) ─► ĥ ─► W_o ─► L2-normalise ─► 64-d embedding
 *
 * Which arrows exist is decided by the config (docs/method.md variant table), once, in the
 * constructor; forward() follows whatever was built. The model returns embeddings (and, on
 * request, attentions); losses live in src/train/loss.ts.
 *
 * Dimension legend: b batch, t tokens, n vision tokens, dv vision width, d LM width, o output.
 */
import { tf } from '../backend';
import type { ParamStore } from './params';
import { Linear } from './layers';
import { ViT } from './vit';
import { createConnector, type Connector } from './connector';
import { DecoderLM } from './lm';
import { LateFusionGate } from './fusion';
import type { ResolvedModelConfig } from './config';

/**
 * Output of a (possibly frozen and cached) vision encoder for a batch. Whatever the encoder
 * (this project's ViT, CLIP, SigLIP), `cls` is ViTOutput.cls — the CLS token, or SigLIP's
 * attention-pooled output standing in for it — so nothing here depends on which it is.
 */
export interface VisionFeatures {
  /** [b, dv] the global feature the late-fusion gate reads. */
  cls: tf.Tensor2D;
  /**
   * [b, 1 + n, dv] the global feature followed by the n patch tokens (ViTOutput.patches: normed
   * for this ViT and SigLIP, CLIP's raw last-layer tokens); the Q-Former cross-attends to all of
   * them, the MLP connector reads the patches.
   */
  tokens: tf.Tensor3D;
}

export interface ModelInputs {
  /** int32 [b, t], right-padded; the image slots hold the `<IMG>` id. */
  ids: tf.Tensor2D;
  /** Position of n_m (the prompt's final token) per example. */
  lastIndex: number[];
  /** Position of n_v (the token before `<IMG_EMB>`), the same for every example; −1 without mICL. */
  visualIndex: number;
  /** First image slot, the same for every example (the image leads the prompt); −1 without image tokens. */
  imageStart: number;
  /** Normalised images [b, H, W, 3]; or pass `vision` computed beforehand. */
  images?: tf.Tensor4D;
  vision?: VisionFeatures;
}

export interface ForwardOptions {
  /** One multiplicative attention mask per LM layer (saliency: A ⊙ M with M = 1). */
  attnMasks?: tf.Tensor[];
  returnAttentions?: boolean;
}

export interface ModelOutputs {
  /** [b, o] L2-normalised multimodal note embedding n_m (what retrieval uses). */
  nm: tf.Tensor2D;
  /** [b, o] L2-normalised visual note embedding n_v (mICL only). */
  nv?: tf.Tensor2D;
  /** [b, d] mean gate value z per feature (late fusion only): 1 = all LM, 0 = all vision. */
  gate?: tf.Tensor2D;
  /** LM attention probabilities per layer [b, h, t, t] when requested. */
  attentions?: tf.Tensor4D[];
}

export class NoteLLM2Model {
  readonly vit: ViT | null;
  readonly connector: Connector | null;
  readonly lm: DecoderLM;
  readonly gate: LateFusionGate | null;
  readonly head: Linear;
  /** Image tokens the prompt must hold (the connector's output count); 0 without early fusion. */
  readonly imageTokens: number;

  /**
   * `parts.lm`: an LLM built beforehand on the same store under prefix 'lm' (an imported one, or
   * one laid out for --lm-train by lm-train.ts); its width must be cfg.lm's.
   */
  constructor(readonly cfg: ResolvedModelConfig, readonly store: ParamStore, parts: { lm?: DecoderLM } = {}) {
    const usesVision = cfg.earlyFusion || cfg.lateFusion;
    this.vit = usesVision ? new ViT(cfg.vision, store, 'vit') : null;
    if (parts.lm && (parts.lm.prefix !== 'lm' || parts.lm.cfg.dim !== cfg.lm.dim || parts.lm.cfg.vocabSize !== cfg.lm.vocabSize)) {
      throw new Error(`NoteLLM2Model: the given LLM (prefix ${parts.lm.prefix}, width ${parts.lm.cfg.dim}, vocabulary ${parts.lm.cfg.vocabSize}) does not match the config (prefix lm, width ${cfg.lm.dim}, vocabulary ${cfg.lm.vocabSize})`);
    }
    this.lm = parts.lm ?? new DecoderLM(cfg.lm, store, 'lm');
    const dv = cfg.vision.dim;
    const d = cfg.lm.dim;
    this.connector = cfg.earlyFusion ? createConnector(cfg.connector, store, dv, d, 'connector') : null;
    this.imageTokens = this.connector && this.vit ? this.connector.numTokens(this.connectorInputTokens()) : 0;
    this.gate = cfg.lateFusion ? new LateFusionGate(store, 'fusion', dv, d) : null;
    // Output head: Linear(d → 64, no bias) (docs/method.md "Architecture").
    this.head = new Linear(store, 'head', d, cfg.outDim, { bias: false });
  }

  /** The Q-Former reads CLS + patches (the paper's "CLS + patch tokens"); the MLP connector the patches (LLaVA). */
  private connectorInputTokens(): number {
    const n = this.vit!.numPatches;
    return this.cfg.connector.kind === 'qformer' ? n + 1 : n;
  }

  /** Runs the vision encoder: images [b, H, W, 3] → global feature [b, dv] and global + patch tokens [b, 1+n, dv]. */
  visionFeatures(images: tf.Tensor4D): VisionFeatures {
    if (!this.vit) throw new Error('visionFeatures: this configuration has no vision encoder (earlyFusion and lateFusion are both off)');
    return tf.tidy(() => {
      const { cls, patches } = this.vit!.forward(images);
      const tokens = tf.concat([tf.expandDims(cls, 1), patches], 1) as tf.Tensor3D;
      return { cls, tokens };
    });
  }

  /**
   * Splices image tokens [b, q, d] into token embeddings [b, t, d] at the image slots
   * (early fusion, LLaVA-style). The prompt encoder expanded `<IMG>` into exactly `imageTokens`
   * slots; a mismatch means prompt and connector disagree, and is an error naming both counts.
   */
  splice(tokenEmbeds: tf.Tensor3D, imageEmbeds: tf.Tensor3D, imageStart: number): tf.Tensor3D {
    const [b, t, d] = tokenEmbeds.shape;
    const q = imageEmbeds.shape[1];
    if (q !== this.imageTokens) {
      throw new Error(`splice: the connector produced ${q} image tokens but the prompt holds ${this.imageTokens} image slots`);
    }
    if (imageEmbeds.shape[0] !== b || imageEmbeds.shape[2] !== d) {
      throw new Error(`splice: image tokens [${imageEmbeds.shape}] do not match token embeddings [${tokenEmbeds.shape}] in batch or width`);
    }
    if (imageStart < 0 || imageStart + q > t) {
      throw new Error(`splice: image slots ${imageStart}…${imageStart + q - 1} fall outside the ${t}-token prompt`);
    }
    return tf.tidy(() => {
      const parts: tf.Tensor3D[] = [];
      if (imageStart > 0) parts.push(tf.slice(tokenEmbeds, [0, 0, 0], [b, imageStart, d]));
      parts.push(imageEmbeds);
      const rest = t - imageStart - q;
      if (rest > 0) parts.push(tf.slice(tokenEmbeds, [0, imageStart + q, 0], [b, rest, d]));
      return tf.concat(parts, 1) as tf.Tensor3D;
    });
  }

  /** Embeds a batch of prompts (and images): the forward pass of docs/method.md's architecture. */
  forward(x: ModelInputs, opts: ForwardOptions = {}): ModelOutputs {
    // tf.tidy keeps tensors nested in the returned object; its type wants a TensorContainer.
    return tf.tidy(() => this.forwardInner(x, opts) as unknown as tf.TensorContainer) as unknown as ModelOutputs;
  }

  private forwardInner(x: ModelInputs, opts: ForwardOptions): ModelOutputs {
    const [b, t] = x.ids.shape;
    if (x.lastIndex.length !== b) throw new Error(`forward: lastIndex has ${x.lastIndex.length} entries for a batch of ${b}`);
    if (this.cfg.micl && x.visualIndex < 0) throw new Error('forward: an mICL model needs visualIndex (the token before <IMG_EMB>)');
    if (this.cfg.earlyFusion && x.imageStart < 0) throw new Error('forward: an early-fusion model needs image slots in the prompt (imageStart)');
    const vision = this.vit ? (x.vision ?? (x.images ? this.visionFeatures(x.images) : null)) : null;
    if (this.vit && !vision) throw new Error('forward: this configuration uses the image: pass images or vision features');

    let embeds = this.lm.embed(x.ids); // [b, t, d]
    if (this.connector && vision) {
      const connIn = this.cfg.connector.kind === 'qformer' ? vision.tokens : (tf.slice(vision.tokens, [0, 1, 0], [-1, -1, -1]) as tf.Tensor3D);
      embeds = this.splice(embeds, this.connector.apply(connIn), x.imageStart);
    }
    const out = this.lm.forward(embeds, { attnMasks: opts.attnMasks, returnAttentions: opts.returnAttentions });
    const h = out.last; // [b, t, d]

    // n_m at each example's final token: a one-hot [b, t] reduction (no gather, whose
    // gradient some backends lack).
    const pick = new Float32Array(b * t);
    x.lastIndex.forEach((i, row) => {
      if (i < 0 || i >= t) throw new Error(`forward: lastIndex ${i} of example ${row} is outside 0…${t - 1}`);
      pick[row * t + i] = 1;
    });
    const hm = tf.sum(tf.mul(h, tf.tensor3d(pick, [b, t, 1])), 1) as tf.Tensor2D; // [b, d]
    const hv = this.cfg.micl ? (tf.reshape(tf.slice(h, [0, x.visualIndex, 0], [b, 1, -1]), [b, -1]) as tf.Tensor2D) : null;

    const result: ModelOutputs = { nm: hm };
    let v: tf.Tensor2D | null = null;
    if (this.gate && vision) {
      v = this.gate.visual(vision.cls);
      result.gate = this.gate.gate(hm, v);
    }
    const finish = (hh: tf.Tensor2D): tf.Tensor2D => {
      const fused = this.gate && v ? this.gate.apply(hh, v) : hh;
      const e = this.head.apply(fused); // [b, o]
      return tf.div(e, tf.maximum(tf.norm(e, 'euclidean', 1, true), 1e-12)) as tf.Tensor2D;
    };
    result.nm = finish(hm);
    if (hv) result.nv = finish(hv);
    if (out.attentions) result.attentions = out.attentions;
    return result;
  }
}
