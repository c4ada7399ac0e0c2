/**
 * Results as tables (ResultsTable: columns and rows, what notebooks show with showTable) and
 * files: results.json (docs/architecture.md "Contracts", with mean ± std over seeds, 95 %
 * intervals, the baselines, paired comparisons and the paper's claims), results.csv (one row per
 * variant or baseline × subset), comparisons.csv, curves.json (training curves for the report),
 * and the printed recall table.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../model/checkpoint';
import { firstDifference } from '../backend/json-diff';
import type { ResolvedModelConfig } from '../model/config';
import type { ResolvedTrainConfig } from '../train/config';
import type { RecallProtocol, TieMode } from '../eval/recall';
import type { Estimate, TestedEstimate } from '../eval/stats';
import { runFile, variantQueriesFile } from './run-folder';

/** "R@10" → share of queries in [0, 1]. */
export type RecallMap = Record<string, number>;

/** Recall overall and per subset. */
export interface RecallOutcome {
  metrics: RecallMap;
  subsets: Record<string, RecallMap>;
}

/** The image-neglect probes: every image zeroed (text alone), every text blanked (image alone). */
export interface ProbeOutcomes {
  zeroImage: RecallOutcome;
  emptyText: RecallOutcome;
}

/** The three inputs a model is evaluated on: the note as it is, and the two probes. */
export const INPUTS = ['full', 'zeroImage', 'emptyText'] as const;
export type InputKind = (typeof INPUTS)[number];

/** Pool notes scoring above the partner, and level with it, per query (recall.ts `ranks`, `ties`). */
export interface QueryRanks {
  higher: number[];
  ties: number[];
}

/**
 * The per-query ranks behind one evaluation: what the intervals and paired tests resample
 * (docs/method.md "Uncertainty and paired comparisons"). Not written to results.json.
 */
export interface QueryOutcomes {
  protocol: RecallProtocol;
  tieMode: TieMode;
  /** K values of the recall maps. */
  ks: number[];
  poolSize: number;
  /** Hash of the protocol and the (query, target) list in order: outcomes are paired only when these agree. */
  pairing: string;
  /** Per subset: indices of its queries. */
  subsets: Record<string, number[]>;
  /** Resampling cluster of each query ('all-pairs': its pair); absent: one cluster per query. */
  clusters?: number[];
  /** Per input evaluated (a baseline's: its full input and the probe that leaves it unchanged). */
  ranks: Partial<Record<InputKind, QueryRanks>>;
}

/** Lower and upper end of a 95 % interval. */
export type Interval = [number, number];
/** "R@10" → interval. */
export type IntervalMap = Record<string, Interval>;

/** 95 % bootstrap intervals of the recall means (docs/method.md "Uncertainty and paired comparisons"). */
export interface RecallIntervals {
  metrics: IntervalMap;
  subsets: Record<string, IntervalMap>;
  /** Per probe (zeroImage, emptyText) that was run. */
  probes: Record<string, IntervalMap>;
  probeSubsets: Record<string, Record<string, IntervalMap>>;
}

/** One variant × seed, trained (runVariant) or restored (notellm2 eval), and evaluated. */

export interface VariantResult {
  name: string;
  preset: string;
  seed: number;
  config: { model: ResolvedModelConfig; train: ResolvedTrainConfig; preset: string };
  metrics: RecallMap;
  subsets: Record<string, RecallMap>;
  /** Absent when the probes were not run (`notellm2 eval --no-probes`). */
  probes?: ProbeOutcomes;
  nQueries: number;
  poolSize: number;
  trainSeconds: number;
  evalSeconds: number;
  steps: number;
  bestEpoch: number;
  valLoss: number[];
  curve: { step: number; loss: number; tau?: number; lr?: number }[];
  /** Mean late-fusion gate value z over the test notes (1 = all LM side), when the model has the gate. */
  meanGate?: number;
  backend: string;
  /** Per-query ranks for the statistics; absent in results written before they existed. */
  queries?: QueryOutcomes;
  /** The sweep cell a variant belongs to (statistics compare variants within a cell). */
  group?: string;
  /** Where the variant sits on a sweep's axes (e.g. the regime map's text and image strength). */
  axes?: Record<string, number>;
}

/**
 * A VariantResult that travelled as JSON (from a worker process): JSON has no NaN, so a recall
 * without queries (an empty subset) arrives as null; this turns such values back into NaN, so
 * the result is the one the worker computed.
 */
export function reviveVariantResult(r: VariantResult): VariantResult {
  return { ...r, ...reviveRecalls(r), valLoss: r.valLoss.map((v) => (v === null ? NaN : v)) };
}

/** The recall maps of a run or a seed entry with null (NaN through JSON) turned back into NaN. */
function reviveRecalls<T extends Pick<SeedResult, 'metrics' | 'subsets' | 'probes'>>(r: T): T {
  const map = (m: RecallMap): RecallMap => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, v === null ? NaN : v]));
  const nested = (n: Record<string, RecallMap>) => Object.fromEntries(Object.entries(n).map(([k, m]) => [k, map(m)]));
  const outcome = (o: RecallOutcome): RecallOutcome => ({ metrics: map(o.metrics), subsets: nested(o.subsets ?? {}) });
  return {
    ...r,
    metrics: map(r.metrics),
    subsets: nested(r.subsets),
    ...(r.probes && { probes: { zeroImage: outcome(r.probes.zeroImage), emptyText: outcome(r.probes.emptyText) } }),
  };
}

export interface AggregatedVariant {
  name: string;
  preset: string;
  config: VariantResult['config'];
  metrics: RecallMap;
  metricsStd: RecallMap;
  subsets: Record<string, RecallMap>;
  subsetsStd: Record<string, RecallMap>;
  probes: Record<string, RecallMap>;
  probesStd: Record<string, RecallMap>;
  probeSubsets: Record<string, Record<string, RecallMap>>;
  trainSeconds: number;
  seeds: SeedResult[];
  meanGate?: number;
  /** 95 % intervals over queries and seeds (statistics.ts). */
  intervals?: RecallIntervals;
  group?: string;
  axes?: Record<string, number>;
}

/**
 * A single-modality baseline scored like the variants (docs/method.md "Baselines"): the same
 * queries, pool, subsets and intervals; `probes` holds the one probe that leaves it unchanged
 * (TF-IDF reads no image, the colour histogram no text).
 */
export interface BaselineResult {
  name: string;
  modality: 'text' | 'image';
  metrics: RecallMap;
  subsets: Record<string, RecallMap>;
  probes: Record<string, RecallMap>;
  probeSubsets: Record<string, Record<string, RecallMap>>;
  nQueries: number;
  poolSize: number;
  intervals?: RecallIntervals;
}

/** A paired difference a − b on the same queries and pool (statistics.ts). */
export interface Comparison {
  a: string;
  b: string;
  /** The input both are evaluated on (full, or a probe). */
  input: InputKind;
  subset: string;
  metric: string;
  nQueries: number;
  /** Mean over seeds of a's recall minus b's. */
  diff: number;
  lo: number;
  hi: number;
  /** Two-sided sign-flip permutation p-value (label permutation for differences between subsets). */
  p: number;
}

export const VERDICTS = ['supported', 'contradicted', 'inconclusive', 'not run'] as const;
export type Verdict = (typeof VERDICTS)[number];

/** One of the paper's claims (docs/method.md "Reported outcomes") checked on a run (claims.ts). */
export interface Claim {
  id: string;
  statement: string;
  metric: string;
  /** The figures the verdict rests on, each with its interval. */
  measured: Array<{ label: string; estimate: number; lo: number; hi: number }>;
  /** The paired differences the verdict reads (labels as a and b). */
  comparisons: Comparison[];
  verdict: Verdict;
  /** How the verdict follows from the comparisons, or which presets are missing. */
  note: string;
}

/** One cell of the regime map (regimes.ts). */
export interface RegimeCell {
  cell: string;
  /** Multiples of the default pretraining budgets: `lm` (text path), `vision` (image path). */
  axes: Record<string, number>;
  metric: string;
  /** basic's recall on the full input and on each probe. */
  basic: { full: Estimate; textAlone: Estimate; imageAlone: Estimate };
  /** Ratios to the full input: image alone / full and text alone / full. */
  neglectIndex: { imageAlone: Estimate; textAlone: Estimate };
  /** basic's text alone − image alone, with its verdict (supported = the image is neglected). */
  neglect: TestedEstimate & { verdict: Verdict };
  /** Fix (preset) → its paired gain over basic, with the verdict of "the fix helps". */
  gains: Record<string, TestedEstimate & { verdict: Verdict }>;
}

/**
 * One seed of a variant as results.json keeps it: enough to aggregate the variant again when
 * the results of another seed are merged into the same run folder.
 */
export interface SeedResult {
  seed: number;
  metrics: RecallMap;
  subsets: Record<string, RecallMap>;
  trainSeconds: number;
  meanGate?: number;
  probes?: ProbeOutcomes;
}

export interface AblationResults {
  /** Open to extra fields, like the results.json schema the figures read (docs/architecture.md "Contracts"). */
  [extra: string]: unknown;
  dataset: string;
  backend: string;
  seed: number;
  seedList: number[];
  pretrain: Record<string, unknown>;
  variants: AggregatedVariant[];
  wallSeconds: number;
  /** The recall protocol of every figure (recall.ts); absent in older files: 'reference'. */
  protocol?: RecallProtocol;
  /** TF-IDF and colour-histogram rows beside the variants. */
  baselines?: BaselineResult[];
  /** Paired differences between variants and baselines, per subset and metric. */
  comparisons?: Comparison[];
  claims?: Claim[];
  /** The regime map (`--sweep regime`). */
  regimes?: RegimeCell[];
  /** How the intervals and p-values were computed. */
  statistics?: { level: number; replicates: number; permutations: number; seconds: number };
}

function meanStd(values: number[]): [number, number] {
  const ok = values.filter((v) => Number.isFinite(v));
  if (ok.length === 0) return [NaN, NaN];
  const m = ok.reduce((a, b) => a + b, 0) / ok.length;
  // Sample standard deviation (n − 1): the spread a reader expects from "± std over seeds".
  const v = ok.length > 1 ? ok.reduce((a, b) => a + (b - m) ** 2, 0) / (ok.length - 1) : 0;
  return [m, Math.sqrt(v)];
}

function aggregateMaps(maps: RecallMap[]): [RecallMap, RecallMap] {
  const mean: RecallMap = {};
  const std: RecallMap = {};
  for (const k of Object.keys(maps[0] ?? {})) [mean[k], std[k]] = meanStd(maps.map((m) => m[k]));
  return [mean, std];
}

function aggregateNested(maps: Array<Record<string, RecallMap>>): [Record<string, RecallMap>, Record<string, RecallMap>] {
  const mean: Record<string, RecallMap> = {};
  const std: Record<string, RecallMap> = {};
  for (const k of Object.keys(maps[0] ?? {})) [mean[k], std[k]] = aggregateMaps(maps.map((m) => m[k]));
  return [mean, std];
}

/** Mean ± std over seeds of one variant's runs. */
export function aggregate(runs: VariantResult[]): AggregatedVariant {
  const seeds = runs.map((r): SeedResult => ({ seed: r.seed, metrics: r.metrics, subsets: r.subsets, trainSeconds: r.trainSeconds, meanGate: r.meanGate, probes: r.probes }));
  return aggregateSeeds(runs[0].name, runs[0].preset, runs[0].config, seeds, runs[0]);
}

/** Mean ± std over the seeds of one variant (`config` is the first seed's; `sweep` its cell, when it has one). */
function aggregateSeeds(name: string, preset: string, config: VariantResult['config'], runs: SeedResult[], sweep: Pick<VariantResult, 'group' | 'axes'> = {}): AggregatedVariant {
  const [metrics, metricsStd] = aggregateMaps(runs.map((r) => r.metrics));
  const [subsets, subsetsStd] = aggregateNested(runs.map((r) => r.subsets));
  const probed = runs.flatMap((r) => (r.probes ? [r.probes] : []));
  const all = probed.length === runs.length;
  const [probes, probesStd] = all ? aggregateNested(probed.map((p) => ({ zeroImage: p.zeroImage.metrics, emptyText: p.emptyText.metrics }))) : [{}, {}];
  const probeSubsets: Record<string, Record<string, RecallMap>> = all
    ? { zeroImage: aggregateNested(probed.map((p) => p.zeroImage.subsets))[0], emptyText: aggregateNested(probed.map((p) => p.emptyText.subsets))[0] }
    : {};
  const gates = runs.map((r) => r.meanGate).filter((g): g is number => g !== undefined);
  return {
    name,
    preset,
    config,
    metrics,
    metricsStd,
    subsets,
    subsetsStd,
    probes,
    probesStd,
    probeSubsets,
    trainSeconds: meanStd(runs.map((r) => r.trainSeconds))[0],
    seeds: runs,
    meanGate: gates.length ? meanStd(gates)[0] : undefined,
    ...(sweep.group !== undefined && { group: sweep.group }),
    ...(sweep.axes !== undefined && { axes: sweep.axes }),
  };
}

/** Metric columns shown in tables: the paper's K values present in the results, ascending. */
export function metricKeys(results: AblationResults): string[] {
  const keys = new Set<string>();
  for (const v of results.variants) for (const k of Object.keys(v.metrics)) keys.add(k);
  return [...keys].sort((a, b) => Number(a.slice(2)) - Number(b.slice(2)));
}

export interface TableRow {
  variant: string;
  subset: string;
  seeds: number;
  [metric: string]: string | number;
}

/** Row labels of the two probes in tables. */
export const PROBE_ROWS: Record<string, string> = {
  zeroImage: 'probe: zero image (text alone)',
  emptyText: 'probe: empty text (image alone)',
};

/**
 * One row per variant × (all | subset | probe), then one per baseline × (all | subset | the
 * probe that applies): metric means, `<metric> std` (over seeds; absent for baselines) and,
 * when the results carry statistics, `<metric> lo` and `<metric> hi` (95 % interval) and
 * `kind` (variant or baseline).
 */
export function resultRows(results: AblationResults): TableRow[] {
  const keys = metricKeys(results);
  const rows: TableRow[] = [];
  // Results without statistics (older runs) keep the columns they always had.
  const withStats = (results.baselines?.length ?? 0) > 0 || results.variants.some((v) => v.intervals);
  const push = (name: string, kind: string, seeds: number, subset: string, mean: RecallMap | undefined, std?: RecallMap, ci?: IntervalMap) => {
    const row: TableRow = { variant: name, subset, seeds, ...(withStats && { kind }) };
    for (const k of keys) {
      row[k] = mean?.[k] ?? NaN;
      row[`${k} std`] = std?.[k] ?? NaN;
      if (!withStats) continue;
      row[`${k} lo`] = ci?.[k]?.[0] ?? NaN;
      row[`${k} hi`] = ci?.[k]?.[1] ?? NaN;
    }
    rows.push(row);
  };
  for (const v of results.variants) {
    const ci = v.intervals;
    push(v.name, 'variant', v.seeds.length, 'all', v.metrics, v.metricsStd, ci?.metrics);
    for (const s of Object.keys(v.subsets)) push(v.name, 'variant', v.seeds.length, s, v.subsets[s], v.subsetsStd[s], ci?.subsets[s]);
    for (const [probe, label] of Object.entries(PROBE_ROWS)) push(v.name, 'variant', v.seeds.length, label, v.probes[probe], v.probesStd[probe], ci?.probes[probe]);
  }
  for (const b of results.baselines ?? []) {
    const ci = b.intervals;
    push(b.name, 'baseline', 1, 'all', b.metrics, undefined, ci?.metrics);
    for (const s of Object.keys(b.subsets)) push(b.name, 'baseline', 1, s, b.subsets[s], undefined, ci?.subsets[s]);
    for (const [probe, label] of Object.entries(PROBE_ROWS)) if (b.probes[probe]) push(b.name, 'baseline', 1, label, b.probes[probe], undefined, ci?.probes[probe]);
  }
  return rows;
}

/**
 * A table of results: column names and rows of values, in the DataFrame shape (`columns`,
 * `values`) that showTable and tableHtml read, with CSV and text renderings. It replaces the
 * danfojs DataFrame this project used to return (README, "Dependencies"): only construction,
 * display and CSV were ever used.
 */
export class ResultsTable {
  readonly columns: string[];
  readonly values: unknown[][];

  /** Columns in order of first appearance among the rows' keys. */
  constructor(rows: ReadonlyArray<Record<string, unknown>>) {
    this.columns = [];
    for (const row of rows) for (const k of Object.keys(row)) if (!this.columns.includes(k)) this.columns.push(k);
    this.values = rows.map((row) => this.columns.map((c) => row[c]));
  }

  /** [rows, columns]. */
  get shape(): [number, number] {
    return [this.values.length, this.columns.length];
  }

  /** The rows as objects keyed by column. */
  rows(): Array<Record<string, unknown>> {
    return this.values.map((r) => Object.fromEntries(this.columns.map((c, i) => [c, r[i]])));
  }

  /**
   * CSV with a header line, one line per row, numbers as JavaScript prints them (NaN for a
   * missing value) — the bytes danfojs wrote — and RFC 4180 quotes around a field holding a
   * comma, a quote or a line break (danfojs wrote those unquoted, breaking the row).
   */
  toCSV(): string {
    const field = (v: unknown) => {
      const s = String(v);
      return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
    };
    return [this.columns, ...this.values].map((r) => r.map(field).join(',') + '\n').join('');
  }

  /** An aligned text table (numbers to four significant digits), e.g. for console.log. */
  toString(): string {
    const cell = (v: unknown) => (typeof v === 'number' && !Number.isInteger(v) && Number.isFinite(v) ? String(Number(v.toPrecision(4))) : String(v));
    const body = this.values.map((r) => r.map(cell));
    const widths = this.columns.map((c, i) => Math.max(c.length, ...body.map((r) => r[i].length)));
    const line = (cells: string[]) => cells.map((c, i) => (typeof this.values[0]?.[i] === 'number' ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ');
    return [line(this.columns), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
  }
}

/** The results as a table (rows as in resultRows). */
export function resultsFrame(results: AblationResults): ResultsTable {
  return new ResultsTable(resultRows(results));
}

/** results.csv's text. */
export function resultsCsv(results: AblationResults): string {
  return resultsFrame(results).toCSV();
}

const pct = (x: number) => (Number.isFinite(x) ? (100 * x).toFixed(1) : '–');

function textTable(header: string[], body: string[][], leftColumns: number): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < leftColumns ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

/**
 * A compact text table: one line per variant (then baseline) and subset, recall in percent as
 * `mean [lo, hi]` (95 % interval) when intervals were computed, else mean ± std over seeds.
 * `metrics` picks the columns (default: R@10, R@50, R@100 where present).
 */
export function formatResultsTable(results: AblationResults, opts: { metrics?: string[]; subsets?: string[] } = {}): string {
  const all = metricKeys(results);
  const metrics = opts.metrics ?? ['R@10', 'R@50', 'R@100'].filter((m) => all.includes(m));
  const cols = metrics.length ? metrics : all.slice(0, 3);
  const rows = resultRows(results).filter((r) => !opts.subsets || opts.subsets.includes(r.subset));
  const multi = results.variants.some((v) => v.seeds.length > 1);
  const cell = (r: TableRow, m: string) => {
    const [lo, hi] = [r[`${m} lo`] as number, r[`${m} hi`] as number];
    if (Number.isFinite(lo) && Number.isFinite(hi)) return `${pct(r[m] as number)} [${pct(lo)}, ${pct(hi)}]`;
    return multi && r.kind !== 'baseline' ? `${pct(r[m] as number)} ± ${pct(r[`${m} std`] as number)}` : pct(r[m] as number);
  };
  const header = ['variant', 'subset', ...cols.map((c) => `${c} %`)];
  return textTable(header, rows.map((r) => [r.variant, r.subset, ...cols.map((m) => cell(r, m))]), 2);
}

const signed = (x: number) => (Number.isFinite(x) ? `${x >= 0 ? '+' : '−'}${Math.abs(100 * x).toFixed(1)}` : '–');
const pValue = (p: number) => (!Number.isFinite(p) ? '–' : p < 0.001 ? '<0.001' : p.toFixed(3));

/** The claims as a text table: one line per paired difference (the claim on its first), with interval, p and verdict. */
export function formatClaimsTable(claims: readonly Claim[]): string {
  const body = claims.flatMap((c) => {
    const diffs = c.comparisons.map((d) => [`${d.a} − ${d.b}`, `${signed(d.diff)} [${signed(d.lo)}, ${signed(d.hi)}]`, pValue(d.p)]);
    const lines = diffs.length ? diffs : [[c.note, '', '']];
    return lines.map((d, i) => [i === 0 ? `(${c.id}) ${c.statement}` : '', i === 0 ? c.metric : '', ...d, i === 0 ? c.verdict : '']);
  });
  return textTable(['claim', 'metric', 'paired difference', 'points [95 % interval]', 'p', 'verdict'], body, 3);
}

/** Comparisons as a text table (points, signed). */
export function formatComparisons(comparisons: readonly Comparison[]): string {
  const body = comparisons.map((c) => [`${c.a} − ${c.b}`, c.input, c.subset, c.metric, String(c.nQueries), signed(c.diff), `[${signed(c.lo)}, ${signed(c.hi)}]`, pValue(c.p)]);
  return textTable(['difference', 'input', 'subset', 'metric', 'n', 'points', '95 % interval', 'p'], body, 4);
}

// ---------------------------------------------------------------------------------------------
// Several runs into one folder: results merge by variant and seed

/** A variant's configuration without its seed: what must agree for two seeds to be aggregated. */
function withoutSeed(c: VariantResult['config']): unknown {
  const { seed: _seed, ...train } = c.train;
  return { ...c, train };
}

/**
 * Where two variant configurations differ apart from the seed, as `field: a vs b` of the first
 * differing field, or null when they agree.
 */
export function configDifference(a: VariantResult['config'], b: VariantResult['config']): string | null {
  const d = firstDifference(withoutSeed(a), withoutSeed(b));
  return d && `${d.path}: ${d.a} vs ${d.b}`;
}

/**
 * The results of a run merged into those already in its folder: variants of new names are
 * added; for a variant already there, the seeds are united (a seed run again replaces its
 * earlier entry) and the mean ± std recomputed. Refuses results of another dataset, and a
 * variant name trained with another configuration. `replaced` names the entries replaced.
 */
export function mergeResults(existing: AblationResults, fresh: AblationResults): { results: AblationResults; replaced: string[] } {
  const both = existing.datasetDir !== undefined && fresh.datasetDir !== undefined;
  const dsA = both ? existing.datasetDir : existing.dataset;
  const dsB = both ? fresh.datasetDir : fresh.dataset;
  if (dsA !== dsB) throw new Error(`the run folder holds results on dataset ${String(dsA)}, not ${String(dsB)}; choose another --out`);
  // Paired statistics need every result on the same queries.
  const [pA, pB] = [existing.protocol ?? 'reference', fresh.protocol ?? 'reference'];
  if (pA !== pB) throw new Error(`the run folder holds results under the ${pA} protocol, not ${pB}; choose another --out`);
  const replaced: string[] = [];
  const variants = existing.variants.map((v) => ({ ...v }));
  for (const v of fresh.variants) {
    const at = variants.findIndex((e) => e.name === v.name);
    if (at < 0) {
      variants.push(v);
      continue;
    }
    const old = variants[at];
    const diff = configDifference(old.config, v.config);
    if (diff) throw new Error(`variant "${v.name}" is already in the run folder with another configuration (${diff}); choose another --out or name`);
    const bySeed = new Map(old.seeds.map((s) => [s.seed, s]));
    for (const s of v.seeds) {
      if (bySeed.has(s.seed)) replaced.push(`${v.name} seed ${s.seed}`);
      bySeed.set(s.seed, s);
    }
    const seeds = [...bySeed.values()].sort((a, b) => a.seed - b.seed);
    const first = v.seeds.some((s) => s.seed === seeds[0].seed) ? v.config : old.config;
    variants[at] = aggregateSeeds(v.name, v.preset, first, seeds, v);
  }
  const seedList = [...new Set([...existing.seedList, ...fresh.seedList])].sort((a, b) => a - b);
  return {
    results: { ...existing, ...fresh, seed: seedList[0], seedList, variants, wallSeconds: existing.wallSeconds + fresh.wallSeconds },
    replaced,
  };
}

/** The statistics' fields of a results object, removed (they would describe other seeds). */
export function withoutStatistics(results: AblationResults): AblationResults {
  const { comparisons: _c, claims: _l, regimes: _r, statistics: _s, ...rest } = results;
  return { ...rest, variants: results.variants.map(({ intervals: _i, ...v }) => v), baselines: results.baselines?.map(({ intervals: _i, ...b }) => b) };
}

/**
 * The results.json already in a run folder: null when there is none, 'foreign' when the file is
 * not one this tool wrote (a --force run replaces it).
 */
export function readRunResults(dir: string): AblationResults | 'foreign' | null {
  const file = runFile(dir, 'results');
  if (!existsSync(file)) return null;
  try {
    const r = JSON.parse(readFileSync(file, 'utf8')) as AblationResults;
    const ok = Array.isArray(r.variants) && Array.isArray(r.seedList) && r.variants.every((v) => typeof v?.name === 'string' && Array.isArray(v.seeds) && v.config?.train);
    // Files written before workers' results were revived may hold null for a recall without queries.
    return ok ? { ...r, variants: r.variants.map((v) => ({ ...v, seeds: v.seeds.map(reviveRecalls) })) } : 'foreign';
  } catch {
    return 'foreign';
  }
}

type Curves = { curves: Array<{ preset: string; seed: number; points: unknown[] }> };

/**
 * Writes results.json, results.csv, comparisons.csv (when the results carry comparisons) and
 * curves.json into `dir`, merged with the results already there (mergeResults; curves by
 * variant and seed), each file atomically. After a merge, `analyse` recomputes the statistics
 * of the merged results (analysis.ts: those of this run alone no longer describe them). Returns
 * the paths and the merged results.
 */
export async function writeResults(
  dir: string,
  results: AblationResults,
  runs: VariantResult[],
  opts: { log?: (msg: string) => void; analyse?: (merged: AblationResults) => AblationResults | Promise<AblationResults> } = {},
): Promise<{ json: string; csv: string; comparisons?: string; curves: string; results: AblationResults }> {
  mkdirSync(dir, { recursive: true });
  const json = runFile(dir, 'results');
  const csv = runFile(dir, 'csv');
  const curves = runFile(dir, 'curves');
  const existing = readRunResults(dir);
  let merged = results;
  if (existing === 'foreign') opts.log?.(`replacing ${json}, which is not a notellm2 results file`);
  else if (existing) {
    const m = mergeResults(existing, results);
    if (opts.analyse) merged = await opts.analyse(m.results);
    else {
      // Intervals and claims of this run alone do not describe the merged seeds.
      merged = withoutStatistics(m.results);
      opts.log?.('statistics left out of the merged results (writeResults was not given an analyse step)');
    }
    const kept = existing.variants.reduce((n, v) => n + v.seeds.length, 0) - m.replaced.length;
    opts.log?.(`merged into the results already in ${dir}: ${kept} earlier variant×seed result(s) kept${m.replaced.length ? `, replaced ${m.replaced.join(', ')}` : ''}`);
  }
  let curveList: Curves['curves'] = runs.map((r) => ({ preset: r.name, seed: r.seed, points: r.curve.map((p) => ({ step: p.step, loss: p.loss, tau: p.tau, lr: p.lr })) }));
  if (existing && existing !== 'foreign' && existsSync(curves)) {
    try {
      const old = (JSON.parse(readFileSync(curves, 'utf8')) as Curves).curves ?? [];
      curveList = [...old.filter((c) => !curveList.some((n) => n.preset === c.preset && n.seed === c.seed)), ...curveList];
    } catch {
      opts.log?.(`replacing ${curves}: not readable as curves`);
    }
  }
  // NaN is not JSON: a missing value (e.g. a subset with no queries) is left out.
  await writeFileAtomic(json, JSON.stringify(merged, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? undefined : v), 2));
  await writeFileAtomic(csv, resultsCsv(merged));
  const comparisons = merged.comparisons?.length ? runFile(dir, 'comparisons') : undefined;
  if (comparisons) await writeFileAtomic(comparisons, new ResultsTable(merged.comparisons!.map((c) => ({ ...c }))).toCSV());
  else rmSync(runFile(dir, 'comparisons'), { force: true });
  await writeFileAtomic(curves, JSON.stringify({ curves: curveList }));
  for (const r of runs) {
    if (!r.queries) continue;
    const file = variantQueriesFile(dir, r.name, r.seed);
    mkdirSync(dirname(file), { recursive: true });
    await writeFileAtomic(file, JSON.stringify(r.queries));
  }
  return { json, csv, comparisons, curves, results: merged };
}
