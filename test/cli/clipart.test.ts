/**
 * A clip-art collection in the reference layout, its SVGs as drawing programs of many eras wrote
 * them (test/fixtures/clipart, see make-clipart.ts): strict validation accepts every file and
 * decodes it at the pipeline's size. With a few broken files added, `train --skip-bad` leaves
 * exactly those notes out at every step — training, evaluation, the report's extras, and later
 * `eval` and `saliency` on the saved run, which read the dataset the way the run did.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../../src/backend';
import { validateDataset } from '../../src/data/validate';
import { trainCommand, type TrainCommandResult } from '../../src/cli/train';
import { evalCommand } from '../../src/cli/eval';
import { saliencyForRun } from '../../src/experiments/saliency';
import { TINY_MODEL } from './fixtures/tiny-run';

const CLIPART = join(__dirname, '../fixtures/clipart');
const tmp = mkdtempSync(join(tmpdir(), 'notellm2-clipart-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

before(async () => {
  await initBackend();
});

test('strict validation accepts every clip-art SVG, whatever canvas, units and era, and decodes each one', async () => {
  const { report } = await validateDataset(CLIPART, { images: 'decode' });
  assert.deepEqual(report.problems, []);
  assert.equal(report.images.found, 60);
  assert.deepEqual(report.pairs, { train: 36, val: 6, test: 18 });
});

test('--skip-bad reaches every step: train, evaluation and the report skip the broken notes; eval and saliency on the saved run read the dataset alike', async () => {
  const data = join(tmp, 'clipart-with-broken-files');
  cpSync(CLIPART, data, { recursive: true });
  // A missing image, an SVG cut off mid-file, and an SVG whose root is not svg.
  rmSync(join(data, 'images', 'car-2.svg'));
  const cut = readFileSync(join(data, 'images', 'key-1.svg'));
  writeFileSync(join(data, 'images', 'key-1.svg'), cut.subarray(0, cut.length / 2));
  writeFileSync(join(data, 'images_test', 'clock-1.svg'), '<html><body>not a drawing</body></html>');
  const lines: string[] = [];
  const out = join(tmp, 'run');
  const trained: TrainCommandResult = await trainCommand({
    dataset: data,
    preset: 'notellm2',
    model: TINY_MODEL,
    epochs: 1,
    batch: 8,
    pretrain: false,
    skipBad: true,
    out,
    progress: 'silent',
    log: (m) => lines.push(m),
  });
  const skipped = lines.find((l) => l.startsWith('skipped bad rows'));
  assert.ok(skipped, lines.join('\n'));
  assert.match(skipped!, /1 missing-image, 2 undecodable-image; 6 pairs dropped with them/);
  // Evaluated on the test notes left: 18 − 1 (clock-1), and the report's files are there.
  for (const f of ['results.json', 'embeddings.json', 'neighbours.json', 'report.html']) assert.ok(existsSync(join(out, f)), f);
  assert.equal(JSON.parse(readFileSync(join(out, 'embeddings.json'), 'utf8')).points.length, 17);
  const config = JSON.parse(readFileSync(join(trained.checkpointDir, 'best', 'config.json'), 'utf8'));
  assert.deepEqual(config.data, { skipBad: true, imageSizes: [32] });

  // Later steps on the saved run, without --skip-bad: they read the dataset as the run did.
  const e = await evalCommand({ checkpoint: trained.checkpointDir, log: () => {} });
  assert.deepEqual(e.evaluation.metrics, trained.run.metrics);
  const s = await saliencyForRun(out, { batches: 1, pairsPerBatch: 4 });
  assert.equal(s.entries.length, 1);
  assert.ok(existsSync(join(out, 'saliency.json')));
});
