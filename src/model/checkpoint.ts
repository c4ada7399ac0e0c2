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
 * Written: F32 and I32 (the dtypes this project stores). Read: those, and F16 and BF16 (how
 * most published checkpoints are stored), upcast to float32 on reading. The format is small
 * enough that the reader and writer live here: the npm package named `safetensors` is an
 * unmaintained 0.0.1 placeholder, and writing the bytes ourselves lets the writer stream large
 * tensors straight from their Float32Arrays and the reader report exactly what is wrong.
 *
 * Files are read through a handle (`openSafetensors`): the 8-byte length and the header first,
 * the file's size checked against what the header describes, then each tensor at its offset —
 * a checkpoint larger than the JS heap can be loaded one tensor at a time.
 *
 * A checkpoint directory holds `model.safetensors` (weights), `config.json`, and for resuming
 * `optimizer.safetensors` (moments; the step in its metadata) and `trainer.json`.
 */
import { promises as fsp, readdirSync, statSync } from 'node:fs';
import { endianness } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { tf } from '../backend';
import { crashPoint } from '../backend/crash-points';

export type SafetensorsDtype = 'F32' | 'I32' | 'F16' | 'BF16';
/** Every dtype the reader accepts (the writer stores F32 and I32 only). */
export const SAFETENSORS_DTYPES: readonly SafetensorsDtype[] = ['F32', 'I32', 'F16', 'BF16'];

/** Bytes per element of each readable dtype. */
const DTYPE_BYTES: Record<SafetensorsDtype, number> = { F32: 4, I32: 4, F16: 2, BF16: 2 };

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

/** What to do with NaN or ±Inf in a floating-point tensor being read. */
export type NonFinitePolicy = 'allow' | 'refuse';
export const NON_FINITE_POLICIES: readonly NonFinitePolicy[] = ['allow', 'refuse'];

export interface ReadTensorOptions {
  /**
   * 'refuse' throws naming the file, the tensor, how many values are not finite and the first
   * one. Defaults to 'allow' for this project's own files (readSafetensors, decodeSafetensors);
   * the Hugging Face loader (hf/weights.ts) defaults to 'refuse'.
   */
  nonFinite?: NonFinitePolicy;
}

/** One tensor's entry in a validated header; offsets are relative to the data section. */
export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
}

/** A validated header: where the data starts and every tensor's entry, in header order. */
export interface SafetensorsHeader {
  metadata: Record<string, string>;
  entries: SafetensorsEntry[];
  /** Byte offset of the data section in the file (8 + header length). */
  dataStart: number;
  /** Bytes of data the entries describe (the file must be exactly dataStart + dataBytes long). */
  dataBytes: number;
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

/** What the header says of one tensor: its shape, dtype and element count. */
interface HeaderEntry {
  shape: number[];
  dtype: SafetensorsDtype;
  length: number;
}

/** Builds the padded header bytes and the order the tensors' bytes follow in. */
function buildHeader(tensors: TensorRecord, metadata?: Record<string, string>): { header: Uint8Array; order: string[] } {
  const entries: Record<string, HeaderEntry> = {};
  for (const [name, t] of Object.entries(tensors)) entries[name] = { shape: t.shape, dtype: dtypeOf(t.data, name), length: t.data.length };
  return buildHeaderFromEntries(entries, metadata);
}

function buildHeaderFromEntries(tensors: Record<string, HeaderEntry>, metadata?: Record<string, string>): { header: Uint8Array; order: string[] } {
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
    const { shape, dtype, length } = tensors[name];
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new Error(`safetensors: tensor "${name}" has an invalid shape ${JSON.stringify(shape)} (non-negative integers expected)`);
    }
    if (length !== elementCount(shape)) {
      throw new Error(`safetensors: tensor "${name}" has ${length} values but shape ${JSON.stringify(shape)} needs ${elementCount(shape)}`);
    }
    const byteLength = length * DTYPE_BYTES[dtype];
    json[name] = { dtype, shape, data_offsets: [offset, offset + byteLength] };
    offset += byteLength;
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

// ---------------------------------------------------------------------------------------------
// Reading: header validation shared by the buffer and the file-handle readers
// ---------------------------------------------------------------------------------------------

function failWith(source: string): (msg: string) => never {
  return (msg: string): never => {
    throw new Error(`${source}: ${msg}`);
  };
}

/**
 * The header length from the first 8 bytes of a file of `total` bytes (`prefix` may be shorter
 * when the file is): checks the limit and that the header fits in the file.
 */
function headerLength(prefix: Uint8Array, total: number, source: string): number {
  const fail = failWith(source);
  if (total < 8) {
    fail(`truncated safetensors file: ${total} bytes, expected at least 8 (the little-endian u64 header length)`);
  }
  const n64 = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES)) fail(`safetensors header length ${n64} exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`);
  const n = Number(n64);
  if (8 + n > total) {
    fail(`truncated safetensors file: the header length field says ${n} bytes but only ${total - 8} follow the 8-byte prefix`);
  }
  return n;
}

/**
 * Parses and checks the N header bytes of a file of `total` bytes: every entry's dtype, shape
 * and offsets, offsets tiling the data section exactly, and the file's length equal to what
 * the header describes (a shorter file is truncated, a longer one has trailing bytes).
 */
export function parseSafetensorsHeader(headerBytes: Uint8Array, total: number, source = '<buffer>'): SafetensorsHeader {
  const fail = failWith(source);
  const n = headerBytes.length;
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (e) {
    fail(`safetensors header (bytes 8..${8 + n}) is not valid UTF-8 JSON: ${(e as Error).message}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    fail('safetensors header must be a JSON object mapping tensor names to {dtype, shape, data_offsets}');
  }
  const dataStart = 8 + n;
  const dataLen = total - dataStart;
  const metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
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
    const dtype = e.dtype as SafetensorsDtype;
    const shape = e.shape as number[];
    const [begin, end] = off as [number, number];
    const want = elementCount(shape) * DTYPE_BYTES[dtype];
    if (end - begin !== want) {
      fail(`tensor "${name}": data_offsets [${begin}, ${end}] span ${end - begin} bytes but ${dtype} ${JSON.stringify(shape)} needs ${want}`);
    }
    entries.push({ name, dtype, shape, begin, end });
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
    fail(`truncated safetensors file: tensor "${last.name}" needs data bytes up to ${expect} but only ${dataLen} are present (file is ${total} bytes, expected ${dataStart + expect})`);
  }
  if (expect < dataLen) fail(`safetensors data section has ${dataLen - expect} trailing bytes after the last tensor (expected ${expect} bytes of data, file is ${total} bytes, expected ${dataStart + expect})`);
  return { metadata, entries, dataStart, dataBytes: expect };
}

// ---------------------------------------------------------------------------------------------
// Half-precision upcasts
// ---------------------------------------------------------------------------------------------

let f16Table: Float32Array | undefined;

/**
 * float32 value of every IEEE 754 binary16 bit pattern (a 256 KB table, built once): sign 1 bit,
 * exponent 5 bits (bias 15), mantissa 10 bits; exponent 0 is zero or subnormal (m · 2^−24),
 * exponent 31 is ±Inf (m = 0) or NaN (payload kept in the top mantissa bits). Every binary16
 * value is exactly representable in binary32, so the upcast is exact.
 */
function float16Table(): Float32Array {
  if (f16Table) return f16Table;
  const bits = new Uint32Array(65536);
  const asFloat = new Float32Array(bits.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >> 10) & 0x1f;
    const man = h & 0x3ff;
    if (exp === 0) {
      asFloat[h] = man * 2 ** -24; // exact: m < 2^10
      bits[h] |= sign;
    } else if (exp === 31) {
      bits[h] = sign | 0x7f800000 | (man << 13);
    } else {
      bits[h] = sign | ((exp - 15 + 127) << 23) | (man << 13);
    }
  }
  f16Table = asFloat;
  return asFloat;
}

/** IEEE half-precision bit patterns → float32 values (exact, including subnormals, ±Inf, NaN). */
export function float16ToFloat32(halves: Uint16Array): Float32Array {
  const table = float16Table();
  const out = new Float32Array(halves.length);
  for (let i = 0; i < halves.length; i++) out[i] = table[halves[i]];
  return out;
}

/** bfloat16 bit patterns → float32 values: each pattern is the top 16 bits of a float32. */
export function bfloat16ToFloat32(halves: Uint16Array): Float32Array {
  const out = new Uint32Array(halves.length);
  for (let i = 0; i < halves.length; i++) out[i] = halves[i] << 16;
  return new Float32Array(out.buffer);
}

/**
 * Turns one tensor's raw little-endian bytes into its typed array (F16 and BF16 upcast to
 * float32), then applies the non-finite policy. `raw` is not kept.
 */
function decodeTensor(e: SafetensorsEntry, raw: Uint8Array, source: string, opts: ReadTensorOptions): StoredTensor {
  const count = elementCount(e.shape);
  let data: Float32Array | Int32Array;
  switch (e.dtype) {
    case 'F32':
    case 'I32': {
      data = e.dtype === 'F32' ? new Float32Array(count) : new Int32Array(count);
      new Uint8Array(data.buffer).set(raw);
      break;
    }
    case 'F16':
    case 'BF16': {
      // A copy aligned for the Uint16 view (raw may start at an odd offset of a larger buffer).
      const halves = new Uint16Array(count);
      new Uint8Array(halves.buffer).set(raw);
      data = e.dtype === 'F16' ? float16ToFloat32(halves) : bfloat16ToFloat32(halves);
      break;
    }
    default: {
      const never: never = e.dtype;
      throw new Error(`${source}: tensor "${e.name}": unknown dtype ${never}; valid: ${SAFETENSORS_DTYPES.join(', ')}`);
    }
  }
  if ((opts.nonFinite ?? 'allow') === 'refuse' && data instanceof Float32Array) assertFinite(data, e, source);
  return { shape: e.shape, data };
}

function assertFinite(data: Float32Array, e: SafetensorsEntry, source: string): void {
  let first = -1;
  let count = 0;
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      if (first < 0) first = i;
      count++;
    }
  }
  if (count > 0) {
    throw new Error(
      `${source}: tensor "${e.name}" (${e.dtype} [${e.shape}]) holds ${count} non-finite value${count > 1 ? 's' : ''} ` +
        `(first at flat index ${first}: ${data[first]}); refusing to load it (allow with nonFinite: 'allow')`,
    );
  }
}

/**
 * Parses a safetensors buffer, checking every field; `source` (a file name) prefixes errors.
 * The returned arrays are copies, independent of `bytes`; F16 and BF16 come back as float32.
 */
export function decodeSafetensors(bytes: Uint8Array, source = '<buffer>', opts: ReadTensorOptions = {}): SafetensorsContent {
  assertLittleEndianHost();
  const n = headerLength(bytes, bytes.length, source);
  const h = parseSafetensorsHeader(bytes.subarray(8, 8 + n), bytes.length, source);
  const tensors: TensorRecord = {};
  for (const e of h.entries) tensors[e.name] = decodeTensor(e, bytes.subarray(h.dataStart + e.begin, h.dataStart + e.end), source, opts);
  return { tensors, metadata: h.metadata };
}

/** Reads exactly `length` bytes at `position` (a read may return fewer; large reads go in chunks). */
async function readFully(fh: fsp.FileHandle, into: Uint8Array, position: number, source: string, what: string): Promise<void> {
  const CHUNK = 1 << 30;
  let done = 0;
  while (done < into.length) {
    const want = Math.min(CHUNK, into.length - done);
    const { bytesRead } = await fh.read(into, done, want, position + done);
    if (bytesRead === 0) {
      throw new Error(`${source}: ${what}: the file ended after ${position + done} bytes, ${into.length - done} more were expected (was it modified while reading?)`);
    }
    done += bytesRead;
  }
}

/**
 * An open safetensors file whose header has been read and checked against the file's size;
 * tensors are read on request, each at its offset. Close it when done.
 */
export class SafetensorsFile {
  private readonly byName: Map<string, SafetensorsEntry>;

  private constructor(
    readonly path: string,
    private readonly fh: fsp.FileHandle,
    readonly header: SafetensorsHeader,
  ) {
    this.byName = new Map(header.entries.map((e) => [e.name, e]));
  }

  /**
   * Opens `path`, reads the 8-byte length and the header, and checks the file size (fstat)
   * against what the header needs before any tensor data is read.
   */
  static async open(path: string): Promise<SafetensorsFile> {
    assertLittleEndianHost();
    const fh = await fsp.open(path, 'r');
    try {
      const size = (await fh.stat()).size;
      const prefix = new Uint8Array(8);
      if (size >= 8) await readFully(fh, prefix, 0, path, 'header length');
      const n = headerLength(prefix, size, path);
      const headerBytes = new Uint8Array(n);
      await readFully(fh, headerBytes, 8, path, 'header');
      return new SafetensorsFile(path, fh, parseSafetensorsHeader(headerBytes, size, path));
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  get metadata(): Record<string, string> {
    return this.header.metadata;
  }

  /** Tensor names in header order. */
  names(): string[] {
    return this.header.entries.map((e) => e.name);
  }

  /** The header entry of `name`, or undefined. */
  entry(name: string): SafetensorsEntry | undefined {
    return this.byName.get(name);
  }

  /** Reads one tensor (F16/BF16 upcast to float32); errors name the file and the tensor. */
  async read(name: string, opts: ReadTensorOptions = {}): Promise<StoredTensor> {
    const e = this.byName.get(name);
    if (!e) throw new Error(`${this.path}: no tensor "${name}" in this file`);
    const raw = new Uint8Array(e.end - e.begin);
    await readFully(this.fh, raw, this.header.dataStart + e.begin, this.path, `tensor "${name}"`);
    return decodeTensor(e, raw, this.path, opts);
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

/** Opens a safetensors file for reading tensor by tensor (see SafetensorsFile). */
export function openSafetensors(path: string): Promise<SafetensorsFile> {
  return SafetensorsFile.open(path);
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

/** A float32 tensor whose values are made only when the writer reaches it. */
export interface LazyFloat32Tensor {
  shape: number[];
  produce: () => Float32Array;
}

/**
 * Writes a float32 safetensors file atomically, asking each tensor for its values only when
 * its turn comes (sorted by name), so a large model's transposed copies never coexist.
 */
export async function writeSafetensorsLazy(path: string, tensors: Record<string, LazyFloat32Tensor>, metadata?: Record<string, string>): Promise<void> {
  assertLittleEndianHost();
  const entries: Record<string, HeaderEntry> = {};
  for (const [name, t] of Object.entries(tensors)) entries[name] = { shape: t.shape, dtype: 'F32', length: elementCount(t.shape) };
  const { header, order } = buildHeaderFromEntries(entries, metadata);
  await writeFileAtomic(path, async (write) => {
    await write(header);
    for (const name of order) {
      const data = tensors[name].produce();
      if (!(data instanceof Float32Array) || data.length !== entries[name].length) {
        throw new Error(`safetensors: tensor "${name}" produced ${data?.length} values, its shape [${entries[name].shape}] needs ${entries[name].length}`);
      }
      await write(bytesOf(data));
    }
  });
}

/**
 * Reads and validates a safetensors file, tensor by tensor through a file handle (the file is
 * never held whole in memory); errors name the file, the tensor and what was expected.
 */
export async function readSafetensors(path: string, opts: ReadTensorOptions = {}): Promise<SafetensorsContent> {
  const file = await SafetensorsFile.open(path);
  try {
    const tensors: TensorRecord = {};
    for (const name of file.names()) tensors[name] = await file.read(name, opts);
    return { tensors, metadata: file.metadata };
  } finally {
    await file.close();
  }
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
