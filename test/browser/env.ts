/**
 * Skip-or-fail for tests that need system tools (Chromium, Jupyter): on a developer machine
 * without the tool the test is skipped with a message saying what to install; in CI
 * (CI=true) it runs and fails on its own availability check, so a broken CI image can never
 * pass by skipping.
 */
export function isCI(): boolean {
  return process.env.CI === 'true' || process.env.CI === '1';
}

/** node:test `skip` option: false (run) when the tool is there or in CI, else the reason. */
export function skipUnless(available: boolean, what: string, install: string): string | false {
  if (available || isCI()) return false;
  return `${what} not found; skipped outside CI (install: ${install})`;
}
