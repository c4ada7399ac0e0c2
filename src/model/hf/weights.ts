/**
 * The tensors of a Hugging Face checkpoint folder as `save_pretrained` writes it: one
 * `model.safetensors`, or shards listed by `model.safetensors.index.json`
 * (`{"metadata": {...}, "weight_map": {"<key>": "<shard file>", …}}`).
 *
 * `HfCheckpoint` opens every file, reads and checks their headers (sizes against the
 * headers, shards against the index) and then reads tensors one at a time by key, so an
 * importer can check names and shapes before reading any data and never needs the whole
 * checkpoint in memory. Values come back as float32 (F16 and BF16 upcast); by default a
 * tensor holding NaN or ±Inf is refused, naming the file and the key.
 */
import { existsSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { openSafetensors, type Float32Record, type NonFinitePolicy, type SafetensorsDtype, type SafetensorsFile } from '../checkpoint';

export const HF_WEIGHTS_FILE = 'model.safetensors';
export const HF_WEIGHTS_INDEX = 'model.safetensors.index.json';

export interface HfLoadOptions {
  /** NaN or ±Inf in a weight: 'refuse' (an error naming file and key) or 'allow'. Defaults to 'refuse'. */
  nonFinite?: NonFinitePolicy;
}

/** Where a key lives and what its header says. */
export interface HfTensorInfo {
  key: string;
  /** Path of the safetensors file holding it. */
  file: string;
  dtype: SafetensorsDtype;
  shape: number[];
}

/** An open checkpoint folder (single file or shards); call close() when done. */
export class HfCheckpoint {
  private constructor(
    readonly folder: string,
    /** The safetensors files, in the order they were opened. */
    private readonly files: SafetensorsFile[],
    private readonly byKey: Map<string, SafetensorsFile>,
    private readonly opts: Required<HfLoadOptions>,
  ) {}

  /**
   * Opens the folder's `model.safetensors` or, when it is absent, the shards that
   * `model.safetensors.index.json` lists; every header is read and checked. With shards,
   * every key of the index must be in the file the index names and every tensor of a shard
   * must be listed for that shard.
   */
  static async open(folder: string, opts: HfLoadOptions = {}): Promise<HfCheckpoint> {
    const resolved: Required<HfLoadOptions> = { nonFinite: opts.nonFinite ?? 'refuse' };
    const single = join(folder, HF_WEIGHTS_FILE);
    if (existsSync(single)) {
      const f = await openSafetensors(single);
      return new HfCheckpoint(folder, [f], new Map(f.names().map((k) => [k, f])), resolved);
    }
    const indexPath = join(folder, HF_WEIGHTS_INDEX);
    if (!existsSync(indexPath)) {
      const others = existsSync(folder) ? (await fsp.readdir(folder)).filter((f) => /\.(bin|pt|pth|ckpt|h5|msgpack|gguf)$/.test(f)) : [];
      throw new Error(
        `${folder}: neither ${HF_WEIGHTS_FILE} nor ${HF_WEIGHTS_INDEX} is there` +
          (others.length ? ` (found ${others.join(', ')}: only safetensors are read; save with save_pretrained(..., safe_serialization=True))` : ''),
      );
    }
    const weightMap = await readWeightMap(indexPath);
    const byFile = new Map<string, string[]>();
    for (const [key, file] of Object.entries(weightMap)) {
      const list = byFile.get(file) ?? [];
      list.push(key);
      byFile.set(file, list);
    }
    const files: SafetensorsFile[] = [];
    const byKey = new Map<string, SafetensorsFile>();
    try {
      for (const [file, keys] of [...byFile].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
        const path = join(folder, file);
        if (!existsSync(path)) throw new Error(`${indexPath}: shard "${file}" (holding "${keys[0]}"${keys.length > 1 ? ` and ${keys.length - 1} more` : ''}) does not exist`);
        const f = await openSafetensors(path);
        files.push(f);
        const listed = new Set(keys);
        for (const key of keys) {
          if (!f.entry(key)) throw new Error(`${indexPath}: key "${key}" is mapped to ${file}, which has no such tensor`);
        }
        const extra = f.names().filter((k) => !listed.has(k));
        if (extra.length) {
          throw new Error(`${path}: tensor "${extra[0]}"${extra.length > 1 ? ` (and ${extra.length - 1} more)` : ''} is in this shard but ${HF_WEIGHTS_INDEX} does not map it here`);
        }
        for (const key of keys) byKey.set(key, f);
      }
    } catch (e) {
      await Promise.all(files.map((f) => f.close()));
      throw e;
    }
    return new HfCheckpoint(folder, files, byKey, resolved);
  }

  /** Every key, sorted. */
  keys(): string[] {
    return [...this.byKey.keys()].sort();
  }

  has(key: string): boolean {
    return this.byKey.has(key);
  }

  /** Header facts of `key` (no data read), or undefined when absent. */
  info(key: string): HfTensorInfo | undefined {
    const f = this.byKey.get(key);
    const e = f?.entry(key);
    return f && e ? { key, file: f.path, dtype: e.dtype, shape: [...e.shape] } : undefined;
  }

  /** Reads one tensor as float32 (F16/BF16 upcast); errors name the file and the key. */
  async read(key: string): Promise<{ shape: number[]; data: Float32Array }> {
    const f = this.byKey.get(key);
    if (!f) throw new Error(`${this.folder}: the checkpoint has no tensor "${key}"`);
    const t = await f.read(key, { nonFinite: this.opts.nonFinite });
    if (!(t.data instanceof Float32Array)) throw new Error(`${f.path}: tensor "${key}" is ${f.entry(key)?.dtype}, expected a floating-point weight (F32, F16 or BF16)`);
    return { shape: t.shape, data: t.data };
  }

  async close(): Promise<void> {
    await Promise.all(this.files.map((f) => f.close()));
  }
}

async function readWeightMap(indexPath: string): Promise<Record<string, string>> {
  let index: unknown;
  try {
    index = JSON.parse(await fsp.readFile(indexPath, 'utf8'));
  } catch (e) {
    throw new Error(`${indexPath}: not valid JSON (${(e as Error).message})`);
  }
  const map = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new Error(`${indexPath}: field "weight_map" is missing or not an object of key → shard file`);
  for (const [k, v] of Object.entries(map as Record<string, unknown>)) {
    if (typeof v !== 'string' || v === '' || v.includes('/') || v.includes('\\')) {
      throw new Error(`${indexPath}: weight_map."${k}" must name a shard file in the folder, got ${JSON.stringify(v)}`);
    }
  }
  if (Object.keys(map).length === 0) throw new Error(`${indexPath}: weight_map is empty`);
  return map as Record<string, string>;
}

/** Opens the folder, runs `fn`, and closes it whatever happens. */
export async function withHfCheckpoint<T>(folder: string, fn: (ckpt: HfCheckpoint) => Promise<T>, opts: HfLoadOptions = {}): Promise<T> {
  const ckpt = await HfCheckpoint.open(folder, opts);
  try {
    return await fn(ckpt);
  } finally {
    await ckpt.close();
  }
}

/** Every tensor of the folder as float32, by its key in the files. */
export async function loadHfTensors(folder: string, opts: HfLoadOptions = {}): Promise<Float32Record> {
  return withHfCheckpoint(
    folder,
    async (ckpt) => {
      const out: Float32Record = {};
      for (const key of ckpt.keys()) out[key] = await ckpt.read(key);
      return out;
    },
    opts,
  );
}
