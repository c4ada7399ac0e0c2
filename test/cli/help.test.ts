/**
 * Every subcommand's --help, run as a real process (`tsx src/cli.ts <cmd> --help`), lists
 * every option the command declares, and exits 0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli';
import { runCli as run } from './run-cli';



/** Runs the jobs at most `n` at a time (the machine has few cores). */
async function limited<T>(jobs: Array<() => Promise<T>>, n: number): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < jobs.length) {
      const i = next++;
      out[i] = await jobs[i]();
    }
  }));
  return out;
}

/** Checks one command's help text against the options and subcommands it declares. */
function checkHelp(cmd: Command, text: string): void {
  assert.match(text, new RegExp(`^Usage: notellm2 ${cmd.name()}\\b`, 'm'), `${cmd.name()} --help prints its usage line`);
  // Options hidden on purpose (internal plumbing between processes) are left out of help.
  const flags = cmd.options.filter((o) => !o.hidden).map((o) => o.long ?? o.short!);
  assert.ok(flags.length > 0 || cmd.commands.length > 0, `${cmd.name()} declares options or subcommands`);
  for (const f of flags) assert.ok(text.includes(f), `${cmd.name()} --help does not list ${f}:\n${text}`);
  for (const sub of cmd.commands) assert.ok(text.includes(sub.name()), `${cmd.name()} --help does not list its subcommand ${sub.name()}`);
}

test('--help of every subcommand lists its options', () => {
  const program = buildProgram();
  const names = program.commands.map((c) => c.name());
  // The single-step commands and the ablation must be there (docs/architecture.md "Contracts").
  for (const required of ['train', 'eval', 'embed', 'ablate']) assert.ok(names.includes(required), `subcommand ${required} missing; have ${names.join(', ')}`);
  for (const cmd of program.commands) {
    let text = '';
    cmd.configureOutput({ writeOut: (s) => (text += s) });
    cmd.outputHelp();
    checkHelp(cmd, text);
  }
});

// Each CLI start imports the whole library (seconds on a busy machine), so the real process
// runs for the top-level help and the single-step commands; the rest is checked in process.
test('the CLI process prints the same help (notellm2 --help, train, eval, embed)', async () => {
  const program = buildProgram();
  const spawned = ['train', 'eval', 'embed'];
  const [top, ...outs] = await limited([() => run(['--help']), ...spawned.map((n) => () => run([n, '--help']))], 2);
  assert.equal(top.code, 0, top.stderr);
  for (const c of program.commands) assert.match(top.stdout, new RegExp(`^\\s+${c.name()}\\b`, 'm'), `notellm2 --help lists ${c.name()}`);
  spawned.forEach((n, i) => {
    assert.equal(outs[i].code, 0, `${n} --help exited ${outs[i].code}: ${outs[i].stderr}`);
    checkHelp(program.commands.find((c) => c.name() === n)!, outs[i].stdout);
  });
});

test('the single-step commands declare the options their usage promises', () => {
  const byName = new Map(buildProgram().commands.map((c) => [c.name(), c]));
  const longs = (n: string) => byName.get(n)!.options.map((o) => o.long);
  for (const f of ['--dataset', '--preset', '--seed', '--out', '--epochs', '--max-steps', '--batch', '--lr', '--resume']) assert.ok(longs('train').includes(f), `train ${f}`);
  for (const f of ['--checkpoint', '--dataset']) assert.ok(longs('eval').includes(f), `eval ${f}`);
  for (const f of ['--checkpoint', '--dataset', '--split', '--out', '--neighbours']) assert.ok(longs('embed').includes(f), `embed ${f}`);
});

test('a missing required option is an error that names it', async () => {
  const { code, stderr } = await run(['eval']);
  assert.notEqual(code, 0);
  assert.match(stderr, /--checkpoint/);
});
