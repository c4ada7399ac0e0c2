import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createProgress, formatDuration, resolveProgressMode } from '../../src/train/progress';

function capture(isTTY: boolean) {
  const chunks: string[] = [];
  return { chunks, stream: { isTTY, columns: 120, write: (s: string) => { chunks.push(s); return true; } } };
}

test('mode: silent under NODE_ENV=test, node:test, or silent:true; else bar on a TTY, lines otherwise', () => {
  const tty = capture(true).stream, pipe = capture(false).stream;
  assert.equal(resolveProgressMode({ stream: tty, env: { NODE_ENV: 'test' } }), 'silent');
  assert.equal(resolveProgressMode({ stream: tty, env: { NODE_TEST_CONTEXT: 'child' } }), 'silent');
  assert.equal(resolveProgressMode({ stream: tty, env: {}, silent: true }), 'silent');
  assert.equal(resolveProgressMode({ stream: tty, env: {} }), 'bar');
  assert.equal(resolveProgressMode({ stream: pipe, env: {} }), 'lines');
  // This file runs under node:test, so the default reporter is silent here.
  assert.equal(resolveProgressMode({ stream: tty }), 'silent');
  assert.throws(() => resolveProgressMode({ mode: 'fancy' as never }), /"fancy" is not one of auto, bar, lines, silent/);
});

test('silent reporter writes nothing', () => {
  const c = capture(true);
  const p = createProgress({ stream: c.stream, env: { NODE_ENV: 'test' } });
  p.start(10);
  p.update(5, { loss: 1, tau: 3, notesPerSec: 100 });
  p.log('hello');
  p.stop();
  assert.deepEqual(c.chunks, []);
});

test('line mode: throttled lines with step, loss, τ, notes/s and a rate-based ETA', () => {
  const c = capture(false);
  let t = 0;
  const p = createProgress({ stream: c.stream, env: {}, label: 'micl', lineEverySeconds: 5, now: () => t });
  p.start(20);
  for (let s = 1; s <= 20; s++) {
    t += 1000; // one second per step
    p.update(s, { loss: 2 / s, tau: 3 + s / 100, notesPerSec: 256 });
  }
  p.log('val loss 0.5');
  p.stop();
  const lines = c.chunks.join('').trim().split('\n');
  assert.equal(lines[0], 'micl: 20 steps');
  // First step, then every ≥ 5 s (steps 6, 11, 16) and the final step: 5 progress lines.
  const progress = lines.filter((l) => l.startsWith('micl step'));
  assert.deepEqual(progress.map((l) => l.split(' ')[2]), ['1/20', '6/20', '11/20', '16/20', '20/20']);
  // At step 6: 6 s for 6 steps, 14 left → ETA 14 s.
  assert.equal(progress[1], 'micl step 6/20 (30%) | loss 0.3333 | τ 3.060 | 256 notes/s | ETA 0:14');
  assert.match(progress[4], /ETA 0:00$/);
  assert.equal(lines[lines.length - 1], 'micl: val loss 0.5');
});

test('line mode after a resume: ETA counts only this run\'s steps', () => {
  const c = capture(false);
  let t = 0;
  const p = createProgress({ stream: c.stream, env: {}, lineEverySeconds: 0, now: () => t });
  p.start(100, 50);
  t = 10_000;
  p.update(60, { loss: 1 });
  p.stop();
  const out = c.chunks.join('');
  assert.match(out, /train: 100 steps, resuming at 50/);
  // 10 steps in 10 s, 40 left → 40 s.
  assert.match(out, /train step 60\/100 \(60%\) \| loss 1\.0000 \| τ - \| - notes\/s \| ETA 0:40/);
});

test('bar mode draws a cli-progress bar with the metrics on a TTY', () => {
  const c = capture(true);
  const p = createProgress({ stream: c.stream, env: {}, label: 'notellm2' });
  assert.equal(p.mode, 'bar');
  p.start(8);
  p.update(8, { loss: 0.25, tau: 3.5, notesPerSec: 1234 });
  p.stop();
  const out = c.chunks.join('');
  assert.match(out, /notellm2 \[=+\] 8\/8 \| loss 0\.2500 \| τ 3\.500 \| 1234 notes\/s \| ETA/);
});

test('formatDuration', () => {
  assert.equal(formatDuration(0), '0:00');
  assert.equal(formatDuration(309), '5:09');
  assert.equal(formatDuration(3909), '1:05:09');
  assert.equal(formatDuration(NaN), '--:--');
});
