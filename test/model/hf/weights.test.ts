/**
 * safetensors as published checkpoints use it: F16 and BF16 upcast to float32 (hand-computed
 * bit patterns), tensors read by offset through a file handle with the file size checked
 * against the header first, non-finite weights refused, and sharded folders
 * (`model.safetensors.index.json`).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  bfloat16ToFloat32,
  decodeSafetensors,
  encodeSafetensors,
  float16ToFloat32,
  openSafetensors,
  readSafetensors,
} from '../../../src/model/checkpoint';
import { HfCheckpoint, loadHfTensors } from '../../../src/model/hf/weights';

const FIXTURES = resolve(__dirname, '..', '..', 'fixtures', 'hf');
let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'notellm2-hfw-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** A safetensors file from a header object and raw data bytes (nothing validated here). */
function rawFile(header: object, data: Uint8Array): Uint8Array {
  let h = JSON.stringify(header);
  h += ' '.repeat((8 - (h.length % 8)) % 8);
  const hb = new TextEncoder().encode(h);
  const out = new Uint8Array(8 + hb.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(hb.length), true);
  out.set(hb, 8);
  out.set(data, 8 + hb.length);
  return out;
}

function u16le(values: number[]): Uint8Array {
  const b = new Uint8Array(values.length * 2);
  const dv = new DataView(b.buffer);
  values.forEach((v, i) => dv.setUint16(2 * i, v, true));
  return b;
}

// binary16: sign | 5-bit exponent (bias 15) | 10-bit mantissa.
const F16_CASES: Array<[number, number]> = [
  [0x3c00, 1],
  [0xc000, -2],
  [0x3555, 0.333251953125], // (1 + 341/1024) · 2^−2
  [0x7bff, 65504], // largest finite
  [0x0400, 2 ** -14], // smallest normal
  [0x03ff, 1023 * 2 ** -24], // largest subnormal
  [0x0001, 2 ** -24], // smallest subnormal
  [0x8001, -(2 ** -24)],
  [0x0000, 0],
  [0x7c00, Infinity],
  [0xfc00, -Infinity],
];
// bfloat16: the top 16 bits of a float32.
const BF16_CASES: Array<[number, number]> = [
  [0x3f80, 1],
  [0xc040, -3],
  [0x4049, 3.140625],
  [0x3eab, 0.333984375], // (1 + 43/128) · 2^−2
  [0x0001, 2 ** -133], // float32 subnormal 0x00010000
  [0x7f7f, 3.3895313892515355e38], // largest finite
  [0x7f80, Infinity],
  [0xff80, -Infinity],
];

test('F16 → float32: normal, subnormal, zero, ±Inf and NaN bit patterns, exactly', () => {
  const got = float16ToFloat32(Uint16Array.from([...F16_CASES.map(([b]) => b), 0x7e00, 0xfe01, 0x8000]));
  F16_CASES.forEach(([bits, want], i) => assert.equal(got[i], want, `0x${bits.toString(16)}`));
  assert.ok(Number.isNaN(got[F16_CASES.length]) && Number.isNaN(got[F16_CASES.length + 1]), 'NaN patterns stay NaN');
  assert.ok(Object.is(got[F16_CASES.length + 2], -0), '0x8000 is −0');
});

test('BF16 → float32: the 16 bits shifted left by 16', () => {
  const got = bfloat16ToFloat32(Uint16Array.from([...BF16_CASES.map(([b]) => b), 0x7fc0, 0x8000]));
  BF16_CASES.forEach(([bits, want], i) => assert.equal(got[i], want, `0x${bits.toString(16)}`));
  assert.ok(Number.isNaN(got[BF16_CASES.length]));
  assert.ok(Object.is(got[BF16_CASES.length + 1], -0));
});

test('F16 and BF16 tensors in a file decode to float32 with their shapes; non-finite values are refused on request, naming file and tensor', async () => {
  const f16 = F16_CASES.slice(0, 8).map(([b]) => b);
  const bf16 = BF16_CASES.slice(0, 6).map(([b]) => b);
  const data = new Uint8Array([...u16le(f16), ...u16le(bf16)]);
  const path = join(dir, 'half.safetensors');
  writeFileSync(path, rawFile({
    __metadata__: { format: 'pt' },
    a: { dtype: 'F16', shape: [2, 4], data_offsets: [0, 16] },
    b: { dtype: 'BF16', shape: [3, 2], data_offsets: [16, 28] },
  }, data));
  const { tensors } = await readSafetensors(path, { nonFinite: 'refuse' });
  assert.deepEqual(tensors.a.shape, [2, 4]);
  assert.ok(tensors.a.data instanceof Float32Array);
  assert.deepEqual(Array.from(tensors.a.data), F16_CASES.slice(0, 8).map(([, v]) => v));
  assert.deepEqual(tensors.b.shape, [3, 2]);
  assert.deepEqual(Array.from(tensors.b.data), BF16_CASES.slice(0, 6).map(([, v]) => v));
  // the buffer decoder agrees with the file reader
  assert.deepEqual(Array.from(decodeSafetensors(readFileSync(path)).tensors.b.data), Array.from(tensors.b.data));

  const bad = join(dir, 'inf.safetensors');
  writeFileSync(bad, rawFile({ ok: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, w: { dtype: 'F16', shape: [3], data_offsets: [4, 10] } },
    new Uint8Array([0, 0, 128, 63, ...u16le([0x3c00, 0x7c00, 0x7e00])])));
  await assert.rejects(readSafetensors(bad, { nonFinite: 'refuse' }), (e: Error) =>
    e.message.startsWith(bad) && /tensor "w" \(F16 \[3\]\) holds 2 non-finite values \(first at flat index 1: Infinity\)/.test(e.message));
  // this project's own files keep reading as before (no check unless asked)
  assert.ok(Number.isNaN((await readSafetensors(bad)).tensors.w.data[2]));
});

test('by offset: the header is checked against the file size (fstat) at open, before any tensor is read; truncation after open is caught per tensor', async () => {
  const tensors = {
    a: { shape: [3], data: new Float32Array([1, 2, 3]) },
    b: { shape: [2, 2], data: new Float32Array([4, 5, 6, 7]) },
    c: { shape: [1], data: new Int32Array([-9]) },
  };
  const bytes = encodeSafetensors(tensors);
  const path = join(dir, 'three.safetensors');
  writeFileSync(path, bytes);
  const f = await openSafetensors(path);
  try {
    assert.deepEqual(f.names().sort(), ['a', 'b', 'c']);
    assert.deepEqual(f.entry('b'), { name: 'b', dtype: 'F32', shape: [2, 2], begin: 12, end: 28 });
    // any tensor alone, in any order
    assert.deepEqual(Array.from((await f.read('b')).data), [4, 5, 6, 7]);
    assert.deepEqual(Array.from((await f.read('c')).data), [-9]);
    await assert.rejects(f.read('zz'), (e: Error) => e.message === `${path}: no tensor "zz" in this file`);
  } finally {
    await f.close();
  }
  // trailing garbage and truncation: refused when the file is opened, naming the file
  const extra = join(dir, 'extra.safetensors');
  writeFileSync(extra, new Uint8Array([...bytes, 1, 2, 3]));
  await assert.rejects(openSafetensors(extra), (e: Error) => e.message.startsWith(extra) && /3 trailing bytes after the last tensor/.test(e.message));
  const short = join(dir, 'short.safetensors');
  writeFileSync(short, bytes.subarray(0, bytes.length - 5));
  await assert.rejects(openSafetensors(short), (e: Error) =>
    e.message.startsWith(short) && /truncated safetensors file: tensor "c" needs data bytes up to 32 but only 27 are present/.test(e.message));
  // a file cut after it was opened: the read of the lost tensor names it
  const cut = join(dir, 'cut.safetensors');
  writeFileSync(cut, bytes);
  const g = await openSafetensors(cut);
  try {
    truncateSync(cut, bytes.length - 8);
    assert.deepEqual(Array.from((await g.read('a')).data), [1, 2, 3]);
    await assert.rejects(g.read('c'), (e: Error) => e.message.startsWith(cut) && /tensor "c": the file ended after/.test(e.message));
  } finally {
    await g.close();
  }
});

test('sharded folder: the index and its shards give the same tensors as the single file; a BF16 copy is the float32 weights rounded', async () => {
  const single = await loadHfTensors(join(FIXTURES, 'llama_tied'));
  const sharded = await loadHfTensors(join(FIXTURES, 'llama_tied_sharded'));
  assert.deepEqual(Object.keys(sharded).sort(), Object.keys(single).sort());
  for (const [k, t] of Object.entries(single)) {
    assert.deepEqual(sharded[k].shape, t.shape, k);
    assert.deepEqual(Array.from(sharded[k].data), Array.from(t.data), k);
  }
  const ck = await HfCheckpoint.open(join(FIXTURES, 'llama_tied_sharded'));
  try {
    assert.match(ck.info('model.norm.weight')!.file, /model-00003-of-00003\.safetensors$/);
    assert.equal(ck.info('lm_head.weight'), undefined);
  } finally {
    await ck.close();
  }
  const f32 = await loadHfTensors(join(FIXTURES, 'llama_gqa'));
  const bf16 = await loadHfTensors(join(FIXTURES, 'llama_gqa_bf16'));
  for (const [k, t] of Object.entries(f32)) {
    const b = bf16[k].data;
    let changed = 0;
    t.data.forEach((v, i) => {
      assert.ok(Math.abs(b[i] - v) <= Math.abs(v) * 2 ** -8, `${k}[${i}]: ${b[i]} is not ${v} rounded to bfloat16`);
      if (b[i] !== v) changed++;
      // the low 16 bits of an upcast bfloat16 are zero
      assert.equal(new Uint32Array(Float32Array.of(b[i]).buffer)[0] & 0xffff, 0);
    });
    if (t.data.length > 16) assert.ok(changed > 0, `${k}: the BF16 copy should differ from float32 somewhere`);
  }
});

test('sharded folder errors name the index, the shard and the key', async () => {
  const copy = (name: string) => {
    const d = join(dir, name);
    cpSync(join(FIXTURES, 'llama_tied_sharded'), d, { recursive: true });
    return d;
  };
  const indexOf = (d: string) => JSON.parse(readFileSync(join(d, 'model.safetensors.index.json'), 'utf8'));
  const writeIndex = (d: string, idx: unknown) => writeFileSync(join(d, 'model.safetensors.index.json'), JSON.stringify(idx));

  const gone = copy('gone');
  unlinkSync(join(gone, 'model-00003-of-00003.safetensors'));
  await assert.rejects(loadHfTensors(gone), /model\.safetensors\.index\.json: shard "model-00003-of-00003\.safetensors" \(holding "model\.layers\.1\.input_layernorm\.weight" and \d+ more\) does not exist/);

  const moved = copy('moved');
  const idx = indexOf(moved);
  idx.weight_map['model.norm.weight'] = 'model-00001-of-00003.safetensors';
  writeIndex(moved, idx);
  await assert.rejects(loadHfTensors(moved), /key "model\.norm\.weight" is mapped to model-00001-of-00003\.safetensors, which has no such tensor/);

  const dropped = copy('dropped');
  const idx2 = indexOf(dropped);
  delete idx2.weight_map['model.norm.weight'];
  writeIndex(dropped, idx2);
  await assert.rejects(loadHfTensors(dropped), /model-00003-of-00003\.safetensors: tensor "model\.norm\.weight" is in this shard but model\.safetensors\.index\.json does not map it here/);

  const noMap = copy('nomap');
  writeIndex(noMap, { metadata: {} });
  await assert.rejects(loadHfTensors(noMap), /index\.json: field "weight_map" is missing/);

  const empty = join(dir, 'empty');
  cpSync(join(FIXTURES, 'llama_tied', 'config.json'), join(empty, 'config.json'));
  writeFileSync(join(empty, 'pytorch_model.bin'), 'x');
  await assert.rejects(loadHfTensors(empty), /neither model\.safetensors nor model\.safetensors\.index\.json is there \(found pytorch_model\.bin: only safetensors are read/);
});

test('a non-finite weight in a checkpoint folder is refused by default, naming the file and the key; allowed on request', async () => {
  const d = join(dir, 'nan-folder');
  cpSync(join(FIXTURES, 'llama_tied'), d, { recursive: true });
  const path = join(d, 'model.safetensors');
  const bytes = new Uint8Array(readFileSync(path));
  const f = await openSafetensors(path);
  const e = f.entry('model.norm.weight')!;
  const start = f.header.dataStart;
  await f.close();
  new DataView(bytes.buffer).setFloat32(start + e.begin + 4 * 5, NaN, true);
  writeFileSync(path, bytes);
  await assert.rejects(loadHfTensors(d), (err: Error) =>
    err.message.startsWith(path) && /tensor "model\.norm\.weight" \(F32 \[48\]\) holds 1 non-finite value \(first at flat index 5: NaN\)/.test(err.message));
  const allowed = await loadHfTensors(d, { nonFinite: 'allow' });
  assert.ok(Number.isNaN(allowed['model.norm.weight'].data[5]));
});
