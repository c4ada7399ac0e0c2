import { test } from 'node:test';
import assert from 'node:assert/strict';
import { prepare } from '../../src/experiments/runner';

test('a broken dataset fails preparation with every problem listed as file:line', async () => {
  await assert.rejects(prepare({ dataset: 'test/fixtures/broken', pretrain: false }), (e: Error) => {
    assert.match(e.message, /notes_train\.csv:\d+: duplicate-id/);
    assert.match(e.message, /note_pairs_train\.csv:\d+: unknown-note/);
    return true;
  });
});

test('--skip-bad skips the bad rows and says how many of each kind', async () => {
  const lines: string[] = [];
  const p = await prepare({ dataset: 'test/fixtures/broken', pretrain: false, skipBad: true, log: (m) => lines.push(m) });
  const skipped = lines.find((l) => l.startsWith('skipped bad rows'));
  assert.ok(skipped, lines.join('\n'));
  assert.match(skipped!, /1 duplicate-id/);
  assert.match(skipped!, /1 unknown-note/);
  assert.ok(p.tokenizerPath.endsWith('.json'));
});

test('an unknown dataset name lists the built-in ones', async () => {
  await assert.rejects(prepare({ dataset: 'no-such-dataset', pretrain: false }), /not one of synth, openmoji and no folder/);
});
