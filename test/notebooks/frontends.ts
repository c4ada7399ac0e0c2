/**
 * Jupyter front ends for the browser checks of saved notebooks: start a server of one front end
 * (classic Notebook 6, JupyterLab 4, Notebook 7) on a folder, open a notebook in Chromium and
 * report what each figure output shows — the interactive figure, its static picture, or
 * nothing — and how the tables and the neighbour gallery came out.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import type { Page } from 'playwright-core';
import { jupyterEnv } from './jupyter';

export type FrontEndKind = 'classic' | 'lab' | 'notebook7';

export interface FrontEnd {
  kind: FrontEndKind;
  python: string;
  /** e.g. "JupyterLab 4.6.4". */
  name: string;
}

/** The front ends a Python serves (JupyterLab and Notebook 7 may live in the same environment). */
export function frontEndsOf(python: string): FrontEnd[] {
  const r = spawnSync(
    python,
    ['-c', 'import json\nfrom importlib import metadata\ndef v(n):\n  try: return metadata.version(n)\n  except Exception: return None\nprint(json.dumps({"lab": v("jupyterlab"), "nb": v("notebook")}))'],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) return [];
  const { lab, nb } = JSON.parse(r.stdout) as { lab: string | null; nb: string | null };
  const out: FrontEnd[] = [];
  if (lab && Number(lab.split('.')[0]) >= 4) out.push({ kind: 'lab', python, name: `JupyterLab ${lab}` });
  if (nb && Number(nb.split('.')[0]) >= 7) out.push({ kind: 'notebook7', python, name: `Notebook ${nb}` });
  if (nb && Number(nb.split('.')[0]) < 7) out.push({ kind: 'classic', python, name: `classic Notebook ${nb}` });
  return out;
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolvePort(port));
    });
  });
}

export interface Server {
  /** URL that opens `name` (a notebook in the served folder). */
  url(name: string): string;
  /** Base URL with the token, for REST calls. */
  api(path: string): string;
  log(): string;
  stop(): Promise<void>;
}

/** Starts `fe` serving `dir`; `env` adds to the environment (Jupyter folders, kernel). */
export async function startServer(fe: FrontEnd, dir: string, env: Record<string, string>): Promise<Server> {
  const port = await freePort();
  const token = `t${process.pid}${port}`;
  const common = ['--no-browser', '--ip=127.0.0.1', `--port=${port}`, '--allow-root'];
  const args =
    fe.kind === 'classic'
      ? ['-m', 'notebook', ...common, `--NotebookApp.token=${token}`, `--notebook-dir=${dir}`]
      : [
          '-m',
          fe.kind === 'lab' ? 'jupyterlab' : 'notebook',
          ...common,
          `--IdentityProvider.token=${token}`,
          `--ServerApp.root_dir=${dir}`,
          // Offline machine: no news feed or update check from the page.
          '--LabApp.news_url=None',
          // window.jupyterapp, to read whether the notebook is trusted.
          fe.kind === 'lab' ? '--LabApp.expose_app_in_browser=True' : '--JupyterNotebookApp.expose_app_in_browser=True',
          '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate',
        ];
  const srv = spawn(fe.python, args, { env: jupyterEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const base = await new Promise<string>((resolveBase, reject) => {
    const timer = setTimeout(() => {
      srv.kill('SIGTERM');
      reject(new Error(`${fe.name} did not start within 60 s:\n${log}`));
    }, 60_000);
    const onData = (d: Buffer) => {
      log += d.toString();
      // Port retries may move the server to another port: read the one it announces.
      const m = /(http:\/\/(?:127\.0\.0\.1|localhost):\d+\/)(?:lab|tree)?\?token=/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolveBase(m[1]);
      }
    };
    srv.stdout.on('data', onData);
    srv.stderr.on('data', onData);
    srv.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${fe.name} exited (${code}):\n${log}`));
    });
  });
  const path = fe.kind === 'lab' ? 'lab/tree' : 'notebooks';
  // JupyterLab reopens the tabs of its last session unless told to `reset` its workspace: one
  // notebook per page.
  const reset = fe.kind === 'lab' ? '&reset' : '';
  return {
    url: (name) => `${base}${path}/${encodeURIComponent(name)}?token=${token}${reset}`,
    api: (p) => `${base}${p}?token=${token}`,
    log: () => log,
    stop: () =>
      new Promise<void>((done) => {
        if (srv.exitCode !== null) return done();
        srv.once('exit', () => done());
        srv.kill('SIGTERM');
        setTimeout(() => srv.kill('SIGKILL'), 10_000).unref();
      }),
  };
}

/** Shuts down every kernel the server started (opening a notebook starts one). */
export async function stopKernels(server: Server): Promise<void> {
  const res = await fetch(server.api('api/sessions'));
  if (!res.ok) return;
  for (const s of (await res.json()) as { id: string }[]) {
    await fetch(server.api(`api/sessions/${s.id}`), { method: 'DELETE' }).catch(() => undefined);
  }
}

export interface FigureView {
  /** What the reader sees: the drawn plotly figure, the static picture, or neither. */
  shows: 'interactive' | 'picture' | 'nothing';
  /** Which representation the front end rendered. */
  mime: 'plotly' | 'html';
  /** Height of the figure's output and of what is drawn in it (CSS pixels). */
  outputHeight: number;
  contentHeight: number;
  /** The visible note under a static picture, if any. */
  note: string;
}

/**
 * Moves the mouse over every figure JupyterLab's plotly renderer shows as a picture (it draws
 * the interactive figure on hover) and waits until each is drawn. Returns how many were.
 */
export async function hoverPlotlyFigures(page: Page, timeoutMs = 30_000): Promise<number> {
  const figs = page.locator('.jp-RenderedPlotly');
  const n = await figs.count();
  let drawn = 0;
  for (let i = 0; i < n; i++) {
    const fig = figs.nth(i);
    await fig.scrollIntoViewIfNeeded().catch(() => undefined);
    await fig.hover().catch(() => undefined);
    const ok = await fig
      .locator('svg.main-svg')
      .first()
      .waitFor({ timeout: timeoutMs })
      .then(() => true)
      .catch(() => false);
    if (ok) drawn += 1;
  }
  return drawn;
}

export interface NotebookView {
  /** Whether the front end trusts the notebook (null where it cannot be read). */
  trusted: boolean | null;
  figures: FigureView[];
  tables: { count: number; numbersRightAligned: boolean };
  /** Per gallery: image widths and whether the pictures stand on one row. */
  galleries: { widths: number[]; oneRow: boolean }[];
}

/** Opens `url` and waits until the notebook's cells are on the page. */
export async function openNotebook(page: Page, fe: FrontEnd, url: string): Promise<void> {
  await page.goto(url, { waitUntil: 'load' });
  const cellSel = fe.kind === 'classic' ? '#notebook-container .cell' : '.jp-Notebook .jp-Cell';
  await page.waitForSelector(cellSel, { timeout: 90_000 });
  if (fe.kind === 'classic') {
    await page.waitForFunction(() => (window as unknown as { Jupyter?: { notebook?: { _fully_loaded?: boolean } } }).Jupyter?.notebook?._fully_loaded === true, null, {
      timeout: 60_000,
    });
  }
}

/**
 * Looks at every figure of the open notebook, scrolling each into view (JupyterLab renders
 * lazily) and waiting up to `timeoutMs` for each to show something.
 */
export async function inspectNotebook(page: Page, fe: FrontEnd, expectedFigures: number, timeoutMs = 30_000): Promise<NotebookView> {
  // JupyterLab's plotly renderer (the Python `plotly` package), or our HTML in any front end.
  const FIG = '.jp-RenderedPlotly, .notellm2-figure';
  // JupyterLab may attach far-down cells only when scrolled to: walk the notebook down.
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const n = await page.locator(FIG).count();
    if (n >= expectedFigures || Date.now() > deadline) break;
    await page.evaluate(() => {
      const s = document.querySelector('.jp-WindowedPanel-outer') ?? document.querySelector('#site') ?? document.scrollingElement;
      if (s) s.scrollTop += 600;
    });
    await page.waitForTimeout(300);
  }
  const count = await page.locator(FIG).count();
  for (let i = 0; i < count; i++) {
    const fig = page.locator(FIG).nth(i);
    await fig.scrollIntoViewIfNeeded().catch(() => undefined);
    await page
      .waitForFunction(
        ({ sel, i }) => {
          const el = document.querySelectorAll(sel)[i];
          if (!el) return false;
          const img = el.querySelector('img') as HTMLImageElement | null;
          return el.querySelector('svg.main-svg') !== null || (img !== null && img.complete && img.naturalWidth > 0) || el.querySelector('.notellm2-figure-note') !== null;
        },
        { sel: FIG, i },
        { timeout: Math.max(1000, deadline - Date.now()) },
      )
      .catch(() => undefined);
  }
  // Time for a plotly renderer to finish drawing what just got into view.
  await page.waitForTimeout(500);
  // tsx (esbuild) names the helper functions below with a `__name` call the page lacks.
  await page.evaluate('window.__name = window.__name || function (f) { return f; }');
  return page.evaluate(
    ({ sel, kind }) => {
      const outputOf = (el: Element): Element =>
        el.closest(kind === 'classic' ? '.output_subarea' : '.jp-OutputArea-output') ?? el;
      const figures = [...document.querySelectorAll(sel)].map((el) => {
        const svg = el.querySelector('svg.main-svg');
        // A drawn figure hides its picture (JupyterLab's plotly renderer keeps it, hidden).
        const img = [...el.querySelectorAll('img')].find((im) => im.offsetParent !== null) ?? null;
        const plot = el.querySelector('.plot-container') ?? svg;
        const picture = img !== null && img.complete && img.naturalWidth > 0;
        const content = svg ? plot : picture ? img : null;
        const note = el.querySelector('.notellm2-figure-note') as HTMLElement | null;
        return {
          shows: (svg ? 'interactive' : picture ? 'picture' : 'nothing') as 'interactive' | 'picture' | 'nothing',
          mime: (el.matches('.jp-RenderedPlotly') ? 'plotly' : 'html') as 'plotly' | 'html',
          outputHeight: outputOf(el).getBoundingClientRect().height,
          contentHeight: content ? content.getBoundingClientRect().height : 0,
          note: note && note.offsetParent !== null ? (note.textContent ?? '') : '',
        };
      });
      const tables = [...document.querySelectorAll('table.notellm2-table')];
      const numbersRightAligned = tables.every((t) =>
        [...t.querySelectorAll('td.num')].every((td) => getComputedStyle(td).textAlign === 'right'),
      );
      const galleries = [...document.querySelectorAll('table.notellm2-gallery')].map((g) => {
        const imgs = [...g.querySelectorAll('img')];
        const tops = imgs.map((im) => Math.round(im.getBoundingClientRect().top));
        return { widths: imgs.map((im) => Math.round(im.getBoundingClientRect().width)), oneRow: new Set(tops).size === 1 };
      });
      type Cells = { length: number; get(i: number): { type: string; trusted: boolean } };
      const w = window as unknown as {
        Jupyter?: { notebook?: { trusted?: boolean } };
        jupyterapp?: { shell: { currentWidget?: { content?: { model?: { cells?: Cells } } } } };
      };
      let trusted: boolean | null = null;
      if (kind === 'classic') trusted = w.Jupyter?.notebook?.trusted ?? null;
      else {
        // JupyterLab and Notebook 7 keep trust per cell: the notebook is trusted when its code cells are.
        const cells = w.jupyterapp?.shell.currentWidget?.content?.model?.cells;
        if (cells) {
          trusted = true;
          for (let i = 0; i < cells.length; i++) if (cells.get(i).type === 'code' && !cells.get(i).trusted) trusted = false;
        }
      }
      return { trusted, figures, tables: { count: tables.length, numbersRightAligned }, galleries };
    },
    { sel: FIG, kind: fe.kind },
  );
}

/**
 * A screenshot of the whole notebook: the page is made as tall as the notebook's scrolling
 * area (front ends scroll inside it, so a full-page shot would stop at the window).
 */
export async function screenshotNotebook(page: Page, path: string): Promise<void> {
  const height = await page.evaluate(() => {
    const s = document.querySelector('.jp-WindowedPanel-outer') ?? document.querySelector('#site');
    const chrome = s ? s.getBoundingClientRect().top : 0;
    return Math.ceil(chrome + (s ? s.scrollHeight : document.documentElement.scrollHeight) + 20);
  });
  const size = page.viewportSize() ?? { width: 1200, height: 900 };
  await page.setViewportSize({ width: size.width, height: Math.min(Math.max(height, size.height), 16_000) });
  // JupyterLab lays the cells out again for the new window size, from the top.
  await page.evaluate(() => {
    const s = document.querySelector('.jp-WindowedPanel-outer') ?? document.querySelector('#site');
    if (s) {
      s.scrollTop = 0;
      s.dispatchEvent(new Event('scroll'));
    }
    window.dispatchEvent(new Event('resize'));
  });
  await page.waitForTimeout(2000);
  await page.screenshot({ path, fullPage: true });
  await page.setViewportSize(size);
}
