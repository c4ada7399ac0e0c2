/**
 * Modality saliency (docs/method.md "Modality saliency"): where does the note embedding n_m look?
 *
 * Following "Label Words are Anchors", every LM layer's attention probabilities P are
 * multiplied by a ones mask M that carries gradient (A = P ⊙ M, src/model/attention.ts), the
 * multimodal contrastive loss L_m (in-batch InfoNCE on n_m of a pairs batch, τ from the model
 * store) is back-propagated to the masks, and per layer
 *
 *     I_l = | Σ_heads A_{h,l} ⊙ ∂L/∂A_{h,l} |        (diagonal set to 0)
 *
 * Since A = P ⊙ M, ∂L/∂M_h = P_h ⊙ ∂L/∂A_h = A_h ⊙ ∂L/∂A_h at M = 1, so I_l = |Σ_h ∂L/∂M_h|.
 * One mask [b, 1, t, t] per layer, broadcast over the heads, yields that head sum directly:
 * the gradient of a broadcast operand is the sum over the broadcast axis.
 *
 * With the final token f (n_m, per example: prompts are right-padded) as the target:
 *
 *   S_v = mean_{j ∈ image}          I_l[f, j]
 *   S_t = mean_{j ∈ text, j < f}    I_l[f, j]     text = real, non-image tokens
 *   S_o = mean_{i > j, i < f}       I_l[i, j]     every other causal pair of real tokens
 *
 * per example, averaged over examples and batches, then normalised so S_v + S_t + S_o = 1
 * per layer. The pairs counted in S_v and S_t are exactly the rows i = f, so S_o takes the
 * rows i < f. Alongside: the plain attention mass from f to the image and to the text tokens
 * (mean over heads, summed over the span), `attnImage` and `attnText`.
 *
 * Image span: the image slots, i.e. the connector's tokens spliced in at `<IMG>`
 * (`imageStart … imageStart + imageTokens − 1`). Under mICL these are the slots of the image
 * part; the image part's template words and `<IMG_EMB>` count as text — they are words the
 * LM reads, not the image. Models whose prompt holds no image tokens (text-only, late-only)
 * get S_v = 0 and attnImage = 0.
 *
 * Legend: b examples (2B notes of B pairs), h heads, t tokens, L layers.
 */
import { tf } from '../backend';
import type { ModelInputs, NoteLLM2Model } from '../model/notellm2';
import { infoNce, DEFAULT_TAU_INIT } from '../train/loss';
import { TAU_PATH } from '../train/representation';

/** One layer's saliency shares (normalised) and attention mass from the final token. */
export interface ModalitySaliencyLayer {
  /** Share of the final token's information flow that comes from the image tokens. */
  sv: number;
  /** Share that comes from the text tokens. */
  st: number;
  /** Share of all other token pairs. */
  so: number;
  /** Attention probability mass from the final token onto the image tokens (mean over heads). */
  attnImage: number;
  /** Attention probability mass from the final token onto the text tokens (mean over heads). */
  attnText: number;
}

export interface SaliencyResult {
  layers: ModalitySaliencyLayer[];
  /** Examples (notes) averaged over. */
  examples: number;
  /** Unnormalised per-layer means {sv, st, so} (before S_v + S_t + S_o = 1). */
  raw: Array<{ sv: number; st: number; so: number }>;
  /** Mean multimodal contrastive loss L_m over the batches. */
  loss: number;
}

export interface SaliencyOptions {
  /** Temperature τ (logit scale exp τ). Defaults to the model store's `loss.tau`, else 3.0. */
  tau?: number;
}

/** Per-batch maps: the signed head-summed mask gradients and the head-mean attention. */
export interface SaliencyMaps {
  b: number;
  t: number;
  /** Per layer, row-major [b, t, t]: Σ_h ∂L/∂M_h at M = 1 (= Σ_h A_h ⊙ ∂L/∂A_h), signed. */
  grads: Float32Array[];
  /** Per layer, row-major [b, t, t]: attention probabilities averaged over the heads. */
  attention: Float32Array[];
  loss: number;
}

/** Where an example's tokens are: final token f and the image slots [imageStart, imageEnd). */
export interface SaliencySpans {
  lastIndex: readonly number[];
  /** First image slot, −1 without image tokens. */
  imageStart: number;
  /** Number of image slots (0 without image tokens). */
  imageTokens: number;
}

function resolveTau(model: NoteLLM2Model, opts: SaliencyOptions): number {
  if (opts.tau !== undefined) {
    if (!Number.isFinite(opts.tau)) throw new Error(`saliency: tau must be a finite number, got ${opts.tau}`);
    return opts.tau;
  }
  return model.store.has(TAU_PATH) ? model.store.get(TAU_PATH).dataSync()[0] : DEFAULT_TAU_INIT;
}

/**
 * The multimodal contrastive loss L_m of one pairs batch (rows [a; b]) with the given
 * attention masks: InfoNCE on n_m only (under mICL the n_v term is left out: the saliency is
 * that of the multimodal embedding).
 */
export function multimodalLoss(model: NoteLLM2Model, inputs: ModelInputs, tau: number, attnMasks?: tf.Tensor[]): tf.Scalar {
  return tf.tidy(() => {
    const n = inputs.lastIndex.length;
    if (n < 2 || n % 2 !== 0) throw new Error(`saliency: a pairs batch holds 2B rows [a; b], got ${n} rows`);
    const out = model.forward(inputs, { attnMasks });
    const b = n / 2;
    const half = (k: 0 | 1) => tf.slice(out.nm, [k * b, 0], [b, -1]) as tf.Tensor2D;
    return infoNce(half(0), half(1), tf.scalar(tau));
  });
}

/**
 * Runs the vision encoder outside the gradient pass when the batch carries raw images, so
 * the backward pass covers the LM only. Returns inputs to use and what to dispose.
 */
function withVisionFeatures(model: NoteLLM2Model, inputs: ModelInputs): { inputs: ModelInputs; owned: tf.Tensor[] } {
  if (!model.vit || inputs.vision || !inputs.images) return { inputs, owned: [] };
  const vision = model.visionFeatures(inputs.images);
  return { inputs: { ...inputs, images: undefined, vision }, owned: [vision.cls, vision.tokens] };
}

/**
 * Σ_h ∂L_m/∂M_h per layer (M = 1, [b, 1, t, t] broadcast over heads) and the head-mean
 * attention of one pairs batch. Nothing is left allocated.
 */
export function saliencyMaps(model: NoteLLM2Model, batch: ModelInputs, opts: SaliencyOptions = {}): SaliencyMaps {
  const tau = resolveTau(model, opts);
  const [b, t] = batch.ids.shape;
  const nLayers = model.lm.cfg.nLayers;
  const { inputs, owned } = withVisionFeatures(model, batch);
  const maps: SaliencyMaps = { b, t, grads: [], attention: [], loss: NaN };
  try {
    // Typed arrays are filled inside the tidy rather than returned from it: tidy would walk
    // every element of a returned array looking for tensors.
    tf.tidy(() => {
      const masks = Array.from({ length: nLayers }, () => tf.ones([b, 1, t, t]));
      const f = (...m: tf.Tensor[]) => multimodalLoss(model, inputs, tau, m);
      const { value, grads } = tf.valueAndGrads(f)(masks);
      maps.loss = value.dataSync()[0];
      for (const g of grads) maps.grads.push(Float32Array.from(g.dataSync() as Float32Array)); // [b, 1, t, t]
      const out = model.forward(inputs, { returnAttentions: true });
      for (const a of out.attentions!) maps.attention.push(Float32Array.from(tf.mean(a, 1).dataSync() as Float32Array)); // [b, t, t]
    });
    return maps;
  } finally {
    tf.dispose(owned);
  }
}

/** I_l = |Σ_h ∂L/∂M_h| with the diagonal set to 0, [b, t, t] (docs/method.md "Modality saliency"). */
export function saliencyMatrix(grads: Float32Array, b: number, t: number): Float32Array {
  if (grads.length !== b * t * t) throw new Error(`saliencyMatrix: ${grads.length} values for [${b}, ${t}, ${t}]`);
  const out = new Float32Array(grads.length);
  for (let k = 0; k < grads.length; k++) out[k] = Math.abs(grads[k]);
  for (let e = 0; e < b; e++) for (let i = 0; i < t; i++) out[e * t * t + i * t + i] = 0;
  return out;
}

/** Per-example sums of one layer, to be averaged over examples. */
interface LayerSums {
  sv: number;
  st: number;
  so: number;
  attnImage: number;
  attnText: number;
}

/**
 * Reduces one layer's I [b, t, t] and head-mean attention [b, t, t] to per-example
 * S_v, S_t, S_o and attention masses, summed over the examples (divide by b for the mean).
 * Positions after each example's final token (padding) are never read.
 */
export function reduceSaliencyLayer(saliency: Float32Array, attention: Float32Array, b: number, t: number, spans: SaliencySpans): LayerSums {
  if (spans.lastIndex.length !== b) throw new Error(`reduceSaliencyLayer: ${spans.lastIndex.length} final positions for ${b} examples`);
  const hasImage = spans.imageStart >= 0 && spans.imageTokens > 0;
  const i0 = hasImage ? spans.imageStart : 0;
  const i1 = hasImage ? spans.imageStart + spans.imageTokens : 0;
  const sums: LayerSums = { sv: 0, st: 0, so: 0, attnImage: 0, attnText: 0 };
  for (let e = 0; e < b; e++) {
    const f = spans.lastIndex[e];
    if (!Number.isInteger(f) || f < 0 || f >= t) throw new Error(`reduceSaliencyLayer: final position ${f} of example ${e} is outside 0…${t - 1}`);
    if (hasImage && i1 > f) throw new Error(`reduceSaliencyLayer: image slots ${i0}…${i1 - 1} of example ${e} reach its final token ${f}`);
    const base = e * t * t;
    const row = base + f * t;
    // Final row: image and text columns (j < f; the diagonal is not a source).
    let sImg = 0, aImg = 0, sTxt = 0, aTxt = 0;
    for (let j = 0; j < f; j++) {
      if (j >= i0 && j < i1) {
        sImg += saliency[row + j];
        aImg += attention[row + j];
      } else {
        sTxt += saliency[row + j];
        aTxt += attention[row + j];
      }
    }
    const nImg = i1 - i0;
    const nTxt = f - nImg;
    sums.sv += nImg > 0 ? sImg / nImg : 0;
    sums.st += nTxt > 0 ? sTxt / nTxt : 0;
    sums.attnImage += aImg;
    sums.attnText += aTxt;
    // Every other causal pair of real tokens: rows 1 … f−1, columns j < i.
    let sOther = 0;
    for (let i = 1; i < f; i++) {
      const r = base + i * t;
      for (let j = 0; j < i; j++) sOther += saliency[r + j];
    }
    const nOther = (f * (f - 1)) / 2;
    sums.so += nOther > 0 ? sOther / nOther : 0;
  }
  return sums;
}

/**
 * Modality saliency of a model over pairs batches (each ModelInputs holds 2B rows [a; b],
 * as the representation loss uses them): per layer S_v, S_t, S_o (normalised to sum 1) and
 * the attention mass of the final token on image and text tokens.
 */
export function computeSaliency(model: NoteLLM2Model, batches: readonly ModelInputs[], opts: SaliencyOptions = {}): SaliencyResult {
  if (batches.length === 0) throw new Error('computeSaliency: no batches given');
  const nLayers = model.lm.cfg.nLayers;
  const totals: LayerSums[] = Array.from({ length: nLayers }, () => ({ sv: 0, st: 0, so: 0, attnImage: 0, attnText: 0 }));
  let examples = 0;
  let lossSum = 0;
  for (const batch of batches) {
    const maps = saliencyMaps(model, batch, opts);
    const spans: SaliencySpans = {
      lastIndex: batch.lastIndex,
      imageStart: model.imageTokens > 0 ? batch.imageStart : -1,
      imageTokens: model.imageTokens,
    };
    for (let l = 0; l < nLayers; l++) {
      const s = reduceSaliencyLayer(saliencyMatrix(maps.grads[l], maps.b, maps.t), maps.attention[l], maps.b, maps.t, spans);
      for (const k of Object.keys(s) as (keyof LayerSums)[]) totals[l][k] += s[k];
    }
    examples += maps.b;
    lossSum += maps.loss;
  }
  const raw = totals.map((s) => ({ sv: s.sv / examples, st: s.st / examples, so: s.so / examples }));
  const layers = totals.map((s, l) => {
    const r = raw[l];
    const total = r.sv + r.st + r.so;
    // A layer through which no gradient flows (total 0) has no shares to give.
    const norm = total > 0 ? 1 / total : 0;
    return { sv: r.sv * norm, st: r.st * norm, so: r.so * norm, attnImage: s.attnImage / examples, attnText: s.attnText / examples };
  });
  return { layers, examples, raw, loss: lossSum / batches.length };
}
