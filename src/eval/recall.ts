/**
 * The reference recall protocol (docs/method.md "Evaluation protocol", the reference `eval_recall`):
 *
 * 1. Walk the test pairs in order; keep a pair only if neither of its notes was already used
 *    as a query or as a target, so every note appears at most once among the kept pairs.
 * 2. Queries = the first notes of the kept pairs. Candidate pool = all test notes except the
 *    queries (the kept targets are in it, as are notes of skipped pairs and unpaired notes).
 * 3. Rank the pool by cosine similarity to each query. Recall@K = the share of queries whose
 *    partner ranks < K (0-based), for K in 10, 20, 50, 100, 1k, 10k, 100k, 1M below the pool size.
 * 4. The same numbers on subsets of the kept pairs (short/long query or target, pair labels).
 *
 * Ties: the partner's rank is the number of pool notes scoring strictly higher (`higher`);
 * notes scoring exactly the same (`ties`) are ordered at random by a sort, so by default a
 * query counts as the expectation of a random tie order (hit 1 if higher + ties < K, 0 if
 * higher ≥ K, else (K − higher)/(ties + 1)). A collapsed model whose embeddings are all equal
 * then scores about K/poolSize, as chance would, not 100 %. 'optimistic' counts only `higher`,
 * 'pessimistic' counts all ties ahead of the partner.
 *
 * A second protocol, 'all-pairs' (docs/method.md "Evaluation protocol"), uses every test pair
 * in both directions as a query, with the pool every test note except the query itself: many
 * more queries from the same notes, so tighter intervals. Both directions of one pair are
 * dependent, so they form one resampling cluster (`clusters`, for eval/stats.ts).
 *
 * Compute: the L2-normalised pool is transposed once to [D, N] and uploaded; queries go
 * through in chunks [c, D] × [D, N] (no transposed matMul, which wasm runs slowly), and the
 * counting happens on the backend, so memory stays at c·N scores for any pool size.
 */
import { tf } from '../backend';
import type { Pair } from '../data/schema';

/** docs/method.md's K values; only those below the pool size are reported. */
export const RECALL_KS: readonly number[] = [10, 20, 50, 100, 1_000, 10_000, 100_000, 1_000_000];

/** Which queries and pool (see the file comment); 'reference' is the paper's. */
export type RecallProtocol = 'reference' | 'all-pairs';
export const RECALL_PROTOCOLS: readonly RecallProtocol[] = ['reference', 'all-pairs'];

export type TieMode = 'expected' | 'optimistic' | 'pessimistic';
export const TIE_MODES: readonly TieMode[] = ['expected', 'optimistic', 'pessimistic'];

/** Embeddings as rows: `vectors` is [ids.length, dim] row-major. EmbeddingCatalogue is one. */
export interface EmbeddingTable {
  readonly ids: readonly string[];
  readonly vectors: Float32Array;
  readonly dim: number;
}
export type EmbeddingSource = EmbeddingTable | ReadonlyMap<string, Float32Array>;

/** A pair the protocol kept: its position in the input, query (a) and target (b). */
export interface KeptPair {
  index: number;
  query: string;
  target: string;
  pair: Pair;
}

export interface RecallMetrics {
  nQueries: number;
  /** "R@10" → share in [0, 1]; NaN when the subset has no queries. */
  recall: Record<string, number>;
}

export interface RecallResult extends RecallMetrics {
  /** The K values reported (those of `ks` below the pool size). */
  k: number[];
  poolSize: number;
  /** Pairs given, and how many the dedupe walk kept (= nQueries). */
  nPairs: number;
  tieMode: TieMode;
  /** Per subset name: queries in the subset and its recall. */
  subsets: Record<string, RecallMetrics>;
  protocol: RecallProtocol;
  /** The kept pairs, in order; ranks[i] and ties[i] belong to kept[i]. Under 'all-pairs', each pair twice (a → b, then b → a). */
  kept: KeptPair[];
  /** Per subset name: indices into `kept` of its queries. */
  subsetQueries: Record<string, number[]>;
  /** 'all-pairs' only: resampling cluster of each query (the index of its unordered pair). */
  clusters?: Int32Array;
  /** Pool notes scoring strictly higher than the partner (0 = partner ranked first). */
  ranks: Int32Array;
  /** Other pool notes scoring exactly the partner's score. */
  ties: Int32Array;
}

export interface RecallOptions {
  /**
   * All test notes (the pool is these minus the queries). Defaults to every id of
   * `embeddings` (pass the catalogue of the test notes, or name them here).
   */
  notes?: readonly string[];
  /** Defaults to RECALL_KS. */
  ks?: readonly number[];
  /** Subsets of the kept pairs by name, e.g. evaluationSubsets(...).predicates from data/. */
  subsets?: Record<string, (pair: Pair) => boolean>;
  /** Defaults to 'expected' (see the file comment). */
  ties?: TieMode;
  /** Scores held at once, c·N; bounds memory. Defaults to 2²² (16 MB of float32). */
  chunkElements?: number;
  /** Defaults to 'reference'. */
  protocol?: RecallProtocol;
}

/** Step 1 of the protocol: the dedupe walk. Self-pairs (a = b) are never kept. */
export function keepPairs(pairs: readonly Pair[]): KeptPair[] {
  const used = new Set<string>();
  const kept: KeptPair[] = [];
  pairs.forEach((pair, index) => {
    const { a, b } = pair;
    if (a === b || used.has(a) || used.has(b)) return;
    used.add(a);
    used.add(b);
    kept.push({ index, query: a, target: b, pair });
  });
  return kept;
}

/**
 * The queries of the 'all-pairs' protocol: every distinct unordered test pair (self-pairs and
 * repeats, in either direction, left out), as a → b and then b → a; `cluster` is the pair's
 * position among the distinct pairs.
 */
export function allPairQueries(pairs: readonly Pair[]): Array<KeptPair & { cluster: number }> {
  const seen = new Set<string>();
  const out: Array<KeptPair & { cluster: number }> = [];
  pairs.forEach((pair, index) => {
    const { a, b } = pair;
    const key = a < b ? `${a}\u0000${b}` : `${b}\u0000${a}`;
    if (a === b || seen.has(key)) return;
    const cluster = seen.size;
    seen.add(key);
    out.push({ index, query: a, target: b, pair, cluster });
    out.push({ index, query: b, target: a, pair: { ...pair, a: b, b: a }, cluster });
  });
  return out;
}

/** Resolves an embedding source to a lookup by id (views into the table, no copies). */
function lookupOf(source: EmbeddingSource): { dim: number; ids: readonly string[]; get(id: string): Float32Array | undefined } {
  if (!('vectors' in source)) {
    const map = source;
    const first = map.values().next();
    const dim = first.done ? 0 : first.value.length;
    return { dim, ids: [...map.keys()], get: (id) => map.get(id) };
  }
  const t = source as EmbeddingTable;
  const index = new Map<string, number>();
  t.ids.forEach((id, i) => index.set(id, i));
  return {
    dim: t.dim,
    ids: t.ids,
    get: (id) => {
      const i = index.get(id);
      return i === undefined ? undefined : t.vectors.subarray(i * t.dim, (i + 1) * t.dim);
    },
  };
}

/** Copies rows into one [n, dim] Float32Array, each L2-normalised (zero rows stay zero). */
export function normalizedRows(rows: readonly Float32Array[], dim: number): Float32Array {
  const out = new Float32Array(rows.length * dim);
  rows.forEach((r, i) => {
    let s = 0;
    for (let k = 0; k < dim; k++) s += r[k] * r[k];
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let k = 0; k < dim; k++) out[i * dim + k] = r[k] * inv;
  });
  return out;
}

/** [n, dim] → [dim, n] (row-major both). */
export function transposeRows(x: Float32Array, n: number, dim: number): Float32Array {
  const out = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) for (let k = 0; k < dim; k++) out[k * n + i] = x[i * dim + k];
  return out;
}

/**
 * For each query row, counts the pool columns scoring strictly higher than, and exactly equal
 * to (itself excluded), the column `partner[i]`. Scores are dot products of the given rows
 * (normalise first for cosine).
 *
 * @param queries [Q, D] row-major
 * @param poolT   [D, N] tensor (the pool, transposed once by the caller)
 * @param partner [Q] column of each query's partner in the pool
 * @param exclude [Q] a column each query leaves out of its pool (the query itself under
 *                'all-pairs'); absent: none
 */
export async function countAbovePartner(
  queries: Float32Array,
  poolT: tf.Tensor2D,
  partner: Int32Array,
  chunkElements = 1 << 22,
  exclude?: Int32Array,
): Promise<{ higher: Int32Array; ties: Int32Array }> {
  const [D, N] = poolT.shape;
  const Q = partner.length;
  if (N > 1 << 24) throw new Error(`countAbovePartner: pool of ${N} notes exceeds 2^24, where float32 counts stop being exact`);
  if (queries.length !== Q * D) throw new Error(`countAbovePartner: queries hold ${queries.length} values, expected ${Q}×${D}`);
  if (exclude) {
    if (exclude.length !== Q) throw new Error(`countAbovePartner: ${exclude.length} excluded columns for ${Q} queries`);
    exclude.forEach((x, i) => {
      if (x >= N || x === partner[i]) throw new Error(`countAbovePartner: query ${i} excludes column ${x}: its partner, or outside the pool of ${N}`);
    });
  }
  const higher = new Int32Array(Q);
  const ties = new Int32Array(Q);
  const rows = Math.max(1, Math.floor(chunkElements / Math.max(1, N)));
  for (let start = 0; start < Q; start += rows) {
    const c = Math.min(rows, Q - start);
    const idx = new Int32Array(c * 2);
    for (let i = 0; i < c; i++) {
      idx[2 * i] = i;
      idx[2 * i + 1] = partner[start + i];
    }
    const [gt, lt, ex] = tf.tidy(() => {
      const q = tf.tensor2d(queries.subarray(start * D, (start + c) * D), [c, D]);
      const s = tf.matMul(q, poolT); // [c, N] cosine scores
      // The partner's score read from the same matrix, so it compares equal to itself.
      const own = tf.expandDims(tf.gatherND(s, tf.tensor2d(idx, [c, 2], 'int32')), 1); // [c, 1]
      // Counting through the sign of s − own: for finite floats a − b > 0 exactly when a > b,
      // and step + float sum (exact below 2^24) runs ~30x faster on wasm than greater/cast/sum.
      const d = tf.sub(s, own); // [c, N]
      const counts = [tf.sum(tf.step(d), 1), tf.sum(tf.step(tf.neg(d)), 1)]; // [c] above, [c] below
      if (!exclude) return counts;
      // The excluded column's entry of d: its sign says whether it was counted above or level.
      const cols = new Int32Array(c * 2);
      for (let i = 0; i < c; i++) cols.set([i, Math.max(0, exclude[start + i])], 2 * i);
      return [...counts, tf.sign(tf.gatherND(d, tf.tensor2d(cols, [c, 2], 'int32')))];
    });
    const [g, l] = await Promise.all([gt.data(), lt.data()]);
    const excluded = ex ? await ex.data() : undefined;
    tf.dispose([gt, lt, ...(ex ? [ex] : [])]);
    for (let i = 0; i < c; i++) {
      if (!Number.isFinite(g[i]) || !Number.isFinite(l[i])) {
        throw new Error(`countAbovePartner: query ${start + i} has non-finite scores (NaN or infinite embeddings?)`);
      }
      higher[start + i] = g[i];
      ties[start + i] = N - g[i] - l[i] - 1; // equal scores, the partner itself excluded
      if (excluded && exclude![start + i] >= 0) {
        if (excluded[i] > 0) higher[start + i]--;
        else if (excluded[i] === 0) ties[start + i]--;
      }
    }
  }
  return { higher, ties };
}

/** Contribution of one query to Recall@K under a tie mode. */
export function hitAt(k: number, higher: number, ties: number, mode: TieMode): number {
  switch (mode) {
    case 'optimistic':
      return higher < k ? 1 : 0;
    case 'pessimistic':
      return higher + ties < k ? 1 : 0;
    case 'expected':
      if (higher >= k) return 0;
      if (higher + ties < k) return 1;
      return (k - higher) / (ties + 1);
    default: {
      const never: never = mode;
      throw new Error(`recall: ties "${never}" is not one of ${TIE_MODES.join(', ')}`);
    }
  }
}

function metricsOver(which: readonly number[], ks: readonly number[], higher: Int32Array, ties: Int32Array, mode: TieMode): RecallMetrics {
  const recall: Record<string, number> = {};
  for (const k of ks) {
    let s = 0;
    for (const i of which) s += hitAt(k, higher[i], ties[i], mode);
    recall[`R@${k}`] = which.length ? s / which.length : NaN;
  }
  return { nQueries: which.length, recall };
}

/** Runs the whole protocol; see the file comment. */
export async function evaluateRecall(
  pairs: readonly Pair[],
  embeddings: EmbeddingSource,
  options: RecallOptions = {},
): Promise<RecallResult> {
  const mode = options.ties ?? 'expected';
  if (!TIE_MODES.includes(mode)) throw new Error(`recall: ties "${mode}" is not one of ${TIE_MODES.join(', ')}`);
  const lookup = lookupOf(embeddings);
  const dim = lookup.dim;
  const vec = (id: string, role: string): Float32Array => {
    const v = lookup.get(id);
    if (!v) throw new Error(`recall: no embedding for ${role} "${id}"`);
    if (v.length !== dim) throw new Error(`recall: embedding of "${id}" has ${v.length} values, expected ${dim}`);
    return v;
  };

  const protocol = options.protocol ?? 'reference';
  if (!RECALL_PROTOCOLS.includes(protocol)) throw new Error(`recall: protocol "${protocol}" is not one of ${RECALL_PROTOCOLS.join(', ')}`);
  const universe = options.notes ?? lookup.ids;
  const pool: string[] = [];
  const poolIndex = new Map<string, number>();
  const addToPool = (id: string) => {
    if (poolIndex.has(id)) return;
    poolIndex.set(id, pool.length);
    pool.push(id);
  };
  let kept: KeptPair[];
  let clusters: Int32Array | undefined;
  let exclude: Int32Array | undefined;
  if (protocol === 'reference') {
    kept = keepPairs(pairs);
    const queryIds = new Set(kept.map((p) => p.query));
    for (const id of universe) if (!queryIds.has(id)) addToPool(id);
  } else {
    const all = allPairQueries(pairs);
    kept = all;
    clusters = Int32Array.from(all, (q) => q.cluster);
    for (const id of universe) addToPool(id);
    exclude = Int32Array.from(all, (q) => {
      const col = poolIndex.get(q.query);
      if (col === undefined) throw new Error(`recall: query "${q.query}" of test pair ${q.index} is not among the test notes (${universe.length} given)`);
      return col;
    });
  }
  const partner = new Int32Array(kept.length);
  kept.forEach((p, i) => {
    const col = poolIndex.get(p.target);
    if (col === undefined) {
      throw new Error(`recall: target "${p.target}" of test pair ${p.index} is not among the test notes (${universe.length} given)`);
    }
    partner[i] = col;
  });

  // Candidates a query is ranked against: the pool, less the query itself under 'all-pairs'.
  const N = protocol === 'reference' ? pool.length : pool.length - 1;
  const ks = (options.ks ?? RECALL_KS).filter((k) => k < N);
  const queries = normalizedRows(kept.map((p) => vec(p.query, `query of test pair ${p.index}`)), dim);
  let higher = new Int32Array(0), ties = new Int32Array(0);
  if (kept.length > 0) {
    const poolT = tf.tensor2d(transposeRows(normalizedRows(pool.map((id) => vec(id, 'pool note')), dim), pool.length, dim), [dim, pool.length]);
    try {
      ({ higher, ties } = await countAbovePartner(queries, poolT, partner, options.chunkElements, exclude));
    } finally {
      poolT.dispose();
    }
  }

  const all = kept.map((_, i) => i);
  const overall = metricsOver(all, ks, higher, ties, mode);
  const subsets: Record<string, RecallMetrics> = {};
  const subsetQueries: Record<string, number[]> = {};
  for (const [name, pred] of Object.entries(options.subsets ?? {})) {
    subsetQueries[name] = all.filter((i) => pred(kept[i].pair));
    subsets[name] = metricsOver(subsetQueries[name], ks, higher, ties, mode);
  }
  return {
    k: ks,
    recall: overall.recall,
    nQueries: kept.length,
    poolSize: N,
    nPairs: pairs.length,
    tieMode: mode,
    protocol,
    subsets,
    kept,
    subsetQueries,
    ...(clusters && { clusters }),
    ranks: higher,
    ties,
  };
}
