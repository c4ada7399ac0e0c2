/**
 * The static pictures `show()` puts beside every notebook figure: rendered synchronously by a
 * worker thread that keeps one headless Chromium (the report's renderer, browser.ts).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { findChromium } from '../../src/viz/browser';
import { PLOTLY_MIME, setDisplaySink, show } from '../../src/viz/display';
import type { DisplayOutput } from '../../src/viz/display';
import { ablationBarsFigure, recallCurveFigure } from '../../src/viz/figures';
import { presetColour } from '../../src/viz/results';
import { snapshotFigure, stopSnapshots } from '../../src/viz/snapshot';
import { RESULTS } from '../viz/fixture';
import { skipUnless } from './env';

const skip = skipUnless(findChromium() !== undefined, 'Chromium', 'apt-get install chromium, or set NOTELLM2_CHROMIUM');

after(async () => {
  await stopSnapshots();
});

/** Share of pixels within a small distance of `hex` (a trace colour). */
async function colourShare(png: Buffer, hex: string): Promise<number> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  let hits = 0;
  for (let i = 0; i < data.length; i += 3) if (Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 40) hits++;
  return hits / (info.width * info.height);
}

test('snapshotFigure: a PNG of the figure at its layout size, drawn in its trace colours', { skip }, async () => {
  assert.ok(findChromium(), 'Chromium is required here (CI=true): apt-get install chromium');
  const bars = ablationBarsFigure(RESULTS, { metric: 'R@100' });
  const a = snapshotFigure(bars);
  assert.ok('png' in a, JSON.stringify(a));
  assert.deepEqual([a.width, a.height], [700, bars.layout.height]);
  const meta = await sharp(a.png).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height], ['png', 700, bars.layout.height]);
  // Bars fill a visible share of the picture in each preset's colour.
  for (const [i, v] of RESULTS.variants.entries()) {
    const share = await colourShare(a.png, presetColour(v.name, i));
    assert.ok(share > 0.02, `${v.name} bars cover ${(share * 100).toFixed(1)} % of the picture`);
  }
  const b = snapshotFigure({ ...recallCurveFigure(RESULTS), layout: { ...recallCurveFigure(RESULTS).layout, width: 500, height: 320 } });
  assert.ok('png' in b, JSON.stringify(b));
  const mb = await sharp(b.png).metadata();
  assert.deepEqual([mb.width, mb.height], [500, 320]);
});

test('show with the real renderer: the output carries the picture, and the HTML shows the same picture', { skip }, () => {
  const sent: DisplayOutput[] = [];
  setDisplaySink((o) => sent.push(o));
  try {
    show(recallCurveFigure(RESULTS));
    const { data } = sent[sent.length - 1];
    assert.ok(data[PLOTLY_MIME]);
    const png = data['image/png'] as string;
    assert.ok(png && Buffer.from(png, 'base64').toString('ascii', 1, 4) === 'PNG');
    assert.ok((data['text/html'] as string).includes(`<img src="data:image/png;base64,${png}" width="700" height="420"`));
  } finally {
    setDisplaySink(undefined);
  }
});

test('without Chromium, snapshotFigure says so instead of failing', () => {
  const saved = process.env.NOTELLM2_CHROMIUM;
  process.env.NOTELLM2_CHROMIUM = '/nonexistent/chromium';
  try {
    const r = snapshotFigure(recallCurveFigure(RESULTS));
    assert.ok('error' in r);
    assert.match(r.error, /Chromium not found \(looked at \/nonexistent\/chromium\); install it/);
  } finally {
    if (saved === undefined) delete process.env.NOTELLM2_CHROMIUM;
    else process.env.NOTELLM2_CHROMIUM = saved;
  }
});
