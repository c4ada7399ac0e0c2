/**
 * The `notellm2` command. Each subcommand lives in src/cli/<name>.ts and registers itself
 * on the commander program; this file only assembles them.
 */
import { Command } from 'commander';
import { registerBench } from './cli/bench';
import { registerData } from './cli/data';
import { registerReport } from './cli/report';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('notellm2')
    .description('Multimodal item-to-item representation models in the style of NoteLLM-2')
    .showHelpAfterError();
  registerBench(program);
  registerData(program);
  registerReport(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv);
}
