import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PLOTLY_MIME, inTslab, loadPlotly, setDisplaySink, show, showHtml, showTable } from '../../src/viz/display';
import type { DisplayOutput, Snapshotter } from '../../src/viz/display';
import { figureHtml, plotlySource, tableHtml, textTable, toTable } from '../../src/viz/html';
import { ablationBarsFigure, recallCurveFigure } from '../../src/viz/figures';
import { encodePng } from '../../src/viz/images';
import { RESULTS } from './fixture';

function capture<T>(fn: () => T): { out: string; value: T } {
  const orig = console.log;
  const lines: string[] = [];
  console.log = (...a: unknown[]) => lines.push(a.join(' '));
  try {
    return { value: fn(), out: lines.join('\n') };
  } finally {
    console.log = orig;
  }
}

test('outside tslab: not detected, tables print as text, figures go to an HTML file', () => {
  setDisplaySink(undefined);
  assert.equal(inTslab(), false);
  const rows = [{ variant: 'basic', 'R@10': 0.3 }, { variant: 'notellm2', 'R@10': 0.41234 }];
  const { out } = capture(() => showTable(rows, { caption: 'recall' }));
  assert.equal(out, ['recall', 'variant     R@10', '--------  ------', 'basic        0.3', 'notellm2  0.4123'].join('\n'));
  const dir = mkdtempSync(join(tmpdir(), 'viz-display-'));
  process.env.NOTELLM2_FIGURE_DIR = dir;
  try {
    const { out: said, value: file } = capture(() => show(recallCurveFigure(RESULTS)));
    assert.ok(file && file.startsWith(dir));
    assert.match(said, /figure "Recall@K — all queries \(synth\)" written to /);
    const html = readFileSync(file!, 'utf8');
    assert.ok(html.includes(plotlySource().source.slice(200, 400)), 'plotly.js inlined');
    assert.ok(html.includes('"name":"basic (3 seeds)"'));
    const { value: hfile } = capture(() => showHtml('<p id="x">hello</p>', { title: 'gallery' }));
    assert.ok(readFileSync(hfile!, 'utf8').includes('<p id="x">hello</p>'));
  } finally {
    delete process.env.NOTELLM2_FIGURE_DIR;
    rmSync(dir, { recursive: true, force: true });
  }
});

interface Sent {
  output: DisplayOutput;
  update: boolean;
}

/** A 2×1 PNG standing in for Chromium's picture. */
const FAKE_PNG = encodePng({ data: [255, 0, 0, 0, 0, 255], width: 2, height: 1, channels: 3 });

function captureSink(snapshot: Snapshotter): Sent[] {
  const sent: Sent[] = [];
  setDisplaySink((output, update) => sent.push({ output, update }), { snapshot });
  return sent;
}

test('show in a notebook: one output with plotly JSON, picture, HTML and text; plotly.js rides on the first output only and is then replaced', () => {
  const sent = captureSink(() => ({ png: FAKE_PNG, width: 700, height: 420 }));
  try {
    const fig = recallCurveFigure(RESULTS);
    show(fig);
    show(recallCurveFigure(RESULTS, { subset: 'text-heavy' }));
    const id = sent[0].output.transient?.display_id;
    assert.ok(id);
    assert.deepEqual(sent.map((s) => [s.update, s.output.transient?.display_id ?? null]), [[false, id], [true, id], [false, null]]);
    // The first message carries plotly.js; the update that replaces it does not.
    const first = sent[0].output.data['text/html'] as string;
    assert.ok(first.startsWith('<script data-notellm2-plotly=') && first.length > 3_000_000);
    for (const s of sent.slice(1)) assert.equal((s.output.data['text/html'] as string).includes('data-notellm2-plotly'), false);

    const { data } = sent[1].output;
    assert.deepEqual(Object.keys(data), [PLOTLY_MIME, 'image/png', 'text/html', 'text/plain'], 'richest first');
    assert.deepEqual(data[PLOTLY_MIME], { data: fig.data, layout: fig.layout, config: { displaylogo: false, responsive: true } });
    assert.equal(data['image/png'], FAKE_PNG.toString('base64'));
    const html = data['text/html'] as string;
    assert.ok(html.includes(`<img src="data:image/png;base64,${FAKE_PNG.toString('base64')}" width="700" height="420" alt="Recall@K — all queries (synth)"`));
    // Sanitisers drop scripts and style blocks: the picture and the note sit outside both.
    const staticPart = html.slice(0, html.indexOf('<script'));
    assert.ok(staticPart.includes('<img ') && staticPart.includes('trust the notebook or re-run the cell') && !/<style/.test(staticPart));
    assert.equal(data['text/plain'], 'Figure: Recall@K — all queries (synth)');
  } finally {
    setDisplaySink(undefined);
  }
});

test('show without a picture (no Chromium): still one output, and its HTML says why and what to do', () => {
  const sent = captureSink(() => ({ error: 'Chromium not found (looked at /x)' }));
  try {
    show(ablationBarsFigure(RESULTS, { metric: 'R@100' }));
    const { data } = sent[sent.length - 1].output;
    assert.deepEqual(Object.keys(data), [PLOTLY_MIME, 'text/html', 'text/plain']);
    const html = data['text/html'] as string;
    assert.equal(html.includes('<img'), false);
    assert.match(html, /did not run here: trust the notebook or re-run the cell\. No static picture was saved: Chromium not found \(looked at \/x\)\./);
  } finally {
    setDisplaySink(undefined);
  }
});

test('tables and HTML in a notebook: HTML with a text fallback; loadPlotly sends plotly.js once, again with force, leaving one line', () => {
  const sent = captureSink(() => ({ error: 'unused' }));
  try {
    showTable([{ a: 1 }], { caption: 'cap' });
    assert.equal(sent.length, 1);
    assert.ok((sent[0].output.data['text/html'] as string).includes('<table class="notellm2-table"'));
    assert.equal(sent[0].output.data['text/plain'], 'cap\n' + textTable([{ a: 1 }]));
    showHtml('<p>x</p>', { title: 'gallery' });
    assert.deepEqual(sent[1].output.data, { 'text/html': '<p>x</p>', 'text/plain': 'gallery' });
    loadPlotly();
    loadPlotly();
    assert.equal(sent.length, 4, 'once per kernel');
    loadPlotly({ force: true });
    assert.equal(sent.length, 6);
    assert.ok((sent[4].output.data['text/html'] as string).includes('data-notellm2-plotly'));
    assert.deepEqual(sent[5], {
      update: true,
      output: { data: { 'text/plain': `plotly.js ${plotlySource().version} sent to this page` }, metadata: {}, transient: sent[4].output.transient },
    });
  } finally {
    setDisplaySink(undefined);
  }
});

test('detects a real tslab kernel module through require.cache and sends whole bundles through its writer', () => {
  // Load tslab's kernel module the way the kernel does and give it a display writer.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const jupyter = require('tslab/dist/jupyter') as { lastWriteDisplayData: unknown };
  const sent: { data: Record<string, string> }[] = [];
  jupyter.lastWriteDisplayData = (d: { data: Record<string, string> }) => sent.push(d);
  try {
    setDisplaySink(undefined);
    assert.equal(inTslab(), true);
    const df = { columns: ['x', 'y'], values: [[1, 2], [3, 4]] };
    showTable(df);
    assert.equal(sent.length, 1);
    assert.match(sent[0].data['text/html'], /<td class="num" align="right"[^>]*>3<\/td><td class="num" align="right"[^>]*>4<\/td>/);
    assert.equal(sent[0].data['text/plain'], textTable(df));
  } finally {
    jupyter.lastWriteDisplayData = null;
    setDisplaySink(undefined);
  }
  assert.equal(inTslab(), false);
});

test('tables: DataFrame-shaped input ({ columns, values, index }), escaping, non-default index', async () => {
  const df = { columns: ['variant', 'R@10'], values: [['a<b', 0.25], ['c', 0.5]], index: [0, 1] };
  const t = toTable(df);
  assert.deepEqual(t, { columns: ['variant', 'R@10'], rows: [['a<b', 0.25], ['c', 0.5]] });
  const html = tableHtml(df);
  assert.match(html, /<td align="left"[^>]*>a&lt;b<\/td><td class="num" align="right"[^>]*>0\.25<\/td>/);
  const indexed = { columns: ['v'], values: [[1], [2]], index: ['x', 'y'] };
  assert.deepEqual(toTable(indexed), { columns: ['', 'v'], rows: [['x', 1], ['y', 2]] });
  assert.equal(textTable([{ n: 1e-5 }, { n: 123456.7 }]), ['       n', '--------', '1.000e-5', '1.235e+5'].join('\n'));
  assert.throws(() => toTable({} as never), /array of row objects or a DataFrame/);
});

test('figure HTML: the spec cannot break out of its script element', () => {
  const fig = recallCurveFigure({ ...RESULTS, dataset: '</script><script>alert(1)</script>' });
  const html = figureHtml(fig, { id: 'f1' });
  assert.equal(html.match(/<\/script>/g)?.length, 1, 'only the closing tag of its own script');
  assert.ok(html.includes('\\u003c/script>'));
});
