/**
 * `notellm2 ablate`: train and evaluate a list of presets over seeds on a dataset, print the
 * recall table, write results.json / results.csv / curves.json and report.html. `npm start`
 * runs it with the defaults (the six presets on the built-in synth dataset).
 */
import type { Command } from 'commander';
import { join } from 'node:path';
import { PRESET_NAMES, SWEEP_NAMES, sweepVariants } from '../experiments/presets';
import { runAblation } from '../experiments/runner';
import { formatResultsTable } from '../experiments/results';
import { DEFAULT_ABLATION_TRAIN, smokeDefaults } from '../experiments/defaults';
import { intArg, numArg } from './args';
import { writeRunOutputs } from './run-outputs';

export function registerAblate(program: Command): void {
  program
    .command('ablate')
    .description('train and evaluate presets × seeds on a dataset; print the recall table; write runs/<name>/')
    .option('--dataset <name|dir>', 'synth | openmoji | a folder in the reference layout', 'synth')
    .option('--presets <list>', `comma-separated presets (${PRESET_NAMES.join(', ')})`, PRESET_NAMES.join(','))
    .option('--sweep <name>', `run a paper sweep over the presets (${SWEEP_NAMES.join(', ')})`)
    .option('--seeds <n>', 'seeds per preset (mean ± std)', intArg('--seeds', 1), 1)
    .option('--out <dir>', 'run folder (default runs/<dataset>)')
    .option('--workers <n>', 'parallel worker processes (default: cores)', intArg('--workers', 1))
    .option('--epochs <n>', 'training epochs per variant', intArg('--epochs', 1))
    .option('--max-steps <n>', 'stop each variant after this many steps', intArg('--max-steps', 0))
    .option('--batch <pairs>', 'related pairs per step', intArg('--batch', 2))
    .option('--lr <x>', 'peak learning rate', numArg('--lr'))
    .option('--no-pretrain', 'start the LM and vision encoder from random weights')
    .option('--lm <folder>', 'a Hugging Face LLM folder (Llama family, Qwen2; save_pretrained layout) instead of the built-in pretrained LM')
    .option('--vision <folder>', 'a Hugging Face vision encoder folder (CLIP, SigLIP) instead of the built-in pretrained ViT')
    .option('--skip-bad', 'skip bad rows of the dataset (and print how many of each kind) instead of failing')
    .option('--no-saliency', 'skip the modality saliency of the trained variants (docs/method.md "Modality saliency")')
    .option('--png', 'also render the report figures to PNG (headless Chromium)')
    .action(async (o) => {
      const smoke = smokeDefaults();
      const out = o.out ?? join('runs', smoke ? `${o.dataset}-smoke` : o.dataset);
      const { results, runs } = await runAblation({
        dataset: o.dataset,
        variants: ((presets: string[]) => (o.sweep ? sweepVariants(presets, o.sweep) : presets))(
          String(o.presets).split(',').map((s) => s.trim()).filter(Boolean),
        ),
        seeds: o.seeds,
        out,
        workers: o.workers,
        train: { ...DEFAULT_ABLATION_TRAIN, ...smoke?.train, ...(o.epochs && { epochs: o.epochs }), ...(o.maxSteps !== undefined && { maxSteps: o.maxSteps }), ...(o.batch && { batchPairs: o.batch }), ...(o.lr && { lr: o.lr }) },
        pretrain: o.pretrain === false ? false : smoke?.pretrain,
        log: (m) => console.log(m),
        skipBad: o.skipBad,
        lm: o.lm,
        vision: o.vision,
      });
      console.log(`\nRecall on ${results.dataset} (${results.seedList.length} seed${results.seedList.length > 1 ? 's' : ''}; ${runs[0]?.nQueries} queries, pool ${runs[0]?.poolSize}):\n`);
      console.log(formatResultsTable(results));
      const files = await writeRunOutputs(out, results, runs, {
        dataset: o.dataset,
        skipBad: o.skipBad,
        saliency: o.saliency !== false,
        png: o.png,
        log: (m) => console.log(m),
      });
      console.log(`\nwrote ${files.join(', ')} (${results.wallSeconds.toFixed(0)} s)`);
    });
}
