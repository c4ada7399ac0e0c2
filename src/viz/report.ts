/**
 * The HTML report of a run: one self-contained `report.html` (plotly.js inlined, images as
 * data URIs, no network) with the recall tables, every figure the run's files allow, and the
 * resolved config of each variant; optionally PNG files of the figures rendered in headless
 * Chromium.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { plotlyPng, withChromium } from './browser';
import { loadRun } from './files';
import type { RunData } from './files';
import { RUN_DIRS, runFile } from '../experiments/run-folder';
import {
  ablationBarsFigure,
  defaultBarMetric,
  projectionFigure,
  recallCurveFigures,
  regimeHeatmapFigure,
  REGIME_QUANTITIES,
  saliencyFigure,
  trainingCurvesFigure,
} from './figures';
import { escapeHtml, figureHtml, pageHtml, tableHtml } from './html';
import { neighbourGalleryHtml } from './neighbours';
import { ALL_SUBSET, allRecallKeys, isBaseline, metricInterval, metricStd, metricValue, resultRowsWithBaselines, seedCount, subsetNames } from './results';
import { describeRegimes } from '../experiments/regimes';
import type { Figure, Results, ResultsVariant } from './types';

/** A figure of the report; `id` names its div (`fig-<id>`) and its PNG (`<id>.png`). */
export interface ReportFigure {
  id: string;
  title: string;
  figure: Figure;
}

export interface ReportOptions {
  /** Report title. Defaults to "notellm2 report — <run folder name>". */
  title?: string;
  /** Bar-chart metric. Defaults to R@100 when recorded, else the largest K. */
  barMetric?: string;
  /** Neighbours shown per query. Defaults to 5. */
  neighbours?: number;
}

function slug(s: string): string {
  return s.toLowerCase().replace(/@/g, '').replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '') || 'x';
}

/** A table cell: `mean [lo, hi]` with a 95 % interval, else `mean ± std` over seeds, else the mean. */
function cellOf(v: ResultsVariant, subset: string, key: string): string | number {
  const mean = metricValue(v, subset, key);
  if (mean === undefined) return '';
  const ci = metricInterval(v, subset, key);
  if (ci) return `${mean.toFixed(3)} [${ci[0].toFixed(3)}, ${ci[1].toFixed(3)}]`;
  const std = metricStd(v, subset, key);
  return std === undefined ? mean : `${mean.toFixed(3)} ± ${std.toFixed(3)}`;
}

/**
 * Rows of the overall recall table: variant × R@K (mean [95 % interval], or mean ± std over
 * seeds when the results carry no intervals), then the baselines.
 */
export function recallTableRows(results: Results, subset = ALL_SUBSET): Record<string, unknown>[] {
  const keys = allRecallKeys(results);
  return resultRowsWithBaselines(results).map((v) => {
    const row: Record<string, unknown> = { variant: isBaseline(results, v) ? `${v.name} (baseline)` : v.name };
    if (results.variants.some((x) => seedCount(x) > 1)) row.seeds = isBaseline(results, v) ? '' : seedCount(v);
    for (const { key } of keys) row[key] = cellOf(v, subset, key);
    if (subset === ALL_SUBSET && results.variants.some((x) => x.trainSeconds !== undefined)) {
      row['train s'] = v.trainSeconds === undefined ? '' : Number(v.trainSeconds.toFixed(1));
    }
    return row;
  });
}

/** Rows of the per-subset table of one metric: variant (then baseline) × subset. */
export function subsetTableRows(results: Results, metric: string): Record<string, unknown>[] {
  const subsets = subsetNames(results);
  return resultRowsWithBaselines(results).map((v) => {
    const row: Record<string, unknown> = { variant: isBaseline(results, v) ? `${v.name} (baseline)` : v.name };
    for (const s of subsets) row[s] = cellOf(v, s, metric);
    return row;
  });
}

const signedPoints = (x: number) => (Number.isFinite(x) ? `${x >= 0 ? '+' : '−'}${Math.abs(100 * x).toFixed(1)}` : '–');
const pText = (p: number) => (!Number.isFinite(p) ? '–' : p < 0.001 ? '<0.001' : p.toFixed(3));

/**
 * Rows of the claims table (docs/method.md "Reported outcomes"): claim, metric, the measured
 * figures with intervals, each paired difference in points with its interval and p, verdict.
 */
export function claimTableRows(results: Results): Record<string, unknown>[] {
  return (results.claims ?? []).map((c) => ({
    claim: `(${c.id}) ${c.statement}`,
    metric: c.metric,
    measured: c.measured.map((m) => `${m.label} ${m.estimate.toFixed(3)} [${m.lo.toFixed(3)}, ${m.hi.toFixed(3)}]`).join('; '),
    'paired difference (points)': c.comparisons.map((d) => `${d.a} − ${d.b}: ${signedPoints(d.diff)} [${signedPoints(d.lo)}, ${signedPoints(d.hi)}], p ${pText(d.p)}`).join('; ') || c.note,
    verdict: c.verdict,
  }));
}

/** Rows of the comparisons at one metric (all subsets unless `subset` is given). */
export function comparisonTableRows(results: Results, metric: string, opts: { subset?: string; pairs?: (c: { a: string; b: string; subset: string }) => boolean } = {}): Record<string, unknown>[] {
  return (results.comparisons ?? [])
    .filter((c) => c.metric === metric && (!opts.subset || c.subset === opts.subset) && (!opts.pairs || opts.pairs(c)))
    .map((c) => ({ difference: `${c.a} − ${c.b}`, subset: c.subset, n: c.nQueries, points: signedPoints(c.diff), '95 % interval': `[${signedPoints(c.lo)}, ${signedPoints(c.hi)}]`, p: pText(c.p) }));
}

/** Rows of the regime map's table: one per cell, basic's probes, its neglect and each fix's paired gain. */
export function regimeTableRows(results: Results): Record<string, unknown>[] {
  const est = (e: { estimate: number; lo: number; hi: number }) => `${e.estimate.toFixed(3)} [${e.lo.toFixed(3)}, ${e.hi.toFixed(3)}]`;
  return (results.regimes ?? []).map((c) => ({
    cell: c.cell,
    'LM ×': c.axes.lm,
    'vision ×': c.axes.vision,
    [`basic ${c.metric}`]: est(c.basic.full),
    'text alone': est(c.basic.textAlone),
    'image alone': est(c.basic.imageAlone),
    'text − image alone (points)': `${signedPoints(c.neglect.estimate)} [${signedPoints(c.neglect.lo)}, ${signedPoints(c.neglect.hi)}]`,
    'image neglected': c.neglect.verdict,
    ...Object.fromEntries(Object.entries(c.gains).map(([f, g]) => [`${f} − basic (points)`, `${signedPoints(g.estimate)} [${signedPoints(g.lo)}, ${signedPoints(g.hi)}] ${g.verdict}`])),
  }));
}

/** Rows of the probe table: variant × probe/metric (numbers only; nested objects as JSON). */
export function probeTableRows(results: Results): Record<string, unknown>[] {
  return results.variants
    .filter((v) => v.probes && Object.keys(v.probes).length > 0)
    .map((v) => {
      const row: Record<string, unknown> = { variant: v.name };
      for (const [probe, value] of Object.entries(v.probes ?? {})) {
        if (value && typeof value === 'object' && !Array.isArray(value)) {
          for (const [k, x] of Object.entries(value as Record<string, unknown>)) row[`${probe} ${k}`] = x;
        } else row[probe] = value;
      }
      return row;
    });
}

/** Every figure the run's data allows, in report order. */
export function reportFigures(run: RunData, opts: ReportOptions = {}): ReportFigure[] {
  const figs: ReportFigure[] = [];
  for (const { subset, figure } of recallCurveFigures(run.results)) {
    figs.push({ id: `recall-${slug(subset)}`, title: `Recall@K — ${subset === ALL_SUBSET ? 'all queries' : subset}`, figure });
  }
  if (allRecallKeys(run.results).length > 0) {
    const metric = opts.barMetric ?? defaultBarMetric(run.results);
    figs.push({ id: `ablation-${slug(metric)}`, title: `Ablation: ${metric} by subset`, figure: ablationBarsFigure(run.results, { metric }) });
  }
  if (run.curves && run.curves.length > 0) figs.push({ id: 'training', title: 'Training curves', figure: trainingCurvesFigure(run.curves) });
  if (run.saliency && run.saliency.length > 0) figs.push({ id: 'saliency', title: 'Modality saliency per layer', figure: saliencyFigure(run.saliency) });
  if (run.embeddings) figs.push({ id: 'projection', title: 'Note embeddings (PCA)', figure: projectionFigure(run.embeddings) });
  if (run.results.regimes?.length) {
    for (const q of REGIME_QUANTITIES) {
      const fig = regimeHeatmapFigure(run.results, q);
      if (fig.data[0].z!.flat().some(Number.isFinite)) figs.push({ id: `regime-${slug(q)}`, title: `Regime map: ${q}`, figure: fig });
    }
  }
  return figs;
}

const REPORT_CSS = `
body{font:14px system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:16px 24px;color:#222}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555}.notellm2-figure{min-height:300px;margin:8px 0 24px}
details{margin:4px 0}summary{cursor:pointer}pre{background:#f6f6f6;padding:8px;overflow:auto;font-size:12px}
nav a{margin-right:12px}
`;

/** The report page for loaded run data, and the figures it contains. */
export function buildReport(run: RunData, opts: ReportOptions = {}): { html: string; figures: ReportFigure[] } {
  const r = run.results;
  const title = opts.title ?? `notellm2 report — ${basename(resolve(run.dir))}`;
  const figures = reportFigures(run, opts);
  const byId = (prefix: string) => figures.filter((f) => f.id.startsWith(prefix));
  const figBlock = (fs: ReportFigure[]) => fs.map((f) => figureHtml(f.figure, { id: `fig-${f.id}` })).join('\n');
  const sections: { id: string; title: string; body: string }[] = [];

  const maxSeeds = Math.max(...r.variants.map(seedCount));
  const withIntervals = r.variants.some((v) => v.intervals);
  const spread = withIntervals ? ` (mean [95 % interval over queries${maxSeeds > 1 ? ' and seeds' : ''}])` : maxSeeds > 1 ? ' (mean ± sample std over seeds)' : '';
  sections.push({
    id: 'recall',
    title: 'Recall',
    body:
      tableHtml(recallTableRows(r), { caption: `Recall@K over all queries${spread}${r.baselines?.length ? '; baselines: TF-IDF of the text, colour histogram of the cover' : ''}` }) +
      figBlock(byId('recall-')),
  });
  const bars = byId('ablation-');
  if (bars.length > 0) {
    const metric = opts.barMetric ?? defaultBarMetric(r);
    sections.push({
      id: 'ablation',
      title: `Ablation: ${metric} by subset`,
      body: tableHtml(subsetTableRows(r, metric), { caption: `${metric} per subset${spread}` }) + figBlock(bars),
    });
  }
  if (r.claims?.length) {
    sections.push({
      id: 'claims',
      title: "The paper's claims",
      body: tableHtml(claimTableRows(r), {
        caption: 'Each claim as a paired difference on the same queries: supported when its 95 % interval lies above 0, contradicted below 0, inconclusive when it includes 0',
      }),
    });
  }
  if (r.comparisons?.length) {
    const metric = opts.barMetric ?? defaultBarMetric(r);
    const names = new Set(r.variants.map((v) => v.name));
    sections.push({
      id: 'comparisons',
      title: 'Paired comparisons',
      body:
        tableHtml(comparisonTableRows(r, metric, { subset: ALL_SUBSET, pairs: (c) => names.has(c.a) && names.has(c.b) }), {
          caption: `${metric}, all queries: a − b in points on the same queries, 95 % interval, sign-flip permutation p (every subset and metric: comparisons.csv)`,
        }) +
        tableHtml(comparisonTableRows(r, metric, { pairs: (c) => (c.b === 'tfidf-text' && c.subset === 'text') || (c.b === 'colour-histogram-image' && c.subset === 'visual') }), {
          caption: `${metric}: each variant against the baseline of the subset it is made for`,
        }),
    });
  }
  if (r.regimes?.length) {
    sections.push({
      id: 'regimes',
      title: 'Regime map',
      body:
        tableHtml(regimeTableRows(r), { caption: 'Per cell: basic on the full input and each probe, its text − image alone difference, and the paired gain of each fix over basic (95 % intervals)' }) +
        `<ul>${describeRegimes(r.regimes).map((l) => `<li>${escapeHtml(l)}</li>`).join('')}</ul>` +
        figBlock(byId('regime-')),
    });
  }
  const probes = probeTableRows(r);
  if (probes.length > 0) sections.push({ id: 'probes', title: 'Probes', body: tableHtml(probes, { caption: 'Recall with one modality removed' }) });
  if (run.curves?.length) sections.push({ id: 'training', title: 'Training', body: figBlock(byId('training')) });
  if (run.saliency?.length) sections.push({ id: 'saliency', title: 'Modality saliency', body: figBlock(byId('saliency')) });
  if (run.embeddings) sections.push({ id: 'projection', title: 'Embedding projection', body: figBlock(byId('projection')) });
  if (run.neighbours?.length) {
    sections.push({ id: 'neighbours', title: 'Nearest neighbours', body: neighbourGalleryHtml(run.neighbours, { k: opts.neighbours ?? 5 }) });
  }
  const timing = r.variants.some((v) => v.trainSeconds !== undefined)
    ? tableHtml(r.variants.map((v) => ({ variant: v.name, 'train seconds': v.trainSeconds ?? '' })))
    : '';
  sections.push({
    id: 'configs',
    title: 'Resolved configs',
    body:
      timing +
      r.variants
        .map((v) => `<details><summary>${escapeHtml(v.name)}</summary><pre>${escapeHtml(JSON.stringify(v.config ?? null, null, 2))}</pre></details>`)
        .join('\n'),
  });

  const extra = Object.entries(r)
    .filter(([k, v]) => !['dataset', 'backend', 'seed', 'variants'].includes(k) && (typeof v === 'string' || typeof v === 'number'))
    .map(([k, v]) => ` · ${escapeHtml(k)} ${escapeHtml(String(v))}`)
    .join('');
  const body = [
    `<h1>${escapeHtml(title)}</h1>`,
    `<p class="meta">dataset <b>${escapeHtml(r.dataset)}</b> · backend ${escapeHtml(r.backend)} · seed ${r.seed} · ${r.variants.length} variants${maxSeeds > 1 ? ` · ${maxSeeds} seeds` : ''}${extra}</p>`,
    `<nav>${sections.map((s) => `<a href="#${s.id}">${escapeHtml(s.title)}</a>`).join('')}</nav>`,
    ...sections.map((s) => `<section id="${s.id}"><h2>${escapeHtml(s.title)}</h2>\n${s.body}\n</section>`),
  ].join('\n');
  return { html: pageHtml({ title, body, css: REPORT_CSS }), figures };
}

export interface WriteReportOptions extends ReportOptions {
  /** Output file. Defaults to `<runDir>/report.html`. */
  out?: string;
  /** Also render every figure to `<pngDir>/<figure id>.png` in headless Chromium. */
  png?: boolean;
  /** Folder for the PNGs. Defaults to `<runDir>/figures`. */
  pngDir?: string;
  /** PNG width in CSS pixels (height from each figure's layout). Defaults to 1000. */
  pngWidth?: number;
}

export interface WrittenReport {
  html: string;
  figures: string[];
  pngs: string[];
}

/**
 * Reads `runDir` (see files.ts for its files), writes report.html and, with `png`, the PNGs.
 * Returns the written paths.
 */
export async function writeReport(runDir: string, opts: WriteReportOptions = {}): Promise<WrittenReport> {
  const run = loadRun(runDir);
  const { html, figures } = buildReport(run, opts);
  const out = resolve(opts.out ?? runFile(runDir, 'report'));
  writeFileSync(out, html);
  const pngs = opts.png ? await renderPngs(out, figures, resolve(opts.pngDir ?? join(runDir, RUN_DIRS.figures)), opts.pngWidth ?? 1000) : [];
  return { html: out, figures: figures.map((f) => f.id), pngs };
}

/**
 * Opens the written report in headless Chromium, waits until every figure drew, and saves
 * `Plotly.toImage` of each as PNG. Fails on any page error, so a broken figure never passes as
 * an empty image.
 */
export async function renderPngs(htmlFile: string, figures: ReportFigure[], outDir: string, width = 1000): Promise<string[]> {
  mkdirSync(outDir, { recursive: true });
  return withChromium(async (ctx) => {
    const page = await ctx.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    await page.goto(pathToFileURL(htmlFile).href, { waitUntil: 'load' });
    const written: string[] = [];
    for (const f of figures) {
      const sel = `#fig-${f.id} svg.main-svg`;
      await page.waitForSelector(sel, { timeout: 30_000 }).catch(() => {
        throw new Error(`report ${htmlFile}: figure "${f.id}" did not draw${errors.length ? `; page errors: ${errors.join(' | ')}` : ''}`);
      });
      const height = typeof f.figure.layout.height === 'number' ? f.figure.layout.height : 450;
      const png = await plotlyPng(page, `fig-${f.id}`, { width, height });
      const file = join(outDir, `${f.id}.png`);
      writeFileSync(file, png);
      written.push(file);
    }
    if (errors.length > 0) throw new Error(`report ${htmlFile}: page errors while rendering: ${errors.join(' | ')}`);
    return written;
  });
}
