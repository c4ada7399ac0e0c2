import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { findChromium, withChromium } from '../../src/viz/browser';
import { writeReport } from '../../src/viz/report';
import { writeFixtureRun } from '../viz/fixture';
import { skipUnless } from './env';

const OUTPUT = resolve(__dirname, '../output');
const skip = skipUnless(findChromium() !== undefined, 'Chromium', 'apt-get install chromium, or set NOTELLM2_CHROMIUM');

test('report.html draws every figure in headless Chromium, offline, without console errors', { skip }, async () => {
  assert.ok(findChromium(), 'Chromium is required here (CI=true): apt-get install chromium');
  const dir = writeFixtureRun(mkdtempSync(join(tmpdir(), 'browser-report-')));
  try {
    const report = await writeReport(dir);
    await withChromium(async (ctx) => {
      const page = await ctx.newPage();
      const errors: string[] = [];
      const network: string[] = [];
      page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(`console: ${m.text()}`);
      });
      // A self-contained report asks for nothing beyond its own file.
      await ctx.route(/^(?!file:|data:)/, (route) => {
        network.push(route.request().url());
        return route.abort();
      });
      await page.goto(pathToFileURL(report.html).href, { waitUntil: 'load' });
      for (const id of report.figures) {
        await page.waitForSelector(`#fig-${id} svg.main-svg`, { timeout: 20_000 });
      }
      const drawn = await page.$$eval('.notellm2-figure', (divs) => divs.map((d) => ({ id: d.id, svgs: d.querySelectorAll('svg.main-svg').length })));
      assert.deepEqual(drawn.map((d) => d.id), report.figures.map((f) => `fig-${f}`));
      assert.ok(drawn.every((d) => d.svgs > 0), JSON.stringify(drawn));
      // The recall curve holds one line per preset; the bars one bar per preset and subset.
      assert.equal(await page.locator('#fig-recall-all .scatterlayer .trace').count(), 2);
      assert.equal(await page.locator('#fig-ablation-r100 .barlayer .point').count(), 6);
      // The gallery's data-URI images decoded (8×8 swatches).
      const widths = await page.$$eval('.notellm2-gallery img', (imgs) => imgs.map((i) => (i as HTMLImageElement).naturalWidth));
      assert.deepEqual(widths, [8, 8, 8]);
      mkdirSync(OUTPUT, { recursive: true });
      await page.screenshot({ path: join(OUTPUT, 'report.png'), fullPage: true });
      assert.deepEqual(network, [], 'no network requests');
      assert.deepEqual(errors, []);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('writeReport --png writes one PNG per figure at the asked width', { skip }, async () => {
  assert.ok(findChromium(), 'Chromium is required here (CI=true): apt-get install chromium');
  const dir = writeFixtureRun(mkdtempSync(join(tmpdir(), 'browser-png-')), { only: 'results' });
  try {
    const res = await writeReport(dir, { png: true, pngWidth: 640 });
    assert.deepEqual(res.pngs, res.figures.map((f) => join(dir, 'figures', `${f}.png`)));
    for (const file of res.pngs) {
      const png = readFileSync(file);
      assert.equal(png.toString('ascii', 1, 4), 'PNG');
      assert.equal(png.readUInt32BE(16), 640, `${file} width`);
      assert.equal(png.readUInt32BE(20), 420, `${file} height = layout height`);
      assert.ok(png.length > 5000, `${file} has content (${png.length} bytes)`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
