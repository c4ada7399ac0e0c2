/**
 * Representation training (docs/method.md "Training objective") as a TrainTask: batches of related
 * pairs (a_i, b_i) → embeddings of the 2B notes → symmetric in-batch InfoNCE with the
 * learnable temperature τ; under mICL `(w_t·L_m + w_v·L_v)/(w_t + w_v)` over n_m and n_v.
 *
 * With the vision encoder frozen (the paper's default) its output for a note never changes,
 * so it is computed once per note (and once for the horizontally flipped image, the paper's
 * augmentation) and read from memory at every step; a tuned encoder runs on the images.
 * Given a folder, those features are also kept on disk, so the variants of a run (each in its
 * own process, all on the same frozen encoder) and a later evaluation compute them once.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng, tf } from '../backend';
import type { Note, Pair } from '../data/schema';
import type { ImageStore } from '../data/images';
import { cacheFileHead, readCacheFileHead } from '../data/cache-file';
import type { NoteLLM2Model, VisionFeatures, ModelOutputs } from '../model/notellm2';
import { PromptEncoder, toModelInputs } from '../model/batch';
import { infoNce, miclLoss } from './loss';
import type { ResolvedTrainConfig } from './config';
import type { Split, TrainTask } from './trainer';

/** Parameter path of the temperature τ (used as exp τ, docs/method.md init 3.0). */
export const TAU_PATH = 'loss.tau';

/** On-disk feature file (data/cache-file.ts framing): JSON header, then float32 cls rows and token rows. */
const FEATURES_MAGIC = 'NLM2VFC1';
const FEATURES_VERSION = 1;
/** Feature sets larger than this stay in memory only (an imported encoder's can run to gigabytes). */
const MAX_PERSISTED_FEATURE_BYTES = 1 << 30;

export interface FeatureCacheOptions {
  /** Also the features of each mirrored image (the flip augmentation of training). */
  flips?: boolean;
  /** Notes per encoder call. Defaults to 128. */
  chunk?: number;
  /**
   * Folder of the on-disk feature files. A file's key hashes the notes' image files (path,
   * modification time, size: ImageStore.fileKey), the options and the first chunk's features
   * (which any change of weights or normalisation alters), so a changed encoder or image
   * never reads stale features; with a file there, only the first chunk's images are decoded.
   */
  dir?: string;
}

/**
 * Whether the features of `notes` notes (and their mirrors with `flips`) of an encoder with
 * `numPatches` patches of width `dim` are kept in a feature file: per note and view one CLS
 * row and 1 + numPatches token rows of float32s, at most MAX_PERSISTED_FEATURE_BYTES in all.
 */
export function featuresPersist(notes: number, flips: boolean, numPatches: number, dim: number): boolean {
  return notes * (flips ? 2 : 1) * (2 + numPatches) * dim * 4 <= MAX_PERSISTED_FEATURE_BYTES;
}

/** A frozen encoder's features of many notes, plain and flipped, held as float32 arrays. */
export class VisionFeatureCache {
  private readonly rows = new Map<string, number>();
  private cls: Float32Array[] = [];
  private tokens: Float32Array[] = [];
  readonly dv: number;
  readonly nTokens: number;
  /** Whether the features were read from a feature file rather than computed (all but the first chunk). */
  fromDisk = false;

  private constructor(model: NoteLLM2Model) {
    this.dv = model.cfg.vision.dim;
    this.nTokens = 1 + model.vit!.numPatches;
  }

  /**
   * Runs the encoder over every listed note's image (and its mirror when `flips`), in chunks,
   * loading the images into the store as it needs them; see FeatureCacheOptions.dir.
   */
  static async build(model: NoteLLM2Model, images: ImageStore, noteIds: readonly string[], opts: FeatureCacheOptions = {}): Promise<VisionFeatureCache> {
    if (!model.vit) throw new Error('VisionFeatureCache: the model has no vision encoder');
    const cache = new VisionFeatureCache(model);
    const chunk = opts.chunk ?? 128;
    const views = opts.flips ? [false, true] : [false];
    const persist = opts.dir !== undefined && featuresPersist(noteIds.length, views.length > 1, model.vit.numPatches, cache.dv);
    // With a feature file possible, the first chunk's images first: the rest may never be needed.
    await images.load(persist ? noteIds.slice(0, chunk) : noteIds);
    let file: string | null = null;
    for (let i = 0; i < noteIds.length; i += chunk) {
      const ids = noteIds.slice(i, i + chunk);
      for (const flipped of views) {
        // Read back outside tf.tidy: returning big typed arrays from a tidy makes tfjs walk every element.
        const [clsT, tokensT] = tf.tidy(() => {
          let x = images.batch(ids);
          if (flipped) x = tf.reverse(x, 2); // mirror along W (NHWC)
          const f = model.visionFeatures(x);
          return [f.cls, f.tokens];
        });
        const cls = clsT.dataSync() as Float32Array;
        const tokens = tokensT.dataSync() as Float32Array;
        tf.dispose([clsT, tokensT]);
        const per = cache.nTokens * cache.dv;
        ids.forEach((id, j) => {
          cache.rows.set(`${flipped ? 'f' : 'p'}:${id}`, cache.cls.length);
          cache.cls.push(cls.slice(j * cache.dv, (j + 1) * cache.dv));
          cache.tokens.push(tokens.slice(j * per, (j + 1) * per));
        });
      }
      if (i === 0 && persist) {
        file = join(opts.dir!, `vision-features-${await cache.fingerprint(images, noteIds, chunk, views.length)}.bin`);
        if (cache.read(file)) return cache;
        await images.load(noteIds);
      }
    }
    if (file) cache.write(file);
    return cache;
  }

  /** Key of a feature file: the options, the notes' image files and the first chunk's features (computed already). */
  private async fingerprint(images: ImageStore, noteIds: readonly string[], chunk: number, views: number): Promise<string> {
    const h = createHash('sha256').update(JSON.stringify({ v: FEATURES_VERSION, n: noteIds.length, chunk, views, dv: this.dv, nTokens: this.nTokens, files: await images.fileKey(noteIds) }));
    for (const id of noteIds) h.update(`${id}\u0000`);
    for (const rows of [this.cls, this.tokens]) for (const r of rows) h.update(new Uint8Array(r.buffer, r.byteOffset, r.byteLength));
    return h.digest('hex').slice(0, 24);
  }

  /** Replaces the rows by a feature file's; false (nothing changed) when it is absent or not this set. */
  private read(file: string): boolean {
    if (!existsSync(file)) return false;
    try {
      const buf = readFileSync(file);
      const head = readCacheFileHead<{ version: number; dv: number; nTokens: number; keys: string[] }>(buf, FEATURES_MAGIC);
      if (!head) return false;
      const { header, bodyStart: start } = head;
      const n = header.keys.length;
      if (header.version !== FEATURES_VERSION || header.dv !== this.dv || header.nTokens !== this.nTokens || buf.length !== start + n * (1 + this.nTokens) * this.dv * 4) return false;
      const data = new Float32Array(buf.buffer.slice(buf.byteOffset + start, buf.byteOffset + buf.length)); // aligned copy
      const per = this.nTokens * this.dv;
      this.rows.clear();
      this.cls = header.keys.map((_, r) => data.subarray(r * this.dv, (r + 1) * this.dv));
      this.tokens = header.keys.map((_, r) => data.subarray(n * this.dv + r * per, n * this.dv + (r + 1) * per));
      header.keys.forEach((k, r) => this.rows.set(k, r));
      this.fromDisk = true;
      return true;
    } catch {
      return false; // a damaged file is ignored and rewritten
    }
  }

  private write(file: string): void {
    const keys = [...this.rows.keys()].sort((a, b) => this.rows.get(a)! - this.rows.get(b)!);
    const head = cacheFileHead(FEATURES_MAGIC, { version: FEATURES_VERSION, dv: this.dv, nTokens: this.nTokens, keys });
    const body = (rows: Float32Array[]) => rows.map((r) => Buffer.from(r.buffer, r.byteOffset, r.byteLength));
    mkdirSync(join(file, '..'), { recursive: true });
    // Written beside the target and renamed: processes building the same set at once never see half a file.
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, Buffer.concat([head, ...body(this.cls), ...body(this.tokens)]));
    renameSync(tmp, file);
  }

  /** Features of a zero (mean-colour after normalisation) image, for the text-only probe. */
  static zeroImage(model: NoteLLM2Model, b: number): VisionFeatures {
    const s = model.cfg.vision.imageSize;
    return tf.tidy(() => {
      const f = model.visionFeatures(tf.zeros([1, s, s, 3]) as tf.Tensor4D);
      return { cls: tf.tile(f.cls, [b, 1]) as tf.Tensor2D, tokens: tf.tile(f.tokens, [b, 1, 1]) as tf.Tensor3D };
    });
  }

  /** Stacks the features of these notes; `flipped[i]` picks the mirrored image. Caller disposes. */
  batch(noteIds: readonly string[], flipped?: readonly boolean[]): VisionFeatures {
    const b = noteIds.length;
    const cls = new Float32Array(b * this.dv);
    const per = this.nTokens * this.dv;
    const tokens = new Float32Array(b * per);
    noteIds.forEach((id, i) => {
      const key = `${flipped?.[i] ? 'f' : 'p'}:${id}`;
      const row = this.rows.get(key);
      if (row === undefined) throw new Error(`VisionFeatureCache: no features for note ${id}${flipped?.[i] ? ' (flipped)' : ''}`);
      cls.set(this.cls[row], i * this.dv);
      tokens.set(this.tokens[row], i * per);
    });
    return { cls: tf.tensor2d(cls, [b, this.dv]), tokens: tf.tensor3d(tokens, [b, this.nTokens, this.dv]) };
  }
}

/** Where the model's image input comes from. */
export type VisionSource =
  | { kind: 'none' }
  | { kind: 'cache'; cache: VisionFeatureCache }
  | { kind: 'images'; images: ImageStore };

export interface RepresentationBatch {
  inputs: ReturnType<typeof toModelInputs>;
  owned: tf.Tensor[];
}

export interface EmbedOptions {
  /** Probe: replace every image by a zero image (what the embedding gets from text alone). */
  zeroImage?: boolean;
  /** Probe: blank title, content and topics (what the embedding gets from the image alone). */
  emptyText?: boolean;
  /** Also return n_v (mICL models). */
  visual?: boolean;
  chunk?: number;
}

const EMPTY_TEXT = (n: Note): Note => ({ ...n, title: '', content: '', topics: [] });

/** Builds model inputs for a list of notes (train and eval share this). */
export function buildInputs(
  model: NoteLLM2Model,
  encoder: PromptEncoder,
  vision: VisionSource,
  notes: readonly Note[],
  opts: { flips?: boolean[]; zeroImage?: boolean; emptyText?: boolean } = {},
): RepresentationBatch {
  const texts = opts.emptyText ? notes.map(EMPTY_TEXT) : notes;
  const enc = encoder.encode(texts, opts.emptyText ? notes.map((n) => `${n.id}\u0000empty`) : undefined);
  const ids = notes.map((n) => n.id);
  const owned: tf.Tensor[] = [];
  let v: VisionFeatures | { images: tf.Tensor4D } | undefined;
  if (model.vit) {
    if (opts.zeroImage) v = VisionFeatureCache.zeroImage(model, notes.length);
    else if (vision.kind === 'cache') v = vision.cache.batch(ids, opts.flips);
    else if (vision.kind === 'images') {
      const x = vision.images.batch(ids);
      const flips = opts.flips;
      if (flips?.some(Boolean)) {
        const mirrored = tf.tidy(() => {
          const rows = tf.unstack(x).map((img, i) => (flips[i] ? tf.reverse(img, 1) : img));
          return tf.stack(rows) as tf.Tensor4D;
        });
        x.dispose();
        v = { images: mirrored };
      } else v = { images: x };
    } else throw new Error('buildInputs: this model reads images but no vision source was given');
    if ('images' in v) owned.push(v.images);
    else owned.push(v.cls, v.tokens);
  }
  const inputs = toModelInputs(enc, v);
  owned.push(inputs.ids);
  return { inputs, owned };
}

/** The contrastive loss of one forward pass over the 2B notes [a; b]. */
export function representationLoss(out: ModelOutputs, b: number, tau: tf.Tensor, micl: { text: number; vision: number } | null): tf.Scalar {
  return tf.tidy(() => {
    const half = (x: tf.Tensor2D, k: 0 | 1) => tf.slice(x, [k * b, 0], [b, -1]) as tf.Tensor2D;
    const lm = infoNce(half(out.nm, 0), half(out.nm, 1), tau);
    if (!micl || !out.nv) return lm;
    const lv = infoNce(half(out.nv, 0), half(out.nv, 1), tau);
    return miclLoss(lm, lv, micl);
  });
}

export class RepresentationTask implements TrainTask<RepresentationBatch> {
  readonly notesPerExample = 2;
  readonly tau: tf.Variable;

  constructor(
    readonly model: NoteLLM2Model,
    readonly encoder: PromptEncoder,
    readonly vision: VisionSource,
    readonly notes: Map<string, Note>,
    readonly trainPairs: readonly Pair[],
    readonly valPairs: readonly Pair[],
    readonly cfg: ResolvedTrainConfig,
  ) {
    this.tau = model.store.param(TAU_PATH, [], { kind: 'constant', value: cfg.tauInit });
  }

  get trainSize(): number {
    return this.trainPairs.length;
  }

  get valSize(): number {
    return this.valPairs.length;
  }

  private note(id: string): Note {
    const n = this.notes.get(id);
    if (!n) throw new Error(`pairs name note ${id}, which the dataset does not hold`);
    return n;
  }

  batch(split: Split, indices: number[], rng: Rng | null): RepresentationBatch {
    const pairs = split === 'train' ? this.trainPairs : this.valPairs;
    const chosen = indices.map((i) => pairs[i]);
    const notes = [...chosen.map((p) => this.note(p.a)), ...chosen.map((p) => this.note(p.b))]; // [a; b]
    const flips = rng && this.cfg.flip ? notes.map(() => rng.next() < 0.5) : undefined;
    return buildInputs(this.model, this.encoder, this.vision, notes, { flips });
  }

  loss(batch: RepresentationBatch): tf.Scalar {
    const b = batch.inputs.lastIndex.length / 2;
    const micl = this.model.cfg.micl ? this.cfg.miclWeights : null;
    return tf.tidy(() => representationLoss(this.model.forward(batch.inputs), b, this.tau, micl));
  }

  disposeBatch(batch: RepresentationBatch): void {
    tf.dispose(batch.owned);
  }
}

/**
 * The order notes are embedded in: by prompt length (ties by position), so each chunk pads to
 * about its own notes' length instead of the longest note among any 64. Deterministic in the
 * notes and the encoder, so a restored model embeds in the same chunks as its run.
 */
export function embeddingOrder(encoder: PromptEncoder, notes: readonly Note[], opts: Pick<EmbedOptions, 'emptyText'> = {}): number[] {
  const order = [...notes.keys()];
  if (opts.emptyText) return order; // every blanked prompt has the same length
  const length = notes.map((n) => encoder.encodeNote(n).ids.length);
  return order.sort((a, b) => length[a] - length[b] || a - b);
}

/** Embeds notes in chunks: L2-normalised n_m rows [N, o] (and n_v when asked), in the notes' order. */
export function embedNotes(
  model: NoteLLM2Model,
  encoder: PromptEncoder,
  vision: VisionSource,
  notes: readonly Note[],
  opts: EmbedOptions = {},
): { nm: Float32Array; nv?: Float32Array; dim: number } {
  const dim = model.cfg.outDim;
  const chunk = opts.chunk ?? 64;
  const nm = new Float32Array(notes.length * dim);
  const nv = opts.visual && model.cfg.micl ? new Float32Array(notes.length * dim) : undefined;
  const order = embeddingOrder(encoder, notes, opts);
  const scatter = (into: Float32Array, rows: Float32Array, at: readonly number[]) => at.forEach((n, j) => into.set(rows.subarray(j * dim, (j + 1) * dim), n * dim));
  for (let i = 0; i < notes.length; i += chunk) {
    const at = order.slice(i, i + chunk);
    const batch = buildInputs(model, encoder, vision, at.map((n) => notes[n]), opts);
    try {
      tf.tidy(() => {
        const out = model.forward(batch.inputs);
        scatter(nm, out.nm.dataSync() as Float32Array, at);
        if (nv && out.nv) scatter(nv, out.nv.dataSync() as Float32Array, at);
      });
    } finally {
      tf.dispose(batch.owned);
    }
  }
  return nv ? { nm, nv, dim } : { nm, dim };
}
