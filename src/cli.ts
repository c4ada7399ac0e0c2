/**
 * The `notellm2` command. Each subcommand lives in src/cli/<name>.ts and registers itself
 * on the commander program; this file only assembles them.
 */
import { Command } from 'commander';
import { registerBench } from './cli/bench';
import { registerData } from './cli/data';
import { registerReport } from './cli/report';
import { registerAblate } from './cli/ablate';
import { registerSaliency } from './cli/saliency';
import { registerTrain } from './cli/train';
import { registerEval } from './cli/eval';
import { registerEmbed } from './cli/embed';
import { registerHf } from './cli/hf';
import { registerExport } from './cli/export';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('notellm2')
    .description('Multimodal item-to-item representation models in the style of NoteLLM-2')
    .showHelpAfterError();
  registerBench(program);
  registerData(program);
  registerReport(program);
  registerAblate(program);
  registerSaliency(program);
  registerTrain(program);
  registerEval(program);
  registerEmbed(program);
  registerHf(program);
  registerExport(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv);
}

// Run directly (`npx tsx src/cli.ts …`, `node dist/cli.js …`) as well as through bin/notellm2.js.
if (require.main === module) {
  main(process.argv).catch((err: Error) => {
    console.error(`notellm2: ${err.message}`);
    if (process.env.NOTELLM2_DEBUG) console.error(err);
    process.exit(1);
  });
}
