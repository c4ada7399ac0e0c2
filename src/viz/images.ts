/**
 * Images for HTML output: a small PNG encoder (zlib from Node, no native image library) so
 * pixels held as arrays — e.g. a dataset's [H, W, C] image tensor read with `.data()` — can be
 * shown as `data:image/png;base64,…` URIs in the report and in notebooks.
 */
import { deflateSync } from 'node:zlib';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 as used by PNG chunks (ISO 3309). */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'ascii');
  Buffer.from(data).copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

export interface PixelImage {
  /** Row-major [height, width, channels] values: bytes 0–255, or floats in [0, 1] (`scale: 1`). */
  data: ArrayLike<number>;
  width: number;
  height: number;
  /** 1 (grey), 3 (RGB) or 4 (RGBA). */
  channels: 1 | 3 | 4;
  /** Full-scale value of `data`: 255 for bytes (the default), 1 for floats in [0, 1]. */
  scale?: number;
}

/** Encodes pixels as a PNG file (8 bits per channel, no interlace). */
export function encodePng(img: PixelImage): Buffer {
  const { width, height, channels } = img;
  const scale = img.scale ?? 255;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error(`encodePng: width and height must be positive integers, got ${width}×${height}`);
  }
  if (![1, 3, 4].includes(channels)) throw new Error(`encodePng: channels must be 1, 3 or 4, got ${channels}`);
  if (img.data.length !== width * height * channels) {
    throw new Error(`encodePng: data has ${img.data.length} values, expected height·width·channels = ${height}·${width}·${channels} = ${width * height * channels}`);
  }
  // Each scanline starts with filter type 0 (None).
  const raw = Buffer.alloc(height * (1 + width * channels));
  for (let y = 0; y < height; y++) {
    const row = y * (1 + width * channels);
    for (let i = 0; i < width * channels; i++) {
      const v = (img.data[y * width * channels + i] / scale) * 255;
      raw[row + 1 + i] = Math.max(0, Math.min(255, Math.round(Number.isFinite(v) ? v : 0)));
    }
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = channels === 1 ? 0 : channels === 3 ? 2 : 6; // colour type: grey, RGB, RGBA
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', new Uint8Array(0)),
  ]);
}

/** `data:image/png;base64,…` for PNG bytes. */
export function pngDataUri(png: Uint8Array): string {
  return `data:image/png;base64,${Buffer.from(png).toString('base64')}`;
}

/** `data:image/svg+xml;base64,…` for an SVG document. */
export function svgDataUri(svg: string): string {
  return `data:image/svg+xml;base64,${Buffer.from(svg, 'utf8').toString('base64')}`;
}

/** Pixels → PNG data URI. */
export function imageDataUri(img: PixelImage): string {
  return pngDataUri(encodePng(img));
}
