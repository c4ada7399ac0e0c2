/**
 * A checkpoint write killed at any moment leaves a state the next run recovers: the previous
 * checkpoint or the new one, never neither; unfinished staging folders are removed; a reader
 * of a half-written checkpoint is told how to recover it.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { interruptedSaveHint, loadCheckpoint, recoverCheckpoint, saveCheckpoint, type Checkpoint } from '../../src/model/checkpoint';
import { resolveCheckpointDir } from '../../src/experiments/restore';

const tmp = mkdtempSync(join(tmpdir(), 'notellm2-ckpt-recovery-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A pid no process has (above the kernel's pid_max). */
const DEAD_PID = 4_194_304 + 17;

const ckpt = (v: number): Checkpoint => ({
  weights: { w: { shape: [2], data: new Float32Array([v, v + 1]) } },
  config: { v },
  trainer: { step: v },
});

async function weightOf(dir: string): Promise<number> {
  return (await loadCheckpoint(dir)).weights.w.data[0];
}

test('killed between the two renames: recoverCheckpoint puts the previous checkpoint back and clears the staging folder', async () => {
  const root = join(tmp, 'between');
  const last = join(root, 'last');
  await saveCheckpoint(last, ckpt(1));
  // The state a kill between `rename(last → .last.old-*)` and `rename(staging → last)` leaves.
  renameSync(last, join(root, `.last.old-${DEAD_PID}-x-0`));
  mkdirSync(join(root, `.last.tmp-${DEAD_PID}-x-1`));
  writeFileSync(join(root, `.last.tmp-${DEAD_PID}-x-1`, 'model.safetensors'), 'partial');
  await assert.rejects(loadCheckpoint(last), /model\.safetensors is missing \(an interrupted save left the previous checkpoint at .*\.last\.old-.*--resume/);
  const r = await recoverCheckpoint(last);
  assert.equal(r.restored, join(root, `.last.old-${DEAD_PID}-x-0`));
  assert.deepEqual(r.removed, [join(root, `.last.tmp-${DEAD_PID}-x-1`)]);
  assert.equal(await weightOf(last), 1);
  assert.deepEqual(readdirSync(root), ['last']);
});

test('killed after the swap: the new checkpoint stays and the moved-aside one is removed', async () => {
  const root = join(tmp, 'after-swap');
  const last = join(root, 'last');
  await saveCheckpoint(last, ckpt(1));
  await saveCheckpoint(join(root, `.last.old-${DEAD_PID}-y-0`), ckpt(0));
  const r = await recoverCheckpoint(last);
  assert.equal(r.restored, undefined);
  assert.equal(r.removed.length, 1);
  assert.equal(await weightOf(last), 1);
  assert.deepEqual(readdirSync(root), ['last']);
});

test('killed while staging the first checkpoint: nothing to restore, the staging folder is removed, a live writer is left alone', async () => {
  const root = join(tmp, 'first');
  mkdirSync(join(root, `.best.tmp-${DEAD_PID}-z-0`), { recursive: true });
  // A staging folder of a process that is still running (this test's parent) is not touched.
  mkdirSync(join(root, `.best.tmp-${process.ppid}-z-1`));
  assert.match(interruptedSaveHint(join(root, 'best')), /only an unfinished staging folder/);
  const r = await recoverCheckpoint(join(root, 'best'));
  assert.equal(r.restored, undefined);
  assert.deepEqual(r.removed, [join(root, `.best.tmp-${DEAD_PID}-z-0`)]);
  assert.deepEqual(readdirSync(root), [`.best.tmp-${process.ppid}-z-1`]);
});

test('eval and embed do not fall back from an interrupted best/ to last/: they stop with the recovery hint', async () => {
  const variant = join(tmp, 'run', 'checkpoints', 'notellm2-s0');
  await saveCheckpoint(join(variant, 'last'), ckpt(2));
  await saveCheckpoint(join(variant, `.best.old-${DEAD_PID}-w-0`), ckpt(1));
  assert.throws(() => resolveCheckpointDir(variant), /best is missing \(an interrupted save left the previous checkpoint at .*\.best\.old-.*--resume/);
  assert.equal(resolveCheckpointDir(variant, 'last'), join(variant, 'last'));
  await recoverCheckpoint(join(variant, 'best'));
  assert.equal(resolveCheckpointDir(variant), join(variant, 'best'));
});

// A real SIGKILL at each point of a save (NOTELLM2_TEST_KILL, src/backend/crash-points.ts): the
// child saves checkpoint 1, then is killed while saving checkpoint 2 over it.
const CHILD = `
import { saveCheckpoint } from ${JSON.stringify(join(__dirname, '../../src/model/checkpoint'))};
const dir = process.argv[process.argv.length - 1];
const ck = (v: number) => ({ weights: { w: { shape: [2], data: new Float32Array([v, v + 1]) } }, config: { v }, optimizer: { step: v, tensors: { m: { shape: [1], data: new Float32Array([v]) } } }, trainer: { step: v } });
(async () => { await saveCheckpoint(dir, ck(1)); await saveCheckpoint(dir, ck(2)); })();
`;

for (const [phase, expected] of [['staging', 1], ['staged', 1], ['moved-aside', 1], ['swapped', 2]] as const) {
  test(`SIGKILL at save:last:${phase} → recovered to checkpoint ${expected}`, async () => {
    const root = join(tmp, `kill-${phase}`);
    mkdirSync(root);
    const script = join(root, 'child.ts');
    writeFileSync(script, CHILD);
    const res = spawnSync(process.execPath, ['--import', 'tsx', script, join(root, 'last')], {
      env: { ...process.env, NOTELLM2_TEST_KILL: `save:last:${phase}@2` },
      encoding: 'utf8',
    });
    assert.equal(res.signal, 'SIGKILL', res.stderr);
    rmSync(script);
    assert.ok(readdirSync(root).some((f) => f.startsWith('.last.')), 'the kill left a staging or moved-aside folder');
    await recoverCheckpoint(join(root, 'last'));
    assert.equal(await weightOf(join(root, 'last')), expected);
    const back = await loadCheckpoint(join(root, 'last'));
    assert.equal(back.optimizer?.step, expected, 'the optimiser state belongs to the same checkpoint');
    assert.deepEqual(readdirSync(root), ['last']);
    assert.ok(!existsSync(join(root, '.last.tmp')));
  });
}
