/**
 * Reading numbers out of a results object: which Recall@K keys exist, which subsets, a
 * variant's value and its spread over seeds. The figures and the report tables share these so
 * they always agree on what "the R@100 of basic on subset X" means.
 */
import type { MetricMap, Results, ResultsVariant } from './types';

/** Name under which figures and tables show a variant's overall `metrics` (all queries). */
export const ALL_SUBSET = 'all';

/** Recall keys of a metric map, sorted by K: `[{ k: 10, key: 'R@10' }, …]`. */
export function recallKeys(metrics: MetricMap): { k: number; key: string }[] {
  const out: { k: number; key: string }[] = [];
  for (const key of Object.keys(metrics)) {
    const m = /^R@(\d+)$/.exec(key);
    if (m) out.push({ k: Number(m[1]), key });
  }
  return out.sort((a, b) => a.k - b.k);
}

/** Recall keys present in any variant (and any subset), sorted by K. */
export function allRecallKeys(results: Results): { k: number; key: string }[] {
  const seen = new Map<number, string>();
  for (const v of results.variants) {
    for (const m of [v.metrics, ...Object.values(v.subsets ?? {})]) {
      for (const r of recallKeys(m)) seen.set(r.k, r.key);
    }
  }
  return [...seen.entries()].sort((a, b) => a[0] - b[0]).map(([k, key]) => ({ k, key }));
}

/** `'all'` followed by every subset name that appears in any variant, in first-seen order. */
export function subsetNames(results: Results): string[] {
  const names = [ALL_SUBSET];
  for (const v of results.variants) {
    for (const s of Object.keys(v.subsets ?? {})) if (!names.includes(s)) names.push(s);
  }
  return names;
}

function metricsOf(v: ResultsVariant, subset: string): MetricMap | undefined {
  return subset === ALL_SUBSET ? v.metrics : v.subsets?.[subset];
}

/** A variant's value of `key` on `subset` (the mean over seeds for multi-seed results). */
export function metricValue(v: ResultsVariant, subset: string, key: string): number | undefined {
  const x = metricsOf(v, subset)?.[key];
  return typeof x === 'number' && Number.isFinite(x) ? x : undefined;
}

/** Sample standard deviation (n − 1 denominator); 0 for fewer than two values. */
export function sampleStd(xs: number[]): number {
  if (xs.length < 2) return 0;
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1));
}

/**
 * Spread over seeds of `key` on `subset`: the stored `metricsStd` / `subsetsStd` when present,
 * otherwise computed from `seeds`, otherwise undefined (a single-seed result has no spread).
 */
export function metricStd(v: ResultsVariant, subset: string, key: string): number | undefined {
  const stored = subset === ALL_SUBSET ? v.metricsStd?.[key] : v.subsetsStd?.[subset]?.[key];
  if (typeof stored === 'number' && Number.isFinite(stored)) return stored;
  if (v.seeds && v.seeds.length >= 2) {
    const xs = v.seeds
      .map((s) => (subset === ALL_SUBSET ? s.metrics : s.subsets?.[subset])?.[key])
      .filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
    if (xs.length >= 2) return sampleStd(xs);
  }
  return undefined;
}

/**
 * The 95 % interval of `key` on `subset` (docs/method.md "Uncertainty and paired
 * comparisons"), when the results carry intervals; undefined otherwise.
 */
export function metricInterval(v: ResultsVariant, subset: string, key: string): [number, number] | undefined {
  const ci = subset === ALL_SUBSET ? v.intervals?.metrics?.[key] : v.intervals?.subsets?.[subset]?.[key];
  return ci && Number.isFinite(ci[0]) && Number.isFinite(ci[1]) ? ci : undefined;
}

/** Whether a row of the results is one of the baselines rather than a trained variant. */
export function isBaseline(results: Results, v: ResultsVariant): boolean {
  return (results.baselines ?? []).some((b) => b.name === v.name);
}

/** The variants, then the baselines as rows of the same shape (figures and tables draw both). */
export function resultRowsWithBaselines(results: Results): ResultsVariant[] {
  return [...results.variants, ...(results.baselines ?? []).map((b): ResultsVariant => ({ name: b.name, metrics: b.metrics, subsets: b.subsets, probes: b.probes, intervals: b.intervals }))];
}

/** Number of seeds behind a variant's numbers. */
export function seedCount(v: ResultsVariant): number {
  return v.seeds?.length ?? 1;
}

/**
 * Fixed colours for the named presets of docs/architecture.md, so a preset has the same colour in every
 * figure of a report; other names take the remaining palette in order.
 */
const PRESET_COLOURS: Record<string, string> = {
  'text-only': '#7f7f7f',
  basic: '#1f77b4',
  'late-only': '#ff7f0e',
  'late+early': '#9467bd',
  micl: '#2ca02c',
  notellm2: '#d62728',
  'tfidf-text': '#3b3b3b',
  'colour-histogram-image': '#a6761d',
};
const EXTRA_COLOURS = ['#8c564b', '#e377c2', '#bcbd22', '#17becf', '#393b79', '#637939', '#8c6d31', '#843c39', '#7b4173'];

/** Colour for a preset name; `index` picks from the extra palette for names not listed above. */
export function presetColour(name: string, index: number): string {
  const base = name.split(/[\s#/]/)[0];
  return PRESET_COLOURS[name] ?? PRESET_COLOURS[base] ?? EXTRA_COLOURS[index % EXTRA_COLOURS.length];
}
