/**
 * One variant of an ablation: a preset (plus overrides) and a seed, trained and evaluated on
 * a prepared dataset. Runs in the runner's process or in a worker process; everything it
 * needs travels as plain JSON (`VariantSpec`), everything it returns too (`VariantResult`).
 */
import { join, resolve } from 'node:path';
import { initBackend } from '../backend';
import type { TextTokenizer } from '../data/tokenizer';
import { DEFAULT_IMAGE_CACHE_DIR, ImageStore } from '../data/images';
import type { Dataset } from '../data/schema';
import { ParamStore, pathHasPrefix, type ParamRecord } from '../model/params';
import { resolveModelConfig, type ModelConfig, type ResolvedModelConfig } from '../model/config';
import { NoteLLM2Model } from '../model/notellm2';
import { PromptEncoder } from '../model/batch';
import { loadCheckpoint } from '../model/checkpoint';
import { lmTrainOf, resolveTrainConfig, type ResolvedTrainConfig, type TrainConfig } from '../train/config';
import { train } from '../train/trainer';
import { featuresPersist, RepresentationTask, TAU_PATH, VisionFeatureCache, type VisionSource } from '../train/representation';
import { vitPatchCount } from '../model/vit';
import type { RecallProtocol } from '../eval/recall';
import { presetConfig } from './presets';
import { evaluateVariant, evaluationFields } from './evaluate';
import { loadRunDataset, type RunDataOptions } from './datasets';
import type { VariantResult } from './results';
import { loadImportedTowers, loadRunTokenizer, type TowerSources } from './sources';

export interface VariantSpec {
  /** Display name (the preset, or preset plus a sweep suffix). */
  name: string;
  preset: string;
  seed: number;
  /** Merged over the preset (sweeps: connector, query tokens, …). */
  model?: ModelConfig;
  train?: TrainConfig;
  datasetDir: string;
  tokenizerPath: string;
  /** Cache folders of the pretrained towers (checkpoints under `<dir>/model`). */
  pretrained: { lm?: string; vit?: string };
  /** Imported towers (`--lm`, `--vision`); they take the place of the pretrained ones. */
  sources?: TowerSources;
  /** Where checkpoints go (resumable); none: no checkpoints. */
  checkpointDir?: string;
  /** Save the test-note embeddings of n_m here (an EmbeddingCatalogue folder). */
  embeddingsDir?: string;
  progress?: 'auto' | 'bar' | 'lines' | 'silent';
  /** Recall protocol of the evaluation. Defaults to 'reference'. */
  protocol?: RecallProtocol;
  /** Sweep cell and coordinates, passed through to the result. */
  group?: string;
  axes?: Record<string, number>;
  /** How the run reads the dataset (the runner's preparation has reported what it left out). */
  data: RunDataOptions;
}

/** What a variant's model is built from: runVariant trains it, restoreVariant and loadTrainedVariant read it back. */
export interface VariantModelSpec {
  model: ResolvedModelConfig;
  train: ResolvedTrainConfig;
  /** Seed of the parameter initialisation. */
  seed: number;
  dataset: Dataset;
  tokenizer: TextTokenizer;
  /**
   * Where the parameters come from. `pretrained`: the cache folders of the pretrained towers
   * (checkpoints under `<dir>/model`, loaded non-strict: the rest keeps its seeded init), then
   * the parts the training config freezes are made untrainable. `weights`: a trained
   * checkpoint's, loaded strictly — every parameter and τ, except the frozen weights of
   * imported towers, which checkpoints leave out and `sources` supplies.
   */
  from: { pretrained: { lm?: string; vit?: string } } | { weights: ParamRecord };
  /** Imported towers, read into the store before the model is built on it. */
  sources?: TowerSources;
  /**
   * Notes whose images are read now, in this order; with a frozen vision tower their features
   * are computed once, over these notes in chunks. Absent: the images are decoded on demand
   * (the caller loads them into `images` before building inputs).
   */
  visionNotes?: readonly string[];
  /** Also cache the features of the mirrored images (the flip augmentation of training). */
  flips?: boolean;
}

export interface VariantModel {
  model: NoteLLM2Model;
  store: ParamStore;
  encoder: PromptEncoder;
  vision: VisionSource;
  /** The image store behind `vision` (null without a vision tower). */
  images: ImageStore | null;
}

/**
 * The notes of a run in the order it computes frozen vision features: the training and
 * validation pairs' notes, then the test notes. Reading a model back over the same list puts
 * every note's features in the same encoder chunk as during the run, so the recall matches
 * bit for bit.
 */
export function runNoteIds(dataset: Dataset): string[] {
  const ids = new Set<string>();
  for (const split of ['train', 'val'] as const) for (const p of dataset.pairs[split]) ids.add(p.a).add(p.b);
  for (const id of dataset.noteIds.test) ids.add(id);
  return [...ids];
}

/** Builds a variant's model, its prompt encoder and its vision source; the caller disposes `store`. */
export async function buildVariantModel(spec: VariantModelSpec): Promise<VariantModel> {
  const { model: modelCfg, train: trainCfg, dataset, sources } = spec;
  const store = new ParamStore(spec.seed);
  try {
    // Imported towers first: the model built on the store then finds their weights.
    const imported = sources ? await loadImportedTowers(store, modelCfg, sources, lmTrainOf(trainCfg)) : {};
    if (!sources?.lm && lmTrainOf(trainCfg) !== 'full') {
      throw new Error(`--lm-train ${lmTrainOf(trainCfg)} applies to an imported LLM (--lm <folder>); the built-in LM trains in full`);
    }
    const model = new NoteLLM2Model(modelCfg, store, imported);
    if (trainCfg.freezeVision) store.setTrainable('vit', false);
    for (const prefix of trainCfg.freeze) store.setTrainable(prefix, false);
    if ('pretrained' in spec.from) {
      // The existing towers (docs/method.md "Overview"): pretrained LM and vision encoder.
      const { lm, vit } = spec.from.pretrained;
      if (lm) store.load((await loadCheckpoint(join(lm, 'model'))).weights, { strict: false });
      if (vit && model.vit) store.load((await loadCheckpoint(join(vit, 'model'))).weights, { strict: false });
    } else {
      // τ lives in the store during training (RepresentationTask), so the checkpoint holds it.
      store.param(TAU_PATH, [], { kind: 'constant', value: trainCfg.tauInit });
      const report = store.load(spec.from.weights, { strict: !sources });
      const absent = report.missing.filter((p) => !importedFrozen(store, sources, p));
      if (absent.length || report.unexpected.length) {
        throw new Error(
          `checkpoint does not match the model: missing [${absent.slice(0, 6).join(', ')}${absent.length > 6 ? ', …' : ''}], ` +
            `unexpected [${report.unexpected.slice(0, 6).join(', ')}${report.unexpected.length > 6 ? ', …' : ''}]`,
        );
      }
    }
    const encoder = new PromptEncoder(spec.tokenizer, modelCfg, model.imageTokens);
    const cacheDir = resolve(DEFAULT_IMAGE_CACHE_DIR);
    const images = model.vit ? ImageStore.shared(dataset, { size: modelCfg.vision.imageSize, preprocessing: sources?.vision?.preprocessing, cacheDir }) : null;
    let vision: VisionSource = images ? { kind: 'images', images } : { kind: 'none' };
    if (images && spec.visionNotes) {
      // Frozen: the features (read from the feature file when there is one, without decoding every image).
      if (trainCfg.freezeVision) vision = { kind: 'cache', cache: await VisionFeatureCache.build(model, images, spec.visionNotes, { flips: spec.flips, dir: cacheDir }) };
      else await images.load(spec.visionNotes);
    }
    return { model, store, encoder, vision, images };
  } catch (e) {
    store.dispose();
    throw e;
  }
}

/**
 * Whether a parameter is a frozen weight of an imported tower: checkpoints leave those out
 * (the run's source folders hold them) and restoring reads them from there.
 */
export function importedFrozen(store: ParamStore, sources: TowerSources | undefined, path: string): boolean {
  if (!sources || store.isTrainable(path)) return false;
  return (sources.lm !== undefined && pathHasPrefix(path, 'lm')) || (sources.vision !== undefined && pathHasPrefix(path, 'vit'));
}

/** A variant's configs, resolved as its run resolves them. */
function variantConfigs(spec: VariantSpec, tokenizer: TextTokenizer): { modelCfg: ResolvedModelConfig; trainCfg: ResolvedTrainConfig } {
  return { modelCfg: resolveModelConfig({ ...presetConfig(spec.preset), ...spec.model }, tokenizer.vocabSize), trainCfg: resolveTrainConfig(spec.train) };
}

/** The model a variant's run starts from: pretrained towers, seeded init, every run note's image (features) ready. */
function startVariantModel(spec: VariantSpec, dataset: Dataset, tokenizer: TextTokenizer): Promise<VariantModel> {
  const { modelCfg, trainCfg } = variantConfigs(spec, tokenizer);
  return buildVariantModel({
    model: modelCfg,
    train: trainCfg,
    seed: spec.seed,
    dataset,
    tokenizer,
    from: { pretrained: spec.pretrained },
    sources: spec.sources,
    visionNotes: runNoteIds(dataset),
    flips: trainCfg.flip,
  });
}

/**
 * Computes, in this process, the frozen vision features the variants' runs read and leaves
 * them in the feature files (FeatureCacheOptions.dir), so worker processes started afterwards
 * read them instead of each computing them. Variants whose features would be the same are
 * warmed once (a variant that turns out to differ computes its own: the files are keyed by
 * content). Returns how many feature sets were computed or found.
 */
export async function warmVisionFeatures(specs: readonly VariantSpec[], dataset: Dataset): Promise<number> {
  await initBackend();
  const done = new Set<string>();
  const nNotes = runNoteIds(dataset).length;
  for (const spec of specs) {
    const tokenizer = loadRunTokenizer(spec.tokenizerPath, spec.sources);
    const { modelCfg, trainCfg } = variantConfigs(spec, tokenizer);
    if (!(modelCfg.earlyFusion || modelCfg.lateFusion) || !trainCfg.freezeVision) continue;
    // Too large to keep on disk: each worker computes its own, as it would anyway.
    const v = modelCfg.vision;
    if (!featuresPersist(nNotes, trainCfg.flip, vitPatchCount(v), v.dim)) continue;
    // A pretrained or imported encoder is the same for every seed; a random one is the seed's.
    const key = JSON.stringify([spec.pretrained.vit ?? (spec.sources?.vision ? '' : spec.seed), spec.sources?.vision?.folder, modelCfg.vision, trainCfg.flip, spec.datasetDir]);
    if (done.has(key)) continue;
    done.add(key);
    (await startVariantModel(spec, dataset, tokenizer)).store.dispose();
  }
  return done.size;
}

export async function runVariant(spec: VariantSpec): Promise<VariantResult> {
  const backend = await initBackend();
  const { dataset } = await loadRunDataset(spec.datasetDir, spec.data);
  const tokenizer = loadRunTokenizer(spec.tokenizerPath, spec.sources);
  const { modelCfg, trainCfg } = variantConfigs(spec, tokenizer);
  const { model, store, encoder, vision } = await startVariantModel(spec, dataset, tokenizer);
  try {
    const task = new RepresentationTask(model, encoder, vision, dataset.notes, dataset.pairs.train, dataset.pairs.val, trainCfg);
    const result = await train(task, store, trainCfg, {
      checkpointDir: spec.checkpointDir,
      // How the run read its dataset, only when it left bad rows out (strict runs keep the
      // config.json they always had): eval, embed and saliency on the checkpoint read it alike.
      config: {
        model: modelCfg,
        train: trainCfg,
        preset: spec.preset,
        name: spec.name,
        datasetDir: spec.datasetDir,
        tokenizerPath: spec.tokenizerPath,
        pretrained: spec.pretrained,
        sources: spec.sources,
        ...(spec.data.skipBad && { data: spec.data }),
      },
      // Checkpoints hold what training changes; an imported tower's frozen weights stay in its folder.
      omitFromCheckpoint: spec.sources ? (path) => importedFrozen(store, spec.sources, path) : undefined,
      tauPath: TAU_PATH,
      progress: { label: `${spec.name} s${spec.seed}`, mode: spec.progress ?? 'auto' },
    });

    // Evaluation (docs/method.md "Evaluation protocol") on the test notes, with the probes.
    const e = await evaluateVariant({ model, encoder, vision, dataset }, { protocol: spec.protocol });
    if (spec.embeddingsDir) await e.catalogue.save(spec.embeddingsDir, { preset: spec.preset, seed: String(spec.seed) });
    return {
      name: spec.name,
      preset: spec.preset,
      seed: spec.seed,
      config: { model: modelCfg, train: trainCfg, preset: spec.preset },
      ...evaluationFields(e),
      trainSeconds: result.seconds,
      steps: result.steps,
      bestEpoch: result.bestEpoch,
      valLoss: result.valLoss,
      curve: result.history.map((h) => ({ step: h.step, loss: h.loss, tau: h.tau, lr: h.lr })),
      backend: backend.name,
      ...(spec.group !== undefined && { group: spec.group }),
      ...(spec.axes && { axes: spec.axes }),
    };
  } finally {
    store.dispose();
  }
}
