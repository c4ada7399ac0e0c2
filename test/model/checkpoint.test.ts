import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, promises as fsp, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend, assertNoTensorLeak, tf } from '../../src/backend';
import {
  decodeSafetensors,
  encodeSafetensors,
  loadCheckpoint,
  readSafetensors,
  recordTensor,
  saveCheckpoint,
  tensorsToRecord,
  writeFileAtomic,
  writeSafetensors,
  CHECKPOINT_FILES,
  asFloat32Record,
} from '../../src/model/checkpoint';
import { AdamW } from '../../src/train/optim';

let dir: string;
before(async () => {
  await initBackend();
  dir = mkdtempSync(join(tmpdir(), 'notellm2-ckpt-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('safetensors header layout byte by byte (u64 LE length, sorted JSON, space padding, LE data)', () => {
  const bytes = encodeSafetensors(
    { b: { shape: [2], data: new Float32Array([1.5, -2]) }, a: { shape: [1], data: new Int32Array([7]) } },
    { format: 'pt' },
  );
  const json =
    '{"__metadata__":{"format":"pt"},"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]},' +
    '"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}';
  const padded = json + ' '.repeat((8 - (json.length % 8)) % 8);
  assert.equal(padded.length % 8, 0);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  assert.equal(dv.getBigUint64(0, true), BigInt(padded.length)); // header length, little-endian u64
  assert.equal(dv.getUint32(4, true), 0); // high word of the u64
  assert.equal(new TextDecoder().decode(bytes.subarray(8, 8 + padded.length)), padded);
  const start = 8 + padded.length;
  assert.equal(start % 8, 0, 'data section is 8-byte aligned');
  assert.equal(bytes.length, start + 12);
  assert.equal(dv.getInt32(start, true), 7);
  assert.equal(dv.getFloat32(start + 4, true), 1.5);
  assert.equal(dv.getFloat32(start + 8, true), -2);
  // Float 1.5 little-endian is 00 00 c0 3f.
  assert.deepEqual(Array.from(bytes.subarray(start + 4, start + 8)), [0x00, 0x00, 0xc0, 0x3f]);
});

test('safetensors round trip through a file: shapes, values, scalars, empty tensors, metadata', async () => {
  const tensors = {
    'lm.embed': { shape: [3, 2], data: new Float32Array([1, 2, 3, 4, 5, -6.25]) },
    'loss.tau': { shape: [], data: new Float32Array([3]) },
    'vocab.ids': { shape: [4], data: new Int32Array([0, -1, 2 ** 31 - 1, 42]) },
    'empty': { shape: [0, 5], data: new Float32Array(0) },
  };
  const path = join(dir, 'rt.safetensors');
  await writeSafetensors(path, tensors, { note: 'hello', step: '12' });
  const back = await readSafetensors(path);
  assert.deepEqual(back.metadata, { note: 'hello', step: '12' });
  assert.deepEqual(Object.keys(back.tensors).sort(), Object.keys(tensors).sort());
  for (const [k, t] of Object.entries(tensors)) {
    assert.deepEqual(back.tensors[k].shape, t.shape, k);
    assert.equal(back.tensors[k].data.constructor, t.data.constructor, k);
    assert.deepEqual(Array.from(back.tensors[k].data), Array.from(t.data), k);
  }
  assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp-')), [], 'no temporary file remains');
});

test('corrupt or truncated safetensors files fail with the file name and what was expected', async () => {
  const good = encodeSafetensors({ w: { shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) } });
  const write = (name: string, bytes: Uint8Array) => {
    const p = join(dir, name);
    writeFileSync(p, bytes);
    return p;
  };
  const p1 = write('short.safetensors', good.subarray(0, 5));
  await assert.rejects(readSafetensors(p1), (e: Error) => e.message.startsWith(p1) && /5 bytes, expected at least 8/.test(e.message));
  const p2 = write('cut-header.safetensors', good.subarray(0, 20));
  await assert.rejects(readSafetensors(p2), /cut-header\.safetensors: truncated safetensors file: the header length field says \d+ bytes but only 12 follow/);
  const p3 = write('cut-data.safetensors', good.subarray(0, good.length - 3));
  await assert.rejects(readSafetensors(p3), /cut-data\.safetensors: truncated safetensors file: tensor "w" needs data bytes up to 16 but only 13/);
  const extra = new Uint8Array(good.length + 4);
  extra.set(good);
  await assert.rejects(readSafetensors(write('extra.safetensors', extra)), /4 trailing bytes/);
  const garbage = good.slice();
  garbage[8] = 0x5b; // '[' instead of '{' keeps JSON valid only by accident; here it breaks it
  await assert.rejects(readSafetensors(write('bad-json.safetensors', garbage)), /bad-json\.safetensors: safetensors header .* is not valid UTF-8 JSON/);
  const mk = (header: object, dataBytes: number) => {
    const h = new TextEncoder().encode(JSON.stringify(header));
    const out = new Uint8Array(8 + h.length + dataBytes);
    new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
    out.set(h, 8);
    return out;
  };
  assert.throws(() => decodeSafetensors(mk({ x: { dtype: 'F64', shape: [2], data_offsets: [0, 16] } }, 16), 'f64'), /f64: tensor "x": dtype "F64" is not supported \(valid: F32, I32, F16, BF16\)/);
  assert.throws(() => decodeSafetensors(mk({ x: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8)), /span 8 bytes but F32 \[3\] needs 12/);
  assert.throws(
    () => decodeSafetensors(mk({ x: { dtype: 'F32', shape: [1], data_offsets: [4, 8] }, y: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8)),
    /starts at data byte 4, expected 0/,
  );
  assert.throws(() => decodeSafetensors(mk({ __metadata__: { k: 1 } }, 0)), /"__metadata__"."k" must be a string/);
  const huge = new Uint8Array(16);
  new DataView(huge.buffer).setBigUint64(0, 2n ** 40n, true);
  assert.throws(() => decodeSafetensors(huge, 'huge'), /huge: safetensors header length \d+ exceeds/);
  assert.throws(() => encodeSafetensors({ x: { shape: [3], data: new Float32Array(2) } }), /"x" has 2 values but shape \[3\] needs 3/);
});

test('atomic write: a writer that throws leaves neither a partial file nor a temporary one', async () => {
  const sub = join(dir, 'atomic');
  await fsp.mkdir(sub);
  const target = join(sub, 'model.safetensors');
  await assert.rejects(
    writeFileAtomic(target, async (write) => {
      await write(new Uint8Array(1024).fill(1));
      throw new Error('disk on fire');
    }),
    /disk on fire/,
  );
  assert.deepEqual(readdirSync(sub), [], 'nothing is left behind');
  // An existing file is kept intact when the replacement fails.
  await writeFileAtomic(target, 'old contents');
  await assert.rejects(
    writeFileAtomic(target, async (write) => {
      await write(new TextEncoder().encode('new con'));
      throw new Error('interrupted');
    }),
  );
  assert.equal(await fsp.readFile(target, 'utf8'), 'old contents');
  assert.deepEqual(readdirSync(sub), ['model.safetensors']);
  // An invalid tensor fails before anything is written, too.
  await assert.rejects(writeSafetensors(join(sub, 'x.safetensors'), { x: { shape: [2], data: new Float32Array(3) } }));
  assert.deepEqual(readdirSync(sub), ['model.safetensors']);
});

test('checkpoint directory: weights + config + optimiser + trainer state round trip, replace in place', async () => {
  const ckdir = join(dir, 'runs', 'best');
  const w = tf.variable(tf.tensor2d([[0.5, -1], [2, 3]]));
  const tau = tf.variable(tf.scalar(3));
  const opt = new AdamW({ 'head.w': w, 'loss.tau': tau }, { lr: 0.1 });
  tf.tidy(() => opt.applyGradients({ 'head.w': tf.tensor2d([[1, -1], [0.5, 0]]), 'loss.tau': tf.scalar(0.2) }));
  const weights = await tensorsToRecord({ 'head.w': w, 'loss.tau': tau });
  const config = { preset: 'notellm2', model: { dim: 2 }, seed: 1 };
  await saveCheckpoint(ckdir, { weights: asFloat32Record(weights), config, optimizer: opt.exportState(), trainer: { epoch: 1, step: 1, bestVal: 0.25 } });
  assert.deepEqual(readdirSync(ckdir).sort(), Object.values(CHECKPOINT_FILES).sort());
  const back = await loadCheckpoint(ckdir);
  assert.deepEqual(back.config, config);
  assert.deepEqual(back.trainer, { epoch: 1, step: 1, bestVal: 0.25 });
  assert.deepEqual(Array.from(back.weights['head.w'].data), Array.from(w.dataSync()));
  assert.equal(back.optimizer?.step, 1);
  assert.deepEqual(Array.from(back.optimizer!.tensors['v.loss.tau'].data), Array.from(opt.exportState().tensors['v.loss.tau'].data));
  // Importing the saved state reproduces the optimiser exactly.
  const opt2 = new AdamW({ 'head.w': w, 'loss.tau': tau }, { lr: 0.1 });
  opt2.importState(back.optimizer!);
  assert.equal(opt2.step, 1);
  // Saving again replaces the directory; stale files from the older checkpoint disappear.
  await saveCheckpoint(ckdir, { weights: { 'head.w': back.weights['head.w'] }, config: { v: 2 } });
  assert.deepEqual(readdirSync(ckdir).sort(), [CHECKPOINT_FILES.config, CHECKPOINT_FILES.weights].sort());
  const again = await loadCheckpoint(ckdir);
  assert.deepEqual(again.config, { v: 2 });
  assert.equal(again.optimizer, undefined);
  assert.deepEqual(readdirSync(join(dir, 'runs')), ['best'], 'no staging or old directory remains');
  await assert.rejects(loadCheckpoint(join(dir, 'runs', 'nope')), /nope: not a checkpoint directory, model\.safetensors is missing/);
  await assertNoTensorLeak(() => recordTensor(back.weights['head.w']).dispose());
  opt.dispose();
  opt2.dispose();
  tf.dispose([w, tau]);
});
