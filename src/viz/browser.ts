/**
 * Headless Chromium through playwright-core, for PNG export of report figures, the static
 * snapshots of notebook figures and the browser tests. The system Chromium is used (Debian's
 * `chromium` package); playwright never downloads a browser here. Every launch gets a fresh
 * profile folder, removed afterwards, and flags that keep Chromium from reaching the network
 * on its own.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { BrowserContext, Page } from 'playwright-core';
import type { Figure } from './types';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

/** Chromium executable: $NOTELLM2_CHROMIUM, else the first of the usual paths that exists. */
export function findChromium(): string | undefined {
  const env = process.env.NOTELLM2_CHROMIUM;
  if (env) return existsSync(env) ? env : undefined;
  return CANDIDATES.find((p) => existsSync(p));
}

/** What to tell the user when Chromium is missing. */
export function chromiumMissing(): string {
  return (
    `Chromium not found (looked at ${process.env.NOTELLM2_CHROMIUM ?? CANDIDATES.join(', ')}); ` +
    'install it (Debian: apt-get install chromium) or set NOTELLM2_CHROMIUM to its path'
  );
}

/** A running headless Chromium: its context, a scratch folder that goes with it, and close(). */
export interface ChromiumSession {
  context: BrowserContext;
  /** The profile folder; also holds pages written for the session (removed by close). */
  dir: string;
  close(): Promise<void>;
}

/** Launches headless Chromium with a fresh profile. Call `close()` when done. */
export async function launchChromium(): Promise<ChromiumSession> {
  const executablePath = findChromium();
  if (!executablePath) throw new Error(chromiumMissing());
  // playwright-core is loaded only here: reports without PNGs need no browser library.
  const { chromium } = await import('playwright-core');
  const dir = mkdtempSync(join(tmpdir(), 'notellm2-chromium-'));
  const context = await chromium.launchPersistentContext(join(dir, 'profile'), {
    executablePath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1200, height: 900 },
  });
  return {
    context,
    dir,
    close: async () => {
      await context.close().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs `fn` with a fresh headless Chromium context and always closes it. */
export async function withChromium<T>(fn: (ctx: BrowserContext) => Promise<T>): Promise<T> {
  const session = await launchChromium();
  try {
    return await fn(session.context);
  } finally {
    await session.close();
  }
}

/**
 * A blank page of `session` with plotly.js loaded from node_modules (a local file, no
 * network), ready for {@link plotlyPng} with figure specs.
 */
export async function plotlyPage(session: ChromiumSession): Promise<Page> {
  const file = join(session.dir, 'plotly-page.html');
  const plotly = pathToFileURL(require.resolve('plotly.js-dist-min')).href;
  writeFileSync(file, `<!DOCTYPE html><html><head><meta charset="utf-8"><script src="${plotly}"></script></head><body></body></html>\n`);
  const page = await session.context.newPage();
  await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
  if (!(await page.evaluate(() => typeof (window as unknown as { Plotly?: unknown }).Plotly === 'object'))) {
    throw new Error(`plotly.js did not load from ${plotly}`);
  }
  return page;
}

export interface PngSize {
  width: number;
  height: number;
  /** Device pixels per CSS pixel. Defaults to 1. */
  scale?: number;
}

/**
 * `Plotly.toImage` as PNG bytes, in a page where plotly.js is loaded: of the drawn figure in
 * the element with id `target`, or of a figure spec drawn off-screen.
 */
export async function plotlyPng(page: Page, target: string | Figure, size: PngSize): Promise<Buffer> {
  const dataUrl = await page.evaluate(
    async ({ target, size }) => {
      const w = window as unknown as { Plotly: { toImage(el: unknown, o: object): Promise<string> } };
      const el = typeof target === 'string' ? document.getElementById(target) : { data: target.data, layout: target.layout };
      if (!el) throw new Error(`no element #${target as string}`);
      return w.Plotly.toImage(el, { format: 'png', width: size.width, height: size.height, scale: size.scale ?? 1 });
    },
    { target, size },
  );
  return Buffer.from(dataUrl.replace(/^data:image\/png;base64,/, ''), 'base64');
}
