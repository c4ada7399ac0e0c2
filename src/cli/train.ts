/**
 * `notellm2 train`: one preset and one seed — prepare the dataset (tokenizer, pretrained
 * towers, all cached), train with resumable checkpoints, evaluate, and write the run folder
 * like `ablate` does for many variants (results.json with one variant, results.csv,
 * curves.json, embeddings.json, neighbours.json, report.html).
 */
import type { Command } from 'commander';
import { existsSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PRESET_NAMES, presetConfig } from '../experiments/presets';
import { MAX_SEED, planAblation, runAblation, type AblationOptions } from '../experiments/runner';
import { formatResultsTable, type AblationResults, type VariantResult } from '../experiments/results';
import { smokeDefaults } from '../experiments/defaults';
import { openRunFolder, variantCheckpointRoot, variantEmbeddingsDir } from '../experiments/run-folder';
import type { ModelConfig } from '../model/config';
import { recoverCheckpoint } from '../model/checkpoint';
import type { TrainConfig } from '../train/config';
import { CHECKPOINT_CHOICES, checkpointSlot } from '../train/trainer';
import { intArg, numArg } from './args';
import { writeRunOutputs } from './run-outputs';

export interface TrainCommandOptions {
  dataset: string;
  preset: string;
  seed?: number;
  out?: string;
  epochs?: number;
  maxSteps?: number;
  batch?: number;
  lr?: number;
  checkpointEvery?: number;
  /** Continue from the variant's `last` checkpoint. */
  resume?: boolean;
  /** Discard an earlier checkpoint of this variant and start over. */
  fresh?: boolean;
  /** false: LM and vision encoder start from random weights. */
  pretrain?: boolean;
  skipBad?: boolean;
  /** Imported towers: Hugging Face folders (see runAblation). */
  lm?: string;
  vision?: string;
  /** How an imported LLM trains (full | last:N | lora:R). */
  lmTrain?: string;
  /** false: skip embeddings.json, neighbours.json and report.html. */
  report?: boolean;
  png?: boolean;
  progress?: 'auto' | 'bar' | 'lines' | 'silent';
  /** Write into an existing non-empty --out that is not a notellm2 run folder. */
  force?: boolean;
  /** Model overrides over the preset (library use: tests train tiny models). */
  model?: ModelConfig;
  /** How the run folder's lock names this process to a second one. Defaults to the command line's gist. */
  command?: string;
  log?: (msg: string) => void;
}

export interface TrainCommandResult {
  out: string;
  /** The variant's checkpoint folder (holds best/ and last/). */
  checkpointDir: string;
  embeddingsDir: string;
  results: AblationResults;
  run: VariantResult;
  files: string[];
}

/** Default run folder: runs/<dataset>-<preset>-s<seed>, with a -smoke suffix under NOTELLM2_SMOKE=1. */
export function defaultTrainOut(dataset: string, preset: string, seed: number, smoke = process.env.NOTELLM2_SMOKE === '1'): string {
  const base = dataset.replace(/[\\/]+$/, '').split(/[\\/]/).pop() || 'dataset';
  return join('runs', `${base}-${preset}-s${seed}${smoke ? '-smoke' : ''}`);
}

export async function trainCommand(o: TrainCommandOptions): Promise<TrainCommandResult> {
  const log = o.log ?? ((m: string) => console.log(m));
  presetConfig(o.preset); // fail fast on a bad name (the message lists the presets)
  if (o.resume && o.fresh) throw new Error('--resume and --fresh exclude each other');
  const seed = o.seed ?? 0;
  const smoke = smokeDefaults();
  const out = resolve(o.out ?? defaultTrainOut(o.dataset, o.preset, seed));
  const checkpointDir = variantCheckpointRoot(out, o.preset, seed);
  const embeddingsDir = variantEmbeddingsDir(out, o.preset, seed);
  const train: TrainConfig = {
    ...smoke?.train,
    ...(o.epochs !== undefined && { epochs: o.epochs }),
    ...(o.maxSteps !== undefined && { maxSteps: o.maxSteps }),
    ...(o.batch !== undefined && { batchPairs: o.batch }),
    ...(o.lr !== undefined && { lr: o.lr }),
    ...(o.lmTrain !== undefined && { lmTrain: o.lmTrain }),
    ...(o.checkpointEvery !== undefined && { checkpointEvery: o.checkpointEvery }),
  };
  const opts: AblationOptions = {
    dataset: o.dataset,
    variants: [o.preset],
    seeds: 1,
    seedBase: seed,
    out,
    workers: 1,
    model: o.model,
    train,
    pretrain: o.pretrain === false ? false : smoke?.pretrain,
    skipBad: o.skipBad,
    lm: o.lm,
    vision: o.vision,
    progress: o.progress,
    force: o.force,
    command: o.command ?? `notellm2 train --preset ${o.preset} --seed ${seed}`,
    log,
  };
  // Every check first (flags, dataset, batch, --out, results already there); nothing is written.
  const plan = await planAblation(opts);
  const folder = openRunFolder(plan.out, { command: opts.command!, force: o.force, log });
  try {
    // Under the lock: a checkpoint write killed half-way is put back before deciding anything.
    for (const which of CHECKPOINT_CHOICES) {
      const r = await recoverCheckpoint(checkpointSlot(checkpointDir, which));
      if (r.restored) log(`recovered ${checkpointSlot(checkpointDir, which)} from ${r.restored} (a checkpoint write was interrupted)`);
    }
    // The trainer continues from `last` whenever it exists; an accidental rerun into the same
    // folder should not silently continue an older run, so that takes --resume.
    const last = checkpointSlot(checkpointDir, 'last');
    if (existsSync(last)) {
      if (o.fresh) {
        log(`discarding the earlier checkpoint ${checkpointDir}`);
        rmSync(checkpointDir, { recursive: true, force: true });
        rmSync(embeddingsDir, { recursive: true, force: true });
      } else if (!o.resume) {
        throw new Error(`${last}: a checkpoint of an earlier run exists; pass --resume to continue it, --fresh to start over, or another --out`);
      } else log(`resuming from ${last}`);
    } else if (o.resume) log(`no checkpoint at ${last} yet; starting from the beginning`);

    log(`checkpoints: ${checkpointDir}/{best,last} (resumable with --resume)`);
    const { results, runs, baselines } = await runAblation(opts, plan);
    const run = runs[0];
    log(`\n${run.name} (seed ${seed}): ${run.steps} steps in ${run.trainSeconds.toFixed(0)} s, best epoch ${run.bestEpoch + 1}; recall on ${results.dataset} (${run.nQueries} queries, pool ${run.poolSize}):\n`);
    log(formatResultsTable(results));
    const files = await writeRunOutputs(out, results, runs, { dataset: o.dataset, data: plan.data, report: o.report, png: o.png, log, baselines });
    log(`\nwrote ${files.join(', ')}`);
    log(`model: ${checkpointSlot(checkpointDir, 'best')} (notellm2 eval --checkpoint ${checkpointDir}); test-note embeddings: ${embeddingsDir}`);
    return { out, checkpointDir, embeddingsDir, results, run, files };
  } catch (e) {
    folder.discardIfEmpty();
    throw e;
  } finally {
    folder.release();
  }
}

export function registerTrain(program: Command): void {
  program
    .command('train')
    .description('train and evaluate one preset (one seed) with resumable checkpoints; write results.json and the report')
    .option('--dataset <name|dir>', 'synth | openmoji | a folder in the reference layout', 'synth')
    .option('--preset <name>', `one of ${PRESET_NAMES.join(', ')}`, 'notellm2')
    .option('--seed <n>', 'seed of initialisation, shuffling and augmentation', intArg('--seed', 0, MAX_SEED), 0)
    .option('--out <dir>', 'run folder (default runs/<dataset>-<preset>-s<seed>)')
    .option('--epochs <n>', 'training epochs', intArg('--epochs', 1))
    .option('--max-steps <n>', 'stop after this many steps (0: no limit)', intArg('--max-steps', 0))
    .option('--batch <pairs>', 'related pairs per step', intArg('--batch', 2))
    .option('--lr <x>', 'peak learning rate', numArg('--lr'))
    .option('--checkpoint-every <n>', 'also save the resumable checkpoint every n steps (0: at epoch ends)', intArg('--checkpoint-every', 0))
    .option('--resume', 'continue from the last checkpoint in the run folder')
    .option('--fresh', 'discard an earlier checkpoint of this preset and seed and start over')
    .option('--no-pretrain', 'start the LM and vision encoder from random weights')
    .option('--lm <folder>', 'a Hugging Face LLM folder (Llama family, Qwen2; save_pretrained layout) instead of the built-in pretrained LM')
    .option('--vision <folder>', 'a Hugging Face vision encoder folder (CLIP, SigLIP) instead of the built-in pretrained ViT')
    .option('--lm-train <mode>', 'how an imported LLM trains: full | last:N | lora:R (frozen weights stay outside the wasm heap)')
    .option('--skip-bad', 'skip bad rows of the dataset (and print how many of each kind) instead of failing')
    .option('--no-report', 'skip embeddings.json, neighbours.json and report.html')
    .option('--png', 'also render the report figures to PNG (headless Chromium)')
    .option('--force', 'write into an existing non-empty --out that is not a notellm2 run folder')
    .action(async (o) => {
      await trainCommand({ ...o, preset: String(o.preset) });
    });
}
