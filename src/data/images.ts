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
 *
 * An imported encoder brings its own preprocessing (`ImagePreprocessing`, read from its
 * `preprocessor_config.json` by src/model/hf/vision.ts): resize rule, crop, resampling filter,
 * mean and std. Passed to `decodeImage`, `normalizeImage` or `ImageStore`, it replaces the
 * CLIP defaults above; left out, nothing changes.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, realpath, rename, stat, writeFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { join, relative } from 'node:path';
import sharp from 'sharp';
import { tf, type Rng, type Tensor4D } from '../backend';
import { mapPool } from '../backend/pool';
import type { Dataset } from './schema';
import { CACHE_DIR } from './write';
import { cacheFileHead, readCacheFileHead } from './cache-file';

/** CLIP's per-channel normalisation (RGB), as in open_clip / OpenAI CLIP preprocessing. */
export const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

/** Where the on-disk image cache lives by convention (git-ignored). */
export const DEFAULT_IMAGE_CACHE_DIR = CACHE_DIR;

/** Resampling filters of a resize, by PIL's names (the codes of preprocessor_config.json's `resample`). */
export type ResampleFilter = 'nearest' | 'bilinear' | 'bicubic' | 'lanczos';
export const RESAMPLE_FILTERS: readonly ResampleFilter[] = ['nearest', 'bilinear', 'bicubic', 'lanczos'];

/** Per-channel (RGB) normalisation: (v / 255 − mean[c]) / std[c]. */
export interface ImageNormalization {
  mean: readonly number[];
  std: readonly number[];
}

/**
 * How an image becomes encoder input, step by step as Hugging Face's image processors do it:
 * resize, optional centre crop, scale to [0, 1], per-channel normalisation. The result must be
 * square (the ViT's imageSize).
 */
export interface ImagePreprocessing extends ImageNormalization {
  /** The short side scaled to `shortestEdge` (aspect kept; the long side truncated to an integer), or the image scaled to exactly height × width. */
  resize: { shortestEdge: number } | { height: number; width: number };
  /** Centre crop after the resize (top/left offsets rounded down); null for none. */
  crop: { height: number; width: number } | null;
  resample: ResampleFilter;
}

/** This pipeline's own preprocessing at `size`: short side to size (bicubic), centre crop size × size, CLIP mean/std. */
export function defaultPreprocessing(size: number): ImagePreprocessing {
  checkSize(size);
  return { resize: { shortestEdge: size }, crop: { height: size, width: size }, resample: 'bicubic', mean: [...CLIP_MEAN], std: [...CLIP_STD] };
}

/** Validates a preprocessing and returns the side of its square output. */
export function preprocessingSize(pre: ImagePreprocessing): number {
  const positive = (v: unknown, what: string): number => {
    if (!Number.isInteger(v) || (v as number) < 1) throw new Error(`image preprocessing: ${what} must be a positive integer, got ${JSON.stringify(v)}`);
    return v as number;
  };
  if (!RESAMPLE_FILTERS.includes(pre.resample)) {
    throw new Error(`image preprocessing: resample ${JSON.stringify(pre.resample)} is not one of ${RESAMPLE_FILTERS.join(', ')}`);
  }
  checkNormalization(pre);
  let h: number, w: number;
  if ('shortestEdge' in pre.resize) {
    const s = positive(pre.resize.shortestEdge, 'resize.shortestEdge');
    if (!pre.crop) throw new Error(`image preprocessing: resizing the short side to ${s} keeps the aspect ratio, so a square output needs a crop`);
    h = positive(pre.crop.height, 'crop.height');
    w = positive(pre.crop.width, 'crop.width');
    if (h > s || w > s) throw new Error(`image preprocessing: crop ${h}×${w} is larger than the resized short side ${s}`);
  } else {
    h = positive(pre.resize.height, 'resize.height');
    w = positive(pre.resize.width, 'resize.width');
    if (pre.crop) {
      const ch = positive(pre.crop.height, 'crop.height');
      const cw = positive(pre.crop.width, 'crop.width');
      if (ch > h || cw > w) throw new Error(`image preprocessing: crop ${ch}×${cw} is larger than the resized image ${h}×${w}`);
      [h, w] = [ch, cw];
    }
  }
  if (h !== w) throw new Error(`image preprocessing: the output is ${h}×${w}; the encoder takes square images`);
  return h;
}

function checkNormalization(n: ImageNormalization): void {
  for (const key of ['mean', 'std'] as const) {
    const v = n[key];
    if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => Number.isFinite(x))) {
      throw new Error(`image preprocessing: ${key} must be 3 finite numbers (R, G, B), got ${JSON.stringify(v)}`);
    }
  }
  if (!n.std.every((x) => x > 0)) throw new Error(`image preprocessing: std must be positive, got ${JSON.stringify(n.std)}`);
}

/** lut[c * 256 + v] = (v / 255 − mean[c]) / std[c], rounded once to float32. */
function buildLut(mean: readonly number[], std: readonly number[]): Float32Array {
  const lut = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) for (let v = 0; v < 256; v++) lut[c * 256 + v] = (v / 255 - mean[c]) / std[c];
  return lut;
}

const LUT = buildLut(CLIP_MEAN, CLIP_STD);
const lutCache = new Map<string, Float32Array>();

function lutFor(norm?: ImageNormalization): Float32Array {
  if (!norm) return LUT;
  const key = JSON.stringify([norm.mean, norm.std]);
  let lut = lutCache.get(key);
  if (!lut) {
    checkNormalization(norm);
    lut = buildLut(norm.mean, norm.std);
    if (lutCache.size >= 16) lutCache.clear();
    lutCache.set(key, lut);
  }
  return lut;
}

/** sharp's kernel for a resampling filter. */
function sharpKernel(f: ResampleFilter): keyof sharp.KernelEnum {
  switch (f) {
    case 'nearest':
      return 'nearest';
    case 'bilinear':
      return 'linear';
    case 'bicubic':
      return 'cubic';
    case 'lanczos':
      return 'lanczos3';
    default: {
      const never: never = f;
      throw new Error(`image preprocessing: unknown resample ${JSON.stringify(never)}; valid are ${RESAMPLE_FILTERS.join(', ')}`);
    }
  }
}

function checkSize(size: number): void {
  if (!Number.isInteger(size) || size < 1) throw new Error(`image size must be a positive integer, got ${size}`);
}

/**
 * sharp's default limit on the pixels of an image it decodes (width × height): a raster image
 * beyond it — a decompression bomb, or a photo no pipeline here needs — is refused unread.
 * SVGs are measured by what is actually rasterised (see svgAtSize), not by the canvas they declare.
 */
export const PIXEL_LIMIT = 0x3fff * 0x3fff;
/** The most a gzip-compressed SVG (.svgz) may expand to before it is refused as a bomb. */
const MAX_SVG_BYTES = 32 * 1024 * 1024;

/**
 * Format and size of an image from its header. The header is read without sharp's pixel limit,
 * so an SVG declaring a huge canvas (it is rendered small, below) is measured rather than
 * refused; a raster image beyond the limit is refused here with sharp's own message.
 */
async function imageHeader(buf: Buffer): Promise<sharp.Metadata> {
  const meta = await sharp(buf, { limitInputPixels: false }).metadata();
  if (meta.format !== 'svg' && (meta.width ?? 0) * (meta.height ?? 0) > PIXEL_LIMIT) throw new Error('Input image exceeds pixel limit');
  return meta;
}

/** A length of the root element (width, height) in CSS pixels; null for %, auto or anything else. */
function cssPixels(v: string | undefined): number | null {
  if (v === undefined) return null;
  const m = /^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(px|pt|pc|mm|cm|in|em|ex)?\s*$/.exec(v);
  if (!m) return null;
  const per: Record<string, number> = { '': 1, px: 1, pt: 4 / 3, pc: 16, mm: 96 / 25.4, cm: 96 / 2.54, in: 96, em: 16, ex: 8 };
  const x = Number(m[1]) * per[m[2] ?? ''];
  return Number.isFinite(x) && x > 0 ? x : null;
}

interface SvgRoot {
  /** Offsets of the root start tag `<svg …>` in the text. */
  start: number;
  end: number;
  name: string;
  attrs: Array<{ name: string; value: string; raw: string }>;
  selfClosing: boolean;
}

/**
 * The root element's start tag of an SVG document given as text (latin1, so offsets are byte
 * offsets): past the XML declaration, processing instructions, comments and a DOCTYPE with its
 * internal subset. Null when the first element is not `svg` or the tag cannot be read.
 */
export function findSvgRoot(text: string): SvgRoot | null {
  let i = text.startsWith('\xef\xbb\xbf') ? 3 : 0;
  const n = text.length;
  for (;;) {
    while (i < n && /\s/.test(text[i])) i++;
    if (text.startsWith('<?', i)) {
      const j = text.indexOf('?>', i + 2);
      if (j < 0) return null;
      i = j + 2;
    } else if (text.startsWith('<!--', i)) {
      const j = text.indexOf('-->', i + 4);
      if (j < 0) return null;
      i = j + 3;
    } else if (text.slice(i, i + 9).toUpperCase() === '<!DOCTYPE') {
      let k = i + 9;
      let subset = false;
      while (k < n) {
        const c = text[k];
        if (c === '"' || c === "'") {
          const j = text.indexOf(c, k + 1);
          if (j < 0) return null;
          k = j + 1;
          continue;
        }
        if (subset && text.startsWith('<!--', k)) {
          const j = text.indexOf('-->', k + 4);
          if (j < 0) return null;
          k = j + 3;
          continue;
        }
        if (c === '[') subset = true;
        else if (c === ']') subset = false;
        else if (c === '>' && !subset) break;
        k++;
      }
      if (k >= n) return null;
      i = k + 1;
    } else break;
  }
  const open = /^<((?:[A-Za-z_][\w.-]*:)?svg)(?=[\s/>])/.exec(text.slice(i, i + 64));
  if (!open) return null;
  const name = open[1];
  let k = i + open[0].length;
  const attrs: SvgRoot['attrs'] = [];
  for (;;) {
    while (k < n && /\s/.test(text[k])) k++;
    if (text[k] === '>') return { start: i, end: k + 1, name, attrs, selfClosing: false };
    if (text.startsWith('/>', k)) return { start: i, end: k + 2, name, attrs, selfClosing: true };
    const m = /^([^\s=/>]+)\s*=\s*(["'])/.exec(text.slice(k, k + 256));
    if (!m) return null;
    const close = text.indexOf(m[2], k + m[0].length);
    if (close < 0) return null;
    attrs.push({ name: m[1], value: text.slice(k + m[0].length, close), raw: text.slice(k, close + 1) });
    k = close + 1;
  }
}

/**
 * An SVG rewritten to rasterise at `size` pixels on its short side, whatever canvas it declares:
 * the root element gets that width and height in pixels, and a viewBox (its own, or its declared
 * size in CSS pixels) so the drawing scales into them. Rendering through sharp's `density`
 * instead goes wrong both ways: below density 1 (a canvas above 72 × size user units, common
 * for clip art drawn on A4 at 0.01 mm) it cannot go, and librsvg applies the density twice to
 * physical units (pt, mm, in), so an Inkscape file sized in pt renders at a few pixels or none
 * ("zero-sized image"). Null when the root declares no usable size (no viewBox and a relative
 * width or height): such files are rendered as declared.
 */
export function svgAtSize(svg: Buffer, size: number): Buffer | null {
  const text = svg.toString('latin1');
  const root = findSvgRoot(text);
  if (!root) return null;
  const attr = (k: string) => root.attrs.find((a) => a.name === k)?.value;
  const raw = [attr('width'), attr('height'), attr('viewBox')];
  // Entity references in these attributes would need the DOCTYPE to read; render as declared.
  if (raw.some((v) => v?.includes('&'))) return null;
  const w = cssPixels(raw[0]);
  const h = cssPixels(raw[1]);
  const vbNums = raw[2]?.trim().split(/[\s,]+/).map(Number);
  const vb = vbNums && vbNums.length === 4 && vbNums.every(Number.isFinite) && vbNums[2] > 0 && vbNums[3] > 0 ? vbNums : null;
  let vw: number, vh: number;
  if (w && h) [vw, vh] = [w, h];
  else if (vb && w) [vw, vh] = [w, (w * vb[3]) / vb[2]];
  else if (vb && h) [vw, vh] = [(h * vb[2]) / vb[3], h];
  else if (vb) [vw, vh] = [vb[2], vb[3]];
  else return null;
  const viewBox = vb ? raw[2]! : `0 0 ${w} ${h}`;
  const scale = size / Math.min(vw, vh);
  const outW = vw <= vh ? size : Math.max(size, Math.round(vw * scale));
  const outH = vh < vw ? size : Math.max(size, Math.round(vh * scale));
  if (outW * outH > PIXEL_LIMIT) throw new Error(`SVG drawn at ${outW}×${outH} pixels (short side ${size}) exceeds the pixel limit (${PIXEL_LIMIT})`);
  const kept = root.attrs.filter((a) => !['width', 'height', 'viewBox'].includes(a.name)).map((a) => ` ${a.raw}`);
  const tag = `<${root.name}${kept.join('')} width="${outW}" height="${outH}" viewBox="${viewBox}"${root.selfClosing ? '/>' : '>'}`;
  return Buffer.concat([svg.subarray(0, root.start), Buffer.from(tag, 'latin1'), svg.subarray(root.end)]);
}

/** The file's bytes, with a gzip-compressed SVG (.svgz) expanded, up to MAX_SVG_BYTES. */
function svgText(buf: Buffer): Buffer {
  if (buf[0] !== 0x1f || buf[1] !== 0x8b) return buf;
  try {
    return gunzipSync(buf, { maxOutputLength: MAX_SVG_BYTES });
  } catch (e) {
    throw new Error(`compressed SVG does not expand within ${MAX_SVG_BYTES} bytes (${(e as Error).message})`);
  }
}

/**
 * Checks the images an SVG embeds as `data:` URIs (Inkscape's "embed" option) before librsvg
 * decodes them: librsvg decodes an embedded PNG at its full size whatever size it is drawn at,
 * so a small file embedding a 20000 × 20000 PNG would take seconds and gigabytes. Their pixels
 * together must stay within PIXEL_LIMIT; an embedded SVG is checked the same way, recursively.
 * References to files are not followed by librsvg (they render as nothing) and need no check.
 */
export async function checkEmbeddedImages(svg: Buffer, depth = 0): Promise<void> {
  const text = svg.toString('latin1');
  let pixels = 0;
  // The payload ends at the attribute's quote, a CSS url()'s parenthesis or the tag's end.
  for (const m of text.matchAll(/data:([\w.+/-]*)((?:;[\w=.+-]*)*),([^"')<>]*)/gi)) {
    const base64 = /;base64/i.test(m[2]);
    let data: Buffer;
    try {
      data = base64 ? Buffer.from(m[3].replace(/&#(?:10|13|x[aAdD]);|\s/g, ''), 'base64') : Buffer.from(decodeURIComponent(m[3]), 'utf8');
    } catch {
      continue; // not a payload librsvg could read either
    }
    if (data.length === 0) continue;
    let meta: sharp.Metadata;
    try {
      meta = await sharp(data, { limitInputPixels: false }).metadata();
    } catch (e) {
      if (!base64) continue; // percent-encoded text that is no image (e.g. a font or CSS)
      throw new Error(`an embedded image (data:${m[1]}) cannot be read to check its size (${(e as Error).message})`);
    }
    if (meta.format === 'svg') {
      if (depth >= 3) throw new Error('embedded SVGs nest more than 3 deep');
      await checkEmbeddedImages(svgText(data), depth + 1);
      continue;
    }
    pixels += (meta.width ?? 0) * (meta.height ?? 0);
    if (pixels > PIXEL_LIMIT) {
      throw new Error(`embedded images (data: URIs) hold ${meta.width}×${meta.height} pixels and more, beyond the ${PIXEL_LIMIT}-pixel limit`);
    }
  }
}

/**
 * Decodes an image file or its bytes held in memory (JPEG, PNG, WebP, SVG, or any of them under
 * a bare name: sharp sniffs the format from the bytes), resizes its short side to `size` with a bicubic kernel and crops
 * the centre — or follows `pre`, whose output side must be `size`. Returns RGB bytes,
 * [size, size, 3] row-major. This is the one decode path: the dataset check
 * (`images: 'decode'`), training, evaluation and the colour-histogram baseline go through it.
 */
export async function decodeImage(source: string | Buffer, size: number, pre?: ImagePreprocessing): Promise<Uint8Array> {
  checkSize(size);
  if (pre && preprocessingSize(pre) !== size) throw new Error(`decodeImage: the preprocessing gives ${preprocessingSize(pre)}-pixel images, ${size} requested`);
  const file = typeof source === 'string' ? await readFile(source) : source;
  try {
    // gzip here can only be an SVG (.svgz): expanded under a bound before librsvg sees it.
    const buf = svgText(file);
    const meta = await imageHeader(buf);
    // The side the image is resized to before any crop.
    const renderSide = pre && 'shortestEdge' in pre.resize ? pre.resize.shortestEdge : pre && 'height' in pre.resize ? Math.min(pre.resize.height, pre.resize.width) : size;
    let input: sharp.Sharp;
    let inputMeta = meta;
    if (meta.format === 'svg') {
      // SVG is vector: rendered at the size needed rather than upscaled from a small raster or
      // rasterised at a huge declared canvas. sharp's pixel limit then applies to what is drawn.
      await checkEmbeddedImages(buf);
      const sized = svgAtSize(buf, renderSide);
      if (sized) input = sharp(sized);
      else {
        const density = meta.width && meta.height ? Math.min(Math.max((72 * renderSide) / Math.min(meta.width, meta.height), 1), 100000) : undefined;
        input = sharp(buf, density ? { density } : {});
      }
      inputMeta = await input.metadata();
    } else input = sharp(buf);
    const img = input.flatten({ background: '#ffffff' });
    const kernel = sharpKernel(pre?.resample ?? 'bicubic');
    const cover = !pre || ('shortestEdge' in pre.resize && pre.crop && pre.resize.shortestEdge === size && pre.crop.height === size && pre.crop.width === size);
    if (cover) {
      // Short side to size, centre crop size × size: sharp's 'cover' does both in one step.
      img.resize({ width: size, height: size, fit: 'cover', position: 'centre', kernel });
    } else {
      const { width: w0, height: h0 } = inputMeta;
      if (!w0 || !h0) throw new Error('no image size in the header');
      const { w, h } = resizedSize(pre.resize, w0, h0);
      img.resize({ width: w, height: h, fit: 'fill', kernel });
      if (pre.crop) {
        // sharp applies an extract called after resize to the resized image.
        img.extract({ left: Math.floor((w - pre.crop.width) / 2), top: Math.floor((h - pre.crop.height) / 2), width: pre.crop.width, height: pre.crop.height });
      }
    }
    const { data, info } = await img.toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    if (info.width !== size || info.height !== size || info.channels !== 3) {
      throw new Error(`decoded to ${info.width}×${info.height}×${info.channels}, expected ${size}×${size}×3`);
    }
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  } catch (e) {
    throw new Error(`cannot decode image ${typeof source === 'string' ? source : `(${source.length} bytes in memory)`}: ${(e as Error).message}`);
  }
}

/** Size after the resize step: Hugging Face's rule, the long side int(shortestEdge · long / short). */
function resizedSize(resize: ImagePreprocessing['resize'], w0: number, h0: number): { w: number; h: number } {
  if (!('shortestEdge' in resize)) return { w: resize.width, h: resize.height };
  const s = resize.shortestEdge;
  const long = Math.floor((s * Math.max(w0, h0)) / Math.min(w0, h0));
  return w0 <= h0 ? { w: s, h: long } : { w: long, h: s };
}

/**
 * Checks that a file is an image the pipeline can read: 'header' reads the header only,
 * 'decode' runs decodeImage itself at `size` (catches truncated files, SVGs librsvg cannot
 * draw). Returns the reason it failed, or null.
 */
export async function probeImage(path: string, mode: 'header' | 'decode', size = DEFAULT_CHECK_SIZE): Promise<string | null> {
  try {
    if (mode === 'decode') {
      await decodeImage(path, size);
    } else {
      const meta = await imageHeader(svgText(await readFile(path)));
      if (!meta.format || !meta.width || !meta.height) return 'no image format recognised';
    }
    return null;
  } catch (e) {
    return (e as Error).message.replace(/^cannot decode image [^:]*: /, '');
  }
}

/**
 * The side images are checked at when the caller does not say: the default input side of the
 * vision tower (ViTConfig.imageSize), which train and ablate pass explicitly.
 */
export const DEFAULT_CHECK_SIZE = 32;

const CHECK_CACHE_VERSION = 1;

/**
 * Decodes every file exactly as training will (decodeImage at `size`) and returns each one's
 * failure (or null). With `cacheDir`, outcomes are remembered per file — keyed by its path
 * inside `dir`, modification time and byte size — in one JSON file per dataset folder and size,
 * so an unchanged dataset is decoded once however many runs, workers and evaluations load it.
 */
export async function checkImages(
  dir: string,
  paths: readonly string[],
  size: number,
  opts: { cacheDir?: string; concurrency?: number } = {},
): Promise<Map<string, string | null>> {
  checkSize(size);
  const realDir = await realpath(dir);
  const cacheFile = opts.cacheDir ? join(opts.cacheDir, `image-check-${createHash('sha256').update(`${realDir}\u0000${size}`).digest('hex').slice(0, 20)}.json`) : null;
  let cached: Record<string, [number, number, string | null]> = {};
  if (cacheFile) {
    try {
      const c = JSON.parse(await readFile(cacheFile, 'utf8')) as { version?: number; size?: number; files?: typeof cached };
      if (c.version === CHECK_CACHE_VERSION && c.size === size && c.files && typeof c.files === 'object') cached = c.files;
    } catch {
      // No cache yet, or a damaged one: decode and rewrite it.
    }
  }
  const out = new Map<string, string | null>();
  let changed = false;
  await mapPool(paths, opts.concurrency ?? 4, async (p) => {
    const s = await stat(p);
    const key = relative(realDir, await realpath(p));
    const hit = cached[key];
    if (hit && hit[0] === s.mtimeMs && hit[1] === s.size) return void out.set(p, hit[2]);
    const err = await probeImage(p, 'decode', size);
    cached[key] = [s.mtimeMs, s.size, err];
    changed = true;
    out.set(p, err);
  });
  if (cacheFile && changed) {
    await mkdir(opts.cacheDir!, { recursive: true });
    // Written beside the target and renamed: concurrent readers (workers) see a whole file.
    const tmp = `${cacheFile}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify({ version: CHECK_CACHE_VERSION, size, dir: realDir, files: cached }));
    await rename(tmp, cacheFile);
  }
  return out;
}

/**
 * CLIP-normalises RGB bytes [size, size, 3] into `out` at `offset` (HWC float32), mirroring
 * left↔right when `flip` is set; `norm` replaces CLIP's mean and std.
 */
export function normalizeImage(
  rgb: Uint8Array,
  size: number,
  out: Float32Array = new Float32Array(size * size * 3),
  offset = 0,
  flip = false,
  norm?: ImageNormalization,
): Float32Array {
  if (rgb.length !== size * size * 3) throw new Error(`normalizeImage: expected ${size * size * 3} bytes (${size}×${size}×3), got ${rgb.length}`);
  const LUT = lutFor(norm);
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

/** Decodes and normalises one image: float32 [size, size, 3] (by `pre` when given). */
export async function loadImage(path: string, size: number, pre?: ImagePreprocessing): Promise<Float32Array> {
  return normalizeImage(await decodeImage(path, size, pre), size, undefined, 0, false, pre);
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
  /** An imported encoder's preprocessing; its output side must be `size`. Defaults to `defaultPreprocessing(size)`. */
  preprocessing?: ImagePreprocessing;
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
    if (opts.preprocessing && preprocessingSize(opts.preprocessing) !== opts.size) {
      throw new Error(`ImageStore: the preprocessing gives ${preprocessingSize(opts.preprocessing)}-pixel images but size is ${opts.size}`);
    }
  }

  /** One store per dataset folder, size and cache folder for the whole process. */
  static shared(source: ImageSource, opts: ImageStoreOptions): ImageStore {
    const key = `${source.dir}\u0000${opts.size}\u0000${opts.cacheDir ?? ''}\u0000${opts.preprocessing ? JSON.stringify(opts.preprocessing) : ''}`;
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
      this.pixelsByPath.set(p, await decodeImage(p, this.size, this.opts.preprocessing));
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

  /** Normalised (CLIP's mean/std, or the preprocessing's) float32 [B, size, size, 3] of the notes' images, in order. */
  array(noteIds: readonly string[], opts: BatchOptions = {}): Float32Array {
    const per = this.size * this.size * 3;
    const out = new Float32Array(noteIds.length * per);
    noteIds.forEach((id, i) => {
      const flip = opts.flip ? opts.flip.next() < 0.5 : false;
      normalizeImage(this.pixels(id), this.size, out, i * per, flip, this.opts.preprocessing);
    });
    return out;
  }

  /** The same as a tensor: [B, size, size, 3] (NHWC). The caller disposes it. */
  batch(noteIds: readonly string[], opts: BatchOptions = {}): Tensor4D {
    return tf.tensor4d(this.array(noteIds, opts), [noteIds.length, this.size, this.size, 3], 'float32');
  }

  // -------------------------------------------------------------------------------------------
  // On-disk cache (cache-file.ts framing): JSON header {version, size, files}, then the pixels
  // of each file in header order.

  private async cacheFile(paths: string[]): Promise<string> {
    return join(this.opts.cacheDir!, `${await this.filesKey(paths)}.bin`);
  }

  /**
   * A key of what these notes' decoded images are made from, without decoding them: each
   * file's path, modification time and size, the size and the resize geometry (the disk
   * cache's key).
   */
  async fileKey(noteIds: readonly string[]): Promise<string> {
    return this.filesKey(noteIds.map((id) => this.source.imagePath(id)));
  }

  private async filesKey(paths: readonly string[]): Promise<string> {
    const dir = await realpath(this.source.dir);
    const files: [string, number, number][] = [];
    for (const p of paths) {
      const s = await stat(p);
      files.push([relative(dir, await realpath(p)), s.mtimeMs, s.size]);
    }
    // The geometry of an imported preprocessing joins the key only when there is one.
    const pre = this.opts.preprocessing;
    const geometry = pre ? { geometry: { resize: pre.resize, crop: pre.crop, resample: pre.resample } } : {};
    return createHash('sha256')
      .update(JSON.stringify({ v: CACHE_VERSION, dir, size: this.size, files, ...geometry }))
      .digest('hex')
      .slice(0, 24);
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
      const head = readCacheFileHead<{ version: number; size: number; files: string[] }>(buf, CACHE_MAGIC);
      if (!head) return false;
      const { header, bodyStart } = head;
      if (header.version !== CACHE_VERSION || header.size !== this.size) return false;
      if (header.files.length !== paths.length || header.files.some((f, i) => f !== paths[i])) return false;
      if (buf.length !== bodyStart + per * paths.length) return false;
      paths.forEach((p, i) => {
        const start = bodyStart + i * per;
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
    const head = cacheFileHead(CACHE_MAGIC, { version: CACHE_VERSION, size: this.size, files: paths });
    // Written beside the target and renamed, so a reader never sees half a file.
    const tmp = `${file}.${process.pid}.tmp`;
    const fh = await open(tmp, 'w');
    try {
      await fh.write(head);
      for (const p of paths) await fh.write(this.pixelsByPath.get(p)!);
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  }
}
