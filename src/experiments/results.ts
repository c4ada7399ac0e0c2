/**
 * Results as tables (danfojs DataFrames) and files: results.json (docs/architecture.md "Contracts",
 * with mean ± std over seeds), results.csv (one row per variant × subset), curves.json
 * (training curves for the report), and the printed recall table.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as dfd from 'danfojs-node';
import type { AblationResults, AggregatedVariant } from './runner';
import type { VariantResult } from './variant';

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
  const json = join(dir, 'results.json');
  const csv = join(dir, 'results.csv');
  const curves = join(dir, 'curves.json');
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
