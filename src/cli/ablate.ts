/**
 * `notellm2 ablate`: train and evaluate a list of presets over seeds on a dataset, print the
 * recall table (with the baselines and 95 % intervals), the paper's claims and the regime map
 * of a regime sweep, write results.json / results.csv / comparisons.csv / curves.json and
 * report.html. `npm start` runs it with the defaults (the six presets on the built-in synth
 * dataset).
 */
import type { Command } from 'commander';
import { join } from 'node:path';
import { PRESET_NAMES, REGIME_PRESETS, SWEEP_NAMES, sweepVariants } from '../experiments/presets';
import { planAblation, runAblation, MAX_SEEDS, type AblationOptions } from '../experiments/runner';
import { openRunFolder } from '../experiments/run-folder';
import { formatClaimsTable, formatComparisons, formatResultsTable, type AblationResults } from '../experiments/results';
import { describeRegimes } from '../experiments/regimes';
import type { RecallProtocol } from '../eval/recall';
import { DEFAULT_ABLATION_TRAIN, smokeDefaults } from '../experiments/defaults';
import { intArg, numArg, protocolArg } from './args';
import { writeRunOutputs } from './run-outputs';

/** Each variant against the baseline of the subset that baseline is made for (text: TF-IDF, visual: colour histogram). */
function baselineComparisons(results: AblationResults): string | undefined {
  const focus: Record<string, string> = { 'tfidf-text': 'text', 'colour-histogram-image': 'visual' };
  const metrics = new Set(['R@10', 'R@100']);
  const rows = (results.comparisons ?? []).filter((c) => focus[c.b] === c.subset && metrics.has(c.metric) && results.variants.some((v) => v.name === c.a));
  return rows.length ? formatComparisons(rows) : undefined;
}

export function registerAblate(program: Command): void {
  program
    .command('ablate')
    .description('train and evaluate presets × seeds on a dataset; print the recall table; write runs/<name>/')
    .option('--dataset <name|dir>', 'synth | openmoji | a folder in the reference layout', 'synth')
    .option('--presets <list>', `comma-separated presets (${PRESET_NAMES.join(', ')})`, PRESET_NAMES.join(','))
    .option('--sweep <name>', `run a sweep over the presets (${SWEEP_NAMES.join(', ')}; regime defaults to ${REGIME_PRESETS.join(', ')})`)
    .option('--seeds <n>', 'seeds per preset (mean ± std)', intArg('--seeds', 1, MAX_SEEDS), 1)
    .option('--out <dir>', 'run folder (default runs/<dataset>)')
    .option('--workers <n>', 'parallel worker processes (default: cores)', intArg('--workers', 1))
    .option('--epochs <n>', 'training epochs per variant', intArg('--epochs', 1))
    .option('--max-steps <n>', 'stop each variant after this many steps', intArg('--max-steps', 0))
    .option('--batch <pairs>', 'related pairs per step', intArg('--batch', 2))
    .option('--lr <x>', 'peak learning rate', numArg('--lr'))
    .option('--no-pretrain', 'start the LM and vision encoder from random weights')
    .option('--lm <folder>', 'a Hugging Face LLM folder (Llama family, Qwen2; save_pretrained layout) instead of the built-in pretrained LM')
    .option('--vision <folder>', 'a Hugging Face vision encoder folder (CLIP, SigLIP) instead of the built-in pretrained ViT')
    .option('--lm-train <mode>', 'how an imported LLM trains: full | last:N | lora:R (frozen weights stay outside the wasm heap)')
    .option('--skip-bad', 'skip bad rows of the dataset (and print how many of each kind) instead of failing')
    .option('--no-saliency', 'skip the modality saliency of the trained variants (docs/method.md "Modality saliency")')
    .option('--png', 'also render the report figures to PNG (headless Chromium)')
    .option('--force', 'write into an existing non-empty --out that is not a notellm2 run folder')
    .option('--protocol <name>', "recall protocol: reference (the paper's) or all-pairs (every test pair both ways; tighter intervals)", protocolArg('--protocol'), 'reference')
    .action(async (o, cmd: Command) => {
      await ablateCommand({ ...o, presetsGiven: cmd.getOptionValueSource('presets') !== 'default' });
    });
}

/**
 * The command's steps: plan (every check, nothing written), open the run folder (its lock held
 * to the end), train and evaluate, print the table, write the outputs. A failure before anything
 * was written leaves no folder behind.
 */
interface AblateFlags {
  dataset: string;
  presets: string;
  sweep?: string;
  seeds: number;
  out?: string;
  workers?: number;
  epochs?: number;
  maxSteps?: number;
  batch?: number;
  lr?: number;
  pretrain?: boolean;
  skipBad?: boolean;
  lm?: string;
  vision?: string;
  lmTrain?: string;
  saliency?: boolean;
  png?: boolean;
  force?: boolean;
  protocol?: RecallProtocol;
  /** --presets was given (the regime sweep otherwise runs its own presets). */
  presetsGiven?: boolean;
}

async function ablateCommand(o: AblateFlags): Promise<void> {
  const log = (m: string) => console.log(m);
  const smoke = smokeDefaults();
  const out = o.out ?? join('runs', smoke ? `${o.dataset}-smoke` : o.dataset);
  const opts: AblationOptions = {
    dataset: o.dataset,
    variants: ((presets: string[]) => (o.sweep ? sweepVariants(presets, o.sweep, { smoke: !!smoke }) : presets))(
      o.sweep === 'regime' && !o.presetsGiven ? [...REGIME_PRESETS] : o.presets.split(',').map((s) => s.trim()).filter(Boolean),
    ),
    protocol: o.protocol,
    seeds: o.seeds,
    out,
    workers: o.workers,
    train: { ...DEFAULT_ABLATION_TRAIN, ...smoke?.train, ...(o.epochs && { epochs: o.epochs }), ...(o.maxSteps !== undefined && { maxSteps: o.maxSteps }), ...(o.batch && { batchPairs: o.batch }), ...(o.lr && { lr: o.lr }), ...(o.lmTrain && { lmTrain: o.lmTrain }) },
    pretrain: o.pretrain === false ? false : smoke?.pretrain,
    log,
    skipBad: o.skipBad,
    lm: o.lm,
    vision: o.vision,
    force: o.force,
    command: `notellm2 ablate --out ${out}`,
  };
  const plan = await planAblation(opts);
  const folder = openRunFolder(plan.out, { command: opts.command!, force: o.force, log });
  try {
    const { results, runs, baselines } = await runAblation(opts, plan);
    const interval = results.statistics ? `; mean [${Math.round(100 * results.statistics.level)} % interval]` : '';
    console.log(`\nRecall % on ${results.dataset} (${results.protocol} protocol, ${results.seedList.length} seed${results.seedList.length > 1 ? 's' : ''}; ${runs[0]?.nQueries} queries, pool ${runs[0]?.poolSize}${interval}):\n`);
    console.log(formatResultsTable(results));
    const vsBaselines = baselineComparisons(results);
    if (vsBaselines) console.log(`\nPaired differences with the baselines, in points (same queries; p: sign-flip permutation test):\n\n${vsBaselines}`);
    if (results.claims?.some((c) => c.verdict !== 'not run')) console.log(`\nThe paper's claims (docs/method.md "Reported outcomes"):\n\n${formatClaimsTable(results.claims)}`);
    if (results.regimes?.length) console.log(`\nRegime map (${results.regimes[0].metric}):\n${describeRegimes(results.regimes).map((l) => `  ${l}`).join('\n')}`);
    const files = await writeRunOutputs(plan.out, results, runs, {
      dataset: o.dataset,
      data: plan.data,
      saliency: o.saliency !== false,
      png: o.png,
      log,
      baselines,
    });
    console.log(`\nwrote ${files.join(', ')} (${results.wallSeconds.toFixed(0)} s)`);
  } catch (e) {
    folder.discardIfEmpty();
    throw e;
  } finally {
    folder.release();
  }
}
