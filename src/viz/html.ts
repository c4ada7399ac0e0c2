/**
 * HTML building blocks shared by the notebook display and the report: escaping, tables,
 * the inlined plotly.js script and a figure's div + draw script.
 *
 * Everything is inlined (no CDN, no network): a report or an executed notebook opens offline.
 */
import { readFileSync } from 'node:fs';
import type { Figure } from './types';

export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/**
 * JSON that is safe inside a `<script>` element: `<` is written as `\u003c` (valid in JSON and
 * JS strings), so no `</script>` or `<!--` in the data can end or confuse the element.
 */
export function scriptSafeJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

let plotlyCache: { version: string; source: string } | undefined;

/** The plotly.js-dist-min bundle from node_modules (read once per process). */
export function plotlySource(): { version: string; source: string } {
  if (!plotlyCache) {
    const file = require.resolve('plotly.js-dist-min');
    const source = readFileSync(file, 'utf8');
    const version = /plotly\.js v([\d.]+)/.exec(source.slice(0, 200))?.[1] ?? 'unknown';
    if (/<\/script/i.test(source)) throw new Error(`${file}: contains "</script", cannot be inlined into HTML`);
    plotlyCache = { version, source };
  }
  return plotlyCache;
}

/**
 * A `<script>` element defining `window.Plotly` from the inlined bundle. It does nothing when
 * the page already has Plotly, so emitting it twice is harmless (only wasteful).
 */
export function plotlyScriptTag(): string {
  const { version, source } = plotlySource();
  // `<!--` inside a script element switches the HTML tokenizer into its "escaped" state; the
  // bundle has it only inside a string literal, where `<\!--` means the same characters.
  const safe = source.replace(/<!--/g, '<\\!--');
  return `<script data-notellm2-plotly="${version}">(function(){if(window.Plotly)return;\n${safe}\n}).call(window);</script>`;
}

let figureCounter = 0;

/** A fresh element id for a figure div. */
export function newFigureId(prefix = 'fig'): string {
  figureCounter += 1;
  return `notellm2-${prefix}-${Date.now().toString(36)}-${figureCounter}`;
}

/** A static picture shown in a figure's place until (and unless) its script draws it. */
export interface FigureStatic {
  /** PNG bytes of the figure; absent when none could be made. */
  png?: Uint8Array;
  width?: number;
  height?: number;
  /** Short text under the picture (or alone) saying what to do for the interactive figure. */
  note: string;
}

export interface FigureHtmlOptions {
  id?: string;
  /** Seconds to wait for `window.Plotly` before saying in the figure that it is missing. Defaults to 20. */
  waitSeconds?: number;
  /**
   * Markup shown before the script runs: the only content a sanitising viewer (an untrusted
   * notebook) keeps, so it is plain HTML with attributes, no style block. Removed when the
   * interactive figure draws.
   */
  static?: FigureStatic;
  /** Said in the figure when plotly.js never arrived (the script ran, the page lacks it). */
  missingPlotly?: string;
}

/** A figure's title as plain text (plotly titles may hold `<br>` and other tags). */
export function figureTitleText(figure: Figure): string {
  const t = figure.layout.title?.text ?? '';
  return t.replace(/<br\s*\/?>/gi, ' ').replace(/<[^>]*>/g, '').replace(/\s+/g, ' ').trim() || 'figure';
}

function staticHtml(figure: Figure, s: FigureStatic): string {
  const img = s.png
    ? `<img src="data:image/png;base64,${Buffer.from(s.png).toString('base64')}"` +
      (s.width ? ` width="${s.width}"` : '') +
      (s.height ? ` height="${s.height}"` : '') +
      ` alt="${escapeHtml(figureTitleText(figure))}" style="max-width:100%;height:auto">`
    : '';
  return `<div class="notellm2-figure-static">${img}<p class="notellm2-figure-note"><small><i>${escapeHtml(s.note)}</i></small></p></div>`;
}

/**
 * A figure's `<div>` and the script that draws it with `Plotly.newPlot` once `window.Plotly`
 * exists. The script finds its div through `document.currentScript` first, because notebook
 * front ends may run output scripts before the output is attached to the document.
 */
export function figureHtml(figure: Figure, opts: FigureHtmlOptions = {}): string {
  const id = opts.id ?? newFigureId();
  const wait = Math.round((opts.waitSeconds ?? 20) * 10);
  const spec = scriptSafeJson({ data: figure.data, layout: figure.layout });
  const missing = scriptSafeJson(opts.missingPlotly ?? 'plotly.js is not loaded in this page; run loadPlotly({ force: true }) in a cell, then show the figure again.');
  return (
    `<div class="notellm2-figure" id="${escapeHtml(id)}" data-figure-id="${escapeHtml(id)}">${opts.static ? staticHtml(figure, opts.static) : ''}</div>\n` +
    `<script>(function(){var id=${scriptSafeJson(id)};var spec=${spec};` +
    `var s=document.currentScript;` +
    `function el(){var p=s&&s.parentNode;var d=p&&p.querySelector?p.querySelector('[data-figure-id="'+id+'"]'):null;return d||document.getElementById(id);}` +
    // Draw once both plotly.js and the div are in the page (either may come later); the
    // static picture gives way to the interactive figure.
    `function tryDraw(){var d=el();if(!window.Plotly||!d||!d.isConnected)return false;var st=d.querySelector('.notellm2-figure-static');if(st)st.parentNode.removeChild(st);` +
    `window.Plotly.newPlot(d,spec.data,spec.layout,{responsive:true,displaylogo:false});d.setAttribute('data-drawn','1');return true;}` +
    `if(tryDraw())return;var n=0;var t=setInterval(function(){if(tryDraw()){clearInterval(t);}` +
    `else if(++n>${wait}){clearInterval(t);var d=el();if(d&&!window.Plotly){var note=d.querySelector('.notellm2-figure-note');if(note)note.textContent=${missing};else d.textContent=${missing};}}},100);` +
    `})();</script>`
  );
}

/** Rows of a table: objects keyed by column, or a DataFrame-like `{ columns, values }` (ResultsTable, danfojs). */
export type TableInput =
  | Record<string, unknown>[]
  | { columns: string[]; values: unknown[][] | unknown[]; index?: (string | number)[] };

export interface Table {
  columns: string[];
  rows: unknown[][];
}

/**
 * Normalises a table input. DataFrame-like tables (ResultsTable, a danfojs DataFrame) are read
 * through their `columns`, `values` and `index` properties; a non-default index becomes a first
 * column.
 */
export function toTable(input: TableInput): Table {
  if (Array.isArray(input)) {
    const columns: string[] = [];
    for (const row of input) for (const k of Object.keys(row)) if (!columns.includes(k)) columns.push(k);
    return { columns, rows: input.map((row) => columns.map((c) => row[c])) };
  }
  if (input && Array.isArray(input.columns) && Array.isArray(input.values)) {
    // A Series has 1-D values; a DataFrame 2-D.
    const rows = (input.values as unknown[]).map((r) => (Array.isArray(r) ? r : [r]));
    const columns = input.columns.map(String);
    const index = input.index;
    const defaultIndex = !index || index.every((v, i) => v === i);
    if (defaultIndex) return { columns, rows };
    return { columns: ['', ...columns], rows: rows.map((r, i) => [index[i], ...r]) };
  }
  throw new Error('showTable: expected an array of row objects or a DataFrame ({ columns, values })');
}

/** Cell text: numbers with four significant digits, objects as JSON. */
export function formatCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return String(v);
    if (Number.isInteger(v)) return String(v);
    return Math.abs(v) >= 1e4 || Math.abs(v) < 1e-3 ? v.toExponential(3) : String(Number(v.toPrecision(4)));
  }
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

/**
 * Inline styles and presentational attributes only, no class-based CSS: an untrusted notebook
 * view removes `<style>` blocks (and the classic notebook every `style` attribute too), so
 * what must survive sanitising is said with attributes (`align`, `cellpadding`, `<b>`), and
 * the styles refine it where they are kept.
 */
const CELL = 'padding:3px 10px;border-bottom:1px solid #ddd';

/** An HTML `<table>` fragment (numbers right-aligned). */
export function tableHtml(input: TableInput, opts: { caption?: string } = {}): string {
  const { columns, rows } = toTable(input);
  const head = columns.map((c) => `<th align="left" style="text-align:left;padding:3px 10px;border-bottom:2px solid #888">${escapeHtml(c)}</th>`).join('');
  const cell = (v: unknown) => {
    const text = formatCell(v);
    // Short values ("0.420 ± 0.020") stay on one line; long text may wrap.
    const nowrap = text.length <= 24 ? ' nowrap' : '';
    const ws = nowrap ? 'white-space:nowrap;' : '';
    return typeof v === 'number'
      ? `<td class="num" align="right"${nowrap} style="text-align:right;font-variant-numeric:tabular-nums;${ws}${CELL}">${escapeHtml(text)}</td>`
      : `<td align="left"${nowrap} style="text-align:left;${ws}${CELL}">${escapeHtml(text)}</td>`;
  };
  const body = rows.map((r) => `<tr>${r.map(cell).join('')}</tr>`).join('\n');
  const caption = opts.caption ? `<caption align="top" style="caption-side:top;text-align:left;padding:4px 0"><b>${escapeHtml(opts.caption)}</b></caption>` : '';
  return (
    `<table class="notellm2-table" border="0" cellspacing="0" cellpadding="4" style="border-collapse:collapse;font-size:13px;margin:0.5em 0">` +
    `${caption}<thead><tr>${head}</tr></thead>\n<tbody>\n${body}\n</tbody></table>`
  );
}

/** A plain-text table with padded columns, for terminals. */
export function textTable(input: TableInput): string {
  const { columns, rows } = toTable(input);
  const cells = [columns, ...rows.map((r) => r.map(formatCell))];
  const widths = columns.map((_, j) => Math.max(...cells.map((r) => (r[j] ?? '').length)));
  const line = (r: string[], numeric: boolean[]) =>
    r.map((c, j) => (numeric[j] ? (c ?? '').padStart(widths[j]) : (c ?? '').padEnd(widths[j]))).join('  ').trimEnd();
  const numeric = columns.map((_, j) => rows.length > 0 && rows.every((r) => typeof r[j] === 'number' || r[j] == null));
  return [line(columns, numeric), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map((r) => line(r, numeric))].join('\n');
}

/** Page CSS of the standalone pages (the fragments themselves carry inline styles). */
const PAGE_CSS = 'body{font:14px system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}';

/** A complete, self-contained HTML page (plotly.js inlined in the head). */
export function pageHtml(opts: { title: string; body: string; css?: string; withPlotly?: boolean }): string {
  return [
    '<!DOCTYPE html>',
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(opts.title)}</title>`,
    `<style>${PAGE_CSS}${opts.css ?? ''}</style>`,
    opts.withPlotly === false ? '' : plotlyScriptTag(),
    '</head><body>',
    opts.body,
    '</body></html>',
    '',
  ].join('\n');
}
