/**
 * Uncertainty of recall figures (docs/method.md "Uncertainty and paired comparisons").
 *
 * A recall figure is a mean over queries of per-query hits (recall.ts: `hitAt`), and, over
 * several training seeds, a mean of those means. Two sources of noise follow: which test
 * queries happened to be drawn, and which seed trained the model. Both are resampled:
 *
 * - **Intervals** (`QueryBootstrap.interval`): percentile bootstrap. A replicate draws the
 *   queries with replacement (whole clusters, when queries come in dependent groups) and,
 *   for each trained variant, its seeds with replacement; its value is the mean over the
 *   drawn seeds of the mean over the drawn queries. Every variant is evaluated on the same
 *   queries, so one query draw serves every arm of a replicate: differences between arms are
 *   paired at the query level. Arms of one trained model (its full input and its probes)
 *   share their seed draw too. With one seed this is the plain query bootstrap.
 * - **Paired differences** (`QueryBootstrap.differences`): the interval of a − b from the
 *   same replicates, and a two-sided p-value from a sign-flip permutation test on the
 *   per-query differences of the seed means (each cluster's summed difference flipped as a
 *   whole); exact by enumeration when there are few clusters, Monte Carlo (with the +1
 *   correction) otherwise.
 * - **Group contrasts** (`labelPermutationTest`): whether a per-query quantity differs between
 *   two disjoint groups of queries (e.g. short and long query texts), by permuting the labels.
 *
 * Everything is seeded: the same inputs and seed give the same intervals and p-values.
 */
import { Rng } from '../backend/rng';

/** Coverage of every interval unless told otherwise. */
export const DEFAULT_LEVEL = 0.95;
/** Bootstrap replicates: the percentile interval's Monte Carlo error is then well below its width. */
export const DEFAULT_REPLICATES = 1000;
/** Random sign patterns or label permutations of a Monte Carlo permutation test (p resolution ≈ 0.001). */
export const DEFAULT_PERMUTATIONS = 1000;
/** Sign-flip tests over at most this many clusters enumerate all 2^n patterns (exact p). */
export const EXACT_SIGN_FLIP_MAX = 12;

export interface Estimate {
  estimate: number;
  lo: number;
  hi: number;
}

export interface TestedEstimate extends Estimate {
  /** Two-sided p-value of "no difference". */
  p: number;
}

/** Quantile q ∈ [0, 1] of sorted values, linear interpolation between order statistics (R's type 7). */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const h = (n - 1) * Math.min(1, Math.max(0, q));
  const lo = Math.floor(h);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

/** The central `level` interval of a sample of replicates (NaN entries ignored; [NaN, NaN] when none). */
export function percentileInterval(values: ArrayLike<number>, level = DEFAULT_LEVEL): [number, number] {
  if (!(level > 0 && level < 1)) throw new Error(`percentileInterval: level must be in (0, 1), got ${level}`);
  const ok = Float64Array.from(Array.prototype.filter.call(values, (v: number) => !Number.isNaN(v)) as number[]).sort();
  if (ok.length === 0) return [NaN, NaN];
  const a = (1 - level) / 2;
  return [quantileSorted(ok, a), quantileSorted(ok, 1 - a)];
}

/** Queries grouped into resampling clusters: `members[c]` are the query indices of cluster c. */
interface Clusters {
  members: number[][];
}

/** Groups `indices` by their cluster id (first appearance order); no ids: every query its own cluster. */
function clustersOf(indices: readonly number[], clusterIds?: ArrayLike<number>): Clusters {
  if (!clusterIds) return { members: indices.map((i) => [i]) };
  const byId = new Map<number, number[]>();
  for (const i of indices) {
    const c = clusterIds[i];
    const list = byId.get(c);
    if (list) list.push(i);
    else byId.set(c, [i]);
  }
  return { members: [...byId.values()] };
}

/**
 * Two-sided sign-flip permutation test of "the per-query differences are symmetric about 0".
 * `diffs[q]` is query q's difference; with `clusters`, the summed difference of each cluster is
 * flipped as a unit. The statistic is the sum (equivalently the mean) of the differences;
 * p = share of sign patterns whose |sum| reaches the observed one — all 2^n patterns when there
 * are at most EXACT_SIGN_FLIP_MAX clusters (exact), else `resamples` random patterns,
 * p = (1 + hits) / (1 + resamples).
 */
export function signFlipTest(
  diffs: ArrayLike<number>,
  opts: { clusters?: ArrayLike<number>; resamples?: number; seed?: number } = {},
): { statistic: number; p: number; exact: boolean } {
  const idx = Array.from({ length: diffs.length }, (_, i) => i);
  const sums = clustersOf(idx, opts.clusters).members.map((m) => m.reduce((s, q) => s + diffs[q], 0));
  const [r] = signFlipBatch([Float64Array.from(sums)], opts.resamples ?? DEFAULT_PERMUTATIONS, new Rng(opts.seed ?? 0));
  return { statistic: idx.length ? sums.reduce((a, b) => a + b, 0) / idx.length : NaN, ...r };
}

/**
 * Sign-flip p-values of several difference vectors over the same clusters at once (one shared
 * set of sign patterns, so a batch costs one pass). `sums[j][c]` is cluster c's summed
 * difference in comparison j.
 */
function signFlipBatch(sums: Float64Array[], resamples: number, rng: Rng): Array<{ p: number; exact: boolean }> {
  const n = sums[0]?.length ?? 0;
  const J = sums.length;
  if (n === 0) return sums.map(() => ({ p: NaN, exact: true }));
  const observed = sums.map((s) => Math.abs(s.reduce((a, b) => a + b, 0)));
  // Sums of the same numbers in another order may differ in the last bits; count those as ties.
  const tol = sums.map((s) => 1e-9 * Math.max(1, s.reduce((a, b) => a + Math.abs(b), 0)));
  const hits = new Float64Array(J);
  const exact = n <= EXACT_SIGN_FLIP_MAX;
  const patterns = exact ? 2 ** n : resamples;
  const signs = new Int8Array(n);
  for (let m = 0; m < patterns; m++) {
    if (exact) for (let c = 0; c < n; c++) signs[c] = (m >> c) & 1 ? -1 : 1;
    else for (let c = 0; c < n; c++) signs[c] = rng.next() < 0.5 ? -1 : 1;
    for (let j = 0; j < J; j++) {
      const s = sums[j];
      let t = 0;
      for (let c = 0; c < n; c++) t += signs[c] * s[c];
      if (Math.abs(t) >= observed[j] - tol[j]) hits[j]++;
    }
  }
  return Array.from(hits, (h) => ({ p: exact ? h / patterns : (1 + h) / (1 + patterns), exact }));
}

/**
 * Two-sided permutation test of "group A and group B have the same mean of `values`": the
 * statistic is mean(A) − mean(B); the labels of the pooled queries are permuted `resamples`
 * times (p = (1 + hits) / (1 + resamples)), or enumerated exactly when the pool has at most
 * EXACT_SIGN_FLIP_MAX members.
 */
export function labelPermutationTest(
  values: ArrayLike<number>,
  groupA: readonly number[],
  groupB: readonly number[],
  opts: { resamples?: number; seed?: number } = {},
): { statistic: number; p: number; exact: boolean } {
  const pool = Float64Array.from([...groupA, ...groupB].map((i) => values[i]));
  const nA = groupA.length;
  const n = pool.length;
  if (nA === 0 || nA === n) return { statistic: NaN, p: NaN, exact: true };
  const total = pool.reduce((a, b) => a + b, 0);
  const stat = (sumA: number) => sumA / nA - (total - sumA) / (n - nA);
  let sumA = 0;
  for (let i = 0; i < nA; i++) sumA += pool[i];
  const observed = Math.abs(stat(sumA));
  const tol = 1e-9 * Math.max(1, pool.reduce((a, b) => a + Math.abs(b), 0));
  let hits = 0;
  if (n <= EXACT_SIGN_FLIP_MAX) {
    let patterns = 0;
    for (let m = 0; m < 2 ** n; m++) {
      let count = 0;
      let s = 0;
      for (let i = 0; i < n; i++) if ((m >> i) & 1) { count++; s += pool[i]; }
      if (count !== nA) continue;
      patterns++;
      if (Math.abs(stat(s)) >= observed - tol) hits++;
    }
    return { statistic: stat(sumA), p: hits / patterns, exact: true };
  }
  const resamples = opts.resamples ?? DEFAULT_PERMUTATIONS;
  const rng = new Rng(opts.seed ?? 0);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let m = 0; m < resamples; m++) {
    // A partial Fisher–Yates shuffle: the first nA positions are a uniform random group A.
    let s = 0;
    for (let i = 0; i < nA; i++) {
      const j = i + rng.int(n - i);
      [order[i], order[j]] = [order[j], order[i]];
      s += pool[order[i]];
    }
    if (Math.abs(stat(s)) >= observed - tol) hits++;
  }
  return { statistic: stat(sumA), p: (1 + hits) / (1 + resamples), exact: false };
}

/** One arm of a bootstrap: a quantity measured per query under one or more seeds. */
export interface BootstrapArm {
  /** Arms of one unit (e.g. the full input and the probes of one trained variant) share their seed draws. */
  unit: string;
  /** values[s][q]: query q's contribution under seed s (for recall, its hit at K). */
  values: ArrayLike<number>[];
}

export interface BootstrapOptions {
  /** Replicates. Defaults to DEFAULT_REPLICATES. */
  replicates?: number;
  /** Sign patterns of the permutation test. Defaults to DEFAULT_PERMUTATIONS. */
  permutations?: number;
  /** Defaults to DEFAULT_LEVEL. */
  level?: number;
  /** Seed of every draw. Defaults to 0. */
  seed?: number;
  /** Cluster id of each query (dependent queries are resampled together). Defaults to one cluster per query. */
  clusters?: ArrayLike<number>;
}

interface SubsetDraw {
  /** Column of each arm's first seed in `means`. */
  column: Map<string, number>;
  /** Replicate × column: the mean over the drawn queries. */
  means: Float64Array;
  columns: number;
  clusters: Clusters;
}

/**
 * The bootstrap of docs/method.md "Uncertainty and paired comparisons" over a fixed set of
 * arms measured on the same queries. Subsets are lists of query indices under a name; the
 * name seeds the subset's query draws, so every call about one subset sees the same draws.
 */
export class QueryBootstrap {
  readonly nQueries: number;
  readonly replicates: number;
  readonly permutations: number;
  readonly level: number;
  private readonly seed: number;
  private readonly clusterIds?: ArrayLike<number>;
  private readonly arms = new Map<string, { unit: string; values: Float64Array[] }>();
  /** Per unit: B × S seed counts (how often each seed is drawn in each replicate). */
  private readonly seedCounts = new Map<string, { seeds: number; counts: Uint16Array }>();
  private readonly subsets = new Map<string, { indices: number[]; draw?: SubsetDraw }>();

  constructor(arms: Record<string, BootstrapArm>, opts: BootstrapOptions = {}) {
    this.replicates = opts.replicates ?? DEFAULT_REPLICATES;
    this.permutations = opts.permutations ?? DEFAULT_PERMUTATIONS;
    this.level = opts.level ?? DEFAULT_LEVEL;
    this.seed = opts.seed ?? 0;
    if (!Number.isInteger(this.replicates) || this.replicates < 1) throw new Error(`QueryBootstrap: replicates must be a positive integer, got ${this.replicates}`);
    if (!Number.isInteger(this.permutations) || this.permutations < 1) throw new Error(`QueryBootstrap: permutations must be a positive integer, got ${this.permutations}`);
    if (!(this.level > 0 && this.level < 1)) throw new Error(`QueryBootstrap: level must be in (0, 1), got ${this.level}`);
    const entries = Object.entries(arms);
    const n = entries[0]?.[1].values[0]?.length ?? 0;
    this.nQueries = n;
    for (const [name, arm] of entries) {
      if (arm.values.length === 0) throw new Error(`QueryBootstrap: arm "${name}" has no seeds`);
      for (const v of arm.values) {
        if (v.length !== n) throw new Error(`QueryBootstrap: arm "${name}" has ${v.length} queries, expected ${n} (every arm must be measured on the same queries)`);
      }
      const unit = this.seedCounts.get(arm.unit);
      if (unit && unit.seeds !== arm.values.length) {
        throw new Error(`QueryBootstrap: arms of unit "${arm.unit}" disagree on the number of seeds (${unit.seeds} vs ${arm.values.length} for "${name}")`);
      }
      if (!unit) this.seedCounts.set(arm.unit, { seeds: arm.values.length, counts: this.drawSeeds(arm.unit, arm.values.length) });
      this.arms.set(name, { unit: arm.unit, values: arm.values.map((v) => Float64Array.from(v)) });
    }
    if (opts.clusters && opts.clusters.length !== n) throw new Error(`QueryBootstrap: ${opts.clusters.length} cluster ids for ${n} queries`);
    this.clusterIds = opts.clusters;
    this.addSubset('all', Array.from({ length: n }, (_, i) => i));
  }

  /** Registers (or replaces) a named subset of query indices. 'all' is registered from the start. */
  addSubset(name: string, indices: readonly number[]): this {
    for (const i of indices) if (!(Number.isInteger(i) && i >= 0 && i < this.nQueries)) throw new Error(`QueryBootstrap: subset "${name}" names query ${i} of ${this.nQueries}`);
    this.subsets.set(name, { indices: [...indices] });
    return this;
  }

  /** Whether an arm of this name exists. */
  has(arm: string): boolean {
    return this.arms.has(arm);
  }

  /** Number of queries in a subset. */
  size(subset: string): number {
    return this.subsetOf(subset).indices.length;
  }

  /** The point estimate: mean over seeds of the mean over the subset's queries. */
  estimate(arm: string, subset = 'all'): number {
    const { indices } = this.subsetOf(subset);
    if (indices.length === 0) return NaN;
    const a = this.armOf(arm);
    let total = 0;
    for (const v of a.values) {
      let s = 0;
      for (const q of indices) s += v[q];
      total += s / indices.length;
    }
    return total / a.values.length;
  }

  /** The replicate values of an arm over a subset (length `replicates`; NaN for an empty subset). */
  replicateValues(arm: string, subset = 'all'): Float64Array {
    const a = this.armOf(arm);
    const d = this.drawOf(subset);
    const out = new Float64Array(this.replicates);
    if (d.clusters.members.length === 0) return out.fill(NaN);
    const col = d.column.get(arm)!;
    const { seeds, counts } = this.seedCounts.get(a.unit)!;
    for (let b = 0; b < this.replicates; b++) {
      let s = 0;
      for (let k = 0; k < seeds; k++) s += counts[b * seeds + k] * d.means[b * d.columns + col + k];
      out[b] = s / seeds;
    }
    return out;
  }

  /** Point estimate and percentile interval of an arm over a subset. */
  interval(arm: string, subset = 'all'): Estimate {
    const [lo, hi] = percentileInterval(this.replicateValues(arm, subset), this.level);
    return { estimate: this.estimate(arm, subset), lo, hi };
  }

  /** a − b over a subset: estimate, percentile interval of the paired replicates, sign-flip p. */
  difference(a: string, b: string, subset = 'all'): TestedEstimate {
    return this.differences([[a, b]], subset)[0];
  }

  /** Several paired differences over one subset (one pass of the permutation test for all). */
  differences(pairs: ReadonlyArray<readonly [string, string]>, subset = 'all'): TestedEstimate[] {
    const { indices } = this.subsetOf(subset);
    const clusters = this.drawOf(subset).clusters;
    const seedMean = (arm: string) => {
      const v = this.armOf(arm).values;
      const out = new Float64Array(this.nQueries);
      for (const q of indices) {
        let s = 0;
        for (const x of v) s += x[q];
        out[q] = s / v.length;
      }
      return out;
    };
    const means = new Map<string, Float64Array>();
    const meanOf = (arm: string) => means.get(arm) ?? means.set(arm, seedMean(arm)).get(arm)!;
    const sums = pairs.map(([a, b]) => {
      const ma = meanOf(a);
      const mb = meanOf(b);
      return Float64Array.from(clusters.members, (m) => m.reduce((s, q) => s + ma[q] - mb[q], 0));
    });
    const tests = signFlipBatch(sums, this.permutations, new Rng(this.seed).fork(`signs:${subset}`));
    return pairs.map(([a, b], j) => {
      const ra = this.replicateValues(a, subset);
      const rb = this.replicateValues(b, subset);
      const [lo, hi] = percentileInterval(ra.map((x, i) => x - rb[i]), this.level);
      return { estimate: this.estimate(a, subset) - this.estimate(b, subset), lo, hi, p: tests[j].p };
    });
  }

  /** Percentile interval of any replicate-wise combination (e.g. a ratio or a difference of differences). */
  intervalOf(replicates: ArrayLike<number>): [number, number] {
    return percentileInterval(replicates, this.level);
  }

  /** The per-query seed means of an arm (e.g. for labelPermutationTest). */
  queryMeans(arm: string): Float64Array {
    const v = this.armOf(arm).values;
    const out = new Float64Array(this.nQueries);
    for (let q = 0; q < this.nQueries; q++) {
      let s = 0;
      for (const x of v) s += x[q];
      out[q] = s / v.length;
    }
    return out;
  }

  /** Query indices of a subset. */
  indices(subset: string): readonly number[] {
    return this.subsetOf(subset).indices;
  }

  private armOf(name: string) {
    const a = this.arms.get(name);
    if (!a) throw new Error(`QueryBootstrap: no arm "${name}"; arms are ${[...this.arms.keys()].join(', ')}`);
    return a;
  }

  private subsetOf(name: string) {
    const s = this.subsets.get(name);
    if (!s) throw new Error(`QueryBootstrap: no subset "${name}"; subsets are ${[...this.subsets.keys()].join(', ')}`);
    return s;
  }

  private drawSeeds(unit: string, seeds: number): Uint16Array {
    const counts = new Uint16Array(this.replicates * seeds);
    if (seeds === 1) return counts.fill(1);
    const rng = new Rng(this.seed).fork(`seeds:${unit}`);
    for (let b = 0; b < this.replicates; b++) for (let k = 0; k < seeds; k++) counts[b * seeds + rng.int(seeds)]++;
    return counts;
  }

  /**
   * The subset's query draws and, for every arm and seed at once, the mean over the drawn
   * queries in each replicate (computed on first use): clusters drawn with replacement, each
   * contributing all its queries.
   */
  private drawOf(subset: string): SubsetDraw {
    const s = this.subsetOf(subset);
    if (s.draw) return s.draw;
    const clusters = clustersOf(s.indices, this.clusterIds);
    const column = new Map<string, number>();
    let columns = 0;
    for (const [name, arm] of this.arms) {
      column.set(name, columns);
      columns += arm.values.length;
    }
    // Rows of the subset's queries, all arm × seed columns side by side, so a replicate adds
    // whole contiguous rows.
    const rowOf = new Map<number, number>();
    s.indices.forEach((q, r) => rowOf.set(q, r));
    const rows = new Float64Array(s.indices.length * columns);
    for (const [name, arm] of this.arms) {
      const c0 = column.get(name)!;
      arm.values.forEach((v, k) => s.indices.forEach((q, r) => (rows[r * columns + c0 + k] = v[q])));
    }
    const means = new Float64Array(this.replicates * columns);
    const nC = clusters.members.length;
    if (nC > 0) {
      const rng = new Rng(this.seed).fork(`queries:${subset}`);
      const acc = new Float64Array(columns);
      const memberRows = clusters.members.map((m) => m.map((q) => rowOf.get(q)!));
      for (let b = 0; b < this.replicates; b++) {
        acc.fill(0);
        let count = 0;
        for (let i = 0; i < nC; i++) {
          for (const r of memberRows[rng.int(nC)]) {
            const off = r * columns;
            for (let c = 0; c < columns; c++) acc[c] += rows[off + c];
            count++;
          }
        }
        for (let c = 0; c < columns; c++) means[b * columns + c] = acc[c] / count;
      }
    }
    s.draw = { column, means, columns, clusters };
    return s.draw;
  }
}

/** Percentile bootstrap of one mean (one arm, one seed): a convenience over QueryBootstrap. */
export function bootstrapMean(values: ArrayLike<number>, opts: BootstrapOptions = {}): Estimate & { replicates: Float64Array } {
  const b = new QueryBootstrap({ x: { unit: 'x', values: [values] } }, opts);
  return { ...b.interval('x'), replicates: b.replicateValues('x') };
}
