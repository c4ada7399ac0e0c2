/**
 * `notellm2 hf` as a real process: its help, and the exit code of `hf check` on a fixture
 * (0) and on a temp copy whose reference.json was corrupted (1), with --json.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildProgram } from '../../src/cli';
import { ROOT, runCli as run } from './run-cli';

const FIXTURE = join(ROOT, 'test', 'fixtures', 'hf', 'qwen2');

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'notellm2-hfcli-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));


/** Two processes at a time (the machine has few cores). */
async function pairwise<T>(jobs: Array<() => Promise<T>>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < jobs.length; i += 2) out.push(...(await Promise.all(jobs.slice(i, i + 2).map((j) => j()))));
  return out;
}

test('hf declares check with --tolerance and --json', () => {
  const hf = buildProgram().commands.find((c) => c.name() === 'hf');
  assert.ok(hf, 'notellm2 hf is registered');
  const check = hf.commands.find((c) => c.name() === 'check');
  assert.ok(check);
  assert.deepEqual(check.options.map((o) => o.long).sort(), ['--json', '--tolerance']);
  assert.deepEqual(check.registeredArguments.map((a) => a.name()), ['folder']);
});

test('hf --help, hf check --help, and hf check exit codes: 0 on a fixture, 1 when its reference is corrupted', async () => {
  const broken = join(dir, 'qwen2-broken');
  cpSync(FIXTURE, broken, { recursive: true });
  const ref = JSON.parse(readFileSync(join(broken, 'reference.json'), 'utf8'));
  // every value of hidden_states[1] doubled: far beyond 1e-4
  const buf = Buffer.from(ref.outputs.hidden_states[1].b64, 'base64');
  const a = new Float32Array(buf.length / 4);
  new Uint8Array(a.buffer).set(buf);
  for (let i = 0; i < a.length; i++) a[i] *= 2;
  ref.outputs.hidden_states[1].b64 = Buffer.from(a.buffer).toString('base64');
  writeFileSync(join(broken, 'reference.json'), JSON.stringify(ref));

  const [help, checkHelp, good, bad] = await pairwise([
    () => run(['hf', '--help']),
    () => run(['hf', 'check', '--help']),
    () => run(['hf', 'check', FIXTURE]),
    () => run(['hf', 'check', broken, '--json', '--tolerance', '1e-4']),
  ]);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^Usage: notellm2 hf\b/m);
  assert.match(help.stdout, /^\s+check\b/m);
  assert.equal(checkHelp.code, 0, checkHelp.stderr);
  assert.match(checkHelp.stdout, /^Usage: notellm2 hf check \[options\] <folder>/m);
  for (const f of ['--tolerance', '--json']) assert.ok(checkHelp.stdout.includes(f), `hf check --help lists ${f}`);

  assert.equal(good.code, 0, good.stdout + good.stderr);
  assert.match(good.stdout, /^ok {3}logits_last_position .*row 1 skipped: a pad position there/m);
  assert.match(good.stdout, /^OK: Qwen2ForCausalLM in .*qwen2, tolerance 0\.0001/m);

  assert.equal(bad.code, 1, bad.stdout + bad.stderr);
  const report = JSON.parse(bad.stdout);
  assert.equal(report.ok, false);
  const failed = report.outputs.filter((o: { maxAbsDiff: number }) => !(o.maxAbsDiff <= 1e-4)).map((o: { name: string }) => o.name);
  assert.deepEqual(failed, ['hidden_states[1]']);
});
