/**
 * The run folder as a place to write: which --out folders a run may use, the marker, the lock
 * (held by one process, naming its holder to a second, taken over when its process is gone,
 * re-entrant within a process), and the cleanup of a failed run's empty folder.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkRunOut, isRunFolder, lockRunFolder, openRunFolder, runFile } from '../../src/experiments/run-folder';
import { acquireLock, RunFolderBusyError } from '../../src/experiments/run-lock';

const tmp = mkdtempSync(join(tmpdir(), 'notellm2-run-folder-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const DEAD_PID = 4_194_304 + 23;

test('--out refuses a filesystem root and the home folder (even with --force), a file, and a foreign non-empty folder without --force', () => {
  assert.throws(() => checkRunOut('/'), /\/ is a filesystem root/);
  assert.throws(() => checkRunOut('/', { force: true }), /filesystem root/);
  assert.throws(() => checkRunOut(homedir(), { force: true }), /is the home folder/);
  writeFileSync(join(tmp, 'a-file'), 'x');
  assert.throws(() => checkRunOut(join(tmp, 'a-file')), /is a file, not a folder/);
  const foreign = join(tmp, 'photos');
  mkdirSync(foreign);
  for (const f of ['a.jpg', 'b.jpg', 'results.json']) writeFileSync(join(foreign, f), 'x');
  assert.throws(() => checkRunOut(foreign), /already holds files that are not a notellm2 run \(a\.jpg, b\.jpg, results\.json\); choose another --out, or pass --force/);
  assert.equal(checkRunOut(foreign, { force: true }), foreign);
  // A run folder of an older version (no marker, only run-folder names) is recognised.
  const older = join(tmp, 'older-run');
  mkdirSync(join(older, 'checkpoints'), { recursive: true });
  for (const f of ['results.json', 'results.csv', 'report.html']) writeFileSync(join(older, f), '{}');
  assert.equal(checkRunOut(older), older);
  writeFileSync(join(older, 'notes.txt'), 'mine');
  assert.throws(() => checkRunOut(older), /not a notellm2 run/);
  // Absent, empty and marked folders are fine; checking creates nothing.
  assert.equal(checkRunOut(join(tmp, 'new', 'run')), join(tmp, 'new', 'run'));
  assert.ok(!existsSync(join(tmp, 'new')));
  mkdirSync(join(tmp, 'empty'));
  assert.equal(checkRunOut(join(tmp, 'empty')), join(tmp, 'empty'));
});

test('openRunFolder creates and marks the folder and holds its lock; release removes the lock, the marker stays', () => {
  const dir = join(tmp, 'runs', 'one');
  const f = openRunFolder(dir, { command: 'notellm2 test' });
  assert.equal(f.created, true);
  assert.ok(isRunFolder(dir));
  const lock = JSON.parse(readFileSync(runFile(dir, 'lock'), 'utf8'));
  assert.deepEqual({ pid: lock.pid, host: lock.host, command: lock.command }, { pid: process.pid, host: hostname(), command: 'notellm2 test' });
  // Re-entrant within the process (ablate holds it, the runner takes it again).
  const again = lockRunFolder(dir, 'notellm2 saliency');
  again.release();
  assert.ok(existsSync(runFile(dir, 'lock')), 'still held by the first hold');
  f.release();
  assert.deepEqual(readdirSync(dir), ['.notellm2-run']);
  // A marked folder with files is a run folder: --out may reuse it.
  writeFileSync(join(dir, 'results.json'), '{}');
  assert.equal(checkRunOut(dir), dir);
  openRunFolder(dir, { command: 'x' }).release();
});

test('a failed run removes the folder (and the parents) it created when nothing was written, and keeps it otherwise', () => {
  const a = openRunFolder(join(tmp, 'failed', 'deep', 'run'), { command: 'x' });
  mkdirSync(join(a.dir, 'checkpoints', 'notellm2-s0'), { recursive: true });
  a.discardIfEmpty();
  assert.ok(!existsSync(join(tmp, 'failed')), 'the created parents went too');
  const b = openRunFolder(join(tmp, 'failed-later'), { command: 'x' });
  mkdirSync(join(b.dir, 'checkpoints', 'notellm2-s0', 'last'), { recursive: true });
  writeFileSync(join(b.dir, 'checkpoints', 'notellm2-s0', 'last', 'model.safetensors'), 'weights');
  b.discardIfEmpty();
  b.release();
  assert.ok(existsSync(join(b.dir, 'checkpoints', 'notellm2-s0', 'last', 'model.safetensors')), 'a checkpoint is kept (resumable)');
  // A folder that existed before the run is never removed.
  mkdirSync(join(tmp, 'existed'));
  const c = openRunFolder(join(tmp, 'existed'), { command: 'x' });
  c.discardIfEmpty();
  c.release();
  assert.ok(existsSync(join(tmp, 'existed')));
});

test('a lock left by a dead process (or one whose pid was reused since) is taken over; one of another host is respected', () => {
  const dir = join(tmp, 'stale');
  mkdirSync(dir);
  const file = runFile(dir, 'lock');
  writeFileSync(file, JSON.stringify({ pid: DEAD_PID, host: hostname(), command: 'notellm2 train', started: '2020-01-01T00:00:00.000Z' }));
  const held = acquireLock(file, 'notellm2 ablate');
  assert.equal(JSON.parse(readFileSync(file, 'utf8')).pid, process.pid);
  held.release();
  assert.ok(!existsSync(file));
  writeFileSync(file, JSON.stringify({ pid: DEAD_PID, host: 'elsewhere', command: 'notellm2 train', started: '2020-01-01T00:00:00.000Z' }));
  assert.throws(() => acquireLock(file, 'x'), (e: unknown) => e instanceof RunFolderBusyError && /pid 4194327 on elsewhere \(notellm2 train\).*remove .*\.notellm2-lock/.test((e as Error).message));
  // A live process with the holder's pid that started after the lock was taken got the dead
  // holder's pid by reuse: stale. (process.ppid is this test's runner, started before now.)
  writeFileSync(file, JSON.stringify({ pid: process.ppid, host: hostname(), command: 'notellm2 train', started: '2020-01-01T00:00:00.000Z' }));
  acquireLock(file, 'x').release();
  writeFileSync(file, JSON.stringify({ pid: process.ppid, host: hostname(), command: 'notellm2 train', started: new Date().toISOString() }));
  assert.throws(() => acquireLock(file, 'x'), RunFolderBusyError);
  // An unreadable lock (a crash while it was written by some other tool) is stale too.
  writeFileSync(file, '');
  acquireLock(file, 'x').release();
  assert.deepEqual(readdirSync(dir), []);
});

test('a second process stops at once with the holder named; after the holder is killed the lock is taken over', async () => {
  const dir = join(tmp, 'contended');
  const script = join(tmp, 'holder.ts');
  writeFileSync(
    script,
    `import { openRunFolder } from ${JSON.stringify(join(__dirname, '../../src/experiments/run-folder'))};\n` +
      `openRunFolder(${JSON.stringify(dir)}, { command: 'notellm2 ablate --out contended' });\nconsole.log('held');\nsetInterval(() => {}, 1000);\n`,
  );
  const p = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    p.stdout.on('data', () => resolve());
    p.on('exit', () => reject(new Error('the holder exited')));
  });
  try {
    assert.throws(
      () => openRunFolder(dir, { command: 'notellm2 train' }),
      (e: unknown) => e instanceof RunFolderBusyError && e.message.includes(`in use by another notellm2 process: pid ${p.pid} (notellm2 ablate --out contended)`),
    );
  } finally {
    p.kill('SIGKILL');
    await new Promise((r) => p.on('exit', r));
  }
  const f = openRunFolder(dir, { command: 'notellm2 train' });
  assert.equal(JSON.parse(readFileSync(runFile(dir, 'lock'), 'utf8')).pid, process.pid);
  f.release();
});
