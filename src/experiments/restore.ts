/**
 * A trained variant back from any checkpoint folder, set up exactly as its run evaluated it:
 * the model with its weights, the tokenizer, the dataset and the vision source, ready to
 * evaluate (`evaluateRestored`) or to embed notes (`embedRestored`). `notellm2 eval` and
 * `notellm2 embed` use it.
 *
 * The checkpoint's config.json (written by runVariant) names the preset, the resolved model
 * and training configs, the dataset folder and the tokenizer file, so the checkpoint folder
 * alone is enough; another dataset can be named instead.
 *
 * Evaluation follows runVariant's steps exactly — the frozen encoder's features computed in
 * the same batches, the same embedding chunks, the same subsets — so a saved model's recall
 * equals what its run reported, number for number.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { initBackend, tf } from '../backend';
import { loadDataset } from '../data/loaders';
import { loadTokenizer, type TextTokenizer } from '../data/tokenizer';
import { evaluationSubsets } from '../data/splits';
import type { Dataset, Note } from '../data/schema';
import type { ImageStore } from '../data/images';
import type { ParamStore } from '../model/params';
import type { ResolvedModelConfig } from '../model/config';
import type { NoteLLM2Model } from '../model/notellm2';
import type { PromptEncoder } from '../model/batch';
import { CHECKPOINT_FILES, loadCheckpoint } from '../model/checkpoint';
import { resolveTrainConfig, type ResolvedTrainConfig } from '../train/config';
import { buildInputs, embedNotes, type EmbedOptions, type VisionSource } from '../train/representation';
import { evaluateRecall, type RecallResult } from '../eval/recall';
import { EmbeddingCatalogue } from '../eval/catalogue';
import { ensureDataset } from './datasets';
import { buildVariantModel, runNoteIds, type RecallMap } from './variant';

/** config.json of a representation checkpoint (see runVariant). */
export interface CheckpointConfig {
  model: ResolvedModelConfig;
  train: ResolvedTrainConfig;
  preset: string;
  name?: string;
  datasetDir?: string;
  tokenizerPath?: string;
  pretrained?: { lm?: string; vit?: string };
  lengthThreshold?: number;
}

export type CheckpointChoice = 'best' | 'last';
export const CHECKPOINT_CHOICES: readonly CheckpointChoice[] = ['best', 'last'];

/**
 * The checkpoint directory (the one holding model.safetensors) that `path` names: the
 * directory itself, its `best/` (or `last/`) child, or — for a run folder — the single
 * variant under `checkpoints/`.
 */
export function resolveCheckpointDir(path: string, which: CheckpointChoice = 'best'): string {
  if (!CHECKPOINT_CHOICES.includes(which)) throw new Error(`checkpoint choice must be one of ${CHECKPOINT_CHOICES.join(', ')}, got "${which as string}"`);
  const dir = resolve(path);
  if (!existsSync(dir)) throw new Error(`checkpoint ${path}: no such folder (${dir})`);
  const has = (d: string) => existsSync(join(d, CHECKPOINT_FILES.weights));
  if (has(dir)) return dir;
  const other: CheckpointChoice = which === 'best' ? 'last' : 'best';
  for (const kind of [which, other]) if (has(join(dir, kind))) return join(dir, kind);
  const runCheckpoints = join(dir, 'checkpoints');
  if (existsSync(runCheckpoints)) {
    const variants = readdirSync(runCheckpoints, { withFileTypes: true }).filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name);
    if (variants.length === 1) return resolveCheckpointDir(join(runCheckpoints, variants[0]), which);
    if (variants.length > 1) {
      throw new Error(`checkpoint ${path}: a run folder with ${variants.length} variants; name one of ${variants.map((v) => join(runCheckpoints, v)).join(', ')}`);
    }
  }
  throw new Error(
    `checkpoint ${path}: no ${CHECKPOINT_FILES.weights} in ${dir}, ${join(dir, 'best')} or ${join(dir, 'last')} ` +
      `(expected a variant's checkpoint folder such as runs/<name>/checkpoints/<preset>-s<seed>)`,
  );
}

function checkConfig(raw: unknown, file: string): CheckpointConfig {
  const c = raw as Partial<CheckpointConfig> | null;
  if (!c || typeof c !== 'object') throw new Error(`${file}: expected an object with model, train and preset, got ${JSON.stringify(raw)}`);
  for (const field of ['model', 'train'] as const) {
    if (!c[field] || typeof c[field] !== 'object') throw new Error(`${file}: field "${field}" is missing (not a representation checkpoint written by notellm2 train/ablate?)`);
  }
  if (typeof c.preset !== 'string') throw new Error(`${file}: field "preset" must be a string, got ${JSON.stringify(c.preset)}`);
  return c as CheckpointConfig;
}

export interface RestoreOptions {
  /** 'synth' | 'openmoji' | a reference-layout folder. Defaults to the dataset the model was trained on. */
  dataset?: string;
  /** Which checkpoint when the folder holds both. Defaults to 'best' (what the run evaluated). */
  which?: CheckpointChoice;
  /** Tokenizer file; defaults to the one named in config.json. */
  tokenizer?: string;
  /** Skip bad dataset rows instead of failing (as the run did with --skip-bad). */
  skipBad?: boolean;
  /**
   * Notes beyond the training and test pairs' notes that will be embedded (their image
   * features are computed too), or a function of the loaded dataset giving them.
   */
  extraNotes?: readonly string[] | ((dataset: Dataset) => readonly string[]);
  /**
   * Read no images up front: they are decoded on demand (load them into `images` before
   * building inputs), the vision tower runs on them directly. For analyses of a few batches
   * (saliency), where computing every run note's features first would be wasted.
   */
  imagesOnDemand?: boolean;
}

export interface RestoredVariant {
  /** The checkpoint directory read. */
  dir: string;
  config: CheckpointConfig;
  model: NoteLLM2Model;
  store: ParamStore;
  tokenizer: TextTokenizer;
  encoder: PromptEncoder;
  dataset: Dataset;
  vision: VisionSource;
  /** The image store behind `vision` (null without a vision tower). */
  images: ImageStore | null;
  /** Frees the model's tensors. */
  dispose(): void;
}

/** Restores a trained variant from a checkpoint folder (see resolveCheckpointDir). */
export async function restoreVariant(path: string, opts: RestoreOptions = {}): Promise<RestoredVariant> {
  await initBackend();
  const dir = resolveCheckpointDir(path, opts.which);
  const ckpt = await loadCheckpoint(dir);
  const configFile = join(dir, CHECKPOINT_FILES.config);
  const config = checkConfig(ckpt.config, configFile);

  let datasetDir: string;
  if (opts.dataset !== undefined) datasetDir = (await ensureDataset(opts.dataset)).dir;
  else if (config.datasetDir) datasetDir = config.datasetDir;
  else throw new Error(`${configFile}: names no datasetDir (an older checkpoint); pass the dataset (--dataset synth|openmoji|<dir>)`);
  const { dataset } = await loadDataset(datasetDir, { images: 'exists', skipBad: opts.skipBad });

  const tokenizerPath = opts.tokenizer ?? config.tokenizerPath;
  if (!tokenizerPath) throw new Error(`${configFile}: names no tokenizerPath; pass the tokenizer file the model was trained with`);
  if (!existsSync(tokenizerPath)) throw new Error(`tokenizer ${tokenizerPath} (named by ${configFile}) does not exist; rerun the training (notellm2 train) to rebuild it`);
  const tokenizer = loadTokenizer(tokenizerPath);
  if (tokenizer.vocabSize !== config.model.lm.vocabSize) {
    throw new Error(`tokenizer ${tokenizerPath} has ${tokenizer.vocabSize} tokens but ${configFile} model.lm.vocabSize is ${config.model.lm.vocabSize}`);
  }

  const train = resolveTrainConfig(config.train);
  // The same notes in the same order as runVariant, so every note's features come out of the
  // same encoder batch as during the run (and the recall matches bit for bit); notes asked for
  // beyond those are appended after them.
  let visionNotes: string[] | undefined;
  if (!opts.imagesOnDemand && (config.model.earlyFusion || config.model.lateFusion)) {
    // The model has a vision tower (NoteLLM2Model builds one for either fusion).
    const extra = typeof opts.extraNotes === 'function' ? opts.extraNotes(dataset) : opts.extraNotes ?? [];
    visionNotes = [...new Set([...runNoteIds(dataset), ...extra])];
    for (const id of visionNotes) if (!dataset.notes.has(id)) throw new Error(`restoreVariant: note "${id}" is not in the dataset ${datasetDir}`);
  }
  // Strict: every parameter of the model (vision tower included) and τ come from the checkpoint.
  const { model, store, encoder, vision, images } = await buildVariantModel({ model: config.model, train, seed: train.seed, dataset, tokenizer, from: { weights: ckpt.weights }, visionNotes });
  return { dir, config, model, store, tokenizer, encoder, dataset, vision, images, dispose: () => store.dispose() };
}

export interface RestoredEvaluation {
  metrics: RecallMap;
  subsets: Record<string, RecallMap>;
  /** Absent when `probes: false`. */
  probes?: { zeroImage: { metrics: RecallMap; subsets: Record<string, RecallMap> }; emptyText: { metrics: RecallMap; subsets: Record<string, RecallMap> } };
  nQueries: number;
  poolSize: number;
  /** The embeddings n_m of the test notes. */
  catalogue: EmbeddingCatalogue;
  seconds: number;
}

const subsetMetrics = (r: RecallResult): Record<string, RecallMap> => Object.fromEntries(Object.entries(r.subsets).map(([k, v]) => [k, v.recall]));

/**
 * The reference recall protocol (docs/method.md "Evaluation protocol") on the dataset's test pairs,
 * per subset, with the zero-image and empty-text probes.
 */
export async function evaluateRestored(v: RestoredVariant, opts: { probes?: boolean; lengthThreshold?: number } = {}): Promise<RestoredEvaluation> {
  const t0 = performance.now();
  const { dataset } = v;
  const testIds = dataset.noteIds.test;
  const notes = testIds.map((id) => dataset.notes.get(id)!);
  const subsets = evaluationSubsets(dataset.notes, dataset.pairs.test, { threshold: opts.lengthThreshold ?? v.config.lengthThreshold });
  const recallOf = async (e: EmbedOptions) => {
    const out = embedNotes(v.model, v.encoder, v.vision, notes, e);
    const catalogue = new EmbeddingCatalogue(testIds, out.nm, out.dim);
    return { r: await evaluateRecall(dataset.pairs.test, catalogue, { notes: testIds, subsets: subsets.predicates }), catalogue };
  };
  const main = await recallOf({});
  let probes: RestoredEvaluation['probes'];
  if (opts.probes ?? true) {
    const zeroImage = (await recallOf({ zeroImage: true })).r;
    const emptyText = (await recallOf({ emptyText: true })).r;
    probes = {
      zeroImage: { metrics: zeroImage.recall, subsets: subsetMetrics(zeroImage) },
      emptyText: { metrics: emptyText.recall, subsets: subsetMetrics(emptyText) },
    };
  }
  return {
    metrics: main.r.recall,
    subsets: subsetMetrics(main.r),
    probes,
    nQueries: main.r.nQueries,
    poolSize: main.r.poolSize,
    catalogue: main.catalogue,
    seconds: (performance.now() - t0) / 1000,
  };
}

export type EmbedSplit = 'test' | 'train' | 'all';
export const EMBED_SPLITS: readonly EmbedSplit[] = ['test', 'train', 'all'];

/** Note ids of a split, in the dataset's order ('all': train notes, then test notes). */
export function splitNoteIds(dataset: Dataset, split: EmbedSplit): string[] {
  switch (split) {
    case 'test':
      return [...dataset.noteIds.test];
    case 'train':
      return [...dataset.noteIds.train];
    case 'all':
      return [...new Set([...dataset.noteIds.train, ...dataset.noteIds.test])];
    default:
      throw new Error(`split must be one of ${EMBED_SPLITS.join(', ')}, got "${split as string}"`);
  }
}

/** The n_m embeddings (L2-normalised, docs/method.md "Architecture") of the given notes. */
export function embedRestored(v: RestoredVariant, noteIds: readonly string[], opts: EmbedOptions = {}): EmbeddingCatalogue {
  const notes: Note[] = noteIds.map((id) => {
    const n = v.dataset.notes.get(id);
    if (!n) throw new Error(`embed: note "${id}" is not in the dataset ${v.dataset.dir}`);
    return n;
  });
  const out = embedNotes(v.model, v.encoder, v.vision, notes, opts);
  return new EmbeddingCatalogue(noteIds, out.nm, out.dim);
}

/** Mean late-fusion gate z over some notes (undefined without a gate): 1 = all LM side. */
export function meanGateRestored(v: RestoredVariant, noteIds: readonly string[]): number | undefined {
  if (!v.model.gate) return undefined;
  const notes = noteIds.map((id) => v.dataset.notes.get(id)!);
  const batch = buildInputs(v.model, v.encoder, v.vision, notes);
  try {
    return tf.tidy(() => tf.mean(v.model.forward(batch.inputs).gate!).dataSync()[0]);
  } finally {
    tf.dispose(batch.owned);
  }
}
