/**
 * Finding a checkpoint from the folder a user names, and the errors when there is none.
 * (Restoring and evaluating a real model is covered by test/cli/train-eval-embed.test.ts.)
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveCheckpointDir, restoreVariant, splitNoteIds } from '../../src/experiments/restore';
import type { Dataset } from '../../src/data/schema';

const tmp = mkdtempSync(join(tmpdir(), 'notellm2-restore-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function fakeCheckpoint(dir: string, config: unknown = {}): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'model.safetensors'), '');
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
}

test('resolveCheckpointDir: the folder itself, best/ before last/, last/ when asked, a one-variant run folder', () => {
  const variant = join(tmp, 'run', 'checkpoints', 'notellm2-s0');
  fakeCheckpoint(join(variant, 'best'));
  fakeCheckpoint(join(variant, 'last'));
  assert.equal(resolveCheckpointDir(variant), join(variant, 'best'));
  assert.equal(resolveCheckpointDir(variant, 'last'), join(variant, 'last'));
  assert.equal(resolveCheckpointDir(join(variant, 'last')), join(variant, 'last'));
  assert.equal(resolveCheckpointDir(join(tmp, 'run')), join(variant, 'best'));
  const onlyLast = join(tmp, 'only-last');
  fakeCheckpoint(join(onlyLast, 'last'));
  assert.equal(resolveCheckpointDir(onlyLast), join(onlyLast, 'last'), 'falls back to last/ when best/ is absent');
});

test('resolveCheckpointDir: clear errors for a missing folder, an empty one, a run with several variants', () => {
  assert.throws(() => resolveCheckpointDir(join(tmp, 'nope')), /no such folder/);
  mkdirSync(join(tmp, 'empty'));
  assert.throws(() => resolveCheckpointDir(join(tmp, 'empty')), /no model\.safetensors in .*empty.*best.*last/);
  fakeCheckpoint(join(tmp, 'two', 'checkpoints', 'basic-s0', 'best'));
  fakeCheckpoint(join(tmp, 'two', 'checkpoints', 'micl-s0', 'best'));
  assert.throws(() => resolveCheckpointDir(join(tmp, 'two')), /2 variants; name one of .*basic-s0.*micl-s0/);
  assert.throws(() => resolveCheckpointDir(join(tmp, 'two'), 'newest' as never), /one of best, last/);
});

test('restoreVariant: a config.json that is not a representation checkpoint is named with the missing field', async () => {
  const dir = join(tmp, 'pretrain-like');
  mkdirSync(dir);
  // A real (empty) safetensors file: 8-byte header length + "{}".
  const header = Buffer.from('{}');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  writeFileSync(join(dir, 'model.safetensors'), Buffer.concat([len, header]));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ lm: {} }));
  await assert.rejects(restoreVariant(dir), /config\.json: field "model" is missing/);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ model: {}, train: {}, preset: 'notellm2' }));
  await assert.rejects(restoreVariant(dir), /names no datasetDir.*--dataset/);
});

test('splitNoteIds: test, train, and all (train then test, no repeats)', () => {
  const ds = { noteIds: { train: ['a', 'b'], test: ['c', 'a'] } } as unknown as Dataset;
  assert.deepEqual(splitNoteIds(ds, 'test'), ['c', 'a']);
  assert.deepEqual(splitNoteIds(ds, 'train'), ['a', 'b']);
  assert.deepEqual(splitNoteIds(ds, 'all'), ['a', 'b', 'c']);
  assert.throws(() => splitNoteIds(ds, 'val' as never), /one of test, train, all/);
});
