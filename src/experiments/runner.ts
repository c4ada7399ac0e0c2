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
import { loadDataset } from '../data/loaders';
import { CACHE_DIR } from '../data/write';
import { loadTokenizer, saveTokenizer, trainTokenizer } from '../data/tokenizer';
import { ImageStore } from '../data/images';
import { renderPrompt, type PromptKind } from '../model/prompt';
import { resolveModelConfig, type ModelConfig } from '../model/config';
import type { TrainConfig } from '../train/config';
import { DEFAULT_LM_PRETRAIN, DEFAULT_VISION_PRETRAIN, noteCorpus, pretrainLM, pretrainVision, pretrainingNoteIds } from '../train/pretrain';
import type { RecallProtocol } from '../eval/recall';
import type { BootstrapOptions } from '../eval/stats';
import { ensureDataset } from './datasets';
import { presetConfig, regimeCell, type PretrainScale } from './presets';
import { runVariant, type VariantSpec } from './variant';
import { aggregate, type AblationResults, type VariantResult } from './results';
import { scoreBaselines, type BaselineRun } from './baselines';
import { analyseRun } from './analysis';
import { variantCheckpointRoot, variantEmbeddingsDir } from './run-folder';

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
  /** Recall protocol of every evaluation. Defaults to 'reference'. */
  protocol?: RecallProtocol;
  /** Bootstrap and permutation settings of the statistics. */
  statistics?: BootstrapOptions;
}

export interface Prepared {
  datasetDir: string;
  datasetName: string;
  tokenizerPath: string;
  /** The towers at the run's own pretraining budgets. */
  pretrained: { lm?: string; vit?: string };
  /** Per pretraining scale asked for (regimeCell name): the towers at that scale. */
  scaled: Record<string, { lm?: string; vit?: string }>;
  pretrainInfo: Record<string, unknown>;
  baselines: BaselineRun[];
}

/** The run's budget times `scale` (0: no pretraining, the tower keeps its random initialisation). */
function scaledBudget(base: TrainConfig | undefined, defaults: Readonly<TrainConfig>, scale: number): TrainConfig | null {
  if (scale === 0) return null;
  const steps = base?.maxSteps ?? defaults.maxSteps ?? 0;
  return scale === 1 ? { ...base } : { ...base, maxSteps: Math.max(1, Math.round(steps * scale)) };
}

const sha = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 16);

/**
 * Dataset, tokenizer, pretrained towers (at the run's budgets and at each scale in `scales`)
 * and the baselines' scores for a run; the first three are cached and reused.
 */
export async function prepare(
  opts: Pick<AblationOptions, 'dataset' | 'model' | 'vocabSize' | 'pretrain' | 'log' | 'progress' | 'skipBad' | 'protocol'> & { scales?: PretrainScale[] },
): Promise<Prepared> {
  const log = opts.log ?? (() => {});
  await initBackend();
  const { dir, name } = await ensureDataset(opts.dataset, { log });
  // Strict by default: a bad row fails the run with every problem listed (file:line).
  const { dataset, report } = await loadDataset(dir, { images: 'header', skipBad: opts.skipBad });
  if (!report.ok) {
    const kinds = Object.entries(report.badRows).map(([k, n]) => `${n} ${k}`).join(', ');
    log(`skipped bad rows of ${dir}: ${kinds}${report.droppedPairs ? `; ${report.droppedPairs} pairs dropped with them` : ''}`);
  }
  const base = resolveModelConfig(opts.model ?? {});
  // Tokenizer: byte-level BPE on the training notes rendered in every prompt form, so the
  // fixed template compresses to a few tokens.
  const ids = pretrainingNoteIds(dataset);
  const trainNotes = ids.map((id) => dataset.notes.get(id)!);
  const kinds: PromptKind[] = ['basic', 'micl', 'text'];
  const corpus = trainNotes.flatMap((n) => kinds.map((k) => renderPrompt(k, n, base.text)));
  const vocab = opts.vocabSize ?? 2048;
  const cacheDir = resolve(CACHE_DIR);
  mkdirSync(cacheDir, { recursive: true });
  const tokenizerPath = join(cacheDir, `tokenizer-${sha(JSON.stringify([vocab, corpus]))}.json`);
  if (!existsSync(tokenizerPath)) {
    log(`training the tokenizer (vocab ${vocab}) on ${corpus.length} prompts …`);
    saveTokenizer(trainTokenizer(corpus, { vocabSize: vocab }), tokenizerPath);
  }
  const tokenizer = loadTokenizer(tokenizerPath);
  const info: Record<string, unknown> = {};
  const scaled: Prepared['scaled'] = {};
  let images: ImageStore | undefined;
  const towers = async (scale: PretrainScale): Promise<{ lm?: string; vit?: string }> => {
    const out: { lm?: string; vit?: string } = {};
    if (opts.pretrain === false) return out;
    const tag = scale.lm === 1 && scale.vision === 1 ? '' : ` ×${scale.lm}`;
    const lmTrain = scaledBudget(opts.pretrain?.lm, DEFAULT_LM_PRETRAIN, scale.lm);
    if (lmTrain) {
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
    const visionTag = scale.lm === 1 && scale.vision === 1 ? '' : ` ×${scale.vision}`;
    const visionTrain = scaledBudget(opts.pretrain?.vision, DEFAULT_VISION_PRETRAIN, scale.vision);
    if (visionTrain) {
      images ??= ImageStore.shared(dataset, { size: base.vision.imageSize });
      await images.load(ids);
      const vit = await pretrainVision({
        images: ids,
        imageStore: images,
        vit: base.vision,
        train: visionTrain,
        progress: { label: `pretrain-vision${visionTag}`, mode: opts.progress ?? 'auto' },
      });
      log(`vision encoder pretrained${visionTag}${vit.cached ? ' (cached)' : ''}: ${vit.steps} steps, held-out view agreement ${(100 * vit.viewAgreement.before).toFixed(1)}% → ${(100 * vit.viewAgreement.after).toFixed(1)}% (chance ${(100 * vit.viewAgreement.chance).toFixed(1)}%)`);
      if (vit.dir) out.vit = resolve(vit.dir);
      info[`vision${visionTag}`] = { steps: vit.steps, viewAgreement: vit.viewAgreement, seconds: vit.trainSeconds, cached: vit.cached };
    }
    return out;
  };
  const pretrained = opts.scales?.length ? {} : await towers({ lm: 1, vision: 1 });
  for (const scale of opts.scales ?? []) scaled[regimeCell(scale)] ??= await towers(scale);
  const baselines = await scoreBaselines(dataset, { protocol: opts.protocol });
  log(`baselines scored (${baselines.map((b) => b.name).join(', ')}) in ${baselines[0]?.seconds.toFixed(1) ?? 0} s`);
  return { datasetDir: dir, datasetName: name, tokenizerPath, pretrained, scaled, pretrainInfo: info, baselines };
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
      if (m.result) result = m.result;
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

/** Trains and evaluates every (variant, seed); returns the aggregated results. */
export async function runAblation(opts: AblationOptions): Promise<{ results: AblationResults; runs: VariantResult[] }> {
  const t0 = performance.now();
  const log = opts.log ?? (() => {});
  const requests: VariantRequest[] = opts.variants.map((v) => (typeof v === 'string' ? { preset: v } : v));
  const scales = requests.flatMap((r) => (r.pretrainScale ? [r.pretrainScale] : []));
  if (scales.length > 0 && scales.length < requests.length) throw new Error('runAblation: either every variant or none names a pretraining scale');
  const prepared = await prepare({ ...opts, scales });
  for (const r of requests) presetConfig(r.preset); // fail fast on a bad name
  const names = requests.map((r) => r.name ?? r.preset);
  if (new Set(names).size !== names.length) throw new Error(`variant names must be unique, got ${names.join(', ')}`);
  const seeds = Array.from({ length: opts.seeds ?? 1 }, (_, i) => (opts.seedBase ?? 0) + i);
  const out = resolve(opts.out);
  mkdirSync(out, { recursive: true });
  const specs: VariantSpec[] = [];
  for (const seed of seeds) {
    requests.forEach((r, i) => {
      const name = names[i];
      specs.push({
        name,
        preset: r.preset,
        seed,
        model: { ...opts.model, ...r.model },
        train: { ...opts.train, ...r.train, seed },
        datasetDir: prepared.datasetDir,
        tokenizerPath: prepared.tokenizerPath,
        pretrained: r.pretrainScale ? prepared.scaled[regimeCell(r.pretrainScale)] : prepared.pretrained,
        checkpointDir: variantCheckpointRoot(out, name, seed),
        embeddingsDir: variantEmbeddingsDir(out, name, seed),
        progress: opts.progress,
        skipBad: opts.skipBad,
        protocol: opts.protocol,
        ...(r.group !== undefined && { group: r.group }),
        ...(r.axes && { axes: r.axes }),
      });
    });
  }
  const cores = availableParallelism();
  const workers = Math.max(1, Math.min(opts.workers ?? cores, specs.length));
  const runs: VariantResult[] = new Array(specs.length);
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
  return { results, runs };
}
