/**
 * Every notebooks/*.ipynb executes headless through Jupyter (nbconvert, tslab kernel) with
 * NOTELLM2_SMOKE=1 and must finish without a cell error. The saved files are then checked the
 * way a reader meets them:
 *
 * - the file: under 1 MB, every code cell with its execution count, every figure one output
 *   carrying the plotly JSON, a PNG picture, HTML and text, and plotly.js itself stored nowhere;
 * - in a Jupyter front end, opened untrusted (as a notebook executed headless or cloned from
 *   git always is): every figure shows its picture or the interactive figure, with no blank
 *   gap, tables and the neighbour gallery keep their layout. The classic Notebook (Debian's
 *   jupyter-notebook, what CI installs) always; JupyterLab 4 and Notebook 7 when
 *   $NOTELLM2_JUPYTER_PYTHONS names Pythons that have them (colon-separated; they are no
 *   dependency of the project or of CI);
 * - live: running 00-display-check in the classic Notebook draws its figures interactively.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { findChromium, withChromium } from '../../src/viz/browser';
import { PLOTLY_MIME } from '../../src/viz/display';
import { skipUnless } from '../browser/env';
import { frontEndsOf, hoverPlotlyFigures, inspectNotebook, openNotebook, screenshotNotebook, startServer, stopKernels } from './frontends';
import type { FrontEnd, NotebookView, Server } from './frontends';
import { NOTEBOOK_DIR, ROOT, ensureBuilt, findJupyterPython, jupyterDirs, jupyterEnv, launcher, listNotebooks, registerTslab } from './jupyter';

const run = promisify(execFile);
const OUTPUT = resolve(__dirname, '../output');
const python = findJupyterPython();
const skipJupyter = skipUnless(python !== undefined, 'Jupyter (python3 with nbconvert and nbclient)', 'apt-get install jupyter-notebook python3-nbconvert python3-nbclient');
const skipChromium = skipJupyter || skipUnless(findChromium() !== undefined, 'Chromium', 'apt-get install chromium');
const MAX_BYTES = 1_000_000;
const TRUST_NOTE = 'trust the notebook or re-run the cell';

interface Output {
  output_type: string;
  data?: Record<string, unknown>;
  ename?: string;
  evalue?: string;
  name?: string;
  text?: string | string[];
}
interface Cell {
  cell_type: string;
  source: string | string[];
  execution_count?: number | null;
  outputs?: Output[];
}
interface Notebook {
  cells: Cell[];
  metadata: { kernelspec?: { name?: string } };
}

const joinText = (v: unknown) => (Array.isArray(v) ? v.join('') : typeof v === 'string' ? v : '');
const outputs = (nb: Notebook) => nb.cells.flatMap((c) => c.outputs ?? []);
const htmlOf = (o: Output) => joinText(o.data?.['text/html']);
/** Figures a notebook shows: one `show(` call each (`nl.show(` included, `showTable(` not). */
const showCalls = (nb: Notebook) => nb.cells.filter((c) => c.cell_type === 'code').reduce((n, c) => n + (joinText(c.source).match(/\bshow\(/g)?.length ?? 0), 0);

let workDir = '';
let dirs: Record<string, string> = {};

async function nbconvert(args: string[]): Promise<void> {
  try {
    await run(python!, ['-m', 'nbconvert', ...args], { env: jupyterEnv({ ...dirs, NOTELLM2_SMOKE: '1' }), maxBuffer: 64 << 20 });
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
      if (o.output_type === 'error') lines.push(`cell ${i}: ${o.ename}: ${o.evalue}`);
      else if (o.output_type === 'stream' && o.name === 'stderr') lines.push(`cell ${i} stderr: ${joinText(o.text).trim()}`);
    }
  });
  return lines.join('\n') || '(none recorded)';
}

const notebooks = listNotebooks();
/** Saved (executed) notebooks and the figures each shows. */
const executed = new Map<string, { file: string; figures: number }>();

test('notebook harness: Jupyter present, dist built, tslab kernel registered', { skip: skipJupyter }, () => {
  assert.ok(python, 'Jupyter is required here (CI=true): apt-get install jupyter-notebook python3-nbconvert python3-nbclient');
  assert.ok(notebooks.length > 0, `no notebooks in ${NOTEBOOK_DIR}`);
  const t0 = Date.now();
  const { built } = ensureBuilt();
  workDir = mkdtempSync(join(tmpdir(), 'notebooks-'));
  dirs = jupyterDirs(join(workDir, 'jupyter'));
  registerTslab(python, dirs);
  mkdirSync(join(workDir, 'saved'));
  console.log(`# dist ${built ? 'rebuilt' : 'up to date'}, tslab kernel registered with ${python} in ${dirs.JUPYTER_DATA_DIR} (${Date.now() - t0} ms)`);
});

for (const file of notebooks) {
  const name = basename(file, '.ipynb');

  test(`notebook ${file} executes headless without a cell error; the saved file is small, numbered, and carries each figure's picture`, { skip: skipJupyter, timeout: 20 * 60_000 }, async () => {
    assert.ok(workDir, 'the harness set-up test must pass first');
    const source = JSON.parse(readFileSync(join(NOTEBOOK_DIR, file), 'utf8')) as Notebook;
    assert.equal(source.metadata.kernelspec?.name, 'tslab', `${file}: kernelspec must be tslab (the TypeScript kernel)`);
    assert.equal(source.cells[0]?.cell_type, 'markdown', `${file}: must open with a markdown cell stating its question`);
    const saved = join(workDir, 'saved');
    const t0 = Date.now();
    const execArgs = ['--to', 'notebook', '--execute', '--ExecutePreprocessor.timeout=600'];
    try {
      await nbconvert([...execArgs, '--output-dir', saved, join(NOTEBOOK_DIR, file)]);
    } catch (err) {
      // nbconvert names the failing cell but not always the kernel's message (tslab prints
      // TypeScript compile errors on stderr): run once more keeping errors, and report them.
      const again = join(workDir, 'with-errors');
      await nbconvert([...execArgs, '--allow-errors', '--output-dir', again, join(NOTEBOOK_DIR, file)]).catch(() => undefined);
      throw new Error(`${(err as Error).message}\n--- kernel errors ---\n${kernelErrors(join(again, file))}`);
    }
    const savedFile = join(saved, file);
    const bytes = statSync(savedFile).size;
    const nb = JSON.parse(readFileSync(savedFile, 'utf8')) as Notebook;
    console.log(`# ${file}: executed in ${((Date.now() - t0) / 1000).toFixed(1)} s, saved ${(bytes / 1024).toFixed(0)} KB`);
    assert.deepEqual(outputs(nb).filter((o) => o.output_type === 'error').map((e) => `${e.ename}: ${e.evalue}`), []);

    assert.ok(bytes < MAX_BYTES, `${file}: saved notebook is ${bytes} bytes; must stay under ${MAX_BYTES}`);
    assert.equal(readFileSync(savedFile, 'utf8').includes('data-notellm2-plotly'), false, `${file}: plotly.js is stored in the notebook`);

    // Run cells read [1], [2], … in order, as a front end numbers them.
    const code = nb.cells.filter((c) => c.cell_type === 'code' && joinText(c.source).trim() !== '');
    assert.deepEqual(code.map((c) => c.execution_count), code.map((_, i) => i + 1), `${file}: execution counts`);

    const figures = outputs(nb).filter((o) => o.data?.[PLOTLY_MIME] !== undefined);
    assert.equal(figures.length, showCalls(source), `${file}: one output per show() call`);
    for (const [i, fig] of figures.entries()) {
      const what = `${file} figure ${i + 1}`;
      assert.equal(fig.output_type, 'display_data', what);
      const spec = fig.data![PLOTLY_MIME] as { data?: unknown[]; layout?: { title?: { text?: string } } };
      assert.ok(Array.isArray(spec.data) && spec.data.length > 0 && spec.layout, `${what}: plotly JSON {data, layout}`);
      const png = Buffer.from(joinText(fig.data!['image/png']), 'base64');
      assert.equal(png.toString('ascii', 1, 4), 'PNG', `${what}: image/png`);
      assert.ok(png.readUInt32BE(16) >= 300 && png.readUInt32BE(20) >= 300, `${what}: picture ${png.readUInt32BE(16)}×${png.readUInt32BE(20)}`);
      assert.ok(png.length > 5000, `${what}: picture has content (${png.length} bytes)`);
      const html = htmlOf(fig);
      assert.ok(html.includes('class="notellm2-figure"') && html.includes('<img src="data:image/png;base64,'), `${what}: HTML with the picture`);
      assert.ok(html.includes(TRUST_NOTE), `${what}: HTML says what to do`);
      assert.match(joinText(fig.data!['text/plain']), /^Figure: \S/, `${what}: text/plain title`);
    }
    executed.set(file, { file: savedFile, figures: figures.length });

    if (name === '00-display-check') {
      assert.equal(figures.length, 2, 'recall curve and ablation bars');
      const html = outputs(nb).map(htmlOf);
      assert.ok(html.some((h) => h.includes('<table class="notellm2-table"') && h.includes('0.420 ± 0.020')), 'recall table');
      assert.ok(html.some((h) => h.includes('class="notellm2-gallery"') && h.includes('data:image/png;base64,')), 'gallery with images');
      assert.equal(html.some((h) => /<style[\s>]/.test(h)), false, 'no output relies on a <style> block');
    }
  });
}

/** Starts `fe` on the saved notebooks, opens each untrusted, checks and screenshots it. */
async function checkSavedNotebooks(
  fe: FrontEnd,
  label: string,
  env: Record<string, string>,
  expect: (view: NotebookView, figures: number, file: string) => void,
  opts: { hover?: boolean; noPageErrors?: boolean } = {},
): Promise<void> {
  assert.ok(executed.size > 0, 'no notebook was executed (see the tests above)');
  const server: Server = await startServer(fe, join(workDir, 'saved'), env);
  try {
    await withChromium(async (ctx) => {
      // The front end's own pages only: nothing from the network.
      const network: string[] = [];
      await ctx.route(/^(?!http:\/\/(127\.0\.0\.1|localhost)[:/]|data:|blob:)/, (route) => {
        network.push(route.request().url());
        return route.abort();
      });
      mkdirSync(OUTPUT, { recursive: true });
      for (const [file, { figures }] of executed) {
        const page = await ctx.newPage();
        const pageErrors: string[] = [];
        page.on('pageerror', (e) => pageErrors.push(e.message));
        await openNotebook(page, fe, server.url(file));
        const view = await inspectNotebook(page, fe, figures);
        await screenshotNotebook(page, join(OUTPUT, `frontend-${label}-${basename(file, '.ipynb')}.png`));
        console.log(`# ${fe.name}${label.endsWith('no-plotly') ? ' (plotly renderer disabled)' : ''} ${file}: ${view.figures.map((f) => `${f.mime}:${f.shows}`).join(', ') || 'no figures'}`);
        expect(view, figures, file);
        if (opts.hover) {
          // JupyterLab's plotly renderer shows the picture and draws the figure when pointed at.
          assert.equal(await hoverPlotlyFigures(page), figures, `${file}: every picture turns interactive under the mouse`);
        }
        // (Notebook 7.6 reports an error of its own on every page, empty notebooks included.)
        if (opts.noPageErrors) assert.deepEqual(pageErrors, [], `${file}: page errors`);
        await page.close();
        await stopKernels(server);
      }
      assert.deepEqual(network, [], 'no network requests');
    });
  } finally {
    await server.stop();
  }
}

/** Every figure shows something that fills its output: no blank gap. */
function assertFiguresShow(view: NotebookView, figures: number, file: string, shows: 'picture' | 'interactive', mime: 'html' | 'plotly'): void {
  assert.equal(view.figures.length, figures, `${file}: figures on the page`);
  for (const [i, f] of view.figures.entries()) {
    const what = `${file} figure ${i + 1}`;
    assert.equal(f.mime, mime, `${what}: rendered from ${mime}`);
    assert.equal(f.shows, shows, `${what}: shows ${JSON.stringify(f)}`);
    assert.ok(f.contentHeight >= 300, `${what}: the ${shows} is ${f.contentHeight} px tall`);
    // What the output holds beyond the picture is at most the note line under it.
    assert.ok(f.outputHeight - f.contentHeight < 90, `${what}: blank gap (${f.outputHeight} px output, ${f.contentHeight} px drawn)`);
    if (mime === 'html' && shows === 'picture') assert.ok(f.note.includes(TRUST_NOTE), `${what}: note "${f.note}"`);
  }
}

function assertTablesAndGalleries(view: NotebookView, file: string): void {
  assert.ok(view.tables.numbersRightAligned, `${file}: numbers right-aligned`);
  for (const g of view.galleries) {
    assert.ok(g.oneRow, `${file}: gallery pictures on one row`);
    assert.ok(g.widths.every((w) => w >= 90), `${file}: gallery pictures at their size (${g.widths.join(', ')} px)`);
  }
  if (file.startsWith('00-')) {
    assert.equal(view.tables.count, 1, `${file}: the recall table`);
    assert.equal(view.galleries.length, 1, `${file}: the gallery`);
    assert.deepEqual(view.galleries[0].widths.length, 3);
  }
}

test('saved notebooks opened untrusted in the classic Notebook: every figure shows its picture, tables and gallery keep their layout', { skip: skipChromium, timeout: 10 * 60_000 }, async () => {
  assert.ok(findChromium(), 'Chromium is required here (CI=true): apt-get install chromium');
  const classic = frontEndsOf(python!).find((f) => f.kind === 'classic');
  assert.ok(classic, `${python} has no classic Notebook (apt-get install jupyter-notebook)`);
  await checkSavedNotebooks(classic, 'classic', dirs, (view, figures, file) => {
    assert.equal(view.trusted, false, `${file}: opened untrusted`);
    assertFiguresShow(view, figures, file, 'picture', 'html');
    assertTablesAndGalleries(view, file);
  }, { noPageErrors: true });
});

// JupyterLab 4 and Notebook 7, where a Python that has them is named.
const extraPythons = (process.env.NOTELLM2_JUPYTER_PYTHONS ?? '').split(':').filter(Boolean);
const modern = extraPythons.flatMap((py) => frontEndsOf(py)).filter((f) => f.kind !== 'classic');
const skipModern = skipChromium || (modern.length === 0 ? 'set NOTELLM2_JUPYTER_PYTHONS to Pythons with JupyterLab 4 / Notebook 7 to check them' : false);

/** Whether `python` has the plotly renderer for JupyterLab (the Python `plotly` package). */
const hasPlotlyRenderer = (py: string) => launcher.probePython(py)?.plotlyLabExtension === true;

for (const fe of modern.length > 0 ? modern : [{ kind: 'lab', python: '', name: 'JupyterLab 4 / Notebook 7' } as FrontEnd]) {
  test(`saved notebooks opened untrusted in ${fe.name}: every figure shows (picture, interactive on hover with the plotly renderer)`, { skip: skipModern, timeout: 10 * 60_000 }, async () => {
    const label = fe.kind === 'lab' ? 'lab4' : 'notebook7';
    const withPlotly = hasPlotlyRenderer(fe.python);
    await checkSavedNotebooks(
      fe,
      label,
      dirs,
      (view, figures, file) => {
        assert.equal(view.trusted, false, `${file}: opened untrusted`);
        assertFiguresShow(view, figures, file, 'picture', withPlotly ? 'plotly' : 'html');
        assertTablesAndGalleries(view, file);
      },
      { hover: withPlotly },
    );
    if (withPlotly) {
      // The same front end without the plotly renderer (a user without the Python package):
      // the sanitised HTML keeps the picture and the note.
      const config = join(workDir, `config-${label}-no-plotly`);
      mkdirSync(join(config, 'labconfig'), { recursive: true });
      // The renderer's plugin id (disabling the package name `jupyterlab-plotly` leaves its
      // renderer active), in the test's own config folder.
      writeFileSync(join(config, 'labconfig', 'page_config.json'), JSON.stringify({ disabledExtensions: { '@jupyterlab/plotly-extension': true } }));
      await checkSavedNotebooks(fe, `${label}-no-plotly`, { ...dirs, JUPYTER_CONFIG_DIR: config }, (view, figures, file) => {
        assert.equal(view.trusted, false, `${file}: opened untrusted`);
        assertFiguresShow(view, figures, file, 'picture', 'html');
        assertTablesAndGalleries(view, file);
      });
    }
  });
}

test('live classic Notebook page: running 00-display-check draws its figures interactively, plotly.js sent once and not kept in the outputs', { skip: skipChromium, timeout: 5 * 60_000 }, async () => {
  assert.ok(findChromium(), 'Chromium is required here (CI=true): apt-get install chromium');
  assert.ok(notebooks.includes('00-display-check.ipynb'));
  const classic = frontEndsOf(python!).find((f) => f.kind === 'classic');
  assert.ok(classic);
  // A copy beside links to dist/ and node_modules/ (the notebook imports '../dist' and
  // danfojs-node), so the page's autosave never writes into notebooks/.
  const live = join(workDir, 'live');
  mkdirSync(join(live, 'notebooks'), { recursive: true });
  copyFileSync(join(NOTEBOOK_DIR, '00-display-check.ipynb'), join(live, 'notebooks', '00-display-check.ipynb'));
  for (const d of ['dist', 'node_modules']) symlinkSync(join(ROOT, d), join(live, d), 'dir');
  const server = await startServer(classic, join(live, 'notebooks'), { ...dirs, NOTELLM2_SMOKE: '1' });
  try {
    await withChromium(async (ctx) => {
      const page = await ctx.newPage();
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(e.message));
      await page.goto(server.url('00-display-check.ipynb'));
      type J = { Jupyter: { notebook: { kernel?: { is_connected(): boolean; kill(): void }; execute_all_cells(): void; trusted: boolean } } };
      await page.waitForFunction(() => (window as unknown as J).Jupyter?.notebook?.kernel?.is_connected(), null, { timeout: 60_000 });
      const t0 = Date.now();
      await page.evaluate(() => (window as unknown as J).Jupyter.notebook.execute_all_cells());
      await page.waitForFunction(
        () => document.querySelectorAll('.notellm2-figure[data-drawn] svg.main-svg').length >= 2 && document.querySelector('.notellm2-gallery img') !== null,
        null,
        { timeout: 120_000 },
      );
      console.log(`# live notebook: all cells ran and drew in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      const figures = await page.$$eval('.notellm2-figure', (ds) => ds.map((d) => ({ svg: d.querySelectorAll('svg.main-svg').length > 0, picture: d.querySelector('.notellm2-figure-static') !== null })));
      assert.deepEqual(figures, [{ svg: true, picture: false }, { svg: true, picture: false }], 'interactive figures replace their pictures');
      // plotly.js came with the first figure and stays in the page, but its output was replaced.
      assert.equal(await page.evaluate(() => typeof (window as unknown as { Plotly?: unknown }).Plotly), 'object');
      assert.equal(await page.locator('script[data-notellm2-plotly]').count(), 0, 'the plotly.js script is not left in an output');
      mkdirSync(OUTPUT, { recursive: true });
      await screenshotNotebook(page, join(OUTPUT, 'notebook-live-00-display-check.png'));
      await page.evaluate(() => (window as unknown as J).Jupyter.notebook.kernel?.kill());
      assert.deepEqual(pageErrors, []);
    });
  } finally {
    await server.stop();
  }
});

after(() => {
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});
