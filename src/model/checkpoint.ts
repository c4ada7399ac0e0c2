/**
 * Checkpoints: safetensors files plus JSON beside them, written atomically.
 *
 * safetensors layout (Hugging Face's format):
 *
 *     [ 8 bytes ]  N, the header length, unsigned 64-bit little-endian
 *     [ N bytes ]  UTF-8 JSON object:
 *                    { "__metadata__": { "<key>": "<string>", … },          (optional)
 *                      "<name>": { "dtype": "F32", "shape": [d0, d1, …],
 *                                  "data_offsets": [begin, end] }, … }
 *                  padded with spaces so that 8 + N is a multiple of 8 (aligned data)
 *     [ rest    ]  the tensors' bytes, row-major, little-endian; offsets are relative to the
 *                  first byte after the header and must tile this section exactly
 *
 * Only F32 and I32 are read and written (the dtypes this project stores). The format is small
 * enough that the reader and writer live here: the npm package named `safetensors` is an
 * unmaintained 0.0.1 placeholder, and writing the bytes ourselves lets the writer stream large
 * tensors straight from their Float32Arrays and the reader report exactly what is wrong.
 *
 * A checkpoint directory holds `model.safetensors` (weights), `config.json`, and for resuming
 * `optimizer.safetensors` (moments; the step in its metadata) and `trainer.json`.
 */
import { promises as fsp, readdirSync, statSync } from 'node:fs';
import { endianness } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { tf } from '../backend';
import { crashPoint } from '../backend/crash-points';

export type SafetensorsDtype = 'F32' | 'I32';
export const SAFETENSORS_DTYPES: readonly SafetensorsDtype[] = ['F32', 'I32'];

/** One stored tensor: row-major data and its shape ([] for a scalar). */
export interface StoredTensor {
  shape: number[];
  data: Float32Array | Int32Array;
}
export type TensorRecord = Record<string, StoredTensor>;
/** Float32-only records (model weights, optimiser moments); ParamStore's ParamRecord fits. */
export type Float32Record = Record<string, { shape: number[]; data: Float32Array }>;

/** Narrows a record to float32, naming the first int32 tensor and its file if there is one. */
export function asFloat32Record(rec: TensorRecord, source = '<record>'): Float32Record {
  for (const [name, t] of Object.entries(rec)) {
    if (!(t.data instanceof Float32Array)) throw new Error(`${source}: tensor "${name}" is I32, expected F32`);
  }
  return rec as Float32Record;
}

export interface SafetensorsContent {
  tensors: TensorRecord;
  /** The `__metadata__` string map ({} when absent). */
  metadata: Record<string, string>;
}

/** The reference implementation refuses headers above 100 MB; so do we. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

function assertLittleEndianHost(): void {
  if (endianness() !== 'LE') throw new Error('safetensors: this host is big-endian; only little-endian hosts are supported');
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function dtypeOf(data: Float32Array | Int32Array, name: string): SafetensorsDtype {
  if (data instanceof Float32Array) return 'F32';
  if (data instanceof Int32Array) return 'I32';
  throw new Error(`safetensors: tensor "${name}" must be a Float32Array or Int32Array`);
}

/** Builds the padded header bytes and the order the tensors' bytes follow in. */
function buildHeader(tensors: TensorRecord, metadata?: Record<string, string>): { header: Uint8Array; order: string[] } {
  const order = Object.keys(tensors).sort();
  const json: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new Error(`safetensors: metadata "${k}" must be a string, got ${typeof v}`);
    }
    json.__metadata__ = metadata;
  }
  let offset = 0;
  for (const name of order) {
    if (name === '' || name === '__metadata__') throw new Error(`safetensors: "${name}" is not a valid tensor name`);
    const { shape, data } = tensors[name];
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new Error(`safetensors: tensor "${name}" has an invalid shape ${JSON.stringify(shape)} (non-negative integers expected)`);
    }
    const dtype = dtypeOf(data, name);
    if (data.length !== elementCount(shape)) {
      throw new Error(`safetensors: tensor "${name}" has ${data.length} values but shape ${JSON.stringify(shape)} needs ${elementCount(shape)}`);
    }
    json[name] = { dtype, shape, data_offsets: [offset, offset + data.byteLength] };
    offset += data.byteLength;
  }
  let text = JSON.stringify(json);
  let bytes = new TextEncoder().encode(text);
  const pad = (8 - (bytes.length % 8)) % 8;
  if (pad) {
    text += ' '.repeat(pad);
    bytes = new TextEncoder().encode(text);
  }
  const header = new Uint8Array(8 + bytes.length);
  new DataView(header.buffer).setBigUint64(0, BigInt(bytes.length), true);
  header.set(bytes, 8);
  return { header, order };
}

function bytesOf(data: Float32Array | Int32Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Serialises tensors (sorted by name) and optional string metadata to one buffer. */
export function encodeSafetensors(tensors: TensorRecord, metadata?: Record<string, string>): Uint8Array {
  assertLittleEndianHost();
  const { header, order } = buildHeader(tensors, metadata);
  const total = header.length + order.reduce((s, n) => s + tensors[n].data.byteLength, 0);
  const out = new Uint8Array(total);
  out.set(header, 0);
  let at = header.length;
  for (const name of order) {
    out.set(bytesOf(tensors[name].data), at);
    at += tensors[name].data.byteLength;
  }
  return out;
}

/**
 * Parses a safetensors buffer, checking every field; `source` (a file name) prefixes errors.
 * The returned arrays are copies, independent of `bytes`.
 */
export function decodeSafetensors(bytes: Uint8Array, source = '<buffer>'): SafetensorsContent {
  assertLittleEndianHost();
  const fail = (msg: string): never => {
    throw new Error(`${source}: ${msg}`);
  };
  if (bytes.length < 8) {
    fail(`truncated safetensors file: ${bytes.length} bytes, expected at least 8 (the little-endian u64 header length)`);
  }
  const n64 = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES)) fail(`safetensors header length ${n64} exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`);
  const n = Number(n64);
  if (8 + n > bytes.length) {
    fail(`truncated safetensors file: the header length field says ${n} bytes but only ${bytes.length - 8} follow the 8-byte prefix`);
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    fail(`safetensors header (bytes 8..${8 + n}) is not valid UTF-8 JSON: ${(e as Error).message}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    fail('safetensors header must be a JSON object mapping tensor names to {dtype, shape, data_offsets}');
  }
  const dataStart = 8 + n;
  const dataLen = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const entries: Array<{ name: string; dtype: SafetensorsDtype; shape: number[]; begin: number; end: number }> = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('"__metadata__" must be an object of strings');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`"__metadata__"."${k}" must be a string, got ${JSON.stringify(v)}`);
        metadata[k] = v as string;
      }
      continue;
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) fail(`tensor "${name}": expected {dtype, shape, data_offsets}, got ${JSON.stringify(raw)}`);
    if (!SAFETENSORS_DTYPES.includes(e.dtype as SafetensorsDtype)) {
      fail(`tensor "${name}": dtype ${JSON.stringify(e.dtype)} is not supported (valid: ${SAFETENSORS_DTYPES.join(', ')})`);
    }
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0)) {
      fail(`tensor "${name}": shape ${JSON.stringify(e.shape)} must be an array of non-negative integers`);
    }
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isInteger(d) && d >= 0) || off[1] < off[0]) {
      fail(`tensor "${name}": data_offsets ${JSON.stringify(off)} must be [begin, end] with 0 ≤ begin ≤ end`);
    }
    const shape = e.shape as number[];
    const [begin, end] = off as [number, number];
    const want = elementCount(shape) * 4;
    if (end - begin !== want) {
      fail(`tensor "${name}": data_offsets [${begin}, ${end}] span ${end - begin} bytes but ${e.dtype} ${JSON.stringify(shape)} needs ${want}`);
    }
    entries.push({ name, dtype: e.dtype as SafetensorsDtype, shape, begin, end });
  }
  // The offsets must tile the data section exactly: no gaps, no overlaps, nothing after.
  const sorted = [...entries].sort((x, y) => x.begin - y.begin || x.end - y.end);
  let expect = 0;
  for (const e of sorted) {
    if (e.begin !== expect) {
      fail(`tensor "${e.name}" starts at data byte ${e.begin}, expected ${expect} (offsets must be contiguous, without gaps or overlaps)`);
    }
    expect = e.end;
  }
  if (expect > dataLen) {
    const last = sorted[sorted.length - 1];
    fail(`truncated safetensors file: tensor "${last.name}" needs data bytes up to ${expect} but only ${dataLen} are present (file is ${bytes.length} bytes, expected ${dataStart + expect})`);
  }
  if (expect < dataLen) fail(`safetensors data section has ${dataLen - expect} trailing bytes after the last tensor (expected ${expect} bytes of data)`);

  const tensors: TensorRecord = {};
  for (const e of entries) {
    const count = (e.end - e.begin) / 4;
    const data = e.dtype === 'F32' ? new Float32Array(count) : new Int32Array(count);
    new Uint8Array(data.buffer).set(bytes.subarray(dataStart + e.begin, dataStart + e.end));
    tensors[e.name] = { shape: e.shape, data };
  }
  return { tensors, metadata };
}

// ---------------------------------------------------------------------------------------------
// Atomic files
// ---------------------------------------------------------------------------------------------

let tmpCounter = 0;
function tmpName(path: string, tag: string): string {
  return join(dirname(path), `.${basename(path)}.${tag}-${process.pid}-${Date.now().toString(36)}-${tmpCounter++}`);
}

/** fsync a directory so a rename inside it is durable; not every platform allows it. */
async function syncDir(dir: string): Promise<void> {
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(dir, 'r');
    await fh.sync();
  } catch {
    // Windows cannot open directories; the rename is still atomic there.
  } finally {
    await fh?.close();
  }
}

/** Writes chunks in order; given to the producer of a streamed atomic write. */
export type ChunkWriter = (chunk: Uint8Array) => Promise<void>;

/**
 * Writes `path` atomically: the bytes go to a temporary file in the same directory, which is
 * fsynced and then renamed over `path`. Readers see the old file or the complete new one, never
 * a partial one; if writing throws, the temporary file is removed and `path` is unchanged.
 * `content` may be a producer that streams chunks through the given writer.
 */
export async function writeFileAtomic(path: string, content: string | Uint8Array | ((write: ChunkWriter) => Promise<void>)): Promise<void> {
  const tmp = tmpName(path, 'tmp');
  const fh = await fsp.open(tmp, 'wx');
  let ok = false;
  try {
    const write: ChunkWriter = async (chunk) => {
      let at = 0;
      while (at < chunk.length) {
        const { bytesWritten } = await fh.write(chunk, at, chunk.length - at);
        at += bytesWritten;
      }
    };
    if (typeof content === 'string') await write(new TextEncoder().encode(content));
    else if (content instanceof Uint8Array) await write(content);
    else await content(write);
    await fh.sync();
    ok = true;
  } finally {
    await fh.close();
    if (!ok) await fsp.rm(tmp, { force: true });
  }
  try {
    await fsp.rename(tmp, path);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
  await syncDir(dirname(path));
}

/** JSON with two-space indentation and a final newline, written atomically. */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}

/** Reads and parses a JSON file; errors name the file. */
export async function readJsonFile(path: string): Promise<unknown> {
  const text = await fsp.readFile(path, 'utf8');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

/** Writes a safetensors file atomically, streaming each tensor's bytes without copying. */
export async function writeSafetensors(path: string, tensors: TensorRecord, metadata?: Record<string, string>): Promise<void> {
  assertLittleEndianHost();
  const { header, order } = buildHeader(tensors, metadata);
  await writeFileAtomic(path, async (write) => {
    await write(header);
    for (const name of order) await write(bytesOf(tensors[name].data));
  });
}

/** Reads and validates a safetensors file; errors name the file and what was expected. */
export async function readSafetensors(path: string): Promise<SafetensorsContent> {
  const buf = await fsp.readFile(path);
  return decodeSafetensors(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), path);
}

// ---------------------------------------------------------------------------------------------
// Tensors ⇄ records
// ---------------------------------------------------------------------------------------------

/** Downloads tensors/variables into a record (float32 → F32, int32 → I32). */
export async function tensorsToRecord(tensors: Record<string, tf.Tensor> | Map<string, tf.Tensor>): Promise<TensorRecord> {
  const out: TensorRecord = {};
  const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  for (const [name, t] of entries) {
    const raw = await t.data();
    if (t.dtype === 'float32') out[name] = { shape: [...t.shape], data: Float32Array.from(raw as Float32Array) };
    else if (t.dtype === 'int32') out[name] = { shape: [...t.shape], data: Int32Array.from(raw as Int32Array) };
    else throw new Error(`tensorsToRecord: "${name}" has dtype ${t.dtype}; only float32 and int32 can be stored`);
  }
  return out;
}

/** Creates a tensor from a stored one (the caller owns it). */
export function recordTensor(t: StoredTensor): tf.Tensor {
  return tf.tensor(t.data, t.shape, t.data instanceof Int32Array ? 'int32' : 'float32');
}

// ---------------------------------------------------------------------------------------------
// Checkpoint directories
// ---------------------------------------------------------------------------------------------

export const CHECKPOINT_FILES = {
  weights: 'model.safetensors',
  config: 'config.json',
  optimizer: 'optimizer.safetensors',
  trainer: 'trainer.json',
} as const;

export interface Checkpoint {
  /** Model parameters by path (float32). */
  weights: Float32Record;
  /** The resolved model (and training) configuration; saved as config.json. */
  config: unknown;
  /** Optimiser state for resuming (e.g. AdamW.exportState()). */
  optimizer?: { step: number; tensors: Float32Record };
  /** Trainer state for resuming (epoch, data position, best validation loss, RNG state…). */
  trainer?: unknown;
  /** Extra strings stored in model.safetensors' __metadata__. */
  metadata?: Record<string, string>;
}

/**
 * Saves a checkpoint directory atomically as a whole: the files are written (each fsynced)
 * into a fresh sibling directory, which then replaces `dir` by rename; the previous `dir`, if
 * any, is moved aside first and removed last. A crash can only leave a `.<name>.tmp-*` staging
 * or a `.<name>.old-*` sibling behind, never a `dir` mixing two checkpoints; a crash between
 * the two renames leaves no `dir` but the previous checkpoint intact as `.<name>.old-*`, which
 * recoverCheckpoint puts back.
 */
export async function saveCheckpoint(dir: string, ckpt: Checkpoint): Promise<void> {
  await fsp.mkdir(dirname(dir), { recursive: true });
  const slot = basename(dir);
  const staging = tmpName(dir, 'tmp');
  await fsp.mkdir(staging);
  try {
    await writeSafetensors(join(staging, CHECKPOINT_FILES.weights), ckpt.weights, ckpt.metadata);
    crashPoint(`save:${slot}:staging`);
    await writeJsonAtomic(join(staging, CHECKPOINT_FILES.config), ckpt.config ?? null);
    if (ckpt.optimizer) {
      await writeSafetensors(join(staging, CHECKPOINT_FILES.optimizer), ckpt.optimizer.tensors, {
        step: String(ckpt.optimizer.step),
      });
    }
    if (ckpt.trainer !== undefined) await writeJsonAtomic(join(staging, CHECKPOINT_FILES.trainer), ckpt.trainer);
    await syncDir(staging);
  } catch (e) {
    await fsp.rm(staging, { recursive: true, force: true });
    throw e;
  }
  crashPoint(`save:${slot}:staged`);
  let old: string | undefined;
  try {
    await fsp.access(dir);
    old = tmpName(dir, 'old');
    await fsp.rename(dir, old);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      await fsp.rm(staging, { recursive: true, force: true });
      throw e;
    }
    old = undefined;
  }
  crashPoint(`save:${slot}:moved-aside`);
  await fsp.rename(staging, dir);
  await syncDir(dirname(dir));
  crashPoint(`save:${slot}:swapped`);
  if (old) await fsp.rm(old, { recursive: true, force: true });
}

/** The siblings an interrupted saveCheckpoint(dir) can leave, newest first by modification time. */
function saveLeftovers(dir: string): { staging: string[]; old: string[] } {
  const parent = dirname(dir);
  const prefix = `.${basename(dir)}.`;
  let names: string[] = [];
  try {
    names = readdirSync(parent).filter((f) => f.startsWith(prefix));
  } catch {
    // No parent folder: nothing was ever saved here.
  }
  const timed = names.map((f) => ({ path: join(parent, f), kind: f.slice(prefix.length).split('-')[0], mtime: statSync(join(parent, f), { throwIfNoEntry: false })?.mtimeMs ?? 0 }));
  timed.sort((a, b) => b.mtime - a.mtime);
  return { staging: timed.filter((t) => t.kind === 'tmp').map((t) => t.path), old: timed.filter((t) => t.kind === 'old').map((t) => t.path) };
}

/** The pid in a `.<name>.<tag>-<pid>-…` leftover's name, when that process is still running (and not this one). */
function liveWriter(path: string): number | null {
  const m = /\.(?:tmp|old)-(\d+)-/.exec(basename(path));
  const pid = m ? Number(m[1]) : NaN;
  if (!Number.isInteger(pid) || pid === process.pid) return null;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM' ? pid : null;
  }
}

/**
 * Brings a checkpoint folder back to a consistent state after a save was interrupted (killed):
 * when `dir` is missing but the previous checkpoint was moved aside (`.<name>.old-*`), that is
 * renamed back to `dir`; then every staging (`.<name>.tmp-*`) and moved-aside folder left by a
 * process that is no longer running is removed. `dir` afterwards holds the previous checkpoint
 * or the new one, never neither when one of them was complete. Returns what it did, for the log.
 */
export async function recoverCheckpoint(dir: string): Promise<{ restored?: string; removed: string[] }> {
  const { staging, old } = saveLeftovers(dir);
  let restored: string | undefined;
  if (!(await exists(join(dir, CHECKPOINT_FILES.weights)))) {
    const previous = old.find((p) => liveWriter(p) === null);
    if (previous && (await exists(join(previous, CHECKPOINT_FILES.weights)))) {
      // An empty or partial `dir` cannot exist (saveCheckpoint renames whole folders), but a
      // hand-made one must not block the recovery: it is moved aside rather than deleted.
      if (await exists(dir)) await fsp.rename(dir, tmpName(dir, 'old'));
      await fsp.rename(previous, dir);
      await syncDir(dirname(dir));
      restored = previous;
    }
  }
  const removed: string[] = [];
  for (const p of [...staging, ...old]) {
    if (p === restored || liveWriter(p) !== null) continue;
    await fsp.rm(p, { recursive: true, force: true });
    removed.push(p);
  }
  return { restored, removed };
}

/**
 * What an interrupted save into `dir` left beside it: the previous checkpoint moved aside
 * (complete, recoverable) and the newest unfinished staging folder; null where there is none.
 */
export function interruptedSave(dir: string): { previous: string | null; staging: string | null } {
  const { staging, old } = saveLeftovers(dir);
  return { previous: old[0] ?? null, staging: staging[0] ?? null };
}

/**
 * When `dir` is not a checkpoint because a save into it was interrupted, the sentence that says
 * so and how to recover; '' otherwise.
 */
export function interruptedSaveHint(dir: string): string {
  const { previous, staging } = interruptedSave(dir);
  if (previous) {
    return ` (an interrupted save left the previous checkpoint at ${previous}: \`notellm2 train --resume\` with the same --out puts it back, or rename it to ${dir})`;
  }
  if (staging) return ` (an interrupted save left only an unfinished staging folder ${staging}; no complete checkpoint exists here)`;
  return '';
}

/** Loads a checkpoint directory written by saveCheckpoint. */
export async function loadCheckpoint(dir: string): Promise<Checkpoint> {
  if (!(await exists(join(dir, CHECKPOINT_FILES.weights)))) {
    throw new Error(`${dir}: not a checkpoint directory, ${CHECKPOINT_FILES.weights} is missing${interruptedSaveHint(dir)}`);
  }
  const weightsPath = join(dir, CHECKPOINT_FILES.weights);
  const { tensors, metadata } = await readSafetensors(weightsPath);
  const config = await readJsonFile(join(dir, CHECKPOINT_FILES.config));
  const ckpt: Checkpoint = { weights: asFloat32Record(tensors, weightsPath), config, metadata };
  const optPath = join(dir, CHECKPOINT_FILES.optimizer);
  if (await exists(optPath)) {
    const opt = await readSafetensors(optPath);
    const step = Number(opt.metadata.step);
    if (!Number.isInteger(step) || step < 0) {
      throw new Error(`${optPath}: __metadata__.step must be a non-negative integer string, got ${JSON.stringify(opt.metadata.step)}`);
    }
    ckpt.optimizer = { step, tensors: asFloat32Record(opt.tensors, optPath) };
  }
  const trainerPath = join(dir, CHECKPOINT_FILES.trainer);
  if (await exists(trainerPath)) ckpt.trainer = await readJsonFile(trainerPath);
  return ckpt;
}

async function exists(path: string): Promise<boolean> {
  try {
    await fsp.access(path);
    return true;
  } catch {
    return false;
  }
}
