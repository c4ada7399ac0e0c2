/**
 * Every notebooks/*.ipynb executes headless through Jupyter (nbconvert, tslab kernel) with
 * NOTELLM2_SMOKE=1 and must finish without a cell error; its saved HTML rendering is then
 * opened in headless Chromium and every figure must have drawn.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { findChromium, withChromium } from '../../src/viz/browser';
import { skipUnless } from '../browser/env';
import { NOTEBOOK_DIR, ensureBuilt, findJupyterPython, jupyterEnv, listNotebooks, registerTslab } from './jupyter';

const run = promisify(execFile);
const OUTPUT = resolve(__dirname, '../output');
const python = findJupyterPython();
const skipJupyter = skipUnless(python !== undefined, 'Jupyter (python3 with nbconvert and nbclient)', 'apt-get install jupyter-notebook python3-nbconvert python3-nbclient');
const skipChromium = skipJupyter || skipUnless(findChromium() !== undefined, 'Chromium', 'apt-get install chromium');

interface Output {
  output_type: string;
  data?: Record<string, string | string[]>;
  ename?: string;
  evalue?: string;
}
interface Notebook {
  cells: { cell_type: string; source: string | string[]; outputs?: Output[] }[];
  metadata: { kernelspec?: { name?: string } };
}

const joinText = (v: string | string[] | undefined) => (Array.isArray(v) ? v.join('') : v ?? '');
const htmlOutputs = (nb: Notebook) =>
  nb.cells.flatMap((c) => c.outputs ?? []).map((o) => joinText(o.data?.['text/html'])).filter((h) => h.length > 0);

async function nbconvert(args: string[]): Promise<void> {
  try {
    await run(python!, ['-m', 'nbconvert', ...args], { env: jupyterEnv({ NOTELLM2_SMOKE: '1' }), maxBuffer: 64 << 20 });
  } catch (err) {
    const e = err as { code?: number; stderr?: string };
    // nbconvert's stderr ends with the failing cell's source and the kernel's error.
    throw new Error(`nbconvert ${args.join(' ')} exited ${e.code}:\n${(e.stderr ?? '').split('\n').slice(-60).join('\n')}`);
  }
}

/** stderr streams and error outputs of an executed notebook, labelled by cell number. */
function kernelErrors(executedFile: string): string {
  if (!existsSync(executedFile)) return '(no executed copy)';
  const nb = JSON.parse(readFileSync(executedFile, 'utf8')) as Notebook;
  const lines: string[] = [];
  nb.cells.forEach((c, i) => {
    for (const o of c.outputs ?? []) {
      const text = o as Output & { name?: string; text?: string | string[]; traceback?: string[] };
      if (o.output_type === 'error') lines.push(`cell ${i}: ${o.ename}: ${o.evalue}`);
      else if (o.output_type === 'stream' && text.name === 'stderr') lines.push(`cell ${i} stderr: ${joinText(text.text).trim()}`);
    }
  });
  return lines.join('\n') || '(none recorded)';
}

const notebooks = listNotebooks();
let workDir = '';

test('notebook harness: Jupyter present, dist built, tslab kernel registered', { skip: skipJupyter }, () => {
  assert.ok(python, 'Jupyter is required here (CI=true): apt-get install jupyter-notebook python3-nbconvert python3-nbclient');
  assert.ok(notebooks.length > 0, `no notebooks in ${NOTEBOOK_DIR}`);
  const t0 = Date.now();
  const { built } = ensureBuilt();
  registerTslab(python);
  console.log(`# dist ${built ? 'rebuilt' : 'up to date'}, tslab kernel registered with ${python} (${Date.now() - t0} ms)`);
  workDir = mkdtempSync(join(tmpdir(), 'notebooks-'));
});

for (const file of notebooks) {
  const name = basename(file, '.ipynb');

  test(`notebook ${file} executes headless without a cell error`, { skip: skipJupyter, timeout: 20 * 60_000 }, async () => {
    assert.ok(workDir, 'the harness set-up test must pass first');
    const source = JSON.parse(readFileSync(join(NOTEBOOK_DIR, file), 'utf8')) as Notebook;
    assert.equal(source.metadata.kernelspec?.name, 'tslab', `${file}: kernelspec must be tslab (the TypeScript kernel)`);
    assert.equal(source.cells[0]?.cell_type, 'markdown', `${file}: must open with a markdown cell stating its question`);
    const t0 = Date.now();
    const execArgs = ['--to', 'notebook', '--execute', '--ExecutePreprocessor.timeout=600'];
    try {
      await nbconvert([...execArgs, '--output-dir', workDir, join(NOTEBOOK_DIR, file)]);
    } catch (err) {
      // nbconvert names the failing cell but not always the kernel's message (tslab prints
      // TypeScript compile errors on stderr): run once more keeping errors, and report them.
      const again = join(workDir, 'with-errors');
      await nbconvert([...execArgs, '--allow-errors', '--output-dir', again, join(NOTEBOOK_DIR, file)]).catch(() => undefined);
      throw new Error(`${(err as Error).message}\n--- kernel errors ---\n${kernelErrors(join(again, file))}`);
    }
    const executed = JSON.parse(readFileSync(join(workDir, file), 'utf8')) as Notebook;
    console.log(`# ${file}: executed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const errors = executed.cells.flatMap((c) => c.outputs ?? []).filter((o) => o.output_type === 'error');
    assert.deepEqual(errors.map((e) => `${e.ename}: ${e.evalue}`), []);
    const html = htmlOutputs(executed);
    const plotly = html.filter((h) => h.includes('data-notellm2-plotly=')).length;
    const figures = html.filter((h) => h.includes('class="notellm2-figure"')).length;
    assert.ok(plotly <= 1, `${file}: plotly.js inlined ${plotly} times; once per notebook is enough`);
    if (figures > 0) assert.equal(plotly, 1, `${file}: shows ${figures} figures but never inlined plotly.js`);
    if (name === '00-display-check') {
      assert.equal(figures, 2, 'recall curve and ablation bars');
      assert.ok(html.some((h) => h.includes('<table class="notellm2-table">') && h.includes('0.420 ± 0.020')), 'recall table');
      assert.ok(html.some((h) => h.includes('class="notellm2-gallery"') && h.includes('data:image/png;base64,')), 'gallery with images');
    }
  });

  test(`notebook ${file}: its HTML rendering draws every figure in Chromium`, { skip: skipChromium, timeout: 5 * 60_000 }, async () => {
    assert.ok(findChromium(), 'Chromium is required here (CI=true): apt-get install chromium');
    const executed = join(workDir, file);
    assert.ok(workDir && existsSync(executed), `${file} was not executed (see the test above)`);
    await nbconvert(['--to', 'html', '--output-dir', workDir, executed]);
    const htmlFile = join(workDir, `${name}.html`);
    await withChromium(async (ctx) => {
      const page = await ctx.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(`console: ${m.text()}`);
      });
      // Offline: anything beyond local files (Debian's nbconvert links require.js and MathJax
      // from /usr/share/javascript) is refused and reported.
      const network: string[] = [];
      await ctx.route(/^(?!file:|data:)/, (route) => {
        network.push(route.request().url());
        return route.abort();
      });
      await page.goto(pathToFileURL(htmlFile).href, { waitUntil: 'load' });
      const count = await page.locator('.notellm2-figure').count();
      for (let i = 0; i < count; i++) {
        await page.locator('.notellm2-figure').nth(i).locator('svg.main-svg').first().waitFor({ timeout: 20_000 });
      }
      mkdirSync(OUTPUT, { recursive: true });
      await page.screenshot({ path: join(OUTPUT, `notebook-${name}.png`), fullPage: true });
      assert.deepEqual(errors, []);
      assert.deepEqual(network, []);
      if (name === '00-display-check') assert.equal(count, 2);
    });
  });
}

/** Starts a classic Jupyter Notebook server on notebooks/; resolves with its base URL. */
function startNotebookServer(): Promise<{ url: string; stop: () => void }> {
  const port = 20000 + (process.pid % 20000);
  const token = `t${process.pid}`;
  const srv = spawn(
    python!,
    ['-m', 'notebook', '--no-browser', `--port=${port}`, `--NotebookApp.token=${token}`, '--allow-root', `--notebook-dir=${NOTEBOOK_DIR}`],
    { env: jupyterEnv({ NOTELLM2_SMOKE: '1' }), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      srv.kill('SIGTERM');
      reject(new Error(`Jupyter Notebook did not start within 30 s:\n${log}`));
    }, 30_000);
    const onData = (d: Buffer) => {
      log += d.toString();
      // Port retries may move the server to another port: read the one it announces.
      const m = /(http:\/\/(?:127\.0\.0\.1|localhost):\d+\/)\?token=/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolvePromise({ url: `${m[1]}notebooks/%NAME%?token=${token}`, stop: () => srv.kill('SIGTERM') });
      }
    };
    srv.stdout.on('data', onData);
    srv.stderr.on('data', onData);
    srv.on('exit', (code) => reject(new Error(`Jupyter Notebook exited (${code}):\n${log}`)));
  });
}

test('live Jupyter Notebook page: running 00-display-check draws its figures and gallery', { skip: skipChromium, timeout: 5 * 60_000 }, async () => {
  assert.ok(findChromium(), 'Chromium is required here (CI=true): apt-get install chromium');
  assert.ok(notebooks.includes('00-display-check.ipynb'));
  const server = await startNotebookServer();
  try {
    await withChromium(async (ctx) => {
      const page = await ctx.newPage();
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(e.message));
      await page.goto(server.url.replace('%NAME%', '00-display-check.ipynb'));
      type J = { Jupyter: { notebook: { kernel?: { is_connected(): boolean; kill(): void }; execute_all_cells(): void } } };
      await page.waitForFunction(() => (window as unknown as J).Jupyter?.notebook?.kernel?.is_connected(), null, { timeout: 60_000 });
      const t0 = Date.now();
      await page.evaluate(() => (window as unknown as J).Jupyter.notebook.execute_all_cells());
      await page.waitForFunction(
        () => document.querySelectorAll('.notellm2-figure svg.main-svg').length >= 2 && document.querySelector('.notellm2-gallery img') !== null,
        null,
        { timeout: 120_000 },
      );
      console.log(`# live notebook: all cells ran and drew in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      const drawn = await page.$$eval('.notellm2-figure', (ds) => ds.map((d) => d.querySelectorAll('svg.main-svg').length > 0));
      assert.deepEqual(drawn, [true, true]);
      // plotly.js arrived once, in the first figure's output.
      assert.equal(await page.locator('script[data-notellm2-plotly]').count(), 1);
      mkdirSync(OUTPUT, { recursive: true });
      await page.screenshot({ path: join(OUTPUT, 'notebook-live-00-display-check.png'), fullPage: true });
      await page.evaluate(() => (window as unknown as J).Jupyter.notebook.kernel?.kill());
      assert.deepEqual(pageErrors, []);
    });
  } finally {
    server.stop();
  }
});

after(() => {
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});
