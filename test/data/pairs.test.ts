import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { initBackend } from '../../src/backend';
import { registerData } from '../../src/cli/data';
import {
  buildPairs,
  cooccurrenceScores,
  parseEventsCsv,
  parseTimestamp,
  quantile,
  readEventsCsv,
  writePairsCsv,
} from '../../src/data/pairs';

const DAY = 86400;
const T0 = 1_700_000_000; // epoch seconds

/*
 * Hand-worked example (window 7 days). N_u = distinct notes of user u.
 *
 *   u1: n1@d0 n2@d1 n3@d2 n4@d10           N=4  co-occur: n1n2 n1n3 n2n3 (n4 is 8 days after n3)
 *   u2: n1@d0 n2@d3                         N=2  co-occur: n1n2
 *   u3: n2@d0 n3@d6 n2@d6.5                 N=2  co-occur: n2n3 (once, although two event pairs)
 *   u4: n3 n4 n5 on one day                 N=3  co-occur: n3n4 n3n5 n4n5
 *   u5: n1@2024-01-01 n5@2024-01-08 (ISO, exactly 7 days: inclusive) n6@2024-01-21
 *                                           N=3  co-occur: n1n5 (n6 is 13 days after n5)
 *
 *   s(n1,n2) = 1/4 + 1/2 = 0.75     s(n2,n3) = 1/4 + 1/2 = 0.75     s(n1,n3) = 1/4 = 0.25
 *   s(n3,n4) = s(n3,n5) = s(n4,n5) = 1/3 (u4)                        s(n1,n5) = 1/3 (u5)
 *   n6 co-occurs with nothing. Sorted scores: 0.25, 1/3, 1/3, 1/3, 1/3, 0.75, 0.75 (7 pairs).
 */
const CSV = [
  'user_id,note_id,timestamp',
  `u1,n1,${T0}`,
  `u1,n2,${T0 + 1 * DAY}`,
  `u1,n3,${T0 + 2 * DAY}`,
  `u1,n4,${T0 + 10 * DAY}`,
  `u2,n1,${T0}`,
  `u2,n2,${T0 + 3 * DAY}`,
  `u3,n2,${T0}`,
  `u3,n3,${T0 + 6 * DAY}`,
  `u3,n2,${T0 + 6.5 * DAY}`,
  `u4,n5,${T0 + 100}`,
  `u4,n3,${T0}`,
  `u4,n4,${T0 + 50}`,
  'u5,n1,2024-01-01T00:00:00Z',
  'u5,n5,2024-01-08T00:00:00Z',
  'u5,n6,2024-01-21',
].join('\n');

before(async () => {
  await initBackend();
});

test('co-occurrence scores match the hand-worked sums', () => {
  const events = parseEventsCsv(CSV);
  assert.equal(events.length, 15);
  const { noteIds, scores, users, key } = cooccurrenceScores(events, 7);
  assert.deepEqual(noteIds, ['n1', 'n2', 'n3', 'n4', 'n5', 'n6']);
  assert.equal(users, 5);
  const s = (a: string, b: string) => scores.get(key(noteIds.indexOf(a), noteIds.indexOf(b)));
  assert.equal(scores.size, 7);
  assert.equal(s('n1', 'n2'), 0.75);
  assert.equal(s('n2', 'n3'), 0.75);
  assert.equal(s('n1', 'n3'), 0.25);
  for (const [a, b] of [['n3', 'n4'], ['n3', 'n5'], ['n4', 'n5'], ['n1', 'n5']]) {
    assert.ok(Math.abs(s(a, b)! - 1 / 3) < 1e-12, `${a}${b}`);
  }
  assert.equal(s('n3', 'n4'), s('n1', 'n5')); // equal sums tie exactly
  assert.equal(s('n1', 'n4'), undefined); // n4 is 8 days after n3 for u1
  assert.equal(s('n5', 'n6'), undefined);
  // A 1-day window loses u1's n1n3 (2 days), u2's n1n2 (3 days), u3's n2n3 (0.5 day gap counts!) and u5's n1n5.
  const narrow = cooccurrenceScores(events, 1);
  const sn = (a: string, b: string) => narrow.scores.get(narrow.key(narrow.noteIds.indexOf(a), narrow.noteIds.indexOf(b)));
  assert.equal(sn('n1', 'n2'), 0.25); // u1 only (d0→d1)
  assert.equal(sn('n2', 'n3'), 0.75); // u1 (d1→d2) + u3 (n3@d6, n2@d6.5)
  assert.equal(sn('n1', 'n3'), undefined);
  assert.equal(sn('n1', 'n5'), undefined);
});

test('top-k with deterministic tie-breaking and mirrored rows skipped', () => {
  const { pairs, stats } = buildPairs(parseEventsCsv(CSV), { topK: 2 });
  /*
   * Default quantiles keep everything: q(0.99) = sorted[5] + 0.94·(sorted[6] − sorted[5]) = 0.75.
   * Partners, best first, ties by id:
   *   n1: n2 .75, n5 1/3 | n3 .25      → {n2, n5}
   *   n2: n1 .75, n3 .75               → {n1, n3}
   *   n3: n2 .75, n4 1/3 | n5 1/3, n1  → {n2, n4}
   *   n4: n3 1/3, n5 1/3               → {n3, n5}
   *   n5: n1 1/3, n3 1/3 | n4 1/3      → {n1, n3}
   * Rows in note order; (b,a) is skipped when a chose b and b's row came first.
   */
  const rows = pairs.map((p) => `${p.a}>${p.b}`);
  assert.deepEqual(rows, ['n1>n2', 'n1>n5', 'n2>n3', 'n3>n4', 'n4>n5', 'n5>n3']);
  assert.equal(pairs[0].score, 0.75);
  assert.ok(Math.abs(pairs[5].score - 1 / 3) < 1e-12);
  assert.equal(stats.candidatePairs, 7);
  assert.deepEqual(stats.thresholds, [0.25, 0.75]);
  assert.equal(stats.droppedLow + stats.droppedHigh, 0);
  assert.equal(stats.pairs, 6);

  const mirrored = buildPairs(parseEventsCsv(CSV), { topK: 2, keepMirrored: true });
  assert.equal(mirrored.pairs.length, 10); // 5 notes × 2 partners
  assert.deepEqual(
    mirrored.pairs.filter((p) => p.a === 'n5').map((p) => p.b),
    ['n1', 'n3'],
  );
});

test('quantile filtering drops abnormally low and high scores', () => {
  // q(0.1): pos 0.6 → 0.25 + 0.6·(1/3 − 0.25) = 0.30 → drops s(n1,n3) = 0.25.
  // q(0.8): pos 4.8 → 1/3 + 0.8·(0.75 − 1/3) = 2/3 → drops the two 0.75 pairs.
  const { pairs, stats } = buildPairs(parseEventsCsv(CSV), { topK: 10, qLow: 0.1, qHigh: 0.8 });
  assert.ok(Math.abs(stats.thresholds[0] - 0.3) < 1e-12);
  assert.ok(Math.abs(stats.thresholds[1] - 2 / 3) < 1e-12);
  assert.equal(stats.droppedLow, 1);
  assert.equal(stats.droppedHigh, 2);
  // left: n1n5, n3n4, n3n5, n4n5 (all 1/3), each once
  assert.deepEqual(pairs.map((p) => `${p.a}>${p.b}`), ['n1>n5', 'n3>n4', 'n3>n5', 'n4>n5']);
});

test('quantile is numpy-style linear interpolation', () => {
  assert.equal(quantile([1, 2, 3, 4], 0.5), 2.5);
  assert.equal(quantile([1, 2, 3, 4], 0), 1);
  assert.equal(quantile([1, 2, 3, 4], 1), 4);
  assert.ok(Math.abs(quantile([0, 10], 0.25) - 2.5) < 1e-12);
});

test('timestamps: epoch seconds or ISO-8601, nothing else', () => {
  assert.equal(parseTimestamp('1700000000'), 1_700_000_000);
  assert.equal(parseTimestamp('1700000000.5'), 1_700_000_000.5);
  assert.equal(parseTimestamp('1970-01-02'), DAY);
  assert.equal(parseTimestamp('1970-01-01T01:00:00+01:00'), 0);
  assert.ok(Number.isNaN(parseTimestamp('March 7')));
  assert.ok(Number.isNaN(parseTimestamp('')));
});

test('errors name the file, line and what was expected', () => {
  assert.throws(() => parseEventsCsv('user,note_id,timestamp\nu,n,1\n', 'ev.csv'), /ev\.csv:1: .*missing "user_id"/);
  assert.throws(
    () => parseEventsCsv('user_id,note_id,timestamp\nu1,n1,5\nu1,n2,yesterday\n', 'ev.csv'),
    /ev\.csv:3: timestamp "yesterday" is neither epoch seconds nor an ISO-8601 date/,
  );
  assert.throws(() => parseEventsCsv('user_id,note_id,timestamp\nu1,n1\n', 'ev.csv'), /ev\.csv:2: expected 3 columns/);
  assert.throws(() => parseEventsCsv('user_id,note_id,timestamp\nu1,,5\n', 'ev.csv'), /ev\.csv:2: note_id is empty/);
  // a quoted field spanning lines: the line number still points at the bad row
  assert.throws(
    () => parseEventsCsv('user_id,note_id,timestamp\n"u\n1",n1,5\nu2,n2,x\n', 'ev.csv'),
    /ev\.csv:4: timestamp "x"/,
  );
  assert.throws(() => parseEventsCsv('', 'ev.csv'), /ev\.csv: empty/);
  assert.throws(() => buildPairs([], { topK: 0 }), /topK must be an integer >= 1, got 0/);
  assert.throws(() => buildPairs([], { qLow: 0.5, qHigh: 0.2 }), /qLow \(0\.5\) must not exceed qHigh/);
});

test('file round trip: events CSV in, pairs CSV (no header) out', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pairs-'));
  writeFileSync(join(dir, 'ev.csv'), '\uFEFF' + CSV.replace('user_id,note_id,timestamp', 'timestamp,note_id,user_id,extra')
    .split('\n').map((l, i) => (i === 0 ? l : (() => { const [u, n, t] = l.split(','); return `${t},${n},${u},x`; })())).join('\n'));
  const events = readEventsCsv(join(dir, 'ev.csv'));
  const { pairs } = buildPairs(events, { topK: 2 });
  writePairsCsv(join(dir, 'pairs.csv'), pairs);
  assert.equal(readFileSync(join(dir, 'pairs.csv'), 'utf8'), 'n1,n2\nn1,n5\nn2,n3\nn3,n4\nn4,n5\nn5,n3\n');
});

test('CLI: notellm2 data pairs --events … --out … [--top-k] writes the pairs and reports the counts', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pairs-cli-'));
  writeFileSync(join(dir, 'ev.csv'), CSV);
  const program = new Command().exitOverride();
  registerData(program);
  const lines: string[] = [];
  const log = console.log;
  console.log = (s: string) => void lines.push(s);
  try {
    await program.parseAsync(['node', 'notellm2', 'data', 'pairs', '--events', join(dir, 'ev.csv'), '--out', join(dir, 'p.csv'), '--top-k', '2']);
  } finally {
    console.log = log;
  }
  assert.equal(readFileSync(join(dir, 'p.csv'), 'utf8'), 'n1,n2\nn1,n5\nn2,n3\nn3,n4\nn4,n5\nn5,n3\n');
  assert.match(lines.join('\n'), /events 15 \(users 5, notes 6\); co-occurring pairs 7; .* wrote 6 pairs/);
  await assert.rejects(
    program.parseAsync(['node', 'notellm2', 'data', 'pairs', '--events', 'x.csv', '--out', 'y.csv', '--top-k', 'zero']),
    /--top-k: expected an integer >= 1, got "zero"/,
  );
});
