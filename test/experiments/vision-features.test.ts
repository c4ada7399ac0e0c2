/**
 * Frozen vision features computed once per run: with worker processes the runner computes
 * each encoder's features in its own process first (warmVisionFeatures) and the workers read
 * them from the feature file. The figures must be those of a run that computes them in one
 * process, variant by variant; a random encoder (no pretraining) is one per seed.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { writeReferenceDataset } from '../../src/data/write';
import type { Note, Pair } from '../../src/data/schema';
import { runAblation, type AblationOptions } from '../../src/experiments/runner';

const tmp = mkdtempSync(join(tmpdir(), 'vision-features-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('a run with workers reads features computed once per encoder and gets the figures of a one-process run', async () => {
  const words = ['harbour', 'lantern', 'meadow', 'copper', 'willow', 'granite'];
  const notes: Note[] = Array.from({ length: 90 }, (_, i) => ({ id: `v${i}`, title: `${words[i % 6]} ${words[(i * 7) % 6]}`, content: words.slice(0, i % 4).join(' '), topics: [words[i % 6]], imageId: `v${i}`, category: ['v'] }));
  const split = { train: notes.slice(0, 50).map((n) => n.id), val: notes.slice(50, 56).map((n) => n.id), test: notes.slice(56).map((n) => n.id) };
  const pairsOf = (ids: string[]): Pair[] => ids.flatMap((a, i) => ids.slice(i + 1).filter((_, j) => (i + j) % 4 === 0).slice(0, 2).map((b) => ({ a, b })));
  await writeReferenceDataset(join(tmp, 'data'), {
    notes,
    noteSplit: split,
    pairs: { train: pairsOf(split.train), val: pairsOf(split.val), test: pairsOf(split.test) },
    image: async (n) => {
      const k = Number(n.id.slice(1));
      return { data: await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: (k * 37) % 256, g: (k * 91) % 256, b: (k * 13) % 256 } } }).png().toBuffer(), ext: '.png' };
    },
  });
  const run = async (workers: number) => {
    const log: string[] = [];
    const opts: AblationOptions = {
      dataset: join(tmp, 'data'),
      variants: ['basic', 'late-only', 'text-only'],
      seeds: 2,
      out: join(tmp, `run-${workers}`),
      workers,
      pretrain: false,
      train: { epochs: 1, maxSteps: 3, batchPairs: 4 },
      progress: 'silent',
      statistics: { replicates: 50, permutations: 50 },
      log: (m) => log.push(m),
    };
    return { outcome: await runAblation(opts), log };
  };
  const one = await run(1);
  const two = await run(2);
  assert.ok(!one.log.some((l) => l.startsWith('frozen vision features')), 'one process: no separate warm-up');
  // basic and late-only share each seed's random encoder; text-only reads no image.
  assert.ok(two.log.some((l) => /^frozen vision features of 2 encoders ready/.test(l)), two.log.join('\n'));
  const key = (r: { name: string; seed: number }) => `${r.name}-s${r.seed}`;
  const byKey = new Map(one.outcome.runs.map((r) => [key(r), r]));
  assert.equal(two.outcome.runs.length, 6);
  // Workers run their matrix products on one thread each, the one-process run on all cores:
  // sums may round differently in the last bits, so losses agree to 1e-5 and recall to one query.
  for (const r of two.outcome.runs) {
    const o = byKey.get(key(r))!;
    r.valLoss.forEach((l, i) => assert.ok(Math.abs(l - o.valLoss[i]) <= 1e-5 * Math.abs(o.valLoss[i]), `${key(r)} validation loss ${l} vs ${o.valLoss[i]}`));
    const close = (a: Record<string, number>, b: Record<string, number>, what: string) => {
      for (const k of Object.keys(b)) assert.ok(Math.abs(a[k] - b[k]) <= 1 / r.nQueries + 1e-12, `${key(r)} ${what} ${k}: ${a[k]} vs ${b[k]}`);
    };
    close(r.metrics, o.metrics, 'full');
    for (const p of ['zeroImage', 'emptyText'] as const) close(r.probes![p].metrics, o.probes![p].metrics, p);
  }
});
