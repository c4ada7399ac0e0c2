/**
 * `notellm2 hf check <folder>`: imports a Hugging Face checkpoint folder and compares its
 * outputs with the `reference.json` beside the weights (written by scripts/hf_reference.py
 * with transformers); prints the largest |diff| per output and exits non-zero when one is
 * above the tolerance or cannot be produced.
 */
import type { Command } from 'commander';
import { initBackend } from '../backend';
import { checkHfFolder } from '../model/hf/check';
import { DEFAULT_REFERENCE_TOLERANCE, formatReport, REFERENCE_FILE } from '../model/hf/reference';
import { numberArg } from './args';

export interface HfCheckCommandOptions {
  tolerance?: number;
  json?: boolean;
  log?: (msg: string) => void;
}

/** Runs the check and prints it; resolves to whether every output passed. */
export async function hfCheckCommand(folder: string, o: HfCheckCommandOptions = {}): Promise<boolean> {
  const log = o.log ?? ((m: string) => console.log(m));
  const backend = (await initBackend()).name;
  const report = await checkHfFolder(folder, { tolerance: o.tolerance });
  if (o.json) log(JSON.stringify({ ...report, backend }, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2));
  else log(`${formatReport(report)} (backend ${backend})`);
  return report.ok;
}

export function registerHf(program: Command): Command {
  const hf = program
    .command('hf')
    .description('Hugging Face checkpoints (Llama, Qwen2): check an imported folder against transformers\' own outputs');
  hf.command('check')
    .description(
      `import <folder> (config.json + safetensors) and compare its outputs with <folder>/${REFERENCE_FILE} ` +
        '(write one with scripts/hf_reference.py); real-token positions only; exits 1 when an output differs by more than the tolerance or cannot be produced',
    )
    .argument('<folder>', 'checkpoint folder as save_pretrained writes it, with reference.json')
    .option('--tolerance <t>', `largest accepted |ours − transformers| (default ${DEFAULT_REFERENCE_TOLERANCE})`, numberArg('--tolerance', (x) => x >= 0 && Number.isFinite(x), 'a number >= 0'))
    .option('--json', 'print the report as JSON')
    .action(async (folder: string, o: { tolerance?: number; json?: boolean }) => {
      const ok = await hfCheckCommand(folder, o);
      if (!ok) process.exitCode = 1;
    });
  return hf;
}
