/**
 * Showing figures, tables and HTML from a notebook.
 *
 * Inside the tslab kernel, output goes through tslab's display API as `text/html`. plotly.js
 * (≈ 4.8 MB) is inlined from node_modules — no CDN, so an executed notebook works offline —
 * and only once per kernel: the first `show` emits a script that defines `window.Plotly` in
 * the page, later figures draw with it. If the page lost it (outputs cleared, page reloaded
 * while the kernel lives), a figure says so in its place and `loadPlotly({ force: true })`
 * emits it again.
 *
 * Outside tslab (plain Node, the CLI, tests) the same calls degrade: tables print as text,
 * figures and HTML are written to standalone pages whose path is printed.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { TABLE_CSS, figureHtml, pageHtml, plotlyScriptTag, tableHtml, textTable } from './html';
import type { TableInput } from './html';
import type { Figure } from './types';

/** The part of tslab's `display` object used here. */
export interface HtmlSink {
  html(s: string): void;
}

let sinkOverride: HtmlSink | null | undefined;
let plotlyEmitted = false;

/**
 * tslab's display object when this process is a tslab kernel, else null. Found through the
 * kernel's own loaded copy of tslab (require.cache), so it works whichever tslab install runs
 * the kernel, and plain Node never loads tslab at all.
 */
function tslabDisplay(): HtmlSink | null {
  if (sinkOverride !== undefined) return sinkOverride;
  for (const key of Object.keys(require.cache)) {
    if (!/[\\/]tslab[\\/]dist[\\/]jupyter\.js$/.test(key)) continue;
    const jupyter = require.cache[key]?.exports as { lastWriteDisplayData?: unknown } | undefined;
    if (jupyter && typeof jupyter.lastWriteDisplayData === 'function') {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      return (require(join(dirname(key), 'public.js')) as { display: HtmlSink }).display;
    }
  }
  return null;
}

/** True when running inside the tslab Jupyter kernel (rich output available). */
export function inTslab(): boolean {
  return tslabDisplay() !== null;
}

/**
 * Sends HTML output somewhere else (tests, other front ends). `null` forces the plain-Node
 * fallback; `undefined` restores detection. Also forgets whether plotly.js was emitted.
 */
export function setHtmlSink(sink: HtmlSink | null | undefined): void {
  sinkOverride = sink;
  plotlyEmitted = false;
}

/**
 * Emits the inlined plotly.js into the notebook page (once per kernel unless `force`).
 * `show` calls it; call it yourself after clearing outputs or reloading the page.
 */
export function loadPlotly(opts: { force?: boolean } = {}): void {
  const d = tslabDisplay();
  if (!d) return;
  if (plotlyEmitted && !opts.force) return;
  d.html(plotlyScriptTag());
  plotlyEmitted = true;
}

/** The table/gallery CSS travels with every output (≈ 1 kB), so each output stands alone. */
function style(): string {
  return `<style>${TABLE_CSS}</style>`;
}

let fileCounter = 0;

function writeFallbackPage(title: string, body: string, withPlotly: boolean): string {
  const dir = process.env.NOTELLM2_FIGURE_DIR ?? join(tmpdir(), 'notellm2-figures');
  mkdirSync(dir, { recursive: true });
  fileCounter += 1;
  const safe = title.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 60) || 'output';
  const file = join(dir, `${process.pid}-${fileCounter}-${safe}.html`);
  writeFileSync(file, pageHtml({ title, body, withPlotly }));
  return file;
}

function figureTitle(figure: Figure): string {
  return figure.layout.title?.text ?? 'figure';
}

/**
 * Shows a plotly figure: interactive in tslab; elsewhere writes a standalone HTML page and
 * prints (and returns) its path.
 */
export function show(figure: Figure): string | undefined {
  const d = tslabDisplay();
  if (d) {
    loadPlotly();
    d.html(figureHtml(figure));
    return undefined;
  }
  const file = writeFallbackPage(figureTitle(figure), figureHtml(figure), true);
  console.log(`figure "${figureTitle(figure)}" written to ${file}`);
  return file;
}

/**
 * Shows a table — a danfojs DataFrame (anything with `columns` and `values`) or an array of
 * row objects — as an HTML table in tslab, as padded text elsewhere.
 */
export function showTable(input: TableInput, opts: { caption?: string } = {}): void {
  const d = tslabDisplay();
  if (d) {
    d.html(style() + tableHtml(input, opts));
    return;
  }
  console.log((opts.caption ? `${opts.caption}\n` : '') + textTable(input));
}

/**
 * Shows an HTML fragment (e.g. `neighboursHtml(...)`): in tslab directly, elsewhere written to
 * a standalone page whose path is printed and returned.
 */
export function showHtml(html: string, opts: { title?: string } = {}): string | undefined {
  const d = tslabDisplay();
  if (d) {
    d.html(style() + html);
    return undefined;
  }
  const file = writeFallbackPage(opts.title ?? 'output', html, false);
  console.log(`HTML "${opts.title ?? 'output'}" written to ${file}`);
  return file;
}
