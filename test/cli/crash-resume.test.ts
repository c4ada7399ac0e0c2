/**
 * Crash consistency of a training run: a tiny `notellm2 train` is killed with SIGKILL again and
 * again — between steps and inside checkpoint writes (staging, between the two renames, after
 * the swap) — and resumed each time; the resumed run ends with the same `last` and `best`
 * checkpoints (weights, optimiser state, trainer state) and the same results as an uninterrupted
 * run. On the way: a second process into the folder stops at once naming the holder, eval of a
 * half-written checkpoint prints the recovery hint, and a second seed into the folder merges.
 */
process.env.NOTELLM2_SMOKE = '1';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { initBackend } from '../../src/backend';
import { ensureDataset } from '../../src/experiments/datasets';
import { loadCheckpoint } from '../../src/model/checkpoint';
import { evalCommand } from '../../src/cli/eval';
import { trainCommand, type TrainCommandOptions } from '../../src/cli/train';
import { RunFolderBusyError } from '../../src/experiments/run-lock';
import { TINY_MODEL } from './fixtures/tiny-run';

const tmp = mkdtempSync(join(tmpdir(), 'notellm2-crash-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const CHILD = resolve(__dirname, 'fixtures/tiny-run.ts');
const dataset = join(tmp, 'data');
// 64 training pairs at 16 per step: 4 steps an epoch, 3 epochs, `last` every 2 steps; a learning
// rate at which the validation loss still falls after the first epoch.
const RUN: TrainCommandOptions = { dataset, preset: 'notellm2', epochs: 3, batch: 16, lr: 0.01, checkpointEvery: 2, resume: true, seed: 0, out: '' };

/** A small dataset cut from the smoke synth one: the first pairs of each split and their notes. */
async function smallDataset(): Promise<void> {
  const src = (await ensureDataset('synth')).dir;
  const lines = (f: string) => readFileSync(join(src, f), 'utf8').split('\n').filter(Boolean);
  const keep = { train: 64, val: 16, test: 40 } as const;
  const ids = { train: new Set<string>(), test: new Set<string>() };
  mkdirSync(join(dataset, 'images'), { recursive: true });
  mkdirSync(join(dataset, 'images_test'), { recursive: true });
  for (const split of ['train', 'val', 'test'] as const) {
    const pairs = lines(`note_pairs_${split}.csv`).slice(0, keep[split]);
    writeFileSync(join(dataset, `note_pairs_${split}.csv`), pairs.join('\n') + '\n');
    for (const p of pairs) for (const id of p.split(',')) ids[split === 'test' ? 'test' : 'train'].add(id);
    if (split === 'test') {
      const labels = new Set(pairs);
      writeFileSync(join(dataset, 'note_pairs_test_labels.csv'), lines('note_pairs_test_labels.csv').filter((l) => labels.has(l.split(',').slice(0, 2).join(','))).join('\n') + '\n');
    }
  }
  for (const split of ['train', 'test'] as const) {
    const rows = lines(`notes_${split}.csv`).filter((l) => ids[split].has(l.split(',')[0]));
    writeFileSync(join(dataset, `notes_${split}.csv`), rows.join('\n') + '\n');
    const folder = split === 'train' ? 'images' : 'images_test';
    for (const r of rows) {
      const id = r.split(',')[0];
      cpSync(join(src, folder, `${id}.png`), join(dataset, folder, `${id}.png`));
    }
  }
}

/** Runs the tiny training in a child process; resolves with how it ended. */
function child(out: string, kill?: string, extra: Partial<TrainCommandOptions> = {}): { status: number | null; signal: NodeJS.Signals | null; stderr: string } {
  const env = { ...process.env };
  delete env.NOTELLM2_TEST_KILL;
  if (kill) env.NOTELLM2_TEST_KILL = kill;
  const r = spawnSync(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify({ ...RUN, out, ...extra })], { env, encoding: 'utf8' });
  return { status: r.status, signal: r.signal, stderr: r.stderr };
}

const variant = (out: string) => join(out, 'checkpoints', 'notellm2-s0');
const readJson = (f: string) => JSON.parse(readFileSync(f, 'utf8'));

before(async () => {
  await initBackend();
  await smallDataset();
});

let reference: string;

test('reference: an uninterrupted run; a second process into its folder stops at once, naming the holder', async () => {
  reference = join(tmp, 'reference');
  const env = { ...process.env };
  delete env.NOTELLM2_TEST_KILL;
  const p = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify({ ...RUN, out: reference })], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  p.stderr.on('data', (d) => (stderr += String(d)));
  const done = new Promise<number | null>((r) => p.on('exit', (code) => r(code)));
  const lock = join(reference, '.notellm2-lock');
  let exited = false;
  void done.then(() => (exited = true));
  while (!existsSync(lock) && !exited) await new Promise((r) => setTimeout(r, 20));
  assert.ok(existsSync(lock), `the child held the run folder's lock (${stderr})`);
  const t0 = performance.now();
  await assert.rejects(trainCommand({ ...RUN, out: reference, model: TINY_MODEL, pretrain: false, report: false, progress: 'silent', log: () => {} }), (e: unknown) => {
    assert.ok(e instanceof RunFolderBusyError, String(e));
    assert.match((e as Error).message, new RegExp(`in use by another notellm2 process: pid ${p.pid} \\(notellm2 train --preset notellm2 --seed 0\\)`));
    return true;
  });
  assert.ok(performance.now() - t0 < 10_000, 'refused before any training');
  assert.equal(await done, 0, stderr);
  assert.ok(!existsSync(lock), 'the lock is released at the end');
  // The best epoch is not the first, so a resumed run must keep writing best/ (the bookkeeping
  // that a resume once lost).
  const bestEpoch = readJson(join(variant(reference), 'best', 'trainer.json')).bestEpoch;
  assert.ok(bestEpoch >= 1, `best epoch ${bestEpoch}`);
});

test('SIGKILL between steps and inside checkpoint writes, resumed each time: the same last/, best/ and results as the uninterrupted run', async () => {
  const out = join(tmp, 'killed');
  // Each process resumes where the previous one was killed; the points are counted per process.
  const kills = [
    'train:step@3', // after step 3 (last/ holds step 2)
    'save:last:moved-aside@1', // between the renames of last/ at the first epoch end: no last/ at all
    'save:best:staged@1', // best/ of the replayed epoch staged, not swapped in
    'save:last:staging@2', // half-staged last/ (weights written, the rest not)
    'save:last:swapped@2', // the new last/ in place, the previous one not yet removed
    'train:step@3',
  ];
  for (const [i, kill] of kills.entries()) {
    const r = child(out, kill);
    assert.equal(r.signal, 'SIGKILL', `process ${i + 1} was killed at ${kill} (${r.status}: ${r.stderr})`);
    if (kill === 'save:last:moved-aside@1') {
      // The checkpoint write was cut between its two renames: no last/, the previous one aside.
      assert.ok(!existsSync(join(variant(out), 'last')));
      assert.ok(readdirSync(variant(out)).some((f) => f.startsWith('.last.old-')));
      await assert.rejects(evalCommand({ checkpoint: variant(out), which: 'last', log: () => {} }), /last is missing \(an interrupted save left the previous checkpoint at .*\.last\.old-.*notellm2 train --resume/);
    }
  }
  const last = child(out);
  assert.equal(last.status, 0, last.stderr);

  for (const slot of ['last', 'best']) {
    const want = await loadCheckpoint(join(variant(reference), slot));
    const got = await loadCheckpoint(join(variant(out), slot));
    assert.deepEqual(got.weights, want.weights, `${slot}/ weights`);
    assert.deepEqual(got.optimizer, want.optimizer, `${slot}/ optimiser state`);
    const t = (c: typeof got) => ({ ...(c.trainer as Record<string, unknown>), seconds: 0 });
    assert.deepEqual(t(got), t(want), `${slot}/ trainer state`);
  }
  const a = readJson(join(reference, 'results.json')).variants[0];
  const b = readJson(join(out, 'results.json')).variants[0];
  for (const k of ['metrics', 'subsets', 'probes', 'probeSubsets', 'config']) assert.deepEqual(b[k], a[k], k);
  const curve = (dir: string) => readJson(join(dir, 'curves.json')).curves[0].points.map((p: { loss: number }) => p.loss);
  assert.deepEqual(curve(out), curve(reference));
  // Nothing half-written is left: no staging or moved-aside folders, no lock.
  assert.deepEqual(readdirSync(variant(out)).sort(), ['best', 'last']);
  assert.ok(!existsSync(join(out, '.notellm2-lock')));
});

test('a second seed trained into the same folder merges: results.json holds both seeds, the first unchanged', async () => {
  const out = join(tmp, 'reference');
  const before = readJson(join(out, 'results.json')).variants[0];
  const r = child(out, undefined, { seed: 1, resume: false });
  assert.equal(r.status, 0, r.stderr);
  const after = readJson(join(out, 'results.json'));
  assert.deepEqual(after.seedList, [0, 1]);
  const v = after.variants[0];
  assert.deepEqual(v.seeds.map((s: { seed: number }) => s.seed), [0, 1]);
  assert.deepEqual(v.seeds[0].metrics, before.metrics, 'seed 0 kept as it was');
  for (const k of Object.keys(v.metrics)) {
    assert.ok(Math.abs(v.metrics[k] - (v.seeds[0].metrics[k] + v.seeds[1].metrics[k]) / 2) < 1e-12, `${k} is the mean of the two seeds`);
  }
  assert.deepEqual(readJson(join(out, 'curves.json')).curves.map((c: { seed: number }) => c.seed).sort(), [0, 1]);
  assert.equal(readFileSync(join(out, 'results.csv'), 'utf8').split('\n')[1].split(',')[2], '2', 'results.csv counts 2 seeds');
});
