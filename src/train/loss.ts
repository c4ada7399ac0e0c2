/**
 * Training objectives (docs/method.md "Training objective"):
 *
 * - symmetric in-batch InfoNCE over the 2B notes of B related pairs, with a learnable
 *   temperature τ used as exp(τ) and the self-similarity masked out;
 * - the mICL combination `(w_t·L_m + w_v·L_v) / (w_t + w_v)`, default 9 : 1;
 * - NoteLLM's generative combination `(L_cl + α·L_gen) / (1 + α)`, default α = 0.01;
 * - token-level cross-entropy with an ignore index (LM pretraining, the generative term).
 *
 * Legend: B pairs per batch, N = 2B notes, D embedding width, T sequence length, V vocabulary.
 *
 * Every function here is differentiable through one-hot masks and multiplies only: the wasm
 * backend has no UnsortedSegmentSum, which the gradient of `gather` needs.
 */
import { tf } from '../backend';

/** The paper's initial temperature: exp(3.0) ≈ 20.1 as the logit scale. */
export const DEFAULT_TAU_INIT = 3.0;
/** docs/method.md: mICL weights text : vision = 9 : 1. */
export const DEFAULT_MICL_WEIGHTS = { text: 9, vision: 1 } as const;
/** docs/method.md "Training objective" (NoteLLM): weight of the generative term. */
export const DEFAULT_GEN_ALPHA = 0.01;
/** Label value that `tokenCrossEntropy` skips (the PyTorch convention). */
export const IGNORE_INDEX = -100;

/**
 * Added to the masked (self-similarity) logits. Large enough that exp(s − MASK) underflows to
 * exactly 0 in float32 for any |s| ≤ exp(τ) that training can reach, small enough that s + MASK
 * stays finite (−Infinity would turn 0 · −Infinity into NaN in the one-hot product below).
 */
const SELF_MASK = -1e9;

/**
 * The learnable temperature τ as a scalar variable (used as exp(τ); docs/method.md: init 3.0).
 * tfjs variable names are process-global, so `name` defaults to an automatic unique one;
 * register τ in the trained parameter set as e.g. "loss.tau" (being a scalar, the optimiser's
 * default filter excludes it from weight decay).
 */
export function createTemperature(init: number = DEFAULT_TAU_INIT, name?: string): tf.Variable {
  if (!Number.isFinite(init)) throw new Error(`createTemperature: init must be finite, got ${init}`);
  return tf.tidy(() => tf.variable(tf.scalar(init, 'float32'), true, name));
}

/** Row-wise L2 normalisation: x / max(‖x‖, eps). [N, D] → [N, D]. */
export function l2Normalize(x: tf.Tensor2D, eps = 1e-12): tf.Tensor2D {
  return tf.tidy(() => {
    const norm = tf.sqrt(tf.sum(tf.square(x), 1, true)); // [N, 1]
    return tf.div(x, tf.maximum(norm, eps)) as tf.Tensor2D;
  });
}

/**
 * Symmetric in-batch InfoNCE (docs/method.md "Training objective").
 *
 * a[i] and b[i] are the embeddings of a related pair. The 2B notes e = [a; b] each act as an
 * anchor: s_ij = exp(τ)·cos(e_i, e_j) over all j ≠ i (the diagonal is masked), and the loss
 * is the cross-entropy whose target for a_i is b_i and for b_i is a_i, averaged over the 2B
 * anchors. The other 2B − 2 notes of the batch are the negatives.
 *
 * Inputs need not be normalised: the cosine is computed here (rows are L2-normalised inside),
 * so callers may pass the model's already-normalised output without harm (normalising is
 * idempotent) or raw features.
 *
 * @param a   [B, D] first notes of the pairs
 * @param b   [B, D] their partners
 * @param tau scalar tensor or variable τ; the logit scale is exp(τ)
 * @returns   scalar loss
 */
export function infoNce(a: tf.Tensor2D, b: tf.Tensor2D, tau: tf.Tensor): tf.Scalar {
  if (a.rank !== 2 || b.rank !== 2) {
    throw new Error(`infoNce: a and b must be [B, D], got a ${JSON.stringify(a.shape)}, b ${JSON.stringify(b.shape)}`);
  }
  if (a.shape[0] !== b.shape[0] || a.shape[1] !== b.shape[1]) {
    throw new Error(`infoNce: a ${JSON.stringify(a.shape)} and b ${JSON.stringify(b.shape)} must have the same shape [B, D]`);
  }
  if (a.shape[0] < 1) throw new Error('infoNce: the batch must hold at least one pair');
  if (tau.size !== 1) throw new Error(`infoNce: tau must be a scalar, got shape ${JSON.stringify(tau.shape)}`);
  const B = a.shape[0];
  const N = 2 * B;
  return tf.tidy(() => {
    const e = l2Normalize(tf.concat([a, b], 0) as tf.Tensor2D); // [N, D]
    // e·eᵀ through an explicit transpose: wasm's matMul with transposeB misses its fast GEMM.
    const cos = tf.matMul(e, tf.transpose(e)); // [N, N]
    const logits = tf.add(tf.mul(cos, tf.exp(tf.reshape(tau, []))), selfMask(N)); // [N, N]
    const logProb = tf.logSoftmax(logits, 1); // [N, N]
    // −log p(partner | anchor): select the partner column with a one-hot multiply.
    const picked = tf.sum(tf.mul(logProb, partnerOneHot(B)), 1); // [N]
    return tf.neg(tf.mean(picked)) as tf.Scalar;
  });
}

/** [N, N] with SELF_MASK on the diagonal, 0 elsewhere (a constant: no gradient flows). */
function selfMask(n: number): tf.Tensor2D {
  const m = new Float32Array(n * n);
  for (let i = 0; i < n; i++) m[i * n + i] = SELF_MASK;
  return tf.tensor2d(m, [n, n]);
}

/** [2B, 2B] one-hot of each note's partner: row i → column (i + B) mod 2B. */
function partnerOneHot(b: number): tf.Tensor2D {
  const n = 2 * b;
  const m = new Float32Array(n * n);
  for (let i = 0; i < n; i++) m[i * n + ((i + b) % n)] = 1;
  return tf.tensor2d(m, [n, n]);
}

/**
 * mICL loss (docs/method.md): `(w_t·L_m + w_v·L_v) / (w_t + w_v)`, where L_m is the InfoNCE of the
 * multimodal embeddings n_m and L_v that of the visual embeddings n_v. Defaults 9 : 1.
 */
export function miclLoss(
  lossMultimodal: tf.Scalar,
  lossVisual: tf.Scalar,
  weights: { text: number; vision: number } = DEFAULT_MICL_WEIGHTS,
): tf.Scalar {
  const { text, vision } = weights;
  if (!(text >= 0) || !(vision >= 0) || !(text + vision > 0)) {
    throw new Error(
      `miclLoss: weights must be non-negative with a positive sum, got text=${text}, vision=${vision}`,
    );
  }
  return tf.tidy(() =>
    tf.div(tf.add(tf.mul(lossMultimodal, text), tf.mul(lossVisual, vision)), text + vision) as tf.Scalar,
  );
}

/** NoteLLM's combination with the generative term (docs/method.md): `(L_cl + α·L_gen) / (1 + α)`. */
export function withGenerativeLoss(
  lossContrastive: tf.Scalar,
  lossGenerative: tf.Scalar,
  alpha: number = DEFAULT_GEN_ALPHA,
): tf.Scalar {
  if (!(alpha >= 0)) throw new Error(`withGenerativeLoss: alpha must be ≥ 0, got ${alpha}`);
  return tf.tidy(() => tf.div(tf.add(lossContrastive, tf.mul(lossGenerative, alpha)), 1 + alpha) as tf.Scalar);
}

/**
 * Next-token targets from token ids: targets[b][t] = ids[b][t + 1], the last position (and any
 * position whose next id is `padId`) gets IGNORE_INDEX. Pair with logits computed on `ids`.
 */
export function shiftForNextToken(ids: readonly (readonly number[])[], padId?: number): number[][] {
  return ids.map((row) =>
    row.map((_, t) => {
      if (t + 1 >= row.length) return IGNORE_INDEX;
      const next = row[t + 1];
      return padId !== undefined && next === padId ? IGNORE_INDEX : next;
    }),
  );
}

/**
 * Mean token cross-entropy over the positions whose target is not `ignoreIndex`.
 *
 * @param logits  [B, T, V] (or [M, V]) unnormalised scores
 * @param targets [B, T] (or [M]) class ids aligned with the logits' positions (use
 *                `shiftForNextToken` for language modelling); `ignoreIndex` marks skipped ones
 * @returns scalar; 0 when every position is ignored
 */
export function tokenCrossEntropy(
  logits: tf.Tensor,
  targets: tf.Tensor | readonly number[] | readonly (readonly number[])[],
  ignoreIndex: number = IGNORE_INDEX,
): tf.Scalar {
  const V = logits.shape[logits.rank - 1];
  const flatTargets = targetsToArray(targets);
  const M = logits.size / V;
  if (flatTargets.length !== M) {
    throw new Error(
      `tokenCrossEntropy: logits ${JSON.stringify(logits.shape)} hold ${M} positions but targets hold ${flatTargets.length}`,
    );
  }
  // One-hot rows (all-zero for ignored positions) built in JS: no gather on the gradient path.
  const onehot = new Float32Array(M * V);
  let count = 0;
  for (let i = 0; i < M; i++) {
    const t = flatTargets[i];
    if (t === ignoreIndex) continue;
    if (!Number.isInteger(t) || t < 0 || t >= V) {
      throw new Error(`tokenCrossEntropy: target ${t} at flat position ${i} is not in [0, ${V}) nor ${ignoreIndex}`);
    }
    onehot[i * V + t] = 1;
    count++;
  }
  return tf.tidy(() => {
    const logProb = tf.logSoftmax(tf.reshape(logits, [M, V]) as tf.Tensor2D, 1); // [M, V]
    const nll = tf.neg(tf.sum(tf.mul(logProb, tf.tensor2d(onehot, [M, V])))); // scalar
    return tf.div(nll, Math.max(count, 1)) as tf.Scalar;
  });
}

function targetsToArray(targets: tf.Tensor | readonly number[] | readonly (readonly number[])[]): ArrayLike<number> {
  if (targets instanceof tf.Tensor) return targets.dataSync();
  const out: number[] = [];
  for (const t of targets as readonly (number | readonly number[])[]) {
    if (typeof t === 'number') out.push(t);
    else out.push(...t);
  }
  return out;
}
