/**
 * Headless Chromium through playwright-core, for PNG export of report figures and for the
 * browser tests. The system Chromium is used (Debian's `chromium` package); playwright never
 * downloads a browser here. Every launch gets a fresh profile folder, removed afterwards, and
 * flags that keep Chromium from reaching the network on its own.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext } from 'playwright-core';

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

/** Runs `fn` with a fresh headless Chromium context and always closes it. */
export async function withChromium<T>(fn: (ctx: BrowserContext) => Promise<T>): Promise<T> {
  const executablePath = findChromium();
  if (!executablePath) {
    throw new Error(
      `Chromium not found (looked at ${process.env.NOTELLM2_CHROMIUM ?? CANDIDATES.join(', ')}); ` +
        'install it (Debian: apt-get install chromium) or set NOTELLM2_CHROMIUM to its path',
    );
  }
  // playwright-core is loaded only here: reports without PNGs need no browser library.
  const { chromium } = await import('playwright-core');
  const profile = mkdtempSync(join(tmpdir(), 'notellm2-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1200, height: 900 },
  });
  try {
    return await fn(ctx);
  } finally {
    await ctx.close().catch(() => undefined);
    rmSync(profile, { recursive: true, force: true });
  }
}
