/**
 * Unimodal vision-encoder pretraining: SimCLR-style instance discrimination (Chen et al.,
 * 2020). Each training image gives two randomly augmented views; a small projection head maps
 * the ViT's CLS token (the global feature late fusion reads, docs/method.md "Late fusion gate") to
 * z, and the symmetric in-batch InfoNCE over the 2B views (`infoNce`, self-similarity
 * masked) asks each view to pick out its sibling among the other 2B − 2. The head is
 * discarded afterwards (SimCLR: the layer before the head transfers better).
 *
 * No labels, no pairs, no text: nothing the representation training or the evaluation uses.
 *
 * Augmentations, and why:
 * - random resized crop (area 0.5–1 of the image, aspect ratio 3/4–4/3, bilinear resize to
 *   the ViT's input size) — invariance to framing and scale;
 * - horizontal flip — cover images have no preferred left/right;
 * - small Gaussian pixel noise (in normalised units) — invariance to sensor noise and JPEG
 *   artefacts.
 * Deliberately NO colour jitter or greyscale (SimCLR's strongest augmentations): they teach
 * the encoder to discard colour, and colour is a visual attribute the item-to-item
 * retrieval must see (in `synth`, notes related through their images share a style that
 * includes its colour). The crop is milder than SimCLR's 0.08–1 for the same reason: a tiny
 * crop can cut the object (its shape) out of the picture.
 *
 * Legend: B images per batch, N = 2B views, s = ViT input side, S = stored image side,
 * d ViT width, k projection width.
 */
import { Rng, tf } from '../backend';
import type { ImageStore } from '../data/images';
import type { ParamStore } from '../model/params';
import { Linear, gelu } from '../model/layers';
import type { ViT } from '../model/vit';
import { infoNce, l2Normalize } from './loss';
import type { TrainTask } from './trainer';

export interface AugmentConfig {
  /** Area fraction of the random crop, [min, max] within (0, 1]. Defaults to [0.5, 1]. */
  scale?: [number, number];
  /** Aspect ratio (width / height) range of the crop, sampled log-uniformly. Defaults to [3/4, 4/3]. */
  ratio?: [number, number];
  /** Random horizontal flip. Defaults to true. */
  flip?: boolean;
  /** Std of the Gaussian pixel noise, in CLIP-normalised units (≈ 0.27 per 0.07 of the 0–1 range). Defaults to 0.05. */
  noise?: number;
}

export type ResolvedAugmentConfig = Required<AugmentConfig>;

export function resolveAugmentConfig(cfg: AugmentConfig = {}): ResolvedAugmentConfig {
  const r: ResolvedAugmentConfig = {
    scale: cfg.scale ?? [0.5, 1],
    ratio: cfg.ratio ?? [3 / 4, 4 / 3],
    flip: cfg.flip ?? true,
    noise: cfg.noise ?? 0.05,
  };
  const [s0, s1] = r.scale;
  if (!(s0 > 0 && s0 <= s1 && s1 <= 1)) throw new Error(`pretrainVision: augment.scale must be [min, max] with 0 < min ≤ max ≤ 1, got ${JSON.stringify(r.scale)}`);
  const [r0, r1] = r.ratio;
  if (!(r0 > 0 && r0 <= r1 && Number.isFinite(r1))) throw new Error(`pretrainVision: augment.ratio must be [min, max] with 0 < min ≤ max, got ${JSON.stringify(r.ratio)}`);
  if (!(r.noise >= 0 && Number.isFinite(r.noise))) throw new Error(`pretrainVision: augment.noise must be a finite number ≥ 0, got ${r.noise}`);
  return r;
}

/**
 * One random-resized-crop box per view, in cropAndResize's normalised [y1, x1, y2, x2].
 * A flipped view swaps x1 and x2 (cropAndResize then samples the crop mirrored).
 * Draws, per view in order: area, log-ratio, x offset, y offset, flip.
 */
export function cropBoxes(n: number, aug: ResolvedAugmentConfig, rng: Rng): Float32Array {
  const boxes = new Float32Array(n * 4);
  const [s0, s1] = aug.scale;
  const [lr0, lr1] = [Math.log(aug.ratio[0]), Math.log(aug.ratio[1])];
  for (let i = 0; i < n; i++) {
    const area = s0 + (s1 - s0) * rng.next();
    const ratio = Math.exp(lr0 + (lr1 - lr0) * rng.next());
    const w = Math.min(1, Math.sqrt(area * ratio));
    const h = Math.min(1, Math.sqrt(area / ratio));
    const x0 = (1 - w) * rng.next();
    const y0 = (1 - h) * rng.next();
    const flip = aug.flip && rng.next() < 0.5;
    boxes.set(flip ? [y0, x0 + w, y0 + h, x0] : [y0, x0, y0 + h, x0 + w], i * 4);
  }
  return boxes;
}

/**
 * Two augmented views of each image: images [B, S, S, 3] (normalised) → [2B, s, s, 3], rows
 * 0 … B−1 the first views, B … 2B−1 the second views of the same images.
 */
export function augmentViews(images: tf.Tensor4D, outSize: number, aug: ResolvedAugmentConfig, rng: Rng): tf.Tensor4D {
  return tf.tidy(() => {
    const b = images.shape[0];
    const n = 2 * b;
    const boxes = tf.tensor2d(cropBoxes(n, aug, rng), [n, 4]);
    const boxInd = tf.tensor1d(Array.from({ length: n }, (_, i) => i % b), 'int32');
    let views = tf.image.cropAndResize(images, boxes, boxInd, [outSize, outSize], 'bilinear'); // [2B, s, s, 3]
    if (aug.noise > 0) views = tf.add(views, tf.tensor4d(rng.normalArray(views.size, aug.noise), views.shape as [number, number, number, number]));
    return views as tf.Tensor4D;
  });
}

/** Projection head g(h) = W₂·GELU(W₁·h + b₁) + b₂ (SimCLR's 2-layer MLP), params under `<path>`. */
export class ProjectionHead {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(store: ParamStore, path: string, dim: number, outDim: number) {
    this.fc1 = new Linear(store, `${path}.fc1`, dim, dim);
    this.fc2 = new Linear(store, `${path}.fc2`, dim, outDim);
  }
  /** [N, d] → [N, k] */
  apply(x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => this.fc2.apply(gelu(this.fc1.apply(x))));
  }
}

export interface ViewBatch {
  /** [2B, s, s, 3]: first views, then second views. */
  views: tf.Tensor4D;
}

/** SimCLR loss of a batch of view pairs: InfoNCE(g(CLS(view₁)), g(CLS(view₂))) at scale exp(τ). */
export function contrastiveLoss(vit: ViT, head: ProjectionHead, tau: tf.Tensor, b: ViewBatch): tf.Scalar {
  return tf.tidy(() => {
    const n = b.views.shape[0];
    const z = head.apply(vit.forward(b.views).cls); // [2B, k]
    const half = n / 2;
    return infoNce(tf.slice(z, [0, 0], [half, -1]), tf.slice(z, [half, 0], [half, -1]), tau);
  });
}

export interface VisionTaskData {
  store: ImageStore;
  train: readonly string[];
  val: readonly string[];
  outSize: number;
  aug: ResolvedAugmentConfig;
  /** Seed of the (fixed) validation views. */
  seed: number;
}

/** The two views of `ids` (first views then second views), as a tensor the caller owns. */
export function viewsOf(d: VisionTaskData, ids: readonly string[], rng: Rng): tf.Tensor4D {
  const images = d.store.batch(ids); // [B, S, S, 3]
  try {
    return augmentViews(images, d.outSize, d.aug, rng);
  } finally {
    images.dispose();
  }
}

/** The trainer's view of SimCLR: one example = one image (two views). */
export function visionTask(vit: ViT, head: ProjectionHead, tau: tf.Tensor, d: VisionTaskData): TrainTask<ViewBatch> {
  return {
    trainSize: d.train.length,
    valSize: d.val.length,
    notesPerExample: 2,
    batch(split, idx, rng) {
      const ids = idx.map((i) => (split === 'train' ? d.train : d.val)[i]);
      // Validation views are fixed (seeded by the batch's first index) so the curve compares like with like.
      const r = rng ?? new Rng(d.seed).fork(`val${idx[0]}`);
      return { views: viewsOf(d, ids, r) };
    },
    loss: (b) => contrastiveLoss(vit, head, tau, b),
    disposeBatch: (b) => b.views.dispose(),
  };
}

/** What `viewAgreement` measures (see there). */
export interface ViewAgreement {
  /** Share of views whose nearest opposite view is their sibling (both directions). */
  top1: number;
  /** 1/n, the top1 of an encoder that cannot tell the images apart. */
  chance: number;
  /** Mean cosine between sibling views minus the mean cosine between views of different images. */
  margin: number;
  n: number;
}

/**
 * Nearest-neighbour view agreement: embeds two augmented views of each image with the
 * encoder alone (CLS, no head), and counts how often a view's nearest neighbour (cosine)
 * among the other images' opposite views is its own sibling, averaged over both directions.
 * Chance is 1/n. A cheap, label-free check that the encoder tells images apart in a way that
 * survives the augmentations. `margin` adds how far apart: an untrained ViT maps every image
 * near the same point (its CLS is dominated by the shared CLS and position parameters), so
 * its top-1 can be high on easy images while its margin is tiny.
 */
export function viewAgreement(vit: ViT, d: VisionTaskData, ids: readonly string[], seed: number, batchSize = 64): ViewAgreement {
  const n = ids.length;
  if (n < 2) return { top1: NaN, chance: NaN, margin: NaN, n };
  const rng = new Rng(seed).fork('view-agreement');
  const parts1: tf.Tensor2D[] = [];
  const parts2: tf.Tensor2D[] = [];
  for (let i = 0; i < n; i += batchSize) {
    const chunk = ids.slice(i, i + batchSize);
    const views = viewsOf(d, chunk, rng.fork(`chunk${i}`));
    const [e1, e2] = tf.tidy(() => {
      const cls = l2Normalize(vit.forward(views).cls); // [2b, d]
      return [tf.slice(cls, [0, 0], [chunk.length, -1]), tf.slice(cls, [chunk.length, 0], [chunk.length, -1])] as tf.Tensor2D[];
    });
    views.dispose();
    parts1.push(e1);
    parts2.push(e2);
  }
  const simT = tf.tidy(() => tf.matMul(tf.concat(parts1, 0), tf.transpose(tf.concat(parts2, 0)))); // [n, n] cos(view₁ of i, view₂ of j)
  tf.dispose([...parts1, ...parts2]);
  const sim = simT.dataSync();
  simT.dispose();
  let hits = 0;
  let diag = 0;
  let off = 0;
  for (let i = 0; i < n; i++) {
    let bestRow = 0;
    let bestCol = 0;
    for (let j = 0; j < n; j++) {
      if (sim[i * n + j] > sim[i * n + bestRow]) bestRow = j;
      if (sim[j * n + i] > sim[bestCol * n + i]) bestCol = j;
      if (i === j) diag += sim[i * n + j];
      else off += sim[i * n + j];
    }
    hits += (bestRow === i ? 1 : 0) + (bestCol === i ? 1 : 0);
  }
  return { top1: hits / (2 * n), chance: 1 / n, margin: diag / n - off / (n * (n - 1)), n };
}
