/**
 * The parts the paper glues together arrive already trained, each on its own modality
 * (docs/method.md "Overview": existing unimodal models glued by a connector). Here
 * the two towers get that unimodal training before any representation training sees them:
 *
 * - `pretrainLM`: next-token prediction on a text corpus (pretrain-lm.ts);
 * - `pretrainVision`: SimCLR-style instance contrast on the training images only, no labels,
 *   no pairs, no text (pretrain-vision.ts).
 *
 * Both run on the shared training loop (trainer.ts) and are cached: the result is a checkpoint
 * (model.safetensors + config.json) in `<cacheDir>/<objective>-<hash>/model/`, the hash taken
 * over everything that determines the weights (objective, component config, training config,
 * a content hash of the corpus or of the image files, the tokenizer). A second call with the
 * same inputs loads it (`cached: true`); any change trains anew. An interrupted run resumes
 * from `<cacheDir>/<objective>-<hash>/train/last` (removed once the result is saved).
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Rng, tf } from '../backend';
import type { ImageStore } from '../data/images';
import type { Dataset, Note } from '../data/schema';
import { CACHE_DIR } from '../data/write';
import { stringifyTokenizerJson, type TextTokenizer } from '../data/tokenizer';
import { loadCheckpoint, saveCheckpoint } from '../model/checkpoint';
import { DecoderLM, resolveLMConfig, type LMConfig, type ResolvedLMConfig } from '../model/lm';
import { ParamStore, type ParamRecord } from '../model/params';
import { ViT, resolveViTConfig, type ResolvedViTConfig, type ViTConfig } from '../model/vit';
import { resolveTrainConfig, type ResolvedTrainConfig, type TrainConfig } from './config';
import type { ProgressOptions } from './progress';
import { train, type StepRecord } from './trainer';
import { encodeDocuments, evaluateLM, lmTask, makeWindows, splitHeldOut, unigramPerplexity, LM_PACKINGS, type LMPacking } from './pretrain-lm';
import {
  ProjectionHead,
  resolveAugmentConfig,
  viewAgreement,
  visionTask,
  type AugmentConfig,
  type ResolvedAugmentConfig,
  type VisionTaskData,
} from './pretrain-vision';

export * from './pretrain-lm';
export * from './pretrain-vision';

/** Where pretrained towers are cached by default (git-ignored with the rest of datasets/cache). */
export const DEFAULT_PRETRAIN_CACHE_DIR = join(CACHE_DIR, 'pretrain');

/** Bumped when a change in this code changes what the same inputs train to (invalidates caches). */
const PRETRAIN_VERSION = 1;

/**
 * LM pretraining defaults for the laptop-size LM (d 128, 4 layers, 4 heads, vocab 2 048) on
 * the `synth` training notes (3 622 notes, 80 k tokens, 1 250 windows of 64 tokens). Measured
 * here (wasm, 2 shared cores): ≈ 0.2 s a step unloaded. The loss first plateaus at ≈ 4.2
 * (held-out perplexity ≈ 65–70; a unigram model: 247) after ≈ 150 steps; a second, slower
 * descent (the model learning to use the note's topic from context) starts after ≈ 250 steps
 * at lr 2e-3 and reaches ≈ 3.7 (perplexity ≈ 41) by ≈ 550 steps.
 * The default is 1 200 steps, measured on the 12 000-note `synth` (4 800 training notes): held-out
 * perplexity 61.6 after 300 steps, 28.0 after 1 200; `text-only` trained on the 300-step LM
 * reaches R@100 14.2 % on the `text` test pairs, on the 1 200-step LM 51.7 % — the subset's
 * ceiling (50.6 %, docs/method.md "Baselines"), where TF-IDF is (52.0 %). 1 200 steps take
 * ≈ 5–8 minutes here, once: the result is cached.
 * `batchPairs` is the number of sequences per step here.
 */
export const DEFAULT_LM_PRETRAIN: Readonly<TrainConfig> = Object.freeze({
  seed: 0,
  epochs: 100,
  maxSteps: 1200,
  batchPairs: 16,
  lr: 2e-3,
  weightDecay: 0.01,
  warmup: 0.05,
  decay: 'cosine',
  clipNorm: 1.0,
});

/**
 * Sequence length of LM pretraining windows by default: the representation prompts run to
 * 60–140 tokens, so positions that far are seen in pretraining (32 is ≈ 2× faster a step).
 */
export const DEFAULT_LM_SEQ_LEN = 64;

/**
 * Vision pretraining defaults for the laptop-size ViT (32 px, patch 8, d 128, depth 4) on the
 * `synth` training images (3 260 trained, 362 held out). Measured here: ≈ 0.15 s a step
 * unloaded; the loss falls from ln 63 ≈ 4.14 to ≈ 1.7 by step 200 and ≈ 1.4 by step 400
 * (held-out 1.72 → 1.41), so the curve flattens after ≈ 200 steps; 200 steps ≈ 30–35 s.
 * Held-out view agreement (top-1, chance 0.3 %): 26 % untrained → 41 % (200 steps) → 48 %
 * (400); sibling-vs-others cosine margin 0.0003 → 0.76. `batchPairs` is images per step
 * (2× views).
 */
export const DEFAULT_VISION_PRETRAIN: Readonly<TrainConfig> = Object.freeze({
  seed: 0,
  epochs: 100,
  maxSteps: 200,
  batchPairs: 32,
  lr: 1e-3,
  weightDecay: 0.01,
  warmup: 0.05,
  decay: 'cosine',
  clipNorm: 1.0,
  flip: true,
});

/** SimCLR temperature T (logits = cos / T); infoNce's τ is ln(1/T). */
export interface TemperatureConfig {
  /** Defaults to 0.2 (SimCLR's range is 0.1–0.5; small batches prefer the upper half). */
  init?: number;
  /** Learn it (as τ = ln 1/T, like CLIP's logit scale). Defaults to false. */
  learnable?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Corpus helpers

/** A note as plain text: title, hashtags, content, one per line (empty parts left out). */
export function noteText(note: Pick<Note, 'title' | 'topics' | 'content'>): string {
  const tags = note.topics.map((t) => `#${t}`).join(' ');
  return [note.title, tags, note.content].map((s) => s.trim()).filter((s) => s !== '').join('\n');
}

/**
 * The notes of the training split only: the train notes file minus every note of a
 * validation or test pair (the reference layout stores validation notes in the train file).
 */
export function pretrainingNoteIds(ds: Pick<Dataset, 'noteIds' | 'pairs'>): string[] {
  const held = new Set<string>();
  for (const split of ['val', 'test'] as const) for (const p of ds.pairs[split]) held.add(p.a).add(p.b);
  for (const id of ds.noteIds.test) held.add(id);
  return ds.noteIds.train.filter((id) => !held.has(id));
}

/** The default LM corpus: the training split's notes rendered by `noteText` (empty ones dropped). */
export function noteCorpus(ds: Pick<Dataset, 'noteIds' | 'pairs' | 'notes'>): string[] {
  return pretrainingNoteIds(ds)
    .map((id) => noteText(ds.notes.get(id)!))
    .filter((t) => t !== '');
}

/** Any text file as a corpus: one document per non-blank line. */
export async function readCorpusFile(path: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new Error(`readCorpusFile: cannot read ${path}: ${(e as Error).message}`);
  }
  const docs = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  if (docs.length === 0) throw new Error(`readCorpusFile: ${path} holds no non-blank line; expected one document per line`);
  return docs;
}

// ---------------------------------------------------------------------------------------------
// Cache

function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A content hash of a list of strings (length-prefixed, so boundaries count). */
export function hashStrings(items: readonly string[]): string {
  const h = createHash('sha256');
  for (const s of items) {
    const b = Buffer.from(s, 'utf8');
    h.update(`${b.length}:`).update(b);
  }
  return h.digest('hex');
}

/** The training-config fields that change what pretraining computes (not checkpointEvery, not the representation-only ones). */
function trainKey(cfg: ResolvedTrainConfig, extra: (keyof ResolvedTrainConfig)[] = []): Record<string, unknown> {
  const keys: (keyof ResolvedTrainConfig)[] = ['seed', 'epochs', 'maxSteps', 'batchPairs', 'lr', 'weightDecay', 'warmup', 'decay', 'clipNorm', ...extra];
  return Object.fromEntries(keys.map((k) => [k, cfg[k]]));
}

function cacheKey(keyInput: unknown): string {
  return sha256(JSON.stringify(keyInput));
}

/** Result fields shared by both objectives. */
export interface PretrainResultBase {
  /** The pretrained tower's parameters (`lm.*` or `vit.*`). */
  weights: ParamRecord;
  /** True when loaded from the cache (no training in this call). */
  cached: boolean;
  /** sha256 of the cache key input; the cache folder is `<objective>-<key[0..16]>`. */
  key: string;
  /** The cache folder (null when caching was off). */
  dir: string | null;
  /** Per-step records of the run that produced the weights. */
  history: StepRecord[];
  /** Validation loss after each epoch (empty when no data was held out). */
  valLoss: number[];
  steps: number;
  /** Wall-clock seconds of this call (a cache hit: the load). */
  seconds: number;
  /** Seconds the training run took (stored with the cache). */
  trainSeconds: number;
  /** Whether the run continued from an interrupted one. */
  resumed: boolean;
}

interface CacheRecord<R> {
  objective: string;
  version: number;
  key: string;
  keyInput: unknown;
  result: R;
}

type Stored<R extends PretrainResultBase> = Omit<R, 'weights' | 'cached' | 'dir' | 'seconds'>;

async function readCache<R extends PretrainResultBase>(dir: string, key: string): Promise<{ weights: ParamRecord; result: Stored<R> } | null> {
  const modelDir = join(dir, 'model');
  if (!existsSync(join(modelDir, 'model.safetensors'))) return null;
  const ck = await loadCheckpoint(modelDir);
  const rec = ck.config as CacheRecord<Stored<R>> | null;
  if (!rec || rec.key !== key) return null; // a foreign or damaged folder: train anew, overwrite
  return { weights: ck.weights, result: rec.result };
}

async function writeCache<R extends PretrainResultBase>(dir: string, objective: string, key: string, keyInput: unknown, weights: ParamRecord, result: Stored<R>): Promise<void> {
  const rec: CacheRecord<Stored<R>> = { objective, version: PRETRAIN_VERSION, key, keyInput, result };
  await saveCheckpoint(join(dir, 'model'), { weights, config: rec, metadata: { objective, key } });
  await rm(join(dir, 'train'), { recursive: true, force: true });
}

/**
 * Exclusive use of a cache folder across processes (parallel runs asking for the same tower):
 * `<dir>/lock` is created exclusively and holds the owner's pid; a waiter polls until it is
 * gone, and takes over a lock whose process no longer exists (a crashed run). Returns the
 * release function.
 */
async function acquireLock(dir: string, pollMs = 500): Promise<() => Promise<void>> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, 'lock');
  for (;;) {
    try {
      const fh = await open(path, 'wx');
      await fh.writeFile(String(process.pid));
      await fh.close();
      return () => rm(path, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const pid = Number(await readFile(path, 'utf8').catch(() => ''));
    let alive = true;
    if (Number.isInteger(pid) && pid > 0) {
      try {
        process.kill(pid, 0);
      } catch (e) {
        alive = (e as NodeJS.ErrnoException).code === 'EPERM';
      }
    } else {
      alive = false; // empty or garbled: a writer died between create and write
    }
    if (!alive) await rm(path, { force: true });
    else await new Promise((r) => setTimeout(r, pollMs));
  }
}

/** Cache lookup, then (holding the folder's lock, after a second lookup) `compute`. */
async function cached<R extends PretrainResultBase>(
  dir: string | null,
  key: string,
  t0: number,
  compute: () => Promise<R>,
): Promise<R> {
  if (!dir) return compute();
  const hitOf = async () => {
    const hit = await readCache<R>(dir, key);
    return hit ? ({ ...hit.result, weights: hit.weights, cached: true, dir, seconds: (performance.now() - t0) / 1000 } as R) : null;
  };
  const first = await hitOf();
  if (first) return first;
  const release = await acquireLock(dir);
  try {
    return (await hitOf()) ?? (await compute());
  } finally {
    await release();
  }
}

function stepsPlanned(cfg: ResolvedTrainConfig, trainSize: number): number {
  const planned = cfg.epochs * Math.floor(trainSize / cfg.batchPairs);
  return cfg.maxSteps > 0 ? Math.min(cfg.maxSteps, planned) : planned;
}

/**
 * The configuration a pretraining run trains with: the resumable checkpoint saved ~10 times a
 * run unless the config says otherwise, and — for a dataset smaller than one batch (a small
 * collection of one's own; the built-in datasets are far larger) — batches of all its examples
 * rather than a run that cannot take a single step. The cache key keeps the configured batch:
 * with the data in the key too, the same inputs still give the same towers.
 */
function withCheckpointing(cfg: ResolvedTrainConfig, trainSize: number): ResolvedTrainConfig {
  const fitted = trainSize >= 2 && trainSize < cfg.batchPairs ? { ...cfg, batchPairs: trainSize } : cfg;
  if (fitted.checkpointEvery > 0) return fitted;
  return { ...fitted, checkpointEvery: Math.max(1, Math.ceil(stepsPlanned(fitted, trainSize) / 10)) };
}

interface CommonOptions {
  /** Cache root; null: no cache and no resume. Defaults to DEFAULT_PRETRAIN_CACHE_DIR. */
  cacheDir?: string | null;
  /** Share held out for validation. */
  valFraction?: number;
  progress?: ProgressOptions;
  /** Called after each optimiser step (e.g. to interrupt a run). */
  onStep?: (rec: StepRecord) => void;
}

// ---------------------------------------------------------------------------------------------
// LM

export interface LMPretrainOptions extends CommonOptions {
  /** One document per entry (e.g. `noteCorpus(ds)` or `readCorpusFile(path)`). */
  corpus: readonly string[];
  tokenizer: TextTokenizer;
  /** The LM's config; vocabSize defaults to the tokenizer's. */
  lm: Partial<LMConfig>;
  /** Defaults to DEFAULT_LM_PRETRAIN (fields given here override it). */
  train?: TrainConfig;
  /** Tokens per training row. Defaults to DEFAULT_LM_SEQ_LEN (64). */
  seqLen?: number;
  /** 'pack' (default) or 'pad' (see pretrain-lm.ts). */
  packing?: LMPacking;
  /** Share of documents held out for validation. Defaults to 0.05. */
  valFraction?: number;
}

export interface LMPretrainResult extends PretrainResultBase {
  lm: ResolvedLMConfig;
  /** exp(token-weighted mean next-token CE) on (up to 256) training rows, with the final weights. */
  trainPerplexity: number;
  /** The same on the held-out documents (NaN without any). */
  valPerplexity: number;
  /** ln(vocabSize): the loss of a uniform guess, for scale. */
  uniformLoss: number;
  /** Held-out perplexity of a smoothed unigram model of the training tokens: what context must beat. */
  unigramPerplexity: number;
  tokens: { train: number; val: number };
  documents: { train: number; val: number };
}

/** Next-token pretraining of a DecoderLM (params `lm.*`), cached by content. */
export async function pretrainLM(opts: LMPretrainOptions): Promise<LMPretrainResult> {
  const t0 = performance.now();
  const { tokenizer } = opts;
  const vocabSize = opts.lm.vocabSize ?? tokenizer.vocabSize;
  if (vocabSize < tokenizer.vocabSize) {
    throw new Error(`pretrainLM: lm.vocabSize (${vocabSize}) is below the tokenizer's vocabSize (${tokenizer.vocabSize})`);
  }
  const lmCfg = resolveLMConfig({ ...opts.lm, vocabSize });
  const cfg = resolveTrainConfig({ ...DEFAULT_LM_PRETRAIN, ...opts.train });
  const seqLen = opts.seqLen ?? DEFAULT_LM_SEQ_LEN;
  const packing = opts.packing ?? 'pack';
  if (!LM_PACKINGS.includes(packing)) throw new Error(`pretrainLM: packing must be one of ${LM_PACKINGS.join(', ')}, got ${JSON.stringify(packing)}`);
  const valFraction = opts.valFraction ?? 0.05;
  if (opts.corpus.length === 0) throw new Error('pretrainLM: the corpus is empty; expected at least one document');

  const keyInput = {
    objective: 'lm-next-token',
    version: PRETRAIN_VERSION,
    lm: lmCfg,
    train: trainKey(cfg),
    seqLen,
    packing,
    valFraction,
    corpus: hashStrings(opts.corpus),
    tokenizer: sha256(stringifyTokenizerJson(tokenizer.toJSON())),
  };
  const key = cacheKey(keyInput);
  const cacheRoot = opts.cacheDir === undefined ? DEFAULT_PRETRAIN_CACHE_DIR : opts.cacheDir;
  const dir = cacheRoot === null ? null : join(cacheRoot, `lm-${key.slice(0, 16)}`);
  return cached<LMPretrainResult>(dir, key, t0, async () => {
    const split = splitHeldOut(opts.corpus.length, valFraction, new Rng(cfg.seed).fork('lm-held-out'));
    const encoded = encodeDocuments(opts.corpus, tokenizer);
    const trainW = makeWindows(split.train.map((i) => encoded[i]), seqLen, packing, tokenizer.padId);
    const valW = makeWindows(split.val.map((i) => encoded[i]), seqLen, packing, tokenizer.padId);
    const store = new ParamStore(cfg.seed);
    try {
      const lm = new DecoderLM(lmCfg, store, 'lm');
      const runCfg = withCheckpointing(cfg, trainW.inputs.length);
      const r = await train(lmTask(lm, trainW, valW, tokenizer.padId), store, runCfg, {
        checkpointDir: dir ? join(dir, 'train') : undefined,
        config: keyInput,
        progress: { label: 'pretrain-lm', ...opts.progress },
        onStep: opts.onStep,
      });
      // Train perplexity on an even spread of up to 256 training rows (cost bounded).
      const nEval = Math.min(256, trainW.inputs.length);
      const evalRows = Array.from({ length: nEval }, (_, i) => Math.floor((i * trainW.inputs.length) / nEval));
      const trainLoss = evaluateLM(lm, trainW, evalRows, tokenizer.padId, cfg.batchPairs);
      const valLoss = valW.inputs.length ? evaluateLM(lm, valW, valW.inputs.map((_, i) => i), tokenizer.padId, cfg.batchPairs) : NaN;
      const weights = store.export('lm');
      const stored: Stored<LMPretrainResult> = {
        key,
        lm: lmCfg,
        history: r.history,
        valLoss: r.valLoss,
        steps: r.steps,
        trainSeconds: r.seconds,
        resumed: r.resumed,
        trainPerplexity: Math.exp(trainLoss),
        valPerplexity: Math.exp(valLoss),
        uniformLoss: Math.log(lmCfg.vocabSize),
        unigramPerplexity: unigramPerplexity(trainW, valW, lmCfg.vocabSize),
        tokens: { train: trainW.tokens, val: valW.tokens },
        documents: { train: split.train.length, val: split.val.length },
      };
      if (dir) await writeCache<LMPretrainResult>(dir, 'lm-next-token', key, keyInput, weights, stored);
      return { ...stored, weights, cached: false, dir, seconds: (performance.now() - t0) / 1000 };
    } finally {
      store.dispose();
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Vision

export interface VisionPretrainOptions extends CommonOptions {
  /** Ids of the notes whose images to train on — the training split's only (e.g. pretrainingNoteIds(ds)). */
  images: readonly string[];
  /** Decodes the images; its `size` is the side crops are taken from (≥ the ViT's imageSize is best). */
  imageStore: ImageStore;
  vit: ViTConfig;
  /** Defaults to DEFAULT_VISION_PRETRAIN (fields given here override it); `flip` switches the flip augmentation. */
  train?: TrainConfig;
  augment?: AugmentConfig;
  /** Width of the projection head's output. Defaults to 64. */
  projDim?: number;
  temperature?: TemperatureConfig;
  /** Share of the images held out (validation loss, view agreement). Defaults to 0.1. */
  valFraction?: number;
}

export interface VisionPretrainResult extends PretrainResultBase {
  vit: ResolvedViTConfig;
  augment: ResolvedAugmentConfig;
  /**
   * Nearest-neighbour view agreement (see `viewAgreement`) on the held-out images, before and
   * after training: top-1 shares (chance = 1/n) and the sibling-vs-others cosine margins.
   */
  viewAgreement: { before: number; after: number; chance: number; n: number; marginBefore: number; marginAfter: number };
  /** Final temperature T = exp(−τ). */
  temperature: number;
  images: { train: number; val: number };
}

/** Hash of the image list: every id with the sha256 of its file's bytes. */
async function hashImages(store: ImageStore, ids: readonly string[]): Promise<string> {
  const items: string[] = [];
  for (const id of ids) {
    const path = store.source.imagePath(id);
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (e) {
      throw new Error(`pretrainVision: cannot read the image of note '${id}' (${path}): ${(e as Error).message}`);
    }
    items.push(`${id}\u0000${sha256(bytes)}`);
  }
  return hashStrings(items);
}

/** SimCLR pretraining of a ViT (params `vit.*`; the projection head is discarded), cached by content. */
export async function pretrainVision(opts: VisionPretrainOptions): Promise<VisionPretrainResult> {
  const t0 = performance.now();
  const vitCfg = resolveViTConfig(opts.vit);
  if (vitCfg.channels !== 3) throw new Error(`pretrainVision: vit.channels must be 3 (RGB images), got ${vitCfg.channels}`);
  const cfg = resolveTrainConfig({ ...DEFAULT_VISION_PRETRAIN, ...opts.train });
  const aug = resolveAugmentConfig({ flip: cfg.flip, ...opts.augment });
  const projDim = opts.projDim ?? 64;
  if (!Number.isInteger(projDim) || projDim < 1) throw new Error(`pretrainVision: projDim must be a positive integer, got ${projDim}`);
  const temp = { init: opts.temperature?.init ?? 0.2, learnable: opts.temperature?.learnable ?? false };
  if (!(temp.init > 0 && Number.isFinite(temp.init))) throw new Error(`pretrainVision: temperature.init must be a positive number, got ${temp.init}`);
  const valFraction = opts.valFraction ?? 0.1;
  if (new Set(opts.images).size !== opts.images.length) throw new Error('pretrainVision: images lists a note id twice');
  if (opts.images.length < 2) throw new Error(`pretrainVision: need at least 2 images, got ${opts.images.length}`);

  const keyInput = {
    objective: 'vision-simclr',
    version: PRETRAIN_VERSION,
    vit: vitCfg,
    train: trainKey(cfg),
    augment: aug,
    projDim,
    temperature: temp,
    valFraction,
    sourceSize: opts.imageStore.size,
    images: await hashImages(opts.imageStore, opts.images),
  };
  const key = cacheKey(keyInput);
  const cacheRoot = opts.cacheDir === undefined ? DEFAULT_PRETRAIN_CACHE_DIR : opts.cacheDir;
  const dir = cacheRoot === null ? null : join(cacheRoot, `vision-${key.slice(0, 16)}`);
  return cached<VisionPretrainResult>(dir, key, t0, async () => {
    await opts.imageStore.load(opts.images);
    const split = splitHeldOut(opts.images.length, valFraction, new Rng(cfg.seed).fork('vision-held-out'));
    const data: VisionTaskData = {
      store: opts.imageStore,
      train: split.train.map((i) => opts.images[i]),
      val: split.val.map((i) => opts.images[i]),
      outSize: vitCfg.imageSize,
      aug,
      seed: cfg.seed,
    };
    const store = new ParamStore(cfg.seed);
    try {
      const vit = new ViT(vitCfg, store, 'vit');
      const head = new ProjectionHead(store, 'vision_head', vitCfg.dim, projDim);
      // τ = ln(1/T): infoNce scales cosines by exp(τ). A store parameter when learnable (so the
      // optimiser and checkpoints carry it), a constant otherwise.
      const tau0 = Math.log(1 / temp.init);
      const tau = temp.learnable ? store.param('vision_head.tau', [1], { kind: 'constant', value: tau0 }) : tf.scalar(tau0);
      const agreeIds = data.val.slice(0, 512);
      const before = viewAgreement(vit, data, agreeIds, cfg.seed);
      try {
        const runCfg = withCheckpointing(cfg, data.train.length);
        const r = await train(visionTask(vit, head, tau, data), store, runCfg, {
          checkpointDir: dir ? join(dir, 'train') : undefined,
          config: keyInput,
          tauPath: temp.learnable ? 'vision_head.tau' : undefined,
          progress: { label: 'pretrain-vision', ...opts.progress },
          onStep: opts.onStep,
        });
        const after = viewAgreement(vit, data, agreeIds, cfg.seed);
        const weights = store.export('vit');
        const stored: Stored<VisionPretrainResult> = {
          key,
          vit: vitCfg,
          augment: aug,
          history: r.history,
          valLoss: r.valLoss,
          steps: r.steps,
          trainSeconds: r.seconds,
          resumed: r.resumed,
          viewAgreement: { before: before.top1, after: after.top1, chance: after.chance, n: after.n, marginBefore: before.margin, marginAfter: after.margin },
          temperature: Math.exp(-tau.dataSync()[0]),
          images: { train: data.train.length, val: data.val.length },
        };
        if (dir) await writeCache<VisionPretrainResult>(dir, 'vision-simclr', key, keyInput, weights, stored);
        return { ...stored, weights, cached: false, dir, seconds: (performance.now() - t0) / 1000 };
      } finally {
        if (!temp.learnable) tau.dispose();
      }
    } finally {
      store.dispose();
    }
  });
}
