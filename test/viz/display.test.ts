import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inTslab, loadPlotly, setHtmlSink, show, showHtml, showTable } from '../../src/viz/display';
import { figureHtml, plotlySource, tableHtml, textTable, toTable } from '../../src/viz/html';
import { recallCurveFigure } from '../../src/viz/figures';
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
  setHtmlSink(undefined);
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

test('in a notebook sink: plotly.js is emitted once, then only figure divs', () => {
  const outputs: string[] = [];
  setHtmlSink({ html: (s) => outputs.push(s) });
  try {
    show(recallCurveFigure(RESULTS));
    show(recallCurveFigure(RESULTS, { subset: 'text-heavy' }));
    showTable([{ a: 1 }]);
    const withPlotly = outputs.filter((o) => o.includes('data-notellm2-plotly'));
    assert.equal(withPlotly.length, 1, 'plotly.js inlined exactly once');
    assert.ok(withPlotly[0].length > 3_000_000);
    assert.equal(outputs.filter((o) => o.includes('class="notellm2-figure"')).length, 2);
    assert.ok(outputs[outputs.length - 1].includes('<table class="notellm2-table">'));
    loadPlotly({ force: true });
    assert.ok(outputs[outputs.length - 1].includes('data-notellm2-plotly'), 'force re-emits');
  } finally {
    setHtmlSink(undefined);
  }
});

test('detects a real tslab kernel module through require.cache and uses its display', () => {
  // Load tslab's kernel module the way the kernel does and give it a display writer.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const jupyter = require('tslab/dist/jupyter') as { lastWriteDisplayData: unknown };
  const sent: { data: Record<string, string> }[] = [];
  jupyter.lastWriteDisplayData = (d: { data: Record<string, string> }) => sent.push(d);
  try {
    setHtmlSink(undefined);
    assert.equal(inTslab(), true);
    showTable({ columns: ['x', 'y'], values: [[1, 2], [3, 4]] });
    assert.equal(sent.length, 1);
    assert.match(sent[0].data['text/html'], /<td class="num">3<\/td><td class="num">4<\/td>/);
  } finally {
    jupyter.lastWriteDisplayData = null;
    setHtmlSink(undefined);
  }
  assert.equal(inTslab(), false);
});

test('tables: DataFrame-shaped input ({ columns, values, index }), escaping, non-default index', async () => {
  const df = { columns: ['variant', 'R@10'], values: [['a<b', 0.25], ['c', 0.5]], index: [0, 1] };
  const t = toTable(df);
  assert.deepEqual(t, { columns: ['variant', 'R@10'], rows: [['a<b', 0.25], ['c', 0.5]] });
  const html = tableHtml(df);
  assert.ok(html.includes('<td>a&lt;b</td><td class="num">0.25</td>'));
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
