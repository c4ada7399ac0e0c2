/**
 * `notellm2 saliency --run runs/<name>`: modality saliency (docs/method.md "Modality saliency") of
 * each trained variant of a run on test pairs — per layer S_v, S_t, S_o and the attention
 * mass of the final token on image and text — printed as a table and written to
 * `<run>/saliency.json` (the report's saliency figure reads it).
 */
import type { Command } from 'commander';
import { saliencyForRun, type RunSaliencyEntry } from '../experiments/saliency';
import { checkpointArg, intArg } from './args';

/** One table per variant: layer, S_v, S_t, S_o, attention mass on image / text. */
export function formatSaliencyTable(entries: readonly RunSaliencyEntry[]): string {
  const lines: string[] = [];
  const num = (x: number) => x.toFixed(3).padStart(7);
  for (const e of entries) {
    lines.push(`${e.preset} (seed ${e.seed}; ${e.examples} notes; L_m ${e.loss.toFixed(3)})`);
    lines.push(`  layer     S_v     S_t     S_o   attn→img  attn→txt`);
    e.layers.forEach((l, i) => {
      lines.push(`  ${String(i).padStart(5)} ${num(l.sv)} ${num(l.st)} ${num(l.so)}   ${num(l.attnImage)}   ${num(l.attnText)}`);
    });
    lines.push('');
  }
  return lines.join('\n');
}

export function registerSaliency(program: Command): void {
  program
    .command('saliency')
    .description('modality saliency per layer (S_v, S_t, S_o) of the trained variants of a run; writes <run>/saliency.json')
    .requiredOption('--run <dir>', 'run folder written by `notellm2 ablate` (holds checkpoints/)')
    .option('--presets <list>', 'comma-separated variant names (default: every variant of the run)')
    .option('--batches <n>', 'batches of test pairs', intArg('--batches', 1), 4)
    .option('--pairs <n>', 'related pairs per batch', intArg('--pairs', 2), 16)
    .option('--seed <n>', 'which trained seed (default: the run\'s first)', intArg('--seed', 0))
    .option('--sample-seed <n>', 'seed of the test-pair sample', intArg('--sample-seed', 0), 0)
    .option('--checkpoint <best|last>', 'which checkpoint of each variant', checkpointArg('--checkpoint'), 'best')
    .option('--dataset-dir <dir>', 'dataset folder (for runs whose checkpoints do not record it)')
    .option('--tokenizer <file>', 'tokenizer file (for runs whose checkpoints do not record it)')
    .option('--no-write', 'print only; leave saliency.json as it is')
    .action(async (o) => {
      const { entries, file } = await saliencyForRun(o.run, {
        presets: o.presets ? String(o.presets).split(',').map((s) => s.trim()).filter(Boolean) : undefined,
        batches: o.batches,
        pairsPerBatch: o.pairs,
        seed: o.seed,
        sampleSeed: o.sampleSeed,
        checkpoint: o.checkpoint,
        datasetDir: o.datasetDir,
        tokenizerPath: o.tokenizer,
        write: o.write,
        log: (m) => console.log(m),
      });
      console.log(`\nModality saliency (final token as target; S_v + S_t + S_o = 1 per layer):\n`);
      console.log(formatSaliencyTable(entries));
      if (file) console.log(`wrote ${file}`);
    });
}
