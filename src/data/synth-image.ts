/**
 * Cover images of the synthetic benchmark: the visual latent (shape × colour × pattern) drawn
 * as SVG with jitter — position, size, rotation, colour shade, a pale random background,
 * faint clutter — rasterised by sharp, then per-pixel noise. The jitter makes two notes of
 * one style look alike without being identical, so matching them needs the picture, not a
 * checksum; the background and clutter colours are independent of every latent.
 */
import sharp from 'sharp';
import type { Rng } from '../backend/rng';

/** Base RGB of each colour value. */
export const COLOURS = {
  red: [220, 38, 38],
  green: [34, 160, 60],
  blue: [37, 99, 235],
  yellow: [234, 179, 8],
  purple: [147, 51, 234],
  cyan: [6, 182, 212],
  orange: [249, 115, 22],
  pink: [236, 72, 153],
  black: [30, 30, 30],
} as const satisfies Record<string, readonly [number, number, number]>;
export type Colour = keyof typeof COLOURS;
export const ALL_COLOURS = Object.keys(COLOURS) as Colour[];

export const ALL_SHAPES = ['circle', 'square', 'triangle', 'star', 'cross', 'hexagon'] as const;
export type Shape = (typeof ALL_SHAPES)[number];

export const ALL_PATTERNS = ['solid', 'striped', 'outline', 'dotted'] as const;
export type Pattern = (typeof ALL_PATTERNS)[number];

/** The visual latent of a note. */
export interface VisualStyle {
  shape: Shape;
  colour: Colour;
  pattern: Pattern;
}

export function styleKey(s: VisualStyle): string {
  return `${s.colour}-${s.pattern}-${s.shape}`;
}

const clamp255 = (x: number): number => (x < 0 ? 0 : x > 255 ? 255 : Math.round(x));
const hex = (rgb: readonly number[]): string => '#' + rgb.map((v) => clamp255(v).toString(16).padStart(2, '0')).join('');

/** HSL (h in degrees, s and l in [0, 1]) to RGB 0..255. */
function hsl(h: number, s: number, l: number): [number, number, number] {
  const c = (1 - Math.abs(2 * l - 1)) * s;
  const hp = ((h % 360) + 360) % 360 / 60;
  const x = c * (1 - Math.abs((hp % 2) - 1));
  const [r, g, b] = hp < 1 ? [c, x, 0] : hp < 2 ? [x, c, 0] : hp < 3 ? [0, c, x] : hp < 4 ? [0, x, c] : hp < 5 ? [x, 0, c] : [c, 0, x];
  const m = l - c / 2;
  return [(r + m) * 255, (g + m) * 255, (b + m) * 255];
}

/** Outline of a shape of radius r around the origin (before rotation), as an SVG element. */
function shapeElement(shape: Shape, r: number, paint: string): string {
  const poly = (pts: [number, number][]) => `<polygon points="${pts.map(([x, y]) => `${x.toFixed(2)},${y.toFixed(2)}`).join(' ')}" ${paint}/>`;
  const ring = (n: number, radius: (i: number) => number, offset = -Math.PI / 2) =>
    Array.from({ length: n }, (_, i): [number, number] => {
      const a = offset + (2 * Math.PI * i) / n;
      return [radius(i) * Math.cos(a), radius(i) * Math.sin(a)];
    });
  switch (shape) {
    case 'circle':
      return `<circle cx="0" cy="0" r="${r.toFixed(2)}" ${paint}/>`;
    case 'square': {
      const h = 0.82 * r; // about the circle's area
      return poly([[-h, -h], [h, -h], [h, h], [-h, h]]);
    }
    case 'triangle':
      return poly(ring(3, () => 1.15 * r));
    case 'star':
      return poly(ring(10, (i) => (i % 2 === 0 ? 1.15 * r : 0.5 * r)));
    case 'cross': {
      const a = 1.05 * r;
      const w = 0.36 * r;
      return poly([[-w, -a], [w, -a], [w, -w], [a, -w], [a, w], [w, w], [w, a], [-w, a], [-w, w], [-a, w], [-a, -w], [-w, -w]]);
    }
    case 'hexagon':
      return poly(ring(6, () => r, 0));
    default: {
      const never: never = shape;
      throw new Error(`synth: unknown shape ${String(never)}; expected one of ${ALL_SHAPES.join(', ')}`);
    }
  }
}

/**
 * SVG of one note's cover: `size`×`size` pixels. All randomness (jitter, background,
 * clutter) comes from `rng`, so a note's image is fixed by the dataset seed.
 */
export function drawStyleSvg(style: VisualStyle, rng: Rng, size: number): string {
  const u = (lo: number, hi: number) => lo + (hi - lo) * rng.next();
  const base = COLOURS[style.colour];
  const shade = 18; // per-channel colour jitter
  const fg = hex(base.map((v) => v + u(-shade, shade)));
  const bg = hex(hsl(u(0, 360), u(0.15, 0.45), u(0.86, 0.95)));
  const paper = hex(hsl(u(0, 360), 0.1, u(0.95, 0.99)));

  const parts: string[] = [];
  parts.push(`<rect width="${size}" height="${size}" fill="${bg}"/>`);
  // Faint clutter in colours drawn independently of the latents.
  const clutter = 3 + rng.int(4);
  for (let i = 0; i < clutter; i++) {
    const c = hex(hsl(u(0, 360), u(0.3, 0.6), u(0.6, 0.8)));
    const op = u(0.25, 0.45).toFixed(2);
    if (rng.next() < 0.5) {
      parts.push(`<circle cx="${u(0, size).toFixed(1)}" cy="${u(0, size).toFixed(1)}" r="${u(0.03, 0.09) * size}" fill="${c}" opacity="${op}"/>`);
    } else {
      parts.push(
        `<line x1="${u(0, size).toFixed(1)}" y1="${u(0, size).toFixed(1)}" x2="${u(0, size).toFixed(1)}" y2="${u(0, size).toFixed(1)}" ` +
          `stroke="${c}" stroke-width="${(u(0.02, 0.05) * size).toFixed(1)}" opacity="${op}"/>`,
      );
    }
  }

  const r = u(0.24, 0.33) * size;
  const cx = size / 2 + u(-0.14, 0.14) * size;
  const cy = size / 2 + u(-0.14, 0.14) * size;
  const angle = u(0, 360);
  const period = Math.max(3, size / 12);
  let defs = '';
  let paint: string;
  switch (style.pattern) {
    case 'solid':
      paint = `fill="${fg}"`;
      break;
    case 'outline':
      paint = `fill="none" stroke="${fg}" stroke-width="${(0.09 * size).toFixed(2)}" stroke-linejoin="round"`;
      break;
    case 'striped':
      defs =
        `<pattern id="p" width="${period}" height="${period}" patternUnits="userSpaceOnUse" patternTransform="rotate(${u(0, 180).toFixed(1)})">` +
        `<rect width="${period}" height="${period}" fill="${paper}"/><rect width="${period / 2}" height="${period}" fill="${fg}"/></pattern>`;
      paint = `fill="url(#p)"`;
      break;
    case 'dotted':
      defs =
        `<pattern id="p" width="${period}" height="${period}" patternUnits="userSpaceOnUse">` +
        `<rect width="${period}" height="${period}" fill="${paper}"/><circle cx="${period / 2}" cy="${period / 2}" r="${period * 0.3}" fill="${fg}"/></pattern>`;
      paint = `fill="url(#p)"`;
      break;
    default: {
      const never: never = style.pattern;
      throw new Error(`synth: unknown pattern ${String(never)}; expected one of ${ALL_PATTERNS.join(', ')}`);
    }
  }
  parts.push(`<g transform="translate(${cx.toFixed(2)},${cy.toFixed(2)}) rotate(${angle.toFixed(1)})">${shapeElement(style.shape, r, paint)}</g>`);
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}" viewBox="0 0 ${size} ${size}">` +
    (defs ? `<defs>${defs}</defs>` : '') +
    parts.join('') +
    '</svg>'
  );
}

/**
 * Rasterises an SVG with sharp and adds Gaussian pixel noise (std `noise` in 0..255 units);
 * returns PNG bytes (RGB, no alpha).
 */
export async function renderSvgPng(svg: string, rng: Rng, noise: number): Promise<Buffer> {
  const { data, info } = await sharp(Buffer.from(svg)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  if (noise > 0) for (let i = 0; i < data.length; i++) data[i] = clamp255(data[i] + noise * rng.normal());
  return sharp(data, { raw: { width: info.width, height: info.height, channels: 3 } }).png().toBuffer();
}
