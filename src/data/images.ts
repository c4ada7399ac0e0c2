/**
 * The image pipeline (sharp): decode → bicubic resize of the short side → centre crop to
 * size×size → RGB bytes; CLIP mean/std normalisation → float32 HWC for tfjs (NHWC batches).
 * This is CLIP's preprocessing (resize short side, centre crop, normalise), which the
 * NoteLLM-2 vision encoders expect (docs/method.md). Transparent images (SVG, RGBA PNG) are
 * flattened on white.
 *
 * `ImageStore` decodes each image once per dataset and size and keeps the RGB bytes in memory
 * (4× smaller than floats); flips and normalisation are applied on the cached bytes when a
 * batch is built, so epochs never re-decode. An optional on-disk cache (datasets/cache/<hash>.bin)
 * carries the bytes across processes, keyed by the dataset path, every image's mtime and size,
 * and the target size.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, realpath, rename, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import sharp from 'sharp';
import { tf, type Rng, type Tensor4D } from '../backend';
import { mapPool } from '../backend/pool';
import type { Dataset } from './schema';
import { CACHE_DIR } from './write';

/** CLIP's per-channel normalisation (RGB), as in open_clip / OpenAI CLIP preprocessing. */
export const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

/** Where the on-disk image cache lives by convention (git-ignored). */
export const DEFAULT_IMAGE_CACHE_DIR = CACHE_DIR;

/** lut[c * 256 + v] = (v / 255 − mean[c]) / std[c], rounded once to float32. */
const LUT = (() => {
  const lut = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) for (let v = 0; v < 256; v++) lut[c * 256 + v] = (v / 255 - CLIP_MEAN[c]) / CLIP_STD[c];
  return lut;
})();

function checkSize(size: number): void {
  if (!Number.isInteger(size) || size < 1) throw new Error(`image size must be a positive integer, got ${size}`);
}

/**
 * Decodes an image file (JPEG, PNG, WebP, SVG, or any of them under a bare name: sharp sniffs
 * the format from the bytes), resizes its short side to `size` with a bicubic kernel and crops
 * the centre. Returns RGB bytes, [size, size, 3] row-major.
 */
export async function decodeImage(path: string, size: number): Promise<Uint8Array> {
  checkSize(size);
  const buf = await readFile(path);
  let density: number | undefined;
  try {
    const meta = await sharp(buf).metadata();
    // SVG is vector: render it at the density that makes its short side `size` pixels
    // (72 dpi is sharp's 1 px per user unit), instead of upscaling a small raster.
    if (meta.format === 'svg' && meta.width && meta.height) {
      density = Math.min(Math.max((72 * size) / Math.min(meta.width, meta.height), 1), 100000);
    }
    const { data, info } = await sharp(buf, density ? { density } : {})
      .flatten({ background: '#ffffff' })
      .resize({ width: size, height: size, fit: 'cover', position: 'centre', kernel: 'cubic' })
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.width !== size || info.height !== size || info.channels !== 3) {
      throw new Error(`decoded to ${info.width}×${info.height}×${info.channels}, expected ${size}×${size}×3`);
    }
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  } catch (e) {
    throw new Error(`cannot decode image ${path}: ${(e as Error).message}`);
  }
}

/**
 * Checks that a file is an image sharp can read: 'header' reads the header only, 'decode'
 * runs the whole pipeline at a small size (catches truncated files). Returns the reason it
 * failed, or null.
 */
export async function probeImage(path: string, mode: 'header' | 'decode'): Promise<string | null> {
  try {
    if (mode === 'decode') {
      await decodeImage(path, 16);
    } else {
      const meta = await sharp(path).metadata();
      if (!meta.format || !meta.width || !meta.height) return 'no image format recognised';
    }
    return null;
  } catch (e) {
    return (e as Error).message.replace(/^cannot decode image [^:]*: /, '');
  }
}

/**
 * CLIP-normalises RGB bytes [size, size, 3] into `out` at `offset` (HWC float32), mirroring
 * left↔right when `flip` is set.
 */
export function normalizeImage(
  rgb: Uint8Array,
  size: number,
  out: Float32Array = new Float32Array(size * size * 3),
  offset = 0,
  flip = false,
): Float32Array {
  if (rgb.length !== size * size * 3) throw new Error(`normalizeImage: expected ${size * size * 3} bytes (${size}×${size}×3), got ${rgb.length}`);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const src = (y * size + (flip ? size - 1 - x : x)) * 3;
      const dst = offset + (y * size + x) * 3;
      out[dst] = LUT[rgb[src]];
      out[dst + 1] = LUT[256 + rgb[src + 1]];
      out[dst + 2] = LUT[512 + rgb[src + 2]];
    }
  }
  return out;
}

/** Decodes and normalises one image: float32 [size, size, 3]. */
export async function loadImage(path: string, size: number): Promise<Float32Array> {
  return normalizeImage(await decodeImage(path, size), size);
}

/** What an ImageStore needs from a dataset. */
export type ImageSource = Pick<Dataset, 'dir' | 'imagePath'>;

export interface ImageStoreOptions {
  /** Output side in pixels (images are size×size). */
  size: number;
  /** Folder of the on-disk cache (e.g. DEFAULT_IMAGE_CACHE_DIR). Defaults to none: memory only. */
  cacheDir?: string;
  /** Decodes in flight at once (sharp runs them on libuv's thread pool). Defaults to 4. */
  concurrency?: number;
}

export interface ImageStoreStats {
  /** Distinct images held in memory. */
  images: number;
  /** Images this store decoded. */
  decoded: number;
  /** Images read from the on-disk cache instead of decoded. */
  diskHits: number;
  /** Requests in load() for images already in memory. */
  memoryHits: number;
  /** Wall-clock seconds spent decoding. */
  decodeSeconds: number;
  /** decoded / decodeSeconds (0 before any decode). */
  imagesPerSecond: number;
  /** Bytes of pixels held. */
  bytes: number;
}

export interface BatchOptions {
  /** Random horizontal flips (training): one draw per image, in order; flipped when next() < 0.5. */
  flip?: Rng;
}

const CACHE_MAGIC = 'NLM2IMG1';
const CACHE_VERSION = 1;

/**
 * Decoded images of one dataset at one size. `await store.load(noteIds)` decodes what is not
 * yet held (or reads it from the disk cache); `store.batch(noteIds, { flip })` then builds an
 * NHWC tensor from memory.
 */
export class ImageStore {
  readonly size: number;
  private readonly pixelsByPath = new Map<string, Uint8Array>();
  private readonly counts = { decoded: 0, diskHits: 0, memoryHits: 0, decodeSeconds: 0 };
  private static readonly sharedStores = new Map<string, ImageStore>();

  constructor(
    readonly source: ImageSource,
    private readonly opts: ImageStoreOptions,
  ) {
    checkSize(opts.size);
    this.size = opts.size;
  }

  /** One store per dataset folder, size and cache folder for the whole process. */
  static shared(source: ImageSource, opts: ImageStoreOptions): ImageStore {
    const key = `${source.dir}\u0000${opts.size}\u0000${opts.cacheDir ?? ''}`;
    let store = ImageStore.sharedStores.get(key);
    if (!store || store.source !== source) {
      store = new ImageStore(source, opts);
      ImageStore.sharedStores.set(key, store);
    }
    return store;
  }

  /** Forgets every shared store (frees their pixels). */
  static clearShared(): void {
    ImageStore.sharedStores.clear();
  }

  get stats(): ImageStoreStats {
    const { decoded, diskHits, memoryHits, decodeSeconds } = this.counts;
    return {
      images: this.pixelsByPath.size,
      decoded,
      diskHits,
      memoryHits,
      decodeSeconds,
      imagesPerSecond: decodeSeconds > 0 ? decoded / decodeSeconds : 0,
      bytes: this.pixelsByPath.size * this.size * this.size * 3,
    };
  }

  has(noteId: string): boolean {
    return this.pixelsByPath.has(this.source.imagePath(noteId));
  }

  /** Makes every listed note's image available in memory; returns the store's stats. */
  async load(noteIds: readonly string[]): Promise<ImageStoreStats> {
    const needed: string[] = [];
    const seen = new Set<string>();
    for (const id of noteIds) {
      const p = this.source.imagePath(id);
      if (this.pixelsByPath.has(p)) this.counts.memoryHits++;
      else if (!seen.has(p)) {
        seen.add(p);
        needed.push(p);
      }
    }
    if (needed.length === 0) return this.stats;
    needed.sort();
    const cacheFile = this.opts.cacheDir ? await this.cacheFile(needed) : null;
    if (cacheFile && (await this.readCache(cacheFile, needed))) return this.stats;

    const t0 = performance.now();
    await mapPool(needed, this.opts.concurrency ?? 4, async (p) => {
      this.pixelsByPath.set(p, await decodeImage(p, this.size));
      this.counts.decoded++;
    });
    this.counts.decodeSeconds += (performance.now() - t0) / 1000;
    if (cacheFile) await this.writeCache(cacheFile, needed);
    return this.stats;
  }

  /** RGB bytes [size, size, 3] of a note's image (must have been loaded). */
  pixels(noteId: string): Uint8Array {
    const p = this.source.imagePath(noteId);
    const px = this.pixelsByPath.get(p);
    if (!px) throw new Error(`ImageStore: image of note '${noteId}' (${p}) is not loaded; call await store.load([...ids]) first`);
    return px;
  }

  /** CLIP-normalised float32 [B, size, size, 3] of the notes' images, in order. */
  array(noteIds: readonly string[], opts: BatchOptions = {}): Float32Array {
    const per = this.size * this.size * 3;
    const out = new Float32Array(noteIds.length * per);
    noteIds.forEach((id, i) => {
      const flip = opts.flip ? opts.flip.next() < 0.5 : false;
      normalizeImage(this.pixels(id), this.size, out, i * per, flip);
    });
    return out;
  }

  /** The same as a tensor: [B, size, size, 3] (NHWC). The caller disposes it. */
  batch(noteIds: readonly string[], opts: BatchOptions = {}): Tensor4D {
    return tf.tensor4d(this.array(noteIds, opts), [noteIds.length, this.size, this.size, 3], 'float32');
  }

  // -------------------------------------------------------------------------------------------
  // On-disk cache: MAGIC, u32 header length, JSON header {version, size, files}, then the pixels
  // of each file in header order.

  private async cacheFile(paths: string[]): Promise<string> {
    const dir = await realpath(this.source.dir);
    const files: [string, number, number][] = [];
    for (const p of paths) {
      const s = await stat(p);
      files.push([relative(dir, await realpath(p)), s.mtimeMs, s.size]);
    }
    const key = createHash('sha256')
      .update(JSON.stringify({ v: CACHE_VERSION, dir, size: this.size, files }))
      .digest('hex')
      .slice(0, 24);
    return join(this.opts.cacheDir!, `${key}.bin`);
  }

  private async readCache(file: string, paths: string[]): Promise<boolean> {
    let buf: Buffer;
    try {
      buf = await readFile(file);
    } catch {
      return false;
    }
    const per = this.size * this.size * 3;
    try {
      if (buf.toString('latin1', 0, 8) !== CACHE_MAGIC) return false;
      const hlen = buf.readUInt32LE(8);
      const header = JSON.parse(buf.toString('utf8', 12, 12 + hlen)) as { version: number; size: number; files: string[] };
      if (header.version !== CACHE_VERSION || header.size !== this.size) return false;
      if (header.files.length !== paths.length || header.files.some((f, i) => f !== paths[i])) return false;
      if (buf.length !== 12 + hlen + per * paths.length) return false;
      paths.forEach((p, i) => {
        const start = 12 + hlen + i * per;
        this.pixelsByPath.set(p, new Uint8Array(buf.buffer, buf.byteOffset + start, per));
      });
      this.counts.diskHits += paths.length;
      return true;
    } catch {
      return false; // a damaged cache file is ignored and rewritten
    }
  }

  private async writeCache(file: string, paths: string[]): Promise<void> {
    await mkdir(this.opts.cacheDir!, { recursive: true });
    const header = Buffer.from(JSON.stringify({ version: CACHE_VERSION, size: this.size, files: paths }), 'utf8');
    const head = Buffer.alloc(12);
    head.write(CACHE_MAGIC, 0, 'latin1');
    head.writeUInt32LE(header.length, 8);
    // Written beside the target and renamed, so a reader never sees half a file.
    const tmp = `${file}.${process.pid}.tmp`;
    const fh = await open(tmp, 'w');
    try {
      await fh.write(head);
      await fh.write(header);
      for (const p of paths) await fh.write(this.pixelsByPath.get(p)!);
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  }
}
