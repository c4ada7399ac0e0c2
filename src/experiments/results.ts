/**
 * Results as tables (danfojs DataFrames) and files: results.json (docs/architecture.md "Contracts",
 * with mean ± std over seeds), results.csv (one row per variant × subset), curves.json
 * (training curves for the report), and the printed recall table.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import * as dfd from 'danfojs-node';
import type { ResolvedModelConfig } from '../model/config';
import type { ResolvedTrainConfig } from '../train/config';
import { runFile } from './run-folder';

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
  seeds: Array<{ seed: number; metrics: RecallMap; subsets: Record<string, RecallMap>; trainSeconds: number; meanGate?: number }>;
  meanGate?: number;
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
    name: runs[0].name,
    preset: runs[0].preset,
    config: runs[0].config,
    metrics,
    metricsStd,
    subsets,
    subsetsStd,
    probes,
    probesStd,
    probeSubsets,
    trainSeconds: meanStd(runs.map((r) => r.trainSeconds))[0],
    seeds: runs.map((r) => ({ seed: r.seed, metrics: r.metrics, subsets: r.subsets, trainSeconds: r.trainSeconds, meanGate: r.meanGate })),
    meanGate: gates.length ? meanStd(gates)[0] : undefined,
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

/** One row per variant × (all | subset | probe), metric means and `<metric> std` columns. */
export function resultRows(results: AblationResults): TableRow[] {
  const keys = metricKeys(results);
  const rows: TableRow[] = [];
  const push = (v: AggregatedVariant, subset: string, mean: Record<string, number>, std?: Record<string, number>) => {
    const row: TableRow = { variant: v.name, subset, seeds: v.seeds.length };
    for (const k of keys) {
      row[k] = mean?.[k] ?? NaN;
      row[`${k} std`] = std?.[k] ?? NaN;
    }
    rows.push(row);
  };
  for (const v of results.variants) {
    push(v, 'all', v.metrics, v.metricsStd);
    for (const s of Object.keys(v.subsets)) push(v, s, v.subsets[s], v.subsetsStd[s]);
    push(v, 'probe: zero image (text alone)', v.probes.zeroImage, v.probesStd.zeroImage);
    push(v, 'probe: empty text (image alone)', v.probes.emptyText, v.probesStd.emptyText);
  }
  return rows;
}

/** The results as a danfojs DataFrame (rows as in resultRows). */
export function resultsFrame(results: AblationResults): dfd.DataFrame {
  return new dfd.DataFrame(resultRows(results));
}

const pct = (x: number) => (Number.isFinite(x) ? (100 * x).toFixed(1) : '–');

/**
 * A compact text table: one line per variant and subset, recall in percent as mean ± std.
 * `metrics` picks the columns (default: R@10, R@50, R@100 where present).
 */
export function formatResultsTable(results: AblationResults, opts: { metrics?: string[]; subsets?: string[] } = {}): string {
  const all = metricKeys(results);
  const metrics = opts.metrics ?? ['R@10', 'R@50', 'R@100'].filter((m) => all.includes(m));
  const cols = metrics.length ? metrics : all.slice(0, 3);
  const rows = resultRows(results).filter((r) => !opts.subsets || opts.subsets.includes(r.subset));
  const multi = results.variants.some((v) => v.seeds.length > 1);
  const cell = (r: TableRow, m: string) => (multi ? `${pct(r[m] as number)} ± ${pct(r[`${m} std`] as number)}` : pct(r[m] as number));
  const header = ['variant', 'subset', ...cols.map((c) => `${c} %`)];
  const body = rows.map((r) => [r.variant, r.subset, ...cols.map((m) => cell(r, m))]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

/** Writes results.json, results.csv and curves.json into `dir`. */
export async function writeResults(dir: string, results: AblationResults, runs: VariantResult[]): Promise<{ json: string; csv: string; curves: string }> {
  mkdirSync(dir, { recursive: true });
  const json = runFile(dir, 'results');
  const csv = runFile(dir, 'csv');
  const curves = runFile(dir, 'curves');
  // NaN is not JSON: a missing value (e.g. a subset with no queries) is left out.
  writeFileSync(json, JSON.stringify(results, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? undefined : v), 2));
  dfd.toCSV(resultsFrame(results), { filePath: csv });
  writeFileSync(
    curves,
    JSON.stringify({
      curves: runs.map((r) => ({ preset: r.name, seed: r.seed, points: r.curve.map((p) => ({ step: p.step, loss: p.loss, tau: p.tau, lr: p.lr })) })),
    }),
  );
  return { json, csv, curves };
}
