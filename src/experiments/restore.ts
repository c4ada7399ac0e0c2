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
 * The model is set up as runVariant set it up — the frozen encoder's features computed over
 * the same notes in the same batches — and evaluated by the same function, so a saved model's
 * recall equals what its run reported, number for number.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { initBackend } from '../backend';
import type { TextTokenizer } from '../data/tokenizer';
import type { Dataset, Note } from '../data/schema';
import type { ImageStore } from '../data/images';
import type { ParamStore } from '../model/params';
import type { ResolvedModelConfig } from '../model/config';
import type { NoteLLM2Model } from '../model/notellm2';
import type { PromptEncoder } from '../model/batch';
import { CHECKPOINT_FILES, interruptedSave, interruptedSaveHint, loadCheckpoint } from '../model/checkpoint';
import { resolveTrainConfig, type ResolvedTrainConfig } from '../train/config';
import { CHECKPOINT_CHOICES, checkpointSlot, type CheckpointChoice } from '../train/trainer';
import { buildInputs, embedNotes, type EmbedOptions, type RepresentationBatch, type VisionSource } from '../train/representation';
import { EmbeddingCatalogue } from '../eval/catalogue';
import { ensureDataset, loadRunDataset, type RunDataOptions } from './datasets';
import { buildVariantModel, runNoteIds } from './variant';
import { loadRunTokenizer, type TowerSources } from './sources';
import { checkpointsRoot, checkpointVariants, RUN_DIRS, variantCheckpointDir } from './run-folder';

/** config.json of a representation checkpoint (see runVariant). */
export interface CheckpointConfig {
  model: ResolvedModelConfig;
  train: ResolvedTrainConfig;
  preset: string;
  name?: string;
  datasetDir?: string;
  tokenizerPath?: string;
  pretrained?: { lm?: string; vit?: string };
  /** The imported towers' folders and file hashes (runs with --lm / --vision). */
  sources?: TowerSources;
  /** How the run read its dataset, when it left bad rows out (--skip-bad). */
  data?: RunDataOptions;
}

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
  for (const kind of [which, other]) {
    const slot = checkpointSlot(dir, kind);
    if (has(slot)) return slot;
    // Falling back from an interrupted best/ to last/ would evaluate another model than asked.
    if (interruptedSave(slot).previous) throw new Error(`checkpoint ${path}: ${slot} is missing${interruptedSaveHint(slot)}`);
  }
  const runCheckpoints = checkpointsRoot(dir);
  if (existsSync(runCheckpoints)) {
    const variants = checkpointVariants(dir);
    if (variants.length === 1) return resolveCheckpointDir(join(runCheckpoints, variants[0]), which);
    if (variants.length > 1) {
      throw new Error(`checkpoint ${path}: a run folder with ${variants.length} variants; name one of ${variants.map((v) => join(runCheckpoints, v)).join(', ')}`);
    }
  }
  // A save killed between its two renames leaves no checkpoint but the previous one aside.
  const hint = interruptedSaveHint(dir);
  throw new Error(
    `checkpoint ${path}: no ${CHECKPOINT_FILES.weights} in ${dir}, ${checkpointSlot(dir, 'best')} or ${checkpointSlot(dir, 'last')}` +
      (hint || ` (expected a variant's checkpoint folder such as ${join('runs', '<run>', RUN_DIRS.checkpoints, '<preset>-s<seed>')})`),
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
  /**
   * Skip bad dataset rows instead of failing. Defaults to what the run did: a checkpoint trained
   * with --skip-bad is read with it (its config.json says so).
   */
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
  // The dataset as the run read it: the same image check and the same rows left out.
  const data: RunDataOptions = { skipBad: opts.skipBad ?? config.data?.skipBad, imageSizes: config.data?.imageSizes ?? [config.model.vision.imageSize] };
  const { dataset } = await loadRunDataset(datasetDir, data);

  const tokenizerPath = opts.tokenizer ?? config.tokenizerPath;
  if (!tokenizerPath) throw new Error(`${configFile}: names no tokenizerPath; pass the tokenizer file the model was trained with`);
  if (!existsSync(tokenizerPath)) throw new Error(`tokenizer ${tokenizerPath} (named by ${configFile}) does not exist; rerun the training (notellm2 train) to rebuild it`);
  const tokenizer = loadRunTokenizer(tokenizerPath, config.sources);
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
  const { model, store, encoder, vision, images } = await buildVariantModel({ model: config.model, train, seed: train.seed, dataset, tokenizer, from: { weights: ckpt.weights }, sources: config.sources, visionNotes });
  return { dir, config, model, store, tokenizer, encoder, dataset, vision, images, dispose: () => store.dispose() };
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

export interface LoadVariantOptions {
  /** Which checkpoint: 'best' (lowest validation loss, the default) or 'last'. */
  checkpoint?: CheckpointChoice;
  /** Override (or supply, for runs whose config.json predates the field) the dataset folder. */
  datasetDir?: string;
  /** Override (or supply) the tokenizer file. */
  tokenizerPath?: string;
}

/** A trained variant in memory; `dispose()` frees its parameters. */
export interface TrainedVariant {
  name: string;
  preset: string;
  seed: number;
  /** The checkpoint folder read. */
  dir: string;
  config: { model: ResolvedModelConfig; train: ResolvedTrainConfig };
  model: NoteLLM2Model;
  store: ParamStore;
  encoder: PromptEncoder;
  tokenizer: TextTokenizer;
  dataset: Dataset;
  /** Where the model's images come from (decoded on demand by `batch`). */
  vision: VisionSource;
  /** Model inputs for these notes (images loaded first); the caller disposes `owned`. */
  batch(notes: readonly Note[]): Promise<RepresentationBatch>;
  dispose(): void;
}

/**
 * Loads a trained variant of a run (restoreVariant on its checkpoint folder, images decoded
 * on demand): the dataset and tokenizer it was trained on, the model with every parameter
 * restored.
 */
export async function loadTrainedVariant(runDir: string, name: string, seed: number, opts: LoadVariantOptions = {}): Promise<TrainedVariant> {
  const kind = opts.checkpoint ?? 'best';
  if (!CHECKPOINT_CHOICES.includes(kind)) throw new Error(`checkpoint must be one of ${CHECKPOINT_CHOICES.join(', ')}; got "${kind as string}"`);
  const dir = variantCheckpointDir(resolve(runDir), name, seed, kind);
  if (!existsSync(dir)) {
    const have = existsSync(checkpointsRoot(resolve(runDir))) ? checkpointVariants(resolve(runDir)).join(', ') : `(no ${RUN_DIRS.checkpoints} folder)`;
    throw new Error(`${dir}: no such checkpoint; the run holds: ${have}${interruptedSaveHint(dir)}`);
  }
  const v = await restoreVariant(dir, { dataset: opts.datasetDir, tokenizer: opts.tokenizerPath, imagesOnDemand: true });
  const train = resolveTrainConfig(v.config.train);
  return {
    name,
    preset: v.config.preset,
    seed,
    dir: v.dir,
    config: { model: v.config.model, train },
    model: v.model,
    store: v.store,
    encoder: v.encoder,
    tokenizer: v.tokenizer,
    dataset: v.dataset,
    vision: v.vision,
    async batch(notes) {
      if (v.images) await v.images.load(notes.map((n) => n.id));
      return buildInputs(v.model, v.encoder, v.vision, notes);
    },
    dispose: () => v.dispose(),
  };
}
