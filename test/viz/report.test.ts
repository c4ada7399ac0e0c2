import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { buildReport, probeTableRows, recallTableRows, subsetTableRows, writeReport } from '../../src/viz/report';
import { loadRun } from '../../src/viz/files';
import { crc32, encodePng } from '../../src/viz/images';
import { neighboursHtml } from '../../src/viz/neighbours';
import { NEIGHBOURS, RESULTS, writeFixtureRun } from './fixture';

test('report tables: mean ± std over seeds, per-subset metric, flattened probes', () => {
  const rows = recallTableRows(RESULTS);
  assert.deepEqual(rows[0], { variant: 'basic', seeds: 3, 'R@10': '0.300 ± 0.020', 'R@100': '0.600 ± 0.050', 'R@1000': '0.900 ± 0.010', 'train s': 12.5 });
  assert.equal(rows[1]['R@10'], '0.400 ± 0.040');
  const single = recallTableRows({ dataset: 'd', backend: 'cpu', seed: 0, variants: [{ name: 'a', metrics: { 'R@10': 0.25 } }] });
  assert.deepEqual(single, [{ variant: 'a', 'R@10': 0.25 }]);
  assert.deepEqual(subsetTableRows(RESULTS, 'R@100')[0], { variant: 'basic', all: '0.600 ± 0.050', 'image-heavy': '0.500 ± 0.040', 'text-heavy': '0.700 ± 0.060' });
  assert.deepEqual(subsetTableRows(RESULTS, 'R@100')[1]['text-heavy'], 0.76, 'no spread known → plain mean');
  assert.deepEqual(probeTableRows(RESULTS)[1], { variant: 'notellm2', 'zero-image R@100': 0.5, 'empty-text R@100': 0.45 });
});

test('writeReport: one self-contained page, plotly inlined once, every figure and section present', async () => {
  const dir = writeFixtureRun(mkdtempSync(join(tmpdir(), 'viz-report-')));
  try {
    const res = await writeReport(dir);
    assert.equal(res.html, join(dir, 'report.html'));
    assert.deepEqual(res.figures, ['recall-all', 'recall-image-heavy', 'recall-text-heavy', 'ablation-r100', 'training', 'saliency', 'projection']);
    assert.deepEqual(res.pngs, []);
    const html = readFileSync(res.html, 'utf8');
    assert.equal(html.match(/data-notellm2-plotly=/g)?.length, 1);
    for (const id of res.figures) assert.ok(html.includes(`id="fig-${id}"`), id);
    // Outside the plotly bundle (whose strings hold attribution links), nothing points at the
    // network: no http(s) src/href attributes.
    const ours = html.replace(/<script data-notellm2-plotly=[\s\S]*?<\/script>/, '');
    assert.ok(ours.length < 200_000, 'bundle removed');
    assert.equal(/(src|href)="https?:/.test(ours), false);
    for (const s of ['id="recall"', 'id="ablation"', 'id="probes"', 'id="training"', 'id="saliency"', 'id="projection"', 'id="neighbours"', 'id="configs"']) assert.ok(html.includes(s), s);
    assert.ok(html.includes('&quot;lateFusion&quot;: true'), 'resolved config shown');
    assert.ok(html.includes('red &lt;apple&gt; &amp; co'), 'titles escaped');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('report with results.json only has just the recall and ablation figures', () => {
  const dir = writeFixtureRun(mkdtempSync(join(tmpdir(), 'viz-report-')), { only: 'results' });
  try {
    const { figures, html } = buildReport(loadRun(dir));
    assert.deepEqual(figures.map((f) => f.id), ['recall-all', 'recall-image-heavy', 'recall-text-heavy', 'ablation-r100']);
    assert.equal(html.includes('id="saliency"'), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('run files: errors name the file and the bad field', () => {
  const dir = mkdtempSync(join(tmpdir(), 'viz-report-'));
  try {
    assert.throws(() => loadRun(dir), /results\.json: not found/);
    writeFileSync(join(dir, 'results.json'), JSON.stringify({ dataset: 'd', backend: 'cpu', seed: 0, variants: [{ name: 'a', metrics: { 'R@10': 'high' } }] }));
    assert.throws(() => loadRun(dir), /results\.json: does not match the expected schema:\n  variants\.0\.metrics\.R@10: Invalid input: expected number/);
    writeFileSync(join(dir, 'results.json'), JSON.stringify(RESULTS));
    writeFileSync(join(dir, 'saliency.json'), JSON.stringify({ presets: [{ preset: 'x', layers: [{ sv: 1, st: 0 }] }] }));
    assert.throws(() => loadRun(dir), /saliency\.json: does not match the expected schema:\n  presets\.0\.layers\.0\.so:/);
    writeFileSync(join(dir, 'saliency.json'), '{ nope');
    assert.throws(() => loadRun(dir), /saliency\.json: not valid JSON/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('PNG encoder: valid signature, chunk CRCs, and pixels that inflate back exactly', () => {
  assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926); // the standard CRC-32 check value
  const data = new Uint8Array([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30]); // 2×2 RGB
  const png = encodePng({ data, width: 2, height: 2, channels: 3 });
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  let off = 8;
  const chunks: { type: string; body: Buffer }[] = [];
  while (off < png.length) {
    const len = png.readUInt32BE(off);
    const type = png.toString('ascii', off + 4, off + 8);
    const body = png.subarray(off + 8, off + 8 + len);
    assert.equal(png.readUInt32BE(off + 8 + len), crc32(png.subarray(off + 4, off + 8 + len)), `${type} crc`);
    chunks.push({ type, body });
    off += 12 + len;
  }
  assert.deepEqual(chunks.map((c) => c.type), ['IHDR', 'IDAT', 'IEND']);
  assert.deepEqual([...chunks[0].body], [0, 0, 0, 2, 0, 0, 0, 2, 8, 2, 0, 0, 0]);
  assert.deepEqual([...inflateSync(chunks[1].body)], [0, 255, 0, 0, 0, 255, 0, 0, 0, 0, 255, 10, 20, 30]);
  const floats = encodePng({ data: [0, 0.5, 1, 2], width: 2, height: 2, channels: 1, scale: 1 });
  assert.deepEqual([...inflateSync(floats.subarray(8 + 25 + 8, floats.length - 12 - 4))], [0, 0, 128, 0, 255, 255]);
  assert.throws(() => encodePng({ data, width: 3, height: 2, channels: 3 }), /12 values, expected height·width·channels = 2·3·3 = 18/);
});

test('neighbour gallery: query first, neighbours in rank order with hit/miss frames and images, laid out without CSS', () => {
  const html = neighboursHtml(NEIGHBOURS[0], { k: 2 });
  const ids = [...html.matchAll(/data-note-id="([^"]+)"/g)].map((m) => m[1]);
  assert.deepEqual(ids, ['n1', 'n2', 'n3']);
  // Frames are the picture cells' background colours and sizes are attributes, which an
  // untrusted notebook view keeps (it drops <style> blocks and, in the classic Notebook, styles).
  assert.match(html, /<td class="hit" data-note-id="n2" bgcolor="#2ca02c" width="\d+" height="\d+"[^>]*><img src="data:image\/png;base64,[^"]+" width="96" height="96"/);
  assert.match(html, /<td class="miss" data-note-id="n3" bgcolor="#cccccc"/);
  assert.match(html, /<td class="query" data-note-id="n1" bgcolor="#333333"/);
  assert.equal(/<style|class="notellm2-gallery"[^>]*display:flex/.test(html), false);
  assert.ok(html.includes('#1 · 0.910<br>cherry'));
  assert.ok(neighboursHtml(NEIGHBOURS[0]).includes('no image'));
});
