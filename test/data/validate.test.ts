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
    test: [],
  });
  assert.equal(report.droppedPairs, 1, 'b4,b1 left out with the empty note b4');
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
  // n1 is left out, and with it the only validation pair (n1, n3).
  assert.deepEqual(report.problems.map((p) => `${p.file}:${p.line} ${p.kind}`), ['note_pairs_val.csv:0 empty-split', 'notes_train.csv:1 undecodable-image']);
  assert.match(report.problems[1].message, /^images\/n1\.png cannot be decoded/);
  rmSync(dir, { recursive: true });
});

test('runDataValidate prints the summary and every problem; exit code 1 when broken, 0 when clean', async () => {
  const out: string[] = [];
  assert.equal(await runDataValidate(BROKEN, {}, (l) => out.push(l)), 1);
  const text = out.join('\n');
  assert.match(text, /notes: {3}train 3, test 2/);
  assert.match(text, /pairs: {3}train 2, val 0, test 0/);
  assert.match(text, /images: {2}5 found \(checked: decode\)/);
  assert.match(text, /bad rows: missing-file 1, bad-encoding 1, syntax 1, column-count 1/);
  assert.match(text, /notes_train\.csv:5: bad-encoding: invalid UTF-8 at byte 7 of the line/);
  assert.match(text, /note_pairs_val\.csv: missing-file: /);
  assert.match(text, /note_pairs_test\.csv: empty-split: no usable test pair \(its 1 pair\(s\) name notes left out for their own problems\)/);
  assert.match(text, /FAILED: 13 problem\(s\)$/);

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

/** A copy of the good fixture in a temporary folder, changed by `edit`; removed after the test. */
function goodCopy(t: { after: (fn: () => void) => void }, edit: (dir: string) => void): string {
  const dir = mkdtempSync(join(tmpdir(), 'notellm2-validate-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(GOOD, dir, { recursive: true });
  edit(dir);
  return dir;
}

const where = (r: { problems: Array<{ file: string; line: number; kind: string }> }) => r.problems.map((p) => `${p.file}:${p.line} ${p.kind}`);

test('a pairs file with no usable pair is reported (empty-split), and a dataset with none is not OK', async (t) => {
  const dir = goodCopy(t, (d) => {
    writeFileSync(join(d, 'note_pairs_val.csv'), '');
    writeFileSync(join(d, 'note_pairs_test.csv'), 'note_id,related_note_id\n');
    writeFileSync(join(d, 'note_pairs_test_labels.csv'), '');
  });
  const { report } = await validateDataset(dir);
  assert.deepEqual(where(report), ['note_pairs_test.csv:0 empty-split', 'note_pairs_val.csv:0 empty-split']);
  assert.equal(report.ok, false);
  assert.match(report.problems[0].message, /no usable test pair; expected at least one pair/);
});

test('control characters: a NUL in a note id, in a pair, in a title are refused with the field and position', async (t) => {
  const dir = goodCopy(t, (d) => {
    const notes = readFileSync(join(d, 'notes_train.csv'), 'utf8').replace('n2,"Green, plain"', 'n\u00002,"Green, plain"').replace('n3,Sun', 'n3,S\u0007un');
    writeFileSync(join(d, 'notes_train.csv'), notes);
    writeFileSync(join(d, 'note_pairs_val.csv'), 'n1,n\u00003\n');
  });
  const { report } = await validateDataset(dir);
  const msgs = report.problems.map((p) => `${p.file}:${p.line} ${p.kind}: ${p.message}`);
  assert.ok(msgs.some((m) => /^notes_train\.csv:3 bad-field: note_id holds a control character \(U\+0000 at character 2\); expected printable/.test(m)), msgs.join('\n'));
  assert.ok(msgs.some((m) => /^notes_train\.csv:4 bad-field: title holds a control character \(U\+0007 at character 2\)/.test(m)), msgs.join('\n'));
  assert.ok(msgs.some((m) => /^note_pairs_val\.csv:1 bad-field: related_note_id holds a control character \(U\+0000/.test(m)), msgs.join('\n'));
  // Line breaks and tabs inside text are fine (n1's content spans two lines).
  assert.ok(!msgs.some((m) => m.startsWith('notes_train.csv:1 ')));
});

test('a JSONL note id beyond exact integers is refused (it would silently change when parsed)', async (t) => {
  const dir = goodCopy(t, (d) => {
    const lines = readFileSync(join(d, 'notes_test.jsonl'), 'utf8').split('\n');
    lines[1] = lines[1].replace('"note_id":"t2"', '"note_id":12345678901234567891');
    writeFileSync(join(d, 'notes_test.jsonl'), lines.join('\n'));
  });
  const { report } = await validateDataset(dir);
  const p = report.problems.find((x) => x.file === 'notes_test.jsonl');
  assert.ok(p, JSON.stringify(report.problems));
  assert.equal(p.line, 2);
  assert.match(p.message, /note_id: .* is not an integer JSON can hold exactly; expected an integer within/);
});

test('a UTF-16 file (with or without a byte-order mark) is reported once with how to convert it', async (t) => {
  const dir = goodCopy(t, (d) => {
    const text = readFileSync(join(d, 'note_pairs_train.csv'), 'utf8');
    writeFileSync(join(d, 'note_pairs_train.csv'), Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]));
    writeFileSync(join(d, 'note_pairs_val.csv'), Buffer.from(readFileSync(join(d, 'note_pairs_val.csv'), 'utf8'), 'utf16le'));
  });
  const { report } = await validateDataset(dir);
  const enc = report.problems.filter((p) => p.kind === 'bad-encoding');
  assert.deepEqual(enc.map((p) => `${p.file}:${p.line}`), ['note_pairs_train.csv:0', 'note_pairs_val.csv:0']);
  for (const p of enc) assert.match(p.message, /looks like UTF-16 \(little-endian.*expected UTF-8: re-save it as UTF-8, e\.g\. iconv -f UTF-16 -t UTF-8/);
});
