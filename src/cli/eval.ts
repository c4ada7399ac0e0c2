/**
 * `notellm2 eval`: the recall protocol (overall, per subset, probes) of a saved model on a
 * dataset's test pairs, beside the two baselines with 95 % intervals; prints the table and,
 * with --json, writes it in the results.json schema (one variant).
 */
import type { Command } from 'commander';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { initBackend } from '../backend';
import { restoreVariant } from '../experiments/restore';
import { evaluateVariant, evaluationFields, GATE_NOTES, type VariantEvaluation } from '../experiments/evaluate';
import { aggregate, formatResultsTable, type AblationResults, type VariantResult } from '../experiments/results';
import { scoreBaselines } from '../experiments/baselines';
import { analyseRun } from '../experiments/analysis';
import type { RecallProtocol } from '../eval/recall';
import type { CheckpointChoice } from '../train/trainer';
import { checkpointArg, protocolArg } from './args';

export interface EvalCommandOptions {
  checkpoint: string;
  dataset?: string;
  which?: CheckpointChoice;
  probes?: boolean;
  /** Defaults to 'reference'. */
  protocol?: RecallProtocol;
  /** Write the results (results.json schema) here. */
  json?: string;
  skipBad?: boolean;
  log?: (msg: string) => void;
}

export interface EvalCommandResult {
  checkpointDir: string;
  evaluation: VariantEvaluation;
  results: AblationResults;
}

export async function evalCommand(o: EvalCommandOptions): Promise<EvalCommandResult> {
  const log = o.log ?? ((m: string) => console.log(m));
  const loaded = await restoreVariant(o.checkpoint, { dataset: o.dataset, which: o.which, skipBad: o.skipBad });
  try {
    const name = loaded.config.name ?? loaded.config.preset;
    const seed = loaded.config.train.seed;
    log(`evaluating ${name} (seed ${seed}) from ${loaded.dir} on ${loaded.dataset.dir} …`);
    const e = await evaluateVariant(loaded, { probes: o.probes, protocol: o.protocol });
    const { config } = loaded;
    const run: VariantResult = {
      name,
      preset: config.preset,
      seed,
      config: { model: config.model, train: config.train, preset: config.preset },
      ...evaluationFields(e),
      trainSeconds: 0,
      steps: 0,
      bestEpoch: -1,
      valLoss: [],
      curve: [],
      backend: (await initBackend()).name,
    };
    const variant = aggregate([run]);
    const results: AblationResults = {
      dataset: loaded.dataset.name,
      backend: (await initBackend()).name,
      seed,
      seedList: [seed],
      pretrain: {},
      variants: [variant],
      wallSeconds: e.seconds,
      protocol: o.protocol ?? 'reference',
    };
    analyseRun(results, [run], await scoreBaselines(loaded.dataset, { protocol: o.protocol }));
    log(`\nRecall on ${loaded.dataset.name} (${e.nQueries} queries, pool ${e.poolSize}):\n`);
    const subsets = e.probes ? undefined : ['all', ...Object.keys(e.subsets)];
    log(formatResultsTable(results, { metrics: Object.keys(e.metrics), subsets }));
    if (e.meanGate !== undefined) log(`\nmean late-fusion gate z over ${Math.min(GATE_NOTES, loaded.dataset.noteIds.test.length)} test notes: ${e.meanGate.toFixed(3)} (1 = all LM side)`);
    if (o.json) {
      const file = resolve(o.json);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, JSON.stringify(results, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? undefined : v), 2));
      log(`wrote ${file}`);
    }
    return { checkpointDir: loaded.dir, evaluation: e, results };
  } finally {
    loaded.dispose();
  }
}

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description("recall (overall, per subset, probes) of a saved model on a dataset's test pairs")
    .requiredOption('--checkpoint <dir>', 'a checkpoint folder (runs/<name>/checkpoints/<preset>-s<seed>, its best/ or last/, or a one-variant run folder)')
    .option('--dataset <name|dir>', 'synth | openmoji | a reference-layout folder (default: the dataset the model was trained on)')
    .option('--which <best|last>', 'which checkpoint when the folder holds both', checkpointArg('--which'), 'best')
    .option('--no-probes', 'skip the zero-image and empty-text probes')
    .option('--protocol <name>', 'recall protocol: reference or all-pairs', protocolArg('--protocol'), 'reference')
    .option('--json <file>', 'also write the results (results.json schema, one variant) to this file')
    .option('--skip-bad', 'skip bad rows of the dataset instead of failing')
    .action(async (o) => {
      await evalCommand(o);
    });
}
