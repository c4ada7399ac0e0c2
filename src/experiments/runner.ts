/**
 * The ablation runner: prepare a dataset once (build it, train the tokenizer, pretrain the
 * two towers — all cached on disk — and score the baselines), then train and evaluate every
 * (variant, seed), in parallel worker processes when cores allow, aggregate mean ± std over
 * seeds, and add the statistics (analysis.ts: intervals, comparisons, claims).
 */
import { fork } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import { initBackend } from '../backend';
import { mapPool } from '../backend/pool';
import type { LoadResult } from '../data/loaders';
import { CACHE_DIR } from '../data/write';
import { saveTokenizer, trainTokenizer } from '../data/tokenizer';
import { ImageStore } from '../data/images';
import { renderPrompt, type PromptKind } from '../model/prompt';
import { resolveModelConfig, type ModelConfig } from '../model/config';
import { resolveTrainConfig, type TrainConfig } from '../train/config';
import { DEFAULT_LM_PRETRAIN, DEFAULT_VISION_PRETRAIN, noteCorpus, pretrainLM, pretrainVision, pretrainingNoteIds } from '../train/pretrain';
import type { RecallProtocol } from '../eval/recall';
import type { BootstrapOptions } from '../eval/stats';
import { ensureDataset, loadRunDataset, type RunDataOptions } from './datasets';
import { presetConfig, regimeCell, type PretrainScale } from './presets';
import { runVariant, warmVisionFeatures, type VariantSpec } from './variant';
import { aggregate, configDifference, readRunResults, reviveVariantResult, type AblationResults, type VariantResult } from './results';
import { scoreBaselines, type BaselineRun } from './baselines';
import { analyseRun } from './analysis';
import { checkRunOut, openRunFolder, variantCheckpointRoot, variantEmbeddingsDir } from './run-folder';
import { HF_TOKENIZER_FILE, importedModelConfig, importTokenizer, loadRunTokenizer, recordSource, type TowerSources } from './sources';
import { readHfLMConfig } from '../model/hf/llama';
import { readHfVisionSpec } from '../model/hf/vision';

export interface VariantRequest {
  /** Display name; defaults to the preset. */
  name?: string;
  preset: string;
  model?: ModelConfig;
  train?: TrainConfig;
  /** Towers pretrained with scaled budgets (regime sweep); defaults to the run's towers. */
  pretrainScale?: PretrainScale;
  /** Sweep cell and its coordinates (statistics compare within a cell). */
  group?: string;
  axes?: Record<string, number>;
}

export interface AblationOptions {
  /** 'synth' | 'openmoji' | a folder in the reference layout. */
  dataset: string;
  /** Presets (or richer variant requests, for sweeps). */
  variants: Array<string | VariantRequest>;
  /** Seeds run per variant: seedBase, seedBase+1, … Defaults to 1. */
  seeds?: number;
  seedBase?: number;
  /** Run folder (results, checkpoints, embeddings). */
  out: string;
  /** Applied to every variant before its own overrides. */
  model?: ModelConfig;
  train?: TrainConfig;
  /** Tokenizer vocabulary. Defaults to 2048. */
  vocabSize?: number;
  /** Pretraining overrides (steps etc.), or false to start both towers from random weights. */
  pretrain?: { lm?: TrainConfig; vision?: TrainConfig } | false;
  /** Worker processes. Defaults to min(cores, variants × seeds); 1 runs in this process. */
  workers?: number;
  log?: (msg: string) => void;
  progress?: VariantSpec['progress'];
  /** Skip bad rows of a user dataset (printing how many of each kind) instead of failing. Defaults to false. */
  skipBad?: boolean;
  /** A Hugging Face LLM folder (Llama family, Qwen2) to use instead of the pretrained built-in LM. */
  lm?: string;
  /** A Hugging Face vision encoder folder (CLIP, SigLIP) to use instead of the pretrained built-in ViT. */
  vision?: string;
  /** Write into an existing non-empty `out` that is not a run folder of this tool. Defaults to false. */
  force?: boolean;
  /** What holds the run folder's lock, as its message to a second process shows it. Defaults to 'runAblation'. */
  command?: string;
  /** Recall protocol of every evaluation. Defaults to 'reference'. */
  protocol?: RecallProtocol;
  /** Bootstrap and permutation settings of the statistics. */
  statistics?: BootstrapOptions;
}

/** Most seeds per variant: more is almost certainly a typo (each seed is a full training run). */
export const MAX_SEEDS = 1000;
/** The largest seed: Rng keeps 32 bits of it, so larger seeds would repeat smaller ones' runs. */
export const MAX_SEED = 2 ** 32 - 1;

/**
 * A run checked before anything is written: variants, seeds and configurations resolved, the
 * output folder allowed, the dataset loaded the way every step of the run will read it, and the
 * results already in the folder found compatible. planAblation makes it; runAblation runs it.
 */
export interface AblationPlan {
  /** The run folder (absolute). */
  out: string;
  datasetDir: string;
  datasetName: string;
  loaded: LoadResult;
  data: RunDataOptions;
  requests: VariantRequest[];
  names: string[];
  seeds: number[];
}

/**
 * Checks everything a run can get wrong before it pretrains or writes a file: preset names and
 * variant names, seeds and numeric settings (through the config resolvers, which name the
 * field), the output folder (checkRunOut), the dataset (loaded and every image decoded as the
 * run will, cached; bad rows fail unless `skipBad`), each variant's batch against the training
 * pairs, and the results already in the folder (same dataset, same configuration per variant
 * name). Throws the first problem; creates nothing under `out`.
 */
export async function planAblation(opts: AblationOptions): Promise<AblationPlan> {
  const log = opts.log ?? (() => {});
  const requests: VariantRequest[] = opts.variants.map((v) => (typeof v === 'string' ? { preset: v } : v));
  if (requests.length === 0) throw new Error('no variants to run (give at least one preset)');
  const scaled = requests.filter((r) => r.pretrainScale).length;
  if (scaled > 0 && scaled < requests.length) throw new Error('either every variant or none names a pretraining scale');
  if (scaled > 0 && (opts.lm || opts.vision)) throw new Error('the regime sweep scales the built-in towers\' pretraining; it does not combine with --lm or --vision');
  for (const r of requests) presetConfig(r.preset); // an unknown name fails here, listing the presets
  const names = requests.map((r) => r.name ?? r.preset);
  if (new Set(names).size !== names.length) throw new Error(`variant names must be unique, got ${names.join(', ')}`);
  const nSeeds = opts.seeds ?? 1;
  const seedBase = opts.seedBase ?? 0;
  if (!Number.isInteger(nSeeds) || nSeeds < 1 || nSeeds > MAX_SEEDS) throw new Error(`seeds: expected an integer from 1 to ${MAX_SEEDS}, got ${nSeeds}`);
  if (!Number.isSafeInteger(seedBase) || seedBase < 0 || seedBase + nSeeds - 1 > MAX_SEED) {
    throw new Error(`seed: expected integers from 0 to ${MAX_SEED} (seeds ${seedBase}…${seedBase + nSeeds - 1} asked)`);
  }
  if (opts.workers !== undefined && (!Number.isInteger(opts.workers) || opts.workers < 1)) throw new Error(`workers: expected an integer ≥ 1, got ${opts.workers}`);
  const seeds = Array.from({ length: nSeeds }, (_, i) => seedBase + i);
  // The resolvers check every field (names in their messages); the vocabulary comes later.
  const planned = requests.map((r, i) => ({
    name: names[i],
    preset: r.preset,
    model: resolveModelConfig({ ...presetConfig(r.preset), ...opts.model, ...r.model }),
    train: resolveTrainConfig({ ...opts.train, ...r.train, seed: seeds[0] }),
  }));
  const out = checkRunOut(opts.out, { force: opts.force });
  const existing = existsSync(out) ? readRunResults(out) : null;
  if (existing === 'foreign' && !opts.force) {
    throw new Error(`${out}: its results.json was not written by notellm2; choose another --out, or pass --force to replace it`);
  }
  const protocol = opts.protocol ?? 'reference';
  if (existing && existing !== 'foreign' && (existing.protocol ?? 'reference') !== protocol) {
    throw new Error(`${out} holds results under the ${existing.protocol ?? 'reference'} protocol, not ${protocol}; paired statistics need the same queries; choose another --out`);
  }

  const { dir, name } = await ensureDataset(opts.dataset, { log });
  const base = resolveModelConfig(opts.model ?? {});
  // An imported vision encoder decodes at its own size (and preprocessing).
  const importedSize = opts.vision ? (await readHfVisionSpec(resolve(opts.vision))).config.imageSize : undefined;
  const sizes = importedSize !== undefined ? [importedSize] : [base.vision.imageSize, ...planned.map((p) => p.model.vision.imageSize)];
  const data: RunDataOptions = { skipBad: opts.skipBad, imageSizes: [...new Set(sizes)] };
  const loaded = await loadRunDataset(dir, data);
  const nTrain = loaded.dataset.pairs.train.length;
  for (const p of planned) {
    if (p.train.batchPairs > nTrain) {
      throw new Error(`batch of ${p.train.batchPairs} pairs (${p.name}): ${dir} has ${nTrain} usable training pairs; expected --batch ≤ ${nTrain}`);
    }
  }
  if (existing && existing !== 'foreign') {
    const theirs = existing.datasetDir ?? existing.dataset;
    if (theirs !== dir && theirs !== name) throw new Error(`${out} holds results on dataset ${String(theirs)}, not ${dir}; choose another --out`);
    for (const p of planned) {
      const old = existing.variants.find((v) => v.name === p.name);
      if (!old) continue;
      const want = { model: resolveModelConfig({ ...presetConfig(p.preset), ...opts.model, ...requests[names.indexOf(p.name)].model }, old.config.model.lm.vocabSize), train: p.train, preset: p.preset };
      const diff = configDifference(old.config, want);
      if (diff) throw new Error(`${out} already holds variant "${p.name}" trained with another configuration (${diff}); choose another --out`);
    }
  }
  return { out, datasetDir: dir, datasetName: name, loaded, data, requests, names, seeds };
}

export interface Prepared {
  datasetDir: string;
  datasetName: string;
  tokenizerPath: string;
  /** The towers at the run's own pretraining budgets. */
  pretrained: { lm?: string; vit?: string };
  /** Per pretraining scale asked for (regimeCell name): the towers at that scale. */
  scaled: Record<string, { lm?: string; vit?: string }>;
  /** The two baselines scored on the run's test pairs (baselines.ts). */
  baselines: BaselineRun[];
  /** Imported towers (--lm, --vision) with their file hashes. */
  sources?: TowerSources;
  /** What the imported towers dictate of every variant's model config (their layouts). */
  model: ModelConfig;
  pretrainInfo: Record<string, unknown>;
}

const sha = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 16);

/** The run's budget times `scale` (0: no pretraining, the tower keeps its random initialisation). */
function scaledBudget(base: TrainConfig | undefined, defaults: Readonly<TrainConfig>, scale: number): TrainConfig | null {
  if (scale === 0) return null;
  const steps = base?.maxSteps ?? defaults.maxSteps ?? 0;
  return scale === 1 ? { ...base } : { ...base, maxSteps: Math.max(1, Math.round(steps * scale)) };
}

/**
 * Dataset, tokenizer, pretrained towers (at the run's budgets, or at each scale in `scales`)
 * and the baselines' scores for a run; the first three are cached and reused. The dataset is
 * the plan's when given, else loaded here as a run reads it (loadRunDataset).
 */
export async function prepare(
  opts: Pick<AblationOptions, 'dataset' | 'model' | 'vocabSize' | 'pretrain' | 'log' | 'progress' | 'skipBad' | 'lm' | 'vision' | 'protocol'> & {
    plan?: Pick<AblationPlan, 'datasetDir' | 'datasetName' | 'loaded'>;
    scales?: PretrainScale[];
  },
): Promise<Prepared> {
  const log = opts.log ?? (() => {});
  await initBackend();
  let dir: string, name: string, loaded: LoadResult;
  if (opts.plan) ({ datasetDir: dir, datasetName: name, loaded } = opts.plan);
  else {
    ({ dir, name } = await ensureDataset(opts.dataset, { log }));
    // Strict by default: a bad row fails the run with every problem listed (file:line).
    loaded = await loadRunDataset(dir, { skipBad: opts.skipBad, imageSizes: [resolveModelConfig(opts.model ?? {}).vision.imageSize] });
  }
  const { dataset, report } = loaded;
  if (!report.ok) {
    const kinds = Object.entries(report.badRows).map(([k, n]) => `${n} ${k}`).join(', ');
    log(`skipped bad rows of ${dir}: ${kinds}${report.droppedPairs ? `; ${report.droppedPairs} pairs dropped with them` : ''}`);
  }
  const base = resolveModelConfig(opts.model ?? {});
  const ids = pretrainingNoteIds(dataset);
  const cacheDir = resolve(CACHE_DIR);
  mkdirSync(cacheDir, { recursive: true });
  // Imported towers (docs/method.md "Overview"): recorded with their file hashes.
  const sources: TowerSources = {};
  if (opts.lm) sources.lm = await recordSource(opts.lm, '--lm');
  if (opts.vision) {
    const rec = await recordSource(opts.vision, '--vision');
    sources.vision = { ...rec, preprocessing: (await readHfVisionSpec(rec.folder)).preprocessing };
  }
  let tokenizerPath: string;
  if (sources.lm && sources.lm.files[HF_TOKENIZER_FILE]) {
    // The imported LLM's own tokenizer, with the prompt's special tokens added.
    tokenizerPath = importTokenizer(sources.lm.folder, cacheDir).path;
    log(`LM imported from ${sources.lm.folder} (its tokenizer, with <IMG> and <IMG_EMB> added)`);
  } else {
    // Tokenizer: byte-level BPE on the training notes rendered in every prompt form, so the
    // fixed template compresses to a few tokens. An imported LLM without a tokenizer.json (a
    // random test checkpoint) gets one within its vocabulary; its weights never saw these ids.
    const trainNotes = ids.map((id) => dataset.notes.get(id)!);
    const kinds: PromptKind[] = ['basic', 'micl', 'text'];
    const corpus = trainNotes.flatMap((n) => kinds.map((k) => renderPrompt(k, n, base.text)));
    let vocab = opts.vocabSize ?? 2048;
    if (sources.lm) {
      vocab = Math.min(vocab, (await readHfLMConfig(sources.lm.folder)).lm.vocabSize);
      log(`LM imported from ${sources.lm.folder}; it has no ${HF_TOKENIZER_FILE}, so a tokenizer of ${vocab} ids is trained on the notes (its ids mean nothing to the model's weights)`);
    }
    tokenizerPath = join(cacheDir, `tokenizer-${sha(JSON.stringify([vocab, corpus]))}.json`);
    if (!existsSync(tokenizerPath)) {
      log(`training the tokenizer (vocab ${vocab}) on ${corpus.length} prompts …`);
      saveTokenizer(trainTokenizer(corpus, { vocabSize: vocab }), tokenizerPath);
    }
  }
  const tokenizer = loadRunTokenizer(tokenizerPath, sources);
  const model = await importedModelConfig(sources, tokenizer.vocabSize);
  if (sources.vision) log(`vision encoder imported from ${sources.vision.folder}`);
  const info: Record<string, unknown> = {};
  let images: ImageStore | undefined;
  const towers = async (scale: PretrainScale): Promise<{ lm?: string; vit?: string }> => {
    const out: { lm?: string; vit?: string } = {};
    if (opts.pretrain === false) return out;
    const plain = scale.lm === 1 && scale.vision === 1;
    const lmTrain = sources.lm ? null : scaledBudget(opts.pretrain?.lm, DEFAULT_LM_PRETRAIN, scale.lm);
    if (lmTrain) {
      const tag = plain ? '' : ` ×${scale.lm}`;
      const lm = await pretrainLM({
        corpus: noteCorpus(dataset),
        tokenizer,
        lm: { ...base.lm, vocabSize: tokenizer.vocabSize },
        train: lmTrain,
        progress: { label: `pretrain-lm${tag}`, mode: opts.progress ?? 'auto' },
      });
      log(`LM pretrained${tag}${lm.cached ? ' (cached)' : ''}: ${lm.steps} steps, perplexity train ${lm.trainPerplexity.toFixed(1)} / held-out ${lm.valPerplexity.toFixed(1)} (uniform ${Math.exp(lm.uniformLoss).toFixed(0)})`);
      if (lm.dir) out.lm = resolve(lm.dir);
      info[`lm${tag}`] = { steps: lm.steps, trainPerplexity: lm.trainPerplexity, valPerplexity: lm.valPerplexity, seconds: lm.trainSeconds, cached: lm.cached };
    }
    const visionTrain = sources.vision ? null : scaledBudget(opts.pretrain?.vision, DEFAULT_VISION_PRETRAIN, scale.vision);
    if (visionTrain) {
      const tag = plain ? '' : ` ×${scale.vision}`;
      images ??= ImageStore.shared(dataset, { size: base.vision.imageSize, cacheDir });
      await images.load(ids);
      const vit = await pretrainVision({
        images: ids,
        imageStore: images,
        vit: base.vision,
        train: visionTrain,
        progress: { label: `pretrain-vision${tag}`, mode: opts.progress ?? 'auto' },
      });
      log(`vision encoder pretrained${tag}${vit.cached ? ' (cached)' : ''}: ${vit.steps} steps, held-out view agreement ${(100 * vit.viewAgreement.before).toFixed(1)}% → ${(100 * vit.viewAgreement.after).toFixed(1)}% (chance ${(100 * vit.viewAgreement.chance).toFixed(1)}%)`);
      if (vit.dir) out.vit = resolve(vit.dir);
      info[`vision${tag}`] = { steps: vit.steps, viewAgreement: vit.viewAgreement, seconds: vit.trainSeconds, cached: vit.cached };
    }
    return out;
  };
  const pretrained = opts.scales?.length ? {} : await towers({ lm: 1, vision: 1 });
  const scaled: Prepared['scaled'] = {};
  for (const scale of opts.scales ?? []) scaled[regimeCell(scale)] ??= await towers(scale);
  // What a bag of words and a colour histogram get on the same queries (docs/method.md "Baselines").
  const baselines = await scoreBaselines(dataset, { protocol: opts.protocol });
  log(`baselines scored (${baselines.map((b) => b.name).join(', ')}) in ${baselines[0]?.seconds.toFixed(1) ?? 0} s`);
  const imported = Object.keys(sources).length > 0;
  return { datasetDir: dir, datasetName: name, tokenizerPath, pretrained, scaled, baselines, ...(imported && { sources }), model, pretrainInfo: info };
}

/** Model configs merged in order, the nested tower configs field by field. */
function mergeModelConfig(...cfgs: Array<ModelConfig | undefined>): ModelConfig {
  const out: ModelConfig = {};
  for (const c of cfgs) {
    if (!c) continue;
    const { lm, vision, connector, text, ...rest } = c;
    Object.assign(out, rest);
    if (lm) out.lm = { ...out.lm, ...lm };
    if (vision) out.vision = { ...out.vision, ...vision };
    if (connector) out.connector = { ...out.connector, ...connector };
    if (text) out.text = { ...out.text, ...text };
  }
  return out;
}

/**
 * Rough relative training cost of a variant, for scheduling only: image tokens lengthen the
 * LM's sequence, the mICL prompt holds the template twice.
 */
function relativeCost(spec: VariantSpec): number {
  const cfg = { ...presetConfig(spec.preset), ...spec.model };
  return (cfg.earlyFusion ?? true ? 1.3 : 1) * (cfg.micl ? 1.3 : 1) * (cfg.lateFusion ? 1.05 : 1);
}

function workerEntry(): { script: string; execArgv: string[] } {
  // Under tsx (tests, `npx tsx src/cli.ts`) the worker is the .ts source; built, the .js.
  const ts = __filename.endsWith('.ts');
  return { script: join(__dirname, ts ? 'worker.ts' : 'worker.js'), execArgv: ts ? ['--import', 'tsx'] : [] };
}

function runInWorker(spec: VariantSpec, threads: number): Promise<VariantResult> {
  const { script, execArgv } = workerEntry();
  return new Promise((resolvePromise, reject) => {
    const child = fork(script, [], {
      execArgv,
      env: { ...process.env, NOTELLM2_ORT_THREADS: String(threads) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let result: VariantResult | undefined;
    let failure: string | undefined;
    child.on('message', (m: { result?: VariantResult; error?: string }) => {
      if (m.result) result = reviveVariantResult(m.result);
      if (m.error) failure = m.error;
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (result) resolvePromise(result);
      else reject(new Error(`variant ${spec.name} (seed ${spec.seed}) failed${failure ? `: ${failure}` : ` (worker exit code ${code})`}`));
    });
    child.send(spec);
  });
}

/** What a run returns: its aggregated and analysed results, each (variant, seed), and the baselines with their per-query ranks. */
export interface AblationOutcome {
  results: AblationResults;
  runs: VariantResult[];
  baselines: BaselineRun[];
}

/**
 * Trains and evaluates every (variant, seed); returns the aggregated results with their
 * statistics (analysis.ts: intervals, baselines, comparisons, claims). Checks the run
 * first (planAblation, unless a plan is given), then holds the run folder's lock while it runs;
 * a run that fails before writing anything into a folder it created removes that folder.
 */
export async function runAblation(opts: AblationOptions, plan?: AblationPlan): Promise<AblationOutcome> {
  const t0 = performance.now();
  const log = opts.log ?? (() => {});
  plan ??= await planAblation(opts);
  const folder = openRunFolder(plan.out, { command: opts.command ?? 'runAblation', force: opts.force, log });
  try {
    return await runPlanned(opts, plan, t0);
  } catch (e) {
    folder.discardIfEmpty();
    throw e;
  } finally {
    folder.release();
  }
}

async function runPlanned(opts: AblationOptions, plan: AblationPlan, t0: number): Promise<AblationOutcome> {
  const log = opts.log ?? (() => {});
  const scales = plan.requests.flatMap((r) => (r.pretrainScale ? [r.pretrainScale] : []));
  const prepared = await prepare({ ...opts, plan, scales });
  const { requests, names, seeds, out } = plan;
  mkdirSync(out, { recursive: true });
  const specs: VariantSpec[] = [];
  for (const seed of seeds) {
    requests.forEach((r, i) => {
      const name = names[i];
      specs.push({
        name,
        preset: r.preset,
        seed,
        // The run's and the variant's settings, then the imported towers' layouts (facts of their folders).
        model: mergeModelConfig(opts.model, r.model, prepared.model),
        train: { ...opts.train, ...r.train, seed },
        datasetDir: prepared.datasetDir,
        tokenizerPath: prepared.tokenizerPath,
        pretrained: r.pretrainScale ? prepared.scaled[regimeCell(r.pretrainScale)] : prepared.pretrained,
        sources: prepared.sources,
        checkpointDir: variantCheckpointRoot(out, name, seed),
        embeddingsDir: variantEmbeddingsDir(out, name, seed),
        progress: opts.progress,
        data: plan.data,
        protocol: opts.protocol,
        ...(r.group !== undefined && { group: r.group }),
        ...(r.axes && { axes: r.axes }),
      });
    });
  }
  const cores = availableParallelism();
  const workers = Math.max(1, Math.min(opts.workers ?? cores, specs.length));
  const runs: VariantResult[] = new Array(specs.length);
  if (workers > 1) {
    // Variants on the same frozen encoder read the same features: computed here once (on all
    // cores) rather than in every worker.
    const t = performance.now();
    const sets = await warmVisionFeatures(specs, plan.loaded.dataset);
    if (sets) log(`frozen vision features of ${sets} encoder${sets > 1 ? 's' : ''} ready in ${((performance.now() - t) / 1000).toFixed(0)} s`);
  }
  if (workers === 1) {
    for (let i = 0; i < specs.length; i++) {
      log(`training ${specs[i].name} (seed ${specs[i].seed}) …`);
      runs[i] = await runVariant(specs[i]);
    }
  } else {
    // Each worker's native GEMM gets an equal share of the cores.
    const threads = Math.max(1, Math.floor(cores / workers));
    // Longest first (LPT scheduling): the costly variants start early, so the run does not end
    // with one worker training the last big variant while the other core idles.
    const order = specs.map((_, i) => i).sort((x, y) => relativeCost(specs[y]) - relativeCost(specs[x]) || x - y);
    await mapPool(order, workers, async (i) => {
      log(`training ${specs[i].name} (seed ${specs[i].seed}) in a worker …`);
      runs[i] = await runInWorker(specs[i], threads);
      log(`${specs[i].name} (seed ${specs[i].seed}) done in ${runs[i].trainSeconds.toFixed(0)} s`);
    });
  }
  const variants = names.map((name) => aggregate(runs.filter((r) => r.name === name)));
  const results: AblationResults = {
    dataset: prepared.datasetName,
    datasetDir: prepared.datasetDir,
    backend: runs[0]?.backend ?? 'unknown',
    seed: seeds[0],
    seedList: seeds,
    pretrain: prepared.pretrainInfo,
    variants,
    wallSeconds: 0,
    protocol: opts.protocol ?? 'reference',
  };
  analyseRun(results, runs, prepared.baselines, opts.statistics);
  log(`statistics: ${results.statistics!.replicates} bootstrap replicates, ${results.statistics!.permutations} permutations in ${results.statistics!.seconds.toFixed(1)} s`);
  results.wallSeconds = (performance.now() - t0) / 1000;
  return { results, runs, baselines: prepared.baselines };
}
