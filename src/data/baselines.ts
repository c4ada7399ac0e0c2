/**
 * Two single-modality baselines that show what each evaluation subset measures:
 *   - text: TF-IDF over title, hashtags and content, cosine similarity;
 *   - image: a joint RGB colour histogram of the cover, cosine similarity.
 * Neither is trained; both produce one L2-normalised Float32Array row per note. On `synth`
 * the text baseline is near chance on `visual` pairs and strong on `text` pairs, the image
 * baseline the other way round (test/data/synth.test.ts asserts it).
 *
 * Scoring them is the reference recall protocol's job (src/eval/recall.ts); the CLI joins
 * the two (`data` must not depend on `eval`), and formatDatasetSummary prints the result.
 */
import { join } from 'node:path';
import sharp from 'sharp';
import type { Note, Pair } from './schema';
import { evaluationSubsets, noteTextLength, subsetCounts, type EvaluationSubsets, type SplitResult } from './splits';
import { mapLimit, type WriteSummary } from './write';

/** One L2-normalised embedding row per note. */
export interface NoteVectors {
  ids: string[];
  /** rows[i] is the embedding of ids[i]; every row has the same length. */
  rows: Float32Array[];
}

function normalizeInPlace(v: Float32Array): Float32Array {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  if (s > 0) {
    const inv = 1 / Math.sqrt(s);
    for (let i = 0; i < v.length; i++) v[i] *= inv;
  }
  return v;
}

/** Lower-cased letter/digit runs (any script). */
export function wordTokens(text: string): string[] {
  return text.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter((t) => t !== '');
}

/**
 * TF-IDF embeddings of the notes' text (title, hashtags, content). Sublinear tf (1 + ln tf),
 * smoothed idf ln((1 + N) / (1 + df)) + 1 fitted on the notes given, rows L2-normalised.
 * A note without words gets a zero row (similar to nothing).
 */
export function tfidfEmbeddings(notes: readonly Note[]): NoteVectors {
  const docs = notes.map((n) => wordTokens([n.title, n.topics.join(' '), n.content].join(' ')));
  const vocab = new Map<string, number>();
  const df: number[] = [];
  for (const doc of docs) {
    for (const t of new Set(doc)) {
      let j = vocab.get(t);
      if (j === undefined) { vocab.set(t, (j = vocab.size)); df.push(0); }
      df[j]++;
    }
  }
  const N = notes.length;
  const idf = df.map((d) => Math.log((1 + N) / (1 + d)) + 1);
  const rows = docs.map((doc) => {
    const tf = new Map<number, number>();
    for (const t of doc) { const j = vocab.get(t)!; tf.set(j, (tf.get(j) ?? 0) + 1); }
    const v = new Float32Array(vocab.size);
    for (const [j, c] of tf) v[j] = (1 + Math.log(c)) * idf[j];
    return normalizeInPlace(v);
  });
  return { ids: notes.map((n) => n.id), rows };
}

export interface HistogramOptions {
  /** Bins per RGB channel (the histogram has bins³ entries). Defaults to 4. */
  bins?: number;
  /** Images are resized to size×size before counting. Defaults to 32. */
  size?: number;
  /** Images decoded at once. Defaults to 8. */
  concurrency?: number;
}

/**
 * Colour-histogram embeddings: each image (a path or encoded bytes, transparent parts put on
 * white) resized to size×size, a joint RGB histogram with `bins` levels per channel, square
 * root of the pixel shares (so a large background does not swamp the cosine), L2-normalised.
 */
export async function colourHistogramEmbeddings(
  notes: readonly Note[],
  image: (note: Note) => string | Buffer | Promise<string | Buffer>,
  opts: HistogramOptions = {},
): Promise<NoteVectors> {
  const bins = opts.bins ?? 4;
  const size = opts.size ?? 32;
  const rows = await mapLimit(notes, opts.concurrency ?? 8, async (n) => {
    const src = await image(n);
    const data = await sharp(src)
      .flatten({ background: '#ffffff' })
      .resize(size, size, { fit: 'fill' })
      .removeAlpha()
      .raw()
      .toBuffer();
    const h = new Float32Array(bins * bins * bins);
    const q = (x: number) => Math.min(bins - 1, Math.floor((x * bins) / 256));
    for (let i = 0; i < data.length; i += 3) h[(q(data[i]) * bins + q(data[i + 1])) * bins + q(data[i + 2])]++;
    for (let i = 0; i < h.length; i++) h[i] = Math.sqrt(h[i] / (size * size));
    return normalizeInPlace(h);
  });
  return { ids: notes.map((n) => n.id), rows };
}

// ---------------------------------------------------------------------------------------
// Dataset summary (what `notellm2 data synth|openmoji` print)

export interface TextLengthStats {
  /** Title + content length in code points. */
  mean: number;
  median: number;
  p10: number;
  p90: number;
  /** Share of notes with no body text. */
  emptyBody: number;
}

export function textLengthStats(notes: readonly Note[], lengthOf: (n: Note) => number): TextLengthStats {
  const lens = notes.map(lengthOf).sort((a, b) => a - b);
  const at = (q: number) => (lens.length ? lens[Math.min(lens.length - 1, Math.floor(q * lens.length))] : NaN);
  return {
    mean: lens.reduce((s, x) => s + x, 0) / Math.max(1, lens.length),
    median: at(0.5),
    p10: at(0.1),
    p90: at(0.9),
    emptyBody: notes.filter((n) => n.content === '').length / Math.max(1, notes.length),
  };
}

/** Recall of one embedding under the reference protocol, overall and per subset. */
export interface BaselineRecall {
  /** Kept pairs (= queries). */
  queries: number;
  /** Candidate pool size (test notes minus queries). */
  pool: number;
  /** "R@K" → share of queries whose partner ranks below K. */
  recall: Record<string, number>;
  subsets: Record<string, { queries: number; recall: Record<string, number> }>;
}

export interface DatasetSummary {
  name: string;
  dir: string;
  notes: { train: number; val: number; test: number };
  pairs: { train: number; val: number; test: number };
  /** Pairs dropped by the split (crossing splits, unknown notes, duplicates). */
  dropped: Record<string, number>;
  /** Short/long threshold (characters) and test pairs per subset. */
  subsetThreshold: number;
  subsetPairs: Record<string, number>;
  text: TextLengthStats;
  /** Baseline name → recall under the reference protocol, overall and per subset. */
  baselines: Record<string, BaselineRecall>;
  seconds: { build: number; images: number; baselines: number };
  /** Anything else worth printing (e.g. pair-builder statistics). */
  extra: Record<string, unknown>;
}

/** Names of the two baselines, as printed. */
export const BASELINES = ['tfidf-text', 'colour-histogram-image'] as const;
export type BaselineName = (typeof BASELINES)[number];

/** Both baselines' embeddings of the given notes (the test notes, for the recall protocol). */
export async function baselineEmbeddings(
  notes: readonly Note[],
  image: (note: Note) => string | Buffer | Promise<string | Buffer>,
): Promise<Record<BaselineName, NoteVectors>> {
  return { 'tfidf-text': tfidfEmbeddings(notes), 'colour-histogram-image': await colourHistogramEmbeddings(notes, image) };
}

/**
 * A built dataset, in memory: what the summary and the baselines need without re-reading
 * the folder.
 */
export interface BuiltDataset {
  summary: DatasetSummary;
  notes: ReadonlyMap<string, Note>;
  testNoteIds: readonly string[];
  testPairs: readonly Pair[];
  subsets: EvaluationSubsets;
  /** Path of a note's image file in the written folder. */
  imageFile: (note: Note) => string;
}

export interface GeneratedSummaryFields {
  name: string;
  /** performance.now() when the build began. */
  t0: number;
  /** Short/long text threshold of the subsets (characters). Defaults to the median. */
  lengthThreshold?: number;
  dropped: Record<string, number>;
  extra: Record<string, unknown>;
}

/**
 * A generated dataset (synth, openmoji) just written to its folder, as a BuiltDataset: the
 * summary the CLI prints (baselines left empty: scoring them is the recall protocol's job,
 * see cli/data.ts) and the test notes, pairs and subsets.
 */
export function generatedDataset<D extends { notes: Note[] }>(data: D, split: SplitResult, written: WriteSummary, f: GeneratedSummaryFields): BuiltDataset & { data: D } {
  const buildSeconds = (performance.now() - f.t0) / 1000;
  const byId = new Map(data.notes.map((n) => [n.id, n]));
  const subsets = evaluationSubsets(byId, split.pairs.test, { threshold: f.lengthThreshold });
  const summary: DatasetSummary = {
    name: f.name,
    dir: written.dir,
    notes: { train: split.notes.train.length, val: split.notes.val.length, test: split.notes.test.length },
    pairs: { train: split.pairs.train.length, val: split.pairs.val.length, test: split.pairs.test.length },
    dropped: f.dropped,
    subsetThreshold: subsets.threshold,
    subsetPairs: subsetCounts(split.pairs.test, subsets),
    text: textLengthStats(data.notes, noteTextLength),
    baselines: {},
    seconds: { build: buildSeconds, images: written.imageSeconds, baselines: 0 },
    extra: f.extra,
  };
  return {
    data,
    summary,
    notes: byId,
    testNoteIds: split.notes.test,
    testPairs: split.pairs.test,
    subsets,
    imageFile: (n) => join(written.dir, 'images_test', `${n.imageId}.png`),
  };
}

const pct = (x: number) => (Number.isFinite(x) ? (100 * x).toFixed(1).padStart(5) : '    -');

/** Human-readable summary: sizes, subsets, text lengths, baseline recall table, times. */
export function formatDatasetSummary(s: DatasetSummary): string {
  const out: string[] = [];
  out.push(`dataset ${s.name} → ${s.dir}`);
  out.push(`notes:  train ${s.notes.train}, val ${s.notes.val}, test ${s.notes.test} (val notes are written to notes_train.csv)`);
  out.push(`pairs:  train ${s.pairs.train}, val ${s.pairs.val}, test ${s.pairs.test}; dropped ${Object.entries(s.dropped).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  for (const [k, v] of Object.entries(s.extra)) out.push(`${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  out.push(
    `text:   title+content chars mean ${s.text.mean.toFixed(1)}, median ${s.text.median}, p10 ${s.text.p10}, p90 ${s.text.p90}; ` +
      `empty body ${(100 * s.text.emptyBody).toFixed(1)}%`,
  );
  out.push(`test subsets (short ≤ ${s.subsetThreshold} chars): ${Object.entries(s.subsetPairs).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  for (const [name, r] of Object.entries(s.baselines)) {
    const ks = Object.keys(r.recall);
    out.push(`baseline ${name}: ${r.queries} queries, pool ${r.pool}; recall % (chance R@K ≈ K/pool)`);
    out.push(`  ${'subset'.padEnd(14)} ${'n'.padStart(5)} ${ks.map((k) => k.padStart(6)).join(' ')}`);
    const row = (label: string, n: number, rec: Record<string, number>) =>
      out.push(`  ${label.padEnd(14)} ${String(n).padStart(5)} ${ks.map((k) => ' ' + pct(rec[k])).join(' ')}`);
    row('all', r.queries, r.recall);
    for (const [sub, v] of Object.entries(r.subsets)) row(sub, v.queries, v.recall);
  }
  out.push(`time:   build ${s.seconds.build.toFixed(1)} s (images ${s.seconds.images.toFixed(1)} s)` + (Object.keys(s.baselines).length ? `, baselines ${s.seconds.baselines.toFixed(1)} s` : ''));
  return out.join('\n');
}
