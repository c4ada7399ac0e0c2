/**
 * A child that watches its parent (the runner's workers do) ends within a second of the parent's
 * death, even while its main thread never yields (a long synchronous training step).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const tmp = mkdtempSync(join(tmpdir(), 'notellm2-parent-watch-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Whether pid is a live process (a zombie awaiting its reaper counts as gone). */
function running(pid: number): boolean {
  const stat = `/proc/${pid}/stat`;
  if (existsSync('/proc/self/stat')) return existsSync(stat) && readFileSync(stat, 'utf8').split(') ')[1]?.[0] !== 'Z';
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('a busy child ends within a second of its parent being killed with SIGKILL', async () => {
  const child = join(tmp, 'child.ts');
  const parent = join(tmp, 'parent.ts');
  writeFileSync(
    child,
    `import { exitWithParent } from ${JSON.stringify(join(__dirname, '../../src/backend/parent-watch'))};\n` +
      `exitWithParent();\nprocess.send!('busy');\nfor (;;) Math.sqrt(Math.random()); // never yields\n`,
  );
  writeFileSync(
    parent,
    `import { fork } from 'node:child_process';\n` +
      `const c = fork(${JSON.stringify(child)}, [], { execArgv: ['--import', 'tsx'] });\n` +
      `c.on('message', () => console.log(String(c.pid)));\nsetInterval(() => {}, 1000);\n`,
  );
  const p = spawn(process.execPath, ['--import', 'tsx', parent], { stdio: ['ignore', 'pipe', 'inherit'] });
  const childPid = await new Promise<number>((resolve, reject) => {
    p.stdout.on('data', (d: Buffer) => resolve(Number(String(d).trim())));
    p.on('exit', () => reject(new Error('the parent exited before the child started')));
  });
  assert.ok(running(childPid));
  // Let the child sit in its loop for a while: it must still be running while the parent lives.
  await new Promise((r) => setTimeout(r, 500));
  assert.ok(running(childPid), 'the child runs while its parent lives');
  p.kill('SIGKILL');
  const t0 = performance.now();
  while (running(childPid) && performance.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 25));
  const ms = performance.now() - t0;
  if (running(childPid)) process.kill(childPid, 'SIGKILL');
  assert.ok(ms < 1000, `the child ended ${ms.toFixed(0)} ms after its parent was killed`);
});
