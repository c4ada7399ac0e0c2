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
  saliencyFigure,
  trainingCurvesFigure,
} from './figures';
import { escapeHtml, figureHtml, pageHtml, tableHtml } from './html';
import { neighbourGalleryHtml } from './neighbours';
import { ALL_SUBSET, allRecallKeys, metricStd, metricValue, seedCount, subsetNames } from './results';
import type { Figure, Results } from './types';

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

function meanStd(mean: number | undefined, std: number | undefined): string | number {
  if (mean === undefined) return '';
  return std === undefined ? mean : `${mean.toFixed(3)} ± ${std.toFixed(3)}`;
}

/** Rows of the overall recall table: variant × R@K (mean ± std over seeds when several). */
export function recallTableRows(results: Results, subset = ALL_SUBSET): Record<string, unknown>[] {
  const keys = allRecallKeys(results);
  return results.variants.map((v) => {
    const row: Record<string, unknown> = { variant: v.name };
    if (results.variants.some((x) => seedCount(x) > 1)) row.seeds = seedCount(v);
    for (const { key } of keys) row[key] = meanStd(metricValue(v, subset, key), metricStd(v, subset, key));
    if (subset === ALL_SUBSET && results.variants.some((x) => x.trainSeconds !== undefined)) {
      row['train s'] = v.trainSeconds === undefined ? '' : Number(v.trainSeconds.toFixed(1));
    }
    return row;
  });
}

/** Rows of the per-subset table of one metric: variant × subset. */
export function subsetTableRows(results: Results, metric: string): Record<string, unknown>[] {
  const subsets = subsetNames(results);
  return results.variants.map((v) => {
    const row: Record<string, unknown> = { variant: v.name };
    for (const s of subsets) row[s] = meanStd(metricValue(v, s, metric), metricStd(v, s, metric));
    return row;
  });
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
  sections.push({
    id: 'recall',
    title: 'Recall',
    body:
      tableHtml(recallTableRows(r), { caption: `Recall@K over all queries${maxSeeds > 1 ? ' (mean ± sample std over seeds)' : ''}` }) +
      figBlock(byId('recall-')),
  });
  const bars = byId('ablation-');
  if (bars.length > 0) {
    const metric = opts.barMetric ?? defaultBarMetric(r);
    sections.push({
      id: 'ablation',
      title: `Ablation: ${metric} by subset`,
      body: tableHtml(subsetTableRows(r, metric), { caption: `${metric} per subset` }) + figBlock(bars),
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
