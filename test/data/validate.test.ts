import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { loadDataset } from '../../src/data/loaders';
import { validateDataset } from '../../src/data/validate';
import { DatasetError, formatProblem, PROBLEM_KINDS } from '../../src/data/problems';
import { registerDataValidate, runDataValidate } from '../../src/cli/data-validate';
import { initBackend } from '../../src/backend';

before(async () => {
  await initBackend();
});

const ROOT = resolve(__dirname, '../..');
const BROKEN = resolve(__dirname, '../fixtures/broken');
const GOOD = resolve(__dirname, '../fixtures/good');

/** The planted faults as the fixture's README lists them: `file:line kind`. */
function plantedFaults(): string[] {
  const readme = readFileSync(join(BROKEN, 'README.md'), 'utf8');
  return [...readme.matchAll(/^\| `([^`]+):(\d+)` \| ([a-z-]+) \|/gm)].map((m) => `${m[1]}:${m[2]} ${m[3]}`).sort();
}

test('the broken fixture plants exactly one fault of every kind, and its README says where', () => {
  const faults = plantedFaults();
  assert.equal(faults.length, PROBLEM_KINDS.length);
  assert.deepEqual(faults.map((f) => f.split(' ')[1]).sort(), [...PROBLEM_KINDS].sort());
});

test('validation reports each planted fault at its file and line, and nothing else', async () => {
  const { report } = await validateDataset(BROKEN);
  const reported = report.problems.map((p) => `${p.file}:${p.line} ${p.kind}`).sort();
  assert.deepEqual(reported, plantedFaults());
  assert.equal(report.ok, false);
  for (const kind of PROBLEM_KINDS) assert.equal(report.badRows[kind], 1, kind);
  // Every message says what was expected.
  for (const p of report.problems) assert.match(p.message, /expected/, formatProblem(p));
});

test('broken fixture: strict load throws with every fault; skipBad keeps exactly the good rows', async () => {
  await assert.rejects(loadDataset(BROKEN), (e: unknown) => {
    assert.ok(e instanceof DatasetError);
    for (const f of plantedFaults()) {
      const [where, kind] = f.split(' ');
      const shown = where.endsWith(':0') ? where.slice(0, -2) : where;
      assert.ok(e.message.includes(`${shown}: ${kind}: `), `message lacks ${shown}: ${kind}`);
    }
    return true;
  });
  const { dataset, report } = await loadDataset(BROKEN, { skipBad: true });
  assert.deepEqual(dataset.noteIds, { train: ['b1', 'b2', 'b11'], test: ['c1', 'c2'] });
  assert.deepEqual(dataset.pairs, {
    train: [{ a: 'b1', b: 'b2' }, { a: 'b1', b: 'b11' }],
    val: [],
    test: [{ a: 'c1', b: 'c2', label: 'visual' }],
  });
  assert.deepEqual(report.notes, { train: 3, test: 2 });
  assert.equal(report.images.found, 5);
});

test('the good fixture validates clean', async () => {
  const { report } = await validateDataset(GOOD);
  assert.deepEqual(report.problems, []);
  assert.equal(report.ok, true);
});

test('a truncated image passes the header check and fails the decode check', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'notellm2-trunc-'));
  cpSync(GOOD, dir, { recursive: true });
  const png = readFileSync(join(GOOD, 'images/n1.png'));
  writeFileSync(join(dir, 'images/n1.png'), png.subarray(0, png.length - 20));
  assert.equal((await validateDataset(dir, { images: 'header' })).report.ok, true);
  const { report } = await validateDataset(dir, { images: 'decode' });
  assert.deepEqual(report.problems.map((p) => `${p.file}:${p.line} ${p.kind}`), ['notes_train.csv:1 undecodable-image']);
  assert.match(report.problems[0].message, /^images\/n1\.png cannot be decoded/);
  rmSync(dir, { recursive: true });
});

test('runDataValidate prints the summary and every problem; exit code 1 when broken, 0 when clean', async () => {
  const out: string[] = [];
  assert.equal(await runDataValidate(BROKEN, {}, (l) => out.push(l)), 1);
  const text = out.join('\n');
  assert.match(text, /notes: {3}train 3, test 2/);
  assert.match(text, /pairs: {3}train 2, val 0, test 1 \(1 labelled\)/);
  assert.match(text, /images: {2}5 found \(checked: decode\)/);
  assert.match(text, /bad rows: missing-file 1, bad-encoding 1, syntax 1, column-count 1/);
  assert.match(text, /notes_train\.csv:5: bad-encoding: invalid UTF-8 at byte 7 of the line/);
  assert.match(text, /note_pairs_val\.csv: missing-file: /);
  assert.match(text, /FAILED: 12 problem\(s\)$/);

  const good: string[] = [];
  assert.equal(await runDataValidate(GOOD, {}, (l) => good.push(l)), 0);
  assert.match(good.join('\n'), /bad rows: none\nOK$/);

  const json: string[] = [];
  await runDataValidate(GOOD, { json: true, images: 'exists' }, (l) => json.push(l));
  assert.equal(JSON.parse(json.join('\n')).images.check, 'exists');
});

test('the command: registered under `data`, --help lists it, rejects an unknown --images value', async () => {
  const program = new Command().exitOverride();
  const data = program.command('data').exitOverride();
  registerDataValidate(data).exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  assert.match(data.helpInformation(), /validate \[options\] <dir>/);
  await assert.rejects(
    program.parseAsync(['node', 'notellm2', 'data', 'validate', GOOD, '--images', 'pixels']),
    /Allowed choices are decode, header, exists/,
  );
});

test('spawned as a process: exit status 1 on the broken fixture, 0 on the good one', () => {
  // A minimal `notellm2 data` program around the registered command, run through tsx.
  const script = `
    const { Command } = require('commander');
    const { registerDataValidate } = require(${JSON.stringify(join(ROOT, 'src/cli/data-validate.ts'))});
    const program = new Command('notellm2');
    registerDataValidate(program.command('data'));
    program.parseAsync(process.argv.slice(1), { from: 'user' });`;
  const run = (dir: string) =>
    spawnSync(process.execPath, ['--import', 'tsx', '-e', script, '--', 'data', 'validate', dir, '--images', 'header'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
  const bad = run(BROKEN);
  assert.equal(bad.status, 1, bad.stderr);
  assert.match(bad.stdout, /notes_train\.csv:10: syntax: text follows a closing quote/);
  const ok = run(GOOD);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /OK\n$/);
});
