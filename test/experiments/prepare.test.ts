import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepare } from '../../src/experiments/runner';

const tmp = mkdtempSync(join(tmpdir(), 'notellm2-prepare-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('a broken dataset fails preparation with every problem listed as file:line', async () => {
  await assert.rejects(prepare({ dataset: 'test/fixtures/broken', pretrain: false }), (e: Error) => {
    assert.match(e.message, /notes_train\.csv:\d+: duplicate-id/);
    assert.match(e.message, /note_pairs_train\.csv:\d+: unknown-note/);
    return true;
  });
});

test('--skip-bad cannot mend a missing table or a split left without pairs: it stops at once, naming them', async () => {
  await assert.rejects(prepare({ dataset: 'test/fixtures/broken', pretrain: false, skipBad: true }), (e: Error) => {
    assert.match(e.message, /cannot be used even with --skip-bad/);
    assert.match(e.message, /note_pairs_test\.csv: empty-split/);
    assert.match(e.message, /note_pairs_val\.csv: missing-file/);
    return true;
  });
});

test('--skip-bad skips the bad rows and says how many of each kind', async () => {
  // The good fixture with a truncated image and a note naming a missing one.
  const dir = join(tmp, 'some-bad');
  cpSync('test/fixtures/good', dir, { recursive: true });
  const png = readFileSync(join(dir, 'images/n4.webp'));
  writeFileSync(join(dir, 'images/n4.webp'), png.subarray(0, png.length - 10));
  writeFileSync(join(dir, 'notes_train.csv'), readFileSync(join(dir, 'notes_train.csv'), 'utf8') + 'n5,Lost,no image here,nothing,x@y@\n');
  const lines: string[] = [];
  const p = await prepare({ dataset: dir, pretrain: false, skipBad: true, log: (m) => lines.push(m) });
  const skipped = lines.find((l) => l.startsWith('skipped bad rows'));
  assert.ok(skipped, lines.join('\n'));
  assert.match(skipped!, /1 missing-image/);
  assert.match(skipped!, /1 undecodable-image/);
  assert.match(skipped!, /1 pairs dropped with them/);
  assert.ok(p.tokenizerPath.endsWith('.json'));
});

test('an unknown dataset name lists the built-in ones', async () => {
  await assert.rejects(prepare({ dataset: 'no-such-dataset', pretrain: false }), /not one of synth, openmoji and no folder/);
});
