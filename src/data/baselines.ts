/**
 * Two single-modality baselines that show what each evaluation subset measures:
 *   - text: TF-IDF over title, hashtags and content, cosine similarity;
 *   - image: a joint RGB colour histogram of the cover, cosine similarity.
 * Neither is trained; both produce one L2-normalised Float32Array row per note. On `synth`
 * the text baseline is near chance on `visual` pairs and strong on `text` pairs, the image
 * baseline the other way round (test/data/synth.test.ts asserts it).
 *
 * Scoring them is the reference recall protocol's job (src/eval/recall.ts); the CLI joins
 * the two (`data` must not depend on `eval`), and formatDatasetSummary (summary.ts) prints the result.
 */
import type { Note } from './schema';
import { decodeImage } from './images';
import { mapPool } from '../backend/pool';

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
 * white) decoded as the model's images are (short side to size×size, centre crop), a joint RGB
 * histogram with `bins` levels per channel, square root of the pixel shares (so a large
 * background does not swamp the cosine), L2-normalised.
 */
export async function colourHistogramEmbeddings(
  notes: readonly Note[],
  image: (note: Note) => string | Buffer | Promise<string | Buffer>,
  opts: HistogramOptions = {},
): Promise<NoteVectors> {
  const bins = opts.bins ?? 4;
  const size = opts.size ?? 32;
  const rows = await mapPool(notes, opts.concurrency ?? 8, async (n) => {
    // The one decode path (images.ts: SVGs drawn at the size needed, the pixel limit).
    const data = await decodeImage(await image(n), size);
    const h = new Float32Array(bins * bins * bins);
    const q = (x: number) => Math.min(bins - 1, Math.floor((x * bins) / 256));
    for (let i = 0; i < data.length; i += 3) h[(q(data[i]) * bins + q(data[i + 1])) * bins + q(data[i + 2])]++;
    for (let i = 0; i < h.length; i++) h[i] = Math.sqrt(h[i] / (size * size));
    return normalizeInPlace(h);
  });
  return { ids: notes.map((n) => n.id), rows };
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
