/**
 * `ablate` on a folder in the reference layout that the project has never seen (written here:
 * random words, solid-colour covers, no pair labels): the baselines are scored on it, every
 * variant and baseline gets intervals, comparisons are paired, and the claims table is there
 * (with `not run` where a preset is missing). Random towers and two steps: this checks the
 * wiring, not the numbers.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { Rng } from '../../src/backend/rng';
import { writeReferenceDataset } from '../../src/data/write';
import type { Note, Pair } from '../../src/data/schema';
import { runAblation } from '../../src/experiments/runner';
import { writeResults, type AblationResults, type VariantResult } from '../../src/experiments/results';

const tmp = mkdtempSync(join(tmpdir(), 'own-folder-'));
const WORDS = ['harbour', 'lantern', 'meadow', 'copper', 'willow', 'granite', 'ember', 'saffron', 'thistle', 'orchard', 'pebble', 'quartz'];
const COLOURS: Array<[number, number, number]> = [[200, 30, 30], [30, 160, 40], [40, 60, 210], [220, 200, 40]];
let results: AblationResults;
let runs: VariantResult[];

before(async () => {
  const rng = new Rng(5);
  // 150 notes: a word group and a colour each; pairs share one or the other.
  const notes: Note[] = Array.from({ length: 150 }, (_, i) => {
    const w = WORDS[i % WORDS.length];
    const body = Array.from({ length: (i % 3) * 6 }, () => (rng.next() < 0.5 ? w : rng.pick(WORDS))).join(' ');
    return { id: `m${i}`, title: `${w} ${rng.pick(WORDS)}`, content: body, topics: [w], imageId: `m${i}`, category: ['mine', w] };
  });
  const split = { train: notes.slice(0, 80).map((n) => n.id), val: notes.slice(80, 90).map((n) => n.id), test: notes.slice(90).map((n) => n.id) };
  const pairsOf = (ids: string[]): Pair[] => ids.flatMap((a, i) => ids.slice(i + 1).filter((_, j) => (i + j) % 5 === 0).slice(0, 2).map((b) => ({ a, b })));
  await writeReferenceDataset(join(tmp, 'mine'), {
    notes,
    noteSplit: split,
    pairs: { train: pairsOf(split.train), val: pairsOf(split.val), test: pairsOf(split.test) },
    image: async (n) => {
      const [r, g, b] = COLOURS[Number(n.id.slice(1)) % COLOURS.length];
      return { data: await sharp({ create: { width: 16, height: 16, channels: 3, background: { r, g, b } } }).png().toBuffer(), ext: '.png' };
    },
    meta: { name: 'mine', source: 'test/experiments/own-folder.test.ts' },
  });
  ({ results, runs } = await runAblation({
    dataset: join(tmp, 'mine'),
    variants: ['basic', 'notellm2'],
    out: join(tmp, 'run'),
    workers: 1,
    pretrain: false,
    train: { epochs: 1, maxSteps: 2, batchPairs: 4 },
    progress: 'silent',
    statistics: { replicates: 200, permutations: 200 },
  }));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

test('baselines are scored on the unseen folder with the variants’ queries, subsets and intervals', () => {
  assert.deepEqual(results.baselines!.map((b) => [b.name, b.modality]), [['tfidf-text', 'text'], ['colour-histogram-image', 'image']]);
  const v = results.variants[0];
  for (const b of results.baselines!) {
    assert.equal(b.nQueries, runs[0].nQueries);
    assert.equal(b.poolSize, runs[0].poolSize);
    assert.deepEqual(Object.keys(b.subsets), Object.keys(v.subsets), 'the same subsets (no pair labels here: length subsets only)');
    assert.deepEqual(Object.keys(b.intervals!.metrics), Object.keys(v.metrics));
  }
  assert.equal(results.protocol, 'reference');
  for (const x of results.variants) assert.ok(x.intervals && Object.keys(x.intervals.probes).length === 2, x.name);
});

test('claims: computed where the presets are in the run, `not run` otherwise; comparisons paired', () => {
  const verdict = Object.fromEntries(results.claims!.map((c) => [c.id, c.verdict]));
  assert.equal(verdict.b, 'not run');
  assert.equal(verdict.c, 'not run');
  for (const id of ['a', 'd', 'e']) assert.notEqual(verdict[id], 'not run', id);
  const d = results.claims!.find((c) => c.id === 'd')!;
  assert.deepEqual(d.comparisons.map((c) => `${c.a} − ${c.b}`), ['notellm2 − basic']);
  const pairs = new Set(results.comparisons!.map((c) => `${c.a}|${c.b}`));
  assert.deepEqual([...pairs].sort(), ['basic|colour-histogram-image', 'basic|tfidf-text', 'colour-histogram-image|tfidf-text', 'notellm2|basic', 'notellm2|colour-histogram-image', 'notellm2|tfidf-text']);
});

test('the results files carry the baselines, the claims and the comparisons', async () => {
  const files = await writeResults(join(tmp, 'run'), results, []);
  const json = JSON.parse(readFileSync(files.json, 'utf8'));
  assert.equal(json.claims.length, 5);
  assert.equal(json.baselines.length, 2);
  assert.ok(readFileSync(files.csv, 'utf8').includes('tfidf-text,all,'));
  assert.ok(readFileSync(files.comparisons!, 'utf8').split('\n').length > 6);
});
