/**
 * Showing figures, tables and HTML from a notebook.
 *
 * Inside the tslab kernel every call sends one Jupyter display output carrying several
 * representations, richest first, and the front end picks what it can show:
 *
 * - `application/vnd.plotly.v1+json` (`{ data, layout }`): the front end's plotly renderer
 *   (JupyterLab 4 / Notebook 7 with the Python `plotly` package) shows the picture below and
 *   draws the interactive figure when the mouse is over it, also in an untrusted notebook — a
 *   saved one reopened, one executed by nbconvert, one from git;
 * - `image/png`: a static picture rendered in headless Chromium (snapshot.ts) when one is
 *   available;
 * - `text/html`: the same picture plus a line saying what to do for the interactive figure
 *   ("trust the notebook or re-run the cell"), and a script that replaces both with the
 *   interactive figure where scripts run (a trusted notebook, a cell just run);
 * - `text/plain`: the figure's title.
 *
 * The script needs plotly.js (≈ 4.8 MB) in the page. It is inlined from node_modules (no CDN,
 * so everything works offline) and sent once per kernel, inside the first figure's output,
 * which is then replaced by the figure alone: the page keeps `window.Plotly`, the saved
 * notebook never stores the bundle. A page that lost it (reloaded while the kernel lives)
 * keeps showing the pictures; `loadPlotly({ force: true })` sends it again.
 *
 * Tables and HTML fragments are sent as `text/html` (inline attributes and styles only:
 * untrusted views drop `<style>` blocks) with a `text/plain` fallback.
 *
 * Outside tslab (plain Node, the CLI, tests) the same calls degrade: tables print as text,
 * figures and HTML are written to standalone pages whose path is printed.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { figureHtml, figureTitleText, pageHtml, plotlyScriptTag, plotlySource, tableHtml, textTable } from './html';
import type { TableInput } from './html';
import { snapshotFigure } from './snapshot';
import type { Snapshot } from './snapshot';
import type { Figure } from './types';

/** The Jupyter MIME type of a plotly figure, drawn by the front end's plotly renderer. */
export const PLOTLY_MIME = 'application/vnd.plotly.v1+json';

/** One Jupyter display output: representations by MIME type (the `display_data` content). */
export interface DisplayOutput {
  data: Record<string, unknown>;
  metadata: Record<string, unknown>;
  /** A display id makes the output replaceable by a later `update`. */
  transient?: { display_id: string };
}

/** Sends a display output (`update`: replace the earlier output with the same display id). */
export type DisplaySink = (output: DisplayOutput, update: boolean) => void;

/** Makes the static picture of a figure (blocking), or says why there is none. */
export type Snapshotter = (figure: Figure) => Snapshot;

let sinkOverride: DisplaySink | null | undefined;
let snapshotter: Snapshotter = snapshotFigure;
let plotlySent = false;

/**
 * tslab's display writer when this process is a tslab kernel, else null. Found through the
 * kernel's own loaded copy of tslab (require.cache), so it works whichever tslab install runs
 * the kernel, and plain Node never loads tslab at all. tslab's public `display` sends one
 * MIME type per output; its kernel-side writer takes a whole bundle.
 */
function currentSink(): DisplaySink | null {
  if (sinkOverride !== undefined) return sinkOverride;
  for (const key of Object.keys(require.cache)) {
    if (!/[\\/]tslab[\\/]dist[\\/]jupyter\.js$/.test(key)) continue;
    const jupyter = require.cache[key]?.exports as { lastWriteDisplayData?: DisplaySink | null } | undefined;
    if (jupyter && typeof jupyter.lastWriteDisplayData === 'function') {
      return (output, update) => {
        // The writer of the cell running now (tslab replaces it for every execution).
        const write = jupyter.lastWriteDisplayData;
        if (typeof write !== 'function') throw new Error('tslab: display called outside a running cell');
        write(output, update);
      };
    }
  }
  return null;
}

/** True when running inside the tslab Jupyter kernel (rich output available). */
export function inTslab(): boolean {
  return currentSink() !== null;
}

/**
 * Sends display outputs somewhere else (tests, other front ends). `null` forces the
 * plain-Node fallback; `undefined` restores detection. `snapshot` replaces the Chromium
 * renderer of static pictures. Also forgets whether plotly.js was sent.
 */
export function setDisplaySink(sink: DisplaySink | null | undefined, opts: { snapshot?: Snapshotter } = {}): void {
  sinkOverride = sink;
  snapshotter = opts.snapshot ?? snapshotFigure;
  plotlySent = false;
}

function newDisplayId(): string {
  return randomBytes(8).toString('hex');
}

/**
 * Sends the inlined plotly.js into the notebook page (once per kernel unless `force`).
 * `show` does it with the first figure; call it yourself after reloading the page while the
 * kernel lives. Its output ends as one line of text: the bundle itself is not saved.
 */
export function loadPlotly(opts: { force?: boolean } = {}): void {
  const sink = currentSink();
  if (!sink) return;
  if (plotlySent && !opts.force) return;
  const id = newDisplayId();
  const { version } = plotlySource();
  sink({ data: { 'text/html': plotlyScriptTag(), 'text/plain': 'loading plotly.js' }, metadata: {}, transient: { display_id: id } }, false);
  sink({ data: { 'text/plain': `plotly.js ${version} sent to this page` }, metadata: {}, transient: { display_id: id } }, true);
  plotlySent = true;
}

const TRUST_NOTE = 'trust the notebook or re-run the cell';

/**
 * The display output of a figure: plotly JSON, the static picture when there is one, HTML
 * (picture + what to do + drawing script) and the title as text.
 */
export function figureOutput(figure: Figure, snapshot: Snapshot): DisplayOutput {
  const title = figureTitleText(figure);
  const spec = { data: figure.data, layout: figure.layout, config: { displaylogo: false, responsive: true } };
  const note =
    'png' in snapshot
      ? `Static picture of an interactive figure. For the interactive version, ${TRUST_NOTE}.`
      : `This figure is drawn by a script that did not run here: ${TRUST_NOTE}. No static picture was saved: ${snapshot.error}.`;
  const html = figureHtml(figure, {
    // plotly.js is in the page before this script runs (earlier in the same output, or an
    // earlier output) or not at all: no need to wait long before saying so.
    waitSeconds: 5,
    static: 'png' in snapshot ? { png: snapshot.png, width: snapshot.width, height: snapshot.height, note } : { note },
    missingPlotly:
      'plotly.js is not in this page (the kernel sends it once, with its first figure), so this picture stays static: ' +
      'run loadPlotly({ force: true }) in a cell and show the figure again, or restart the kernel and re-run.',
  });
  const data: Record<string, unknown> = { [PLOTLY_MIME]: spec };
  if ('png' in snapshot) data['image/png'] = snapshot.png.toString('base64');
  data['text/html'] = html;
  data['text/plain'] = `Figure: ${title}`;
  return { data, metadata: {} };
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

/**
 * Shows a plotly figure: in tslab as one display output (see the file comment); elsewhere
 * writes a standalone HTML page and prints (and returns) its path.
 */
export function show(figure: Figure): string | undefined {
  const sink = currentSink();
  if (sink) {
    const output = figureOutput(figure, snapshotter(figure));
    if (plotlySent) {
      sink(output, false);
      return undefined;
    }
    // The kernel's first figure: the output first carries plotly.js ahead of the figure's
    // HTML, then is replaced by the figure alone.
    const transient = { display_id: newDisplayId() };
    sink({ ...output, data: { ...output.data, 'text/html': plotlyScriptTag() + (output.data['text/html'] as string) }, transient }, false);
    sink({ ...output, transient }, true);
    plotlySent = true;
    return undefined;
  }
  const title = figureTitleText(figure);
  const file = writeFallbackPage(title, figureHtml(figure), true);
  console.log(`figure "${title}" written to ${file}`);
  return file;
}

/**
 * Shows a table — a DataFrame-like object (`columns` and `values`, e.g. resultsFrame) or an array of
 * row objects — as an HTML table in tslab, as padded text elsewhere.
 */
export function showTable(input: TableInput, opts: { caption?: string } = {}): void {
  const text = (opts.caption ? `${opts.caption}\n` : '') + textTable(input);
  const sink = currentSink();
  if (sink) {
    sink({ data: { 'text/html': tableHtml(input, opts), 'text/plain': text }, metadata: {} }, false);
    return;
  }
  console.log(text);
}

/**
 * Shows an HTML fragment (e.g. `neighboursHtml(...)`): in tslab directly, elsewhere written to
 * a standalone page whose path is printed and returned. The fragment should not rely on
 * `<style>` blocks or scripts: an untrusted notebook view removes them.
 */
export function showHtml(html: string, opts: { title?: string } = {}): string | undefined {
  const sink = currentSink();
  if (sink) {
    sink({ data: { 'text/html': html, 'text/plain': opts.title ?? '(HTML output)' }, metadata: {} }, false);
    return undefined;
  }
  const file = writeFallbackPage(opts.title ?? 'output', html, false);
  console.log(`HTML "${opts.title ?? 'output'}" written to ${file}`);
  return file;
}
