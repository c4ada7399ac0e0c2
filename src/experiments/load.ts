/**
 * Trained variants read back from a run folder, and the per-run analyses that need the
 * trained models themselves (modality saliency, docs/method.md "Modality saliency").
 *
 *   <run>/checkpoints/<name>-s<seed>/{best,last}/   model.safetensors + config.json
 *       config.json = { model, train, preset, name, datasetDir, tokenizerPath, pretrained }
 *   <run>/results.json    the variant names and seeds (written by `notellm2 ablate`)
 *   <run>/saliency.json   { presets: [{ preset, layers: [{ sv, st, so, attnImage, attnText }] }] }
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Rng, tf } from '../backend';
import type { TextTokenizer } from '../data/tokenizer';
import type { Dataset, Note } from '../data/schema';
import type { ParamStore } from '../model/params';
import type { ResolvedModelConfig } from '../model/config';
import type { NoteLLM2Model } from '../model/notellm2';
import type { PromptEncoder } from '../model/batch';
import { readJsonFile, writeJsonAtomic } from '../model/checkpoint';
import { resolveTrainConfig, type ResolvedTrainConfig } from '../train/config';
import { buildInputs, type RepresentationBatch, type VisionSource } from '../train/representation';
import { computeSaliency, type ModalitySaliencyLayer } from '../eval/saliency';
import { CHECKPOINT_CHOICES, restoreVariant, type CheckpointChoice } from './restore';
import { variantCheckpointsDir } from './variant';

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

/** Checkpoint folder of a variant in a run. */
export function variantCheckpointDir(runDir: string, name: string, seed: number, kind: CheckpointChoice = 'best'): string {
  return join(variantCheckpointsDir(resolve(runDir), name, seed), kind);
}

/**
 * Loads a trained variant of a run (restoreVariant on its checkpoint folder, images decoded
 * on demand): the dataset and tokenizer it was trained on, the model with every parameter
 * restored.
 */
export async function loadTrainedVariant(runDir: string, name: string, seed: number, opts: LoadVariantOptions = {}): Promise<TrainedVariant> {
  const kind = opts.checkpoint ?? 'best';
  if (!CHECKPOINT_CHOICES.includes(kind)) throw new Error(`checkpoint must be one of ${CHECKPOINT_CHOICES.join(', ')}; got "${kind as string}"`);
  const dir = variantCheckpointDir(runDir, name, seed, kind);
  if (!existsSync(dir)) {
    const root = join(resolve(runDir), 'checkpoints');
    const have = existsSync(root) ? readdirSync(root).join(', ') : '(no checkpoints folder)';
    throw new Error(`${dir}: no such checkpoint; the run holds: ${have}`);
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

/** Variant names and seeds of a run: from results.json, else from the checkpoint folders. */
export function runVariants(runDir: string): { names: string[]; seeds: number[] } {
  const resultsFile = join(resolve(runDir), 'results.json');
  if (existsSync(resultsFile)) {
    const r = JSON.parse(readFileSync(resultsFile, 'utf8')) as { variants?: Array<{ name?: unknown }>; seedList?: unknown; seed?: unknown };
    const names = (r.variants ?? []).map((v) => v.name).filter((n): n is string => typeof n === 'string');
    const seeds = Array.isArray(r.seedList) ? r.seedList.filter((s): s is number => Number.isInteger(s)) : Number.isInteger(r.seed) ? [r.seed as number] : [];
    if (names.length && seeds.length) return { names, seeds };
  }
  const root = join(resolve(runDir), 'checkpoints');
  if (!existsSync(root)) throw new Error(`${runDir}: neither results.json nor a checkpoints folder (is this a run folder written by \`notellm2 ablate\`?)`);
  const names = new Set<string>();
  const seeds = new Set<number>();
  for (const d of readdirSync(root)) {
    const m = /^(.+)-s(\d+)$/.exec(d);
    if (m) {
      names.add(m[1]);
      seeds.add(Number(m[2]));
    }
  }
  return { names: [...names], seeds: [...seeds].sort((a, b) => a - b) };
}

export interface RunSaliencyOptions {
  /** Variant names (default: every variant of the run). */
  presets?: string[];
  /** Batches of test pairs. Defaults to 4. */
  batches?: number;
  /** Related pairs per batch (2× as many notes). Defaults to 16. */
  pairsPerBatch?: number;
  /** Which trained seed to read (default: the run's first). */
  seed?: number;
  /** Seed of the test-pair sample (default 0; the same pairs for every variant). */
  sampleSeed?: number;
  checkpoint?: CheckpointChoice;
  datasetDir?: string;
  tokenizerPath?: string;
  /** Write or update `<run>/saliency.json`. Defaults to true. */
  write?: boolean;
  log?: (msg: string) => void;
}

export interface RunSaliencyEntry {
  preset: string;
  seed: number;
  layers: ModalitySaliencyLayer[];
  examples: number;
  /** Mean L_m over the batches. */
  loss: number;
}

/**
 * Modality saliency of the trained variants of a run on test pairs (docs/method.md "Modality
 * saliency"): per layer S_v, S_t, S_o and the attention mass of n_m on image and text.
 * Writes (merging by preset) `<run>/saliency.json` unless `write` is false.
 */
export async function saliencyForRun(runDir: string, opts: RunSaliencyOptions = {}): Promise<{ entries: RunSaliencyEntry[]; file?: string }> {
  const log = opts.log ?? (() => {});
  const { names, seeds } = runVariants(runDir);
  const chosen = opts.presets ?? names;
  for (const p of chosen) {
    if (!names.includes(p)) throw new Error(`saliency: the run ${runDir} has no variant "${p}"; it has ${names.join(', ')}`);
  }
  const seed = opts.seed ?? seeds[0] ?? 0;
  const nBatches = opts.batches ?? 4;
  const perBatch = opts.pairsPerBatch ?? 16;
  if (!Number.isInteger(nBatches) || nBatches < 1) throw new Error(`saliency: batches must be an integer ≥ 1, got ${nBatches}`);
  if (!Number.isInteger(perBatch) || perBatch < 2) throw new Error(`saliency: pairsPerBatch must be an integer ≥ 2, got ${perBatch}`);
  const entries: RunSaliencyEntry[] = [];
  for (const name of chosen) {
    const v = await loadTrainedVariant(runDir, name, seed, opts);
    try {
      const pairs = new Rng(opts.sampleSeed ?? 0).shuffle([...v.dataset.pairs.test]);
      if (pairs.length < 2) throw new Error(`saliency: ${v.dataset.dir} has ${pairs.length} test pairs; at least 2 are needed`);
      const batches: RepresentationBatch[] = [];
      try {
        for (let k = 0; k < nBatches && k * perBatch + 2 <= pairs.length; k++) {
          const chunk = pairs.slice(k * perBatch, (k + 1) * perBatch);
          const note = (id: string) => {
            const n = v.dataset.notes.get(id);
            if (!n) throw new Error(`saliency: test pair names note ${id}, which ${v.dataset.dir} does not hold`);
            return n;
          };
          batches.push(await v.batch([...chunk.map((p) => note(p.a)), ...chunk.map((p) => note(p.b))])); // [a; b]
        }
        const t0 = performance.now();
        const r = computeSaliency(v.model, batches.map((b) => b.inputs));
        log(`${name} (seed ${seed}): ${r.examples} notes in ${batches.length} batches, L_m ${r.loss.toFixed(3)}, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        entries.push({ preset: name, seed, layers: r.layers, examples: r.examples, loss: r.loss });
      } finally {
        for (const b of batches) tf.dispose(b.owned);
      }
    } finally {
      v.dispose();
    }
  }
  if (opts.write === false) return { entries };
  const file = await writeSaliencyFile(runDir, entries);
  return { entries, file };
}

/** Writes `<run>/saliency.json`, replacing the entries of these presets and keeping the others. */
export async function writeSaliencyFile(runDir: string, entries: ReadonlyArray<{ preset: string; layers: ModalitySaliencyLayer[] }>): Promise<string> {
  const file = join(resolve(runDir), 'saliency.json');
  let presets: Array<{ preset: string; layers: unknown[] }> = [];
  if (existsSync(file)) {
    const old = (await readJsonFile(file)) as { presets?: unknown };
    if (!old || !Array.isArray(old.presets)) throw new Error(`${file}: expected { "presets": [...] }; move the file aside to rewrite it`);
    presets = old.presets as typeof presets;
  }
  for (const e of entries) {
    const layers = e.layers.map(({ sv, st, so, attnImage, attnText }) => ({ sv, st, so, attnImage, attnText }));
    const at = presets.findIndex((p) => p.preset === e.preset);
    if (at >= 0) presets[at] = { preset: e.preset, layers };
    else presets.push({ preset: e.preset, layers });
  }
  await writeJsonAtomic(file, { presets });
  return file;
}
