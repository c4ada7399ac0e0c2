/**
 * The real dataset `openmoji`, built from the `openmoji` npm package (about 4.5k emoji and
 * icons; data/openmoji.csv plus colour SVGs). Licence: CC BY-SA 4.0 — "All emojis designed by
 * OpenMoji – the open-source emoji and icon project. License: CC BY-SA 4.0"; the built folder
 * records it in dataset.json.
 *
 * One note per emoji:
 *   title    = annotation ("waving hand: light skin tone")
 *   topics   = tags (written as `#tag[话题]#` hashtags)
 *   content  = openmoji_tags (often empty: real short text)
 *   category = group@subgroup@
 *   image    = the colour SVG rendered to a PNG on white at the dataset's image size
 * Related pairs: skin-tone variants of one base emoji (`skintone`) and other emoji of the
 * same subgroup (`subgroup`). Notes are split by skin-tone family (a family stays in one
 * split, so no near-duplicate of a test emoji is trained on), and pairs are drawn within each
 * split, so every test note can have test partners.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parse } from 'csv-parse/sync';
import sharp from 'sharp';
import { Rng } from '../backend/rng';
import { generatedDataset, type BuiltDataset } from './summary';
import type { Note, Pair, SplitName } from './schema';
import { resolveSplitConfig, splitByNotes, type SplitConfig, type SplitResult } from './splits';
import { builtinDatasetDir, readDatasetMeta, writeReferenceDataset } from './write';

export const OPENMOJI_LICENSE = 'CC-BY-SA-4.0';
export const OPENMOJI_ATTRIBUTION = 'All emojis designed by OpenMoji – the open-source emoji and icon project. License: CC BY-SA 4.0';
export const OPENMOJI_LABELS = ['skintone', 'subgroup'] as const;

export interface OpenmojiConfig {
  /** Folder of the openmoji package. Defaults to the installed one. */
  packageDir?: string;
  /** Side of the square PNG covers, pixels. Defaults to 64. */
  imageSize?: number;
  /** Seed of the split, the partner choice and the smoke subset. Defaults to 1. */
  seed?: number;
  /** Skin-tone siblings paired with each note (at most). Defaults to 1. */
  skintonePartners?: number;
  /** Same-subgroup notes of other families paired with each note (at most). Defaults to 3. */
  subgroupPartners?: number;
  /**
   * Keep only about this many notes, taking whole subgroups in a seeded random order.
   * Defaults to all (800 when NOTELLM2_SMOKE=1).
   */
  limit?: number;
  /** Split settings (groupOf is set to the skin-tone family). Defaults to test 0.2, val 0.1. */
  split?: Omit<SplitConfig, 'groupOf'>;
}

export type ResolvedOpenmojiConfig = Required<Omit<OpenmojiConfig, 'limit' | 'split'>> & { limit: number | null; split: Required<Omit<SplitConfig, 'groupOf'>> };

export function resolveOpenmojiConfig(cfg: OpenmojiConfig = {}, env: NodeJS.ProcessEnv = process.env): ResolvedOpenmojiConfig {
  const seed = cfg.seed ?? 1;
  const out: ResolvedOpenmojiConfig = {
    packageDir: cfg.packageDir ?? dirname(require.resolve('openmoji/package.json')),
    imageSize: cfg.imageSize ?? 64,
    seed,
    skintonePartners: cfg.skintonePartners ?? 1,
    subgroupPartners: cfg.subgroupPartners ?? 3,
    limit: cfg.limit ?? (env.NOTELLM2_SMOKE === '1' ? 800 : null),
    split: (({ groupOf: _, ...rest }) => rest)(resolveSplitConfig({ seed, ...(cfg.split ?? {}) })),
  };
  if (!Number.isInteger(out.imageSize) || out.imageSize < 8) throw new Error(`openmoji: imageSize must be an integer >= 8, got ${out.imageSize}`);
  for (const k of ['skintonePartners', 'subgroupPartners'] as const) {
    if (!Number.isInteger(out[k]) || out[k] < 0) throw new Error(`openmoji: ${k} must be an integer >= 0, got ${out[k]}`);
  }
  if (out.skintonePartners + out.subgroupPartners === 0) throw new Error('openmoji: skintonePartners + subgroupPartners must be > 0 (no pairs otherwise)');
  if (out.limit !== null && !(Number.isInteger(out.limit) && out.limit >= 10)) throw new Error(`openmoji: limit must be an integer >= 10, got ${out.limit}`);
  return out;
}

/** The fields of data/openmoji.csv this builder uses. */
export interface OpenmojiRow {
  hexcode: string;
  group: string;
  subgroup: string;
  annotation: string;
  tags: string[];
  openmojiTags: string;
  /** Hexcode of the family's base emoji for skin-tone variants (and the base itself); '' otherwise. */
  skintoneBase: string;
}

const REQUIRED = ['hexcode', 'group', 'subgroups', 'annotation', 'tags', 'openmoji_tags', 'skintone_base_hexcode'] as const;

/** Reads data/openmoji.csv; errors name the file, line and missing column. */
export function readOpenmojiRows(packageDir: string): OpenmojiRow[] {
  const file = join(packageDir, 'data', 'openmoji.csv');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`openmoji: cannot read ${file} (${(e as Error).message}); expected the openmoji npm package (npm install openmoji)`);
  }
  const rows = parse(text, { columns: true, skip_empty_lines: true }) as Record<string, string>[];
  if (rows.length === 0) throw new Error(`openmoji: ${file} has no rows`);
  for (const c of REQUIRED) if (!(c in rows[0])) throw new Error(`openmoji: ${file}:1: header lacks column "${c}"; expected ${REQUIRED.join(', ')}`);
  const seen = new Set<string>();
  return rows.map((r, i) => {
    const hexcode = r.hexcode.trim();
    if (hexcode === '') throw new Error(`openmoji: ${file}:${i + 2}: empty hexcode`);
    if (seen.has(hexcode)) throw new Error(`openmoji: ${file}:${i + 2}: hexcode ${hexcode} listed twice`);
    seen.add(hexcode);
    return {
      hexcode,
      group: r.group.trim(),
      subgroup: r.subgroups.trim(),
      annotation: r.annotation.trim(),
      tags: splitList(r.tags),
      openmojiTags: r.openmoji_tags.trim(),
      skintoneBase: r.skintone_base_hexcode.trim(),
    };
  });
}

/**
 * A comma-separated tag list as clean hashtag names: no '#', brackets or newlines (they would
 * break the `#tag[话题]#` markup), no blanks, no repeats.
 */
function splitList(s: string): string[] {
  const out: string[] = [];
  for (const raw of s.split(',')) {
    const t = raw.replace(/[#[\]\n]/g, ' ').replace(/\s+/g, ' ').trim();
    if (t !== '' && !out.includes(t)) out.push(t);
  }
  return out;
}

/** The skin-tone family of a row (its own hexcode when it has no variants). */
export const familyOf = (r: OpenmojiRow): string => r.skintoneBase || r.hexcode;

export function openmojiNote(r: OpenmojiRow): Note {
  return {
    id: r.hexcode,
    title: r.annotation,
    // A '#' in the body would read as a plain hashtag when loaded back; no openmoji_tags has one.
    content: r.openmojiTags.replace(/#/g, ' ').replace(/\s+/g, ' ').trim(),
    topics: r.tags,
    imageId: r.hexcode,
    category: [r.group, r.subgroup],
  };
}

/** Keeps whole subgroups, in seeded random order, until about `limit` notes. */
function limitRows(rows: OpenmojiRow[], limit: number, rng: Rng): OpenmojiRow[] {
  const subgroups = [...new Set(rows.map((r) => `${r.group}@${r.subgroup}`))];
  rng.shuffle(subgroups);
  const keep = new Set<string>();
  let n = 0;
  for (const s of subgroups) {
    if (n >= limit) break;
    keep.add(s);
    n += rows.filter((r) => `${r.group}@${r.subgroup}` === s).length;
  }
  return rows.filter((r) => keep.has(`${r.group}@${r.subgroup}`));
}

/**
 * Pairs within one split: each note (in file order) gets up to `skintonePartners` random
 * siblings of its family and up to `subgroupPartners` random same-subgroup notes of other
 * families; an unordered pair is kept once (its first occurrence).
 */
export function openmojiPairs(rows: readonly OpenmojiRow[], cfg: Pick<ResolvedOpenmojiConfig, 'skintonePartners' | 'subgroupPartners'>, rng: Rng): Pair[] {
  const byFamily = new Map<string, OpenmojiRow[]>();
  const bySubgroup = new Map<string, OpenmojiRow[]>();
  const push = <K>(m: Map<K, OpenmojiRow[]>, k: K, r: OpenmojiRow) => { const l = m.get(k); if (l) l.push(r); else m.set(k, [r]); };
  for (const r of rows) {
    push(byFamily, familyOf(r), r);
    push(bySubgroup, `${r.group}@${r.subgroup}`, r);
  }
  const seen = new Set<string>();
  const pairs: Pair[] = [];
  const add = (a: string, b: string, label: string) => {
    const key = a < b ? `${a} ${b}` : `${b} ${a}`;
    if (seen.has(key)) return;
    seen.add(key);
    pairs.push({ a, b, label });
  };
  for (const r of rows) {
    const siblings = byFamily.get(familyOf(r))!.filter((x) => x !== r);
    for (const s of rng.shuffle([...siblings]).slice(0, cfg.skintonePartners)) add(r.hexcode, s.hexcode, 'skintone');
    const others = bySubgroup.get(`${r.group}@${r.subgroup}`)!.filter((x) => familyOf(x) !== familyOf(r));
    for (const s of rng.shuffle([...others]).slice(0, cfg.subgroupPartners)) add(r.hexcode, s.hexcode, 'subgroup');
  }
  return pairs;
}

export interface OpenmojiData {
  config: ResolvedOpenmojiConfig;
  rows: OpenmojiRow[];
  notes: Note[];
  split: SplitResult;
}

/** Reads the package, splits by family and draws the pairs (no images yet). */
export function generateOpenmoji(config: OpenmojiConfig = {}): OpenmojiData {
  const cfg = resolveOpenmojiConfig(config);
  const root = new Rng(cfg.seed);
  let rows = readOpenmojiRows(cfg.packageDir);
  if (cfg.limit !== null) rows = limitRows(rows, cfg.limit, root.fork('limit'));
  const rowById = new Map(rows.map((r) => [r.hexcode, r]));
  const ids = rows.map((r) => r.hexcode);
  const split = splitByNotes(ids, [], { ...cfg.split, groupOf: (id) => familyOf(rowById.get(id)!) });
  for (const s of ['train', 'val', 'test'] as const) {
    const inSplit = split.notes[s].map((id) => rowById.get(id)!);
    split.pairs[s] = root.fork(`order-${s}`).shuffle(openmojiPairs(inSplit, cfg, root.fork(`pairs-${s}`)));
  }
  return { config: cfg, rows, notes: rows.map(openmojiNote), split };
}

/** PNG of one emoji: the colour SVG rendered at `size`×`size` on white. */
export async function openmojiImage(packageDir: string, hexcode: string, size: number): Promise<Buffer> {
  const file = join(packageDir, 'color', 'svg', `${hexcode}.svg`);
  let svg: Buffer;
  try {
    svg = readFileSync(file);
  } catch (e) {
    throw new Error(`openmoji: no SVG for ${hexcode}: ${(e as Error).message}`);
  }
  // The SVGs are 72×72 user units: density `size` renders them at about size×size pixels.
  return sharp(svg, { density: size })
    .resize(size, size, { fit: 'contain', background: '#ffffff' })
    .flatten({ background: '#ffffff' })
    .png()
    .toBuffer();
}

/**
 * Builds `openmoji` into `dir` in the reference layout; returns the summary the CLI prints
 * (baselines left empty, see cli/data.ts).
 */
export async function buildOpenmoji(
  dir: string,
  config: OpenmojiConfig = {},
  opts: { lengthThreshold?: number } = {},
): Promise<BuiltDataset & { data: OpenmojiData }> {
  const t0 = performance.now();
  const data = generateOpenmoji(config);
  const { split, config: cfg } = data;
  const pkg = JSON.parse(readFileSync(join(cfg.packageDir, 'package.json'), 'utf8')) as { version?: string };
  const labelCounts = (pairs: Pair[]) => Object.fromEntries(OPENMOJI_LABELS.map((l) => [l, pairs.filter((p) => p.label === l).length]));
  const sizes = <T>(f: (s: SplitName) => T) => ({ train: f('train'), val: f('val'), test: f('test') });
  const written = await writeReferenceDataset(dir, {
    notes: data.notes,
    noteSplit: split.notes,
    pairs: split.pairs,
    image: async (n) => ({ data: await openmojiImage(cfg.packageDir, n.imageId, cfg.imageSize), ext: '.png' }),
    meta: {
      name: 'openmoji',
      builder: 'notellm2 data openmoji',
      source: `openmoji@${pkg.version ?? '?'} (https://openmoji.org)`,
      license: OPENMOJI_LICENSE,
      attribution: OPENMOJI_ATTRIBUTION,
      config: { ...cfg, packageDir: undefined },
      notes: sizes((s) => split.notes[s].length),
      pairs: sizes((s) => split.pairs[s].length),
      labels: sizes((s) => labelCounts(split.pairs[s])),
    },
  });
  return generatedDataset(data, split, written, {
    name: 'openmoji',
    t0,
    lengthThreshold: opts.lengthThreshold,
    dropped: {},
    extra: {
      source: `openmoji@${pkg.version ?? '?'}, ${OPENMOJI_LICENSE} (${OPENMOJI_ATTRIBUTION})`,
      families: `${new Set(data.rows.map(familyOf)).size} skin-tone families/single emoji, ${new Set(data.rows.map((r) => `${r.group}@${r.subgroup}`)).size} subgroups; split by family, pairs drawn within each split`,
    },
  });
}

/**
 * Makes sure `dir` (default datasets/openmoji) holds `openmoji` built with this config:
 * rebuilds unless its dataset.json records the same resolved config. Returns the folder.
 */
export async function ensureOpenmoji(config: OpenmojiConfig = {}, dir = builtinDatasetDir('openmoji')): Promise<{ dir: string; built: boolean }> {
  const meta = readDatasetMeta(dir);
  const want = JSON.stringify({ ...resolveOpenmojiConfig(config), packageDir: undefined });
  if (meta && meta.name === 'openmoji' && JSON.stringify(meta.config) === want) return { dir, built: false };
  const { summary } = await buildOpenmoji(dir, config);
  return { dir: summary.dir, built: true };
}
