/**
 * `notellm2 export <run> --variant <name> --out <dir>`: a trained variant as a Hugging Face LLM
 * folder plus the rest of the model (src/experiments/export.ts says what is where).
 */
import type { Command } from 'commander';
import { exportVariant } from '../experiments/export';
import { runVariants, variantCheckpointDir } from '../experiments/run-folder';
import type { CheckpointChoice } from '../train/trainer';
import { checkpointArg, intArg } from './args';

export function registerExport(program: Command): void {
  program
    .command('export <run>')
    .description('write a trained variant as a Hugging Face LLM folder (LoRA merged, tokenizer with the added tokens) plus its connector, gate and head')
    .requiredOption('--variant <name>', 'the variant (preset or sweep name) to export')
    .requiredOption('--out <dir>', 'a new folder for the export')
    .option('--seed <n>', "which seed's model (default: the run's first)", intArg('--seed', 0))
    .option('--which <best|last>', 'which checkpoint', checkpointArg('--which'), 'best')
    .action(async (run: string, o: { variant: string; out: string; seed?: number; which: CheckpointChoice }) => {
      const { names, seeds } = runVariants(run);
      if (!names.includes(o.variant)) throw new Error(`export: the run ${run} has no variant "${o.variant}"; it has ${names.join(', ')}`);
      const seed = o.seed ?? seeds[0] ?? 0;
      const { out, files } = await exportVariant(variantCheckpointDir(run, o.variant, seed, o.which), o.out);
      console.log(`exported ${o.variant} (seed ${seed}, ${o.which}) to ${out}:\n  ${files.join('\n  ')}`);
    });
}
