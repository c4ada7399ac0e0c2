/**
 * An embedding catalogue: note ids and their vectors [N, D], saved as
 * `<dir>/embeddings.safetensors` (tensor "embeddings", metadata count/dim) plus
 * `<dir>/ids.json`, with cosine nearest-neighbour queries (I2I recommendation is exactly
 * this lookup, docs/method.md "Overview").
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { tf } from '../backend';
import { readJsonFile, readSafetensors, writeJsonAtomic, writeSafetensors } from '../model/checkpoint';
import { siftDown, siftUp } from '../data/heap';
import { normalizedRows, transposeRows, type EmbeddingTable } from './recall';

export const CATALOGUE_FILES = { embeddings: 'embeddings.safetensors', ids: 'ids.json' } as const;

export interface CatalogueHit {
  id: string;
  /** Row in the catalogue. */
  index: number;
  /** Cosine similarity to the query. */
  score: number;
}

export interface NearestOptions {
  /** Ids never returned (e.g. notes the user has seen). */
  exclude?: Iterable<string>;
  /** When the query is an id, leave that note out of its own results. Defaults to true. */
  excludeSelf?: boolean;
  /** Scores held at once (queries × N). Defaults to 2²². */
  chunkElements?: number;
}

export class EmbeddingCatalogue implements EmbeddingTable {
  readonly ids: readonly string[];
  /** [N, dim] row-major, as given (not normalised). */
  readonly vectors: Float32Array;
  readonly dim: number;
  private readonly index = new Map<string, number>();
  private normT: Float32Array | undefined; // [dim, N] normalised, built on first query

  constructor(ids: readonly string[], vectors: Float32Array, dim: number) {
    if (!Number.isInteger(dim) || dim < 1) throw new Error(`EmbeddingCatalogue: dim must be a positive integer, got ${dim}`);
    if (vectors.length !== ids.length * dim) {
      throw new Error(`EmbeddingCatalogue: ${ids.length} ids × dim ${dim} needs ${ids.length * dim} values, got ${vectors.length}`);
    }
    ids.forEach((id, i) => {
      if (this.index.has(id)) throw new Error(`EmbeddingCatalogue: id "${id}" appears twice (rows ${this.index.get(id)} and ${i})`);
      this.index.set(id, i);
    });
    this.ids = [...ids];
    this.vectors = vectors;
    this.dim = dim;
  }

  /** Builds a catalogue from id → vector entries (all of one length). */
  static fromEntries(entries: Iterable<readonly [string, ArrayLike<number>]>): EmbeddingCatalogue {
    const list = [...entries];
    const dim = list.length ? list[0][1].length : 1;
    const out = new Float32Array(list.length * dim);
    list.forEach(([id, v], i) => {
      if (v.length !== dim) throw new Error(`EmbeddingCatalogue.fromEntries: "${id}" has ${v.length} values, expected ${dim}`);
      out.set(v, i * dim);
    });
    return new EmbeddingCatalogue(list.map(([id]) => id), out, dim);
  }

  /** Builds a catalogue from a [N, D] tensor of embeddings (e.g. the model's output). */
  static async fromTensor(ids: readonly string[], embeddings: tf.Tensor2D): Promise<EmbeddingCatalogue> {
    const data = Float32Array.from(await embeddings.data());
    return new EmbeddingCatalogue(ids, data, embeddings.shape[1]);
  }

  get size(): number {
    return this.ids.length;
  }

  has(id: string): boolean {
    return this.index.has(id);
  }

  /** Row of `id`, or −1. */
  indexOf(id: string): number {
    return this.index.get(id) ?? -1;
  }

  /** The vector of `id` (a view into `vectors`). */
  vector(id: string): Float32Array {
    const i = this.index.get(id);
    if (i === undefined) throw new Error(`EmbeddingCatalogue: unknown id "${id}"`);
    return this.vectors.subarray(i * this.dim, (i + 1) * this.dim);
  }

  async save(dir: string, metadata: Record<string, string> = {}): Promise<void> {
    await mkdir(dir, { recursive: true });
    await writeSafetensors(
      join(dir, CATALOGUE_FILES.embeddings),
      { embeddings: { shape: [this.size, this.dim], data: this.vectors } },
      { ...metadata, count: String(this.size), dim: String(this.dim) },
    );
    await writeJsonAtomic(join(dir, CATALOGUE_FILES.ids), this.ids);
  }

  static async load(dir: string): Promise<EmbeddingCatalogue> {
    const path = join(dir, CATALOGUE_FILES.embeddings);
    const { tensors } = await readSafetensors(path);
    const t = tensors.embeddings;
    if (!t) throw new Error(`${path}: expected a tensor named "embeddings", found ${Object.keys(tensors).join(', ') || 'none'}`);
    if (!(t.data instanceof Float32Array) || t.shape.length !== 2) {
      throw new Error(`${path}: "embeddings" must be F32 [N, D], got ${t.data instanceof Float32Array ? 'F32' : 'I32'} ${JSON.stringify(t.shape)}`);
    }
    const idsPath = join(dir, CATALOGUE_FILES.ids);
    const ids = await readJsonFile(idsPath);
    if (!Array.isArray(ids) || !ids.every((x) => typeof x === 'string')) throw new Error(`${idsPath}: expected a JSON array of id strings`);
    if (ids.length !== t.shape[0]) throw new Error(`${idsPath}: ${ids.length} ids but ${path} holds ${t.shape[0]} rows`);
    return new EmbeddingCatalogue(ids, t.data, t.shape[1]);
  }

  /** The k most cosine-similar notes to one query (an id or a vector), best first. */
  async nearest(query: string | ArrayLike<number>, k: number, options: NearestOptions = {}): Promise<CatalogueHit[]> {
    return (await this.nearestMany([query], k, options))[0];
  }

  /**
   * Top-k by cosine for many queries at once: chunked [c, D] × [D, N] products. Ties are
   * broken by catalogue row (lower first), so results are deterministic.
   */
  async nearestMany(queries: readonly (string | ArrayLike<number>)[], k: number, options: NearestOptions = {}): Promise<CatalogueHit[][]> {
    if (!Number.isInteger(k) || k < 1) throw new Error(`EmbeddingCatalogue.nearest: k must be a positive integer, got ${k}`);
    const N = this.size, D = this.dim;
    if (N === 0) return queries.map(() => []);
    const excluded = new Set<number>();
    for (const id of options.exclude ?? []) {
      const i = this.index.get(id);
      if (i !== undefined) excluded.add(i);
    }
    const excludeSelf = options.excludeSelf ?? true;
    const selfRow = queries.map((q) => (typeof q === 'string' && excludeSelf ? this.index.get(q) ?? -1 : -1));
    const rows = queries.map((q) => {
      const v = typeof q === 'string' ? this.vector(q) : Float32Array.from(q);
      if (v.length !== D) throw new Error(`EmbeddingCatalogue.nearest: query has ${v.length} values, expected ${D}`);
      return v;
    });
    const qn = normalizedRows(rows, D);
    this.normT ??= transposeRows(normalizedRows(this.rowViews(), D), N, D);
    const out: CatalogueHit[][] = [];
    const chunk = Math.max(1, Math.floor((options.chunkElements ?? 1 << 22) / N));
    const poolT = tf.tensor2d(this.normT, [D, N]);
    try {
      for (let start = 0; start < rows.length; start += chunk) {
        const c = Math.min(chunk, rows.length - start);
        const s = tf.tidy(() => tf.matMul(tf.tensor2d(qn.subarray(start * D, (start + c) * D), [c, D]), poolT)); // [c, N]
        const scores = await s.data();
        s.dispose();
        for (let i = 0; i < c; i++) {
          out.push(topK(scores.subarray(i * N, (i + 1) * N) as Float32Array, k, excluded, selfRow[start + i]).map((j) => ({
            id: this.ids[j],
            index: j,
            score: scores[i * N + j],
          })));
        }
      }
    } finally {
      poolT.dispose();
    }
    return out;
  }

  private rowViews(): Float32Array[] {
    return this.ids.map((_, i) => this.vectors.subarray(i * this.dim, (i + 1) * this.dim));
  }
}

/** Indices of the k largest scores (higher score first, then lower index), skipping some. */
function topK(scores: Float32Array, k: number, excluded: Set<number>, self: number): number[] {
  // Min-heap of size k keyed by (score, −index): its root is the weakest kept candidate.
  const heap: number[] = [];
  const worse = (a: number, b: number) => scores[a] < scores[b] || (scores[a] === scores[b] && a > b);
  for (let j = 0; j < scores.length; j++) {
    if (j === self || excluded.has(j)) continue;
    if (heap.length < k) {
      heap.push(j);
      siftUp(heap, heap.length - 1, worse);
    } else if (worse(heap[0], j)) {
      heap[0] = j;
      siftDown(heap, 0, worse);
    }
  }
  return heap.sort((a, b) => (worse(a, b) ? 1 : worse(b, a) ? -1 : 0));
}
