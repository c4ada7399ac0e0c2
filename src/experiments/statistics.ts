/**
 * The statistics of a run (docs/method.md "Uncertainty and paired comparisons"): 95 %
 * bootstrap intervals of every recall mean of the variants and baselines, and paired
 * differences between them, all from the per-query ranks their evaluations kept
 * (QueryOutcomes) through one QueryBootstrap (eval/stats.ts), so every interval and every
 * difference of a run rests on the same query draws.
 *
 * An arm of the bootstrap is (variant or baseline, input, metric); the seeds of a variant are
 * its arm's seeds, and the inputs of one variant (full, zero image, empty text) share a unit,
 * so a difference between two probes of one model is paired in its seeds too.
 */
import { hitAt } from '../eval/recall';
import { QueryBootstrap, labelPermutationTest, type BootstrapOptions, type Estimate, type TestedEstimate } from '../eval/stats';
import type { BaselineRun } from './baselines';
import { INPUTS, type Comparison, type InputKind, type IntervalMap, type QueryOutcomes, type RecallIntervals, type VariantResult } from './results';

/** What the statistics read of each (variant, seed). */
type RunOutcome = Pick<VariantResult, 'name' | 'seed' | 'group' | 'queries'>;

/** Something the statistics can resample: a variant's runs over its seeds, or a baseline. */
export interface StatisticsEntity {
  name: string;
  /** The sweep cell (variants compare within a cell). */
  group?: string;
  kind: 'variant' | 'baseline';
  /** One per seed. */
  outcomes: QueryOutcomes[];
}

/** Entities of a run: its variants (runs grouped by name, in first-seen order) and baselines. */
export function statisticsEntities(runs: readonly RunOutcome[], baselines: readonly BaselineRun[] = []): StatisticsEntity[] {
  const byName = new Map<string, RunOutcome[]>();
  for (const r of runs) {
    const list = byName.get(r.name);
    if (list) list.push(r);
    else byName.set(r.name, [r]);
  }
  const out: StatisticsEntity[] = [];
  for (const [name, rs] of byName) {
    const missing = rs.filter((r) => !r.queries);
    if (missing.length) throw new Error(`statistics: variant ${name} (seed ${missing[0].seed}) carries no per-query ranks`);
    out.push({ name, kind: 'variant', group: rs[0].group, outcomes: rs.map((r) => r.queries!) });
  }
  for (const b of baselines) out.push({ name: b.name, kind: 'baseline', outcomes: [b.queries] });
  return out;
}

const arm = (entity: string, input: InputKind, metric: string) => `${entity}\u0000${input}\u0000${metric}`;

/** The bootstrap of one run's entities; see the module comment. */
export class RunStatistics {
  readonly metrics: string[];
  readonly subsets: string[];
  readonly entities: StatisticsEntity[];
  private readonly boot: QueryBootstrap;
  private readonly ks: number[];

  constructor(entities: StatisticsEntity[], opts: BootstrapOptions = {}) {
    if (entities.length === 0) throw new Error('statistics: nothing to compare');
    const first = entities[0].outcomes[0];
    for (const e of entities) {
      for (const o of e.outcomes) {
        if (o.pairing !== first.pairing) {
          throw new Error(`statistics: ${e.name} was evaluated on other queries than ${entities[0].name} (${o.protocol} vs ${first.protocol} protocol, or another test split); paired statistics need the same queries`);
        }
      }
    }
    this.entities = entities;
    this.ks = first.ks;
    this.metrics = first.ks.map((k) => `R@${k}`);
    this.subsets = ['all', ...Object.keys(first.subsets)];
    const arms: Record<string, { unit: string; values: Float64Array[] }> = {};
    for (const e of entities) {
      for (const input of INPUTS) {
        if (!e.outcomes.every((o) => o.ranks[input])) continue;
        this.ks.forEach((k, j) => {
          arms[arm(e.name, input, this.metrics[j])] = {
            unit: e.name,
            values: e.outcomes.map((o) => {
              const { higher, ties } = o.ranks[input]!;
              return Float64Array.from(higher, (h, q) => hitAt(k, h, ties[q], o.tieMode));
            }),
          };
        });
      }
    }
    this.boot = new QueryBootstrap(arms, { ...opts, clusters: opts.clusters ?? first.clusters });
    for (const [name, indices] of Object.entries(first.subsets)) this.boot.addSubset(name, indices);
  }

  get level(): number {
    return this.boot.level;
  }

  get replicateCount(): number {
    return this.boot.replicates;
  }

  get permutationCount(): number {
    return this.boot.permutations;
  }

  /** Whether an entity was evaluated on an input (a baseline only on its own modality). */
  has(entity: string, input: InputKind = 'full'): boolean {
    return this.metrics.length > 0 && this.hasArm(arm(entity, input, this.metrics[0]));
  }

  /** Queries in a subset. */
  size(subset: string): number {
    return this.boot.size(subset);
  }

  /** Query indices of a subset. */
  indices(subset: string): readonly number[] {
    return this.boot.indices(subset);
  }

  interval(entity: string, input: InputKind, subset: string, metric: string): Estimate {
    return this.boot.interval(this.armName(entity, input, metric), subset);
  }

  replicates(entity: string, input: InputKind, subset: string, metric: string): Float64Array {
    return this.boot.replicateValues(this.armName(entity, input, metric), subset);
  }

  /** Percentile interval of any replicate-wise combination. */
  intervalOf(replicates: ArrayLike<number>): [number, number] {
    return this.boot.intervalOf(replicates);
  }

  /** Paired differences a − b (each side an entity on an input) over one subset and metric. */
  differences(pairs: ReadonlyArray<{ a: string; b: string; inputA?: InputKind; inputB?: InputKind }>, subset: string, metric: string): TestedEstimate[] {
    return this.boot.differences(
      pairs.map((p) => [this.armName(p.a, p.inputA ?? 'full', metric), this.armName(p.b, p.inputB ?? 'full', metric)] as const),
      subset,
    );
  }

  difference(a: string, b: string, subset: string, metric: string, inputs: { a?: InputKind; b?: InputKind } = {}): TestedEstimate {
    return this.differences([{ a, b, inputA: inputs.a, inputB: inputs.b }], subset, metric)[0];
  }

  /**
   * (a − b on subset x) − (a − b on subset y) for disjoint subsets: the interval from the
   * replicates (each subset drawn on its own), p from permuting the x/y labels of the pooled
   * queries' per-query differences.
   */
  differenceBetweenSubsets(a: string, b: string, x: string, y: string, metric: string): TestedEstimate {
    const gain = (s: string) => {
      const ra = this.replicates(a, 'full', s, metric);
      const rb = this.replicates(b, 'full', s, metric);
      return ra.map((v, i) => v - rb[i]);
    };
    const gx = gain(x);
    const gy = gain(y);
    const [lo, hi] = this.intervalOf(gx.map((v, i) => v - gy[i]));
    const estimate = this.interval(a, 'full', x, metric).estimate - this.interval(b, 'full', x, metric).estimate
      - (this.interval(a, 'full', y, metric).estimate - this.interval(b, 'full', y, metric).estimate);
    const qa = this.boot.queryMeans(this.armName(a, 'full', metric));
    const qb = this.boot.queryMeans(this.armName(b, 'full', metric));
    const perQuery = qa.map((v, i) => v - qb[i]);
    const { p } = labelPermutationTest(perQuery, this.indices(x), this.indices(y), { resamples: this.boot.permutations, seed: 0 });
    return { estimate, lo, hi, p };
  }

  /** Every interval of one entity, shaped like its recall maps. */
  intervals(entity: string): RecallIntervals {
    const map = (input: InputKind, subset: string): IntervalMap => {
      const out: IntervalMap = {};
      for (const m of this.metrics) {
        const e = this.interval(entity, input, subset, m);
        out[m] = [e.lo, e.hi];
      }
      return out;
    };
    const named = this.subsets.filter((s) => s !== 'all');
    const probes: RecallIntervals['probes'] = {};
    const probeSubsets: RecallIntervals['probeSubsets'] = {};
    for (const input of INPUTS) {
      if (input === 'full' || !this.has(entity, input)) continue;
      probes[input] = map(input, 'all');
      probeSubsets[input] = Object.fromEntries(named.map((s) => [s, map(input, s)]));
    }
    return { metrics: map('full', 'all'), subsets: Object.fromEntries(named.map((s) => [s, map('full', s)])), probes, probeSubsets };
  }

  /** Paired differences on the full input for the given pairs, every subset and metric. */
  comparisons(pairs: ReadonlyArray<readonly [string, string]>): Comparison[] {
    const out: Comparison[] = [];
    for (const subset of this.subsets) {
      for (const metric of this.metrics) {
        const tests = this.differences(pairs.map(([a, b]) => ({ a, b })), subset, metric);
        pairs.forEach(([a, b], j) => {
          const t = tests[j];
          out.push({ a, b, input: 'full', subset, metric, nQueries: this.size(subset), diff: t.estimate, lo: t.lo, hi: t.hi, p: t.p });
        });
      }
    }
    return out;
  }

  private hasArm(name: string): boolean {
    return this.boot.has(name);
  }

  private armName(entity: string, input: InputKind, metric: string): string {
    if (!this.metrics.includes(metric)) throw new Error(`statistics: metric ${metric} is not reported (pool of ${this.entities[0].outcomes[0].poolSize}); metrics are ${this.metrics.join(', ')}`);
    const name = arm(entity, input, metric);
    if (!this.hasArm(name)) throw new Error(`statistics: ${entity} has no ${input} evaluation`);
    return name;
  }
}

/**
 * The pairs a run compares: variants pairwise (within their sweep cell when they have one),
 * every variant against every baseline, and the baselines against each other. A pair is
 * (later, earlier) in the run's order, so "notellm2 − basic" reads as a gain.
 */
export function comparisonPairs(entities: readonly StatisticsEntity[]): Array<[string, string]> {
  const variants = entities.filter((e) => e.kind === 'variant');
  const baselines = entities.filter((e) => e.kind === 'baseline');
  const pairs: Array<[string, string]> = [];
  variants.forEach((v, j) => variants.slice(0, j).forEach((u) => {
    if (u.group === v.group) pairs.push([v.name, u.name]);
  }));
  for (const v of variants) for (const b of baselines) pairs.push([v.name, b.name]);
  baselines.forEach((v, j) => baselines.slice(0, j).forEach((u) => pairs.push([v.name, u.name])));
  return pairs;
}
