/**
 * Results tables and files: results.csv keeps the bytes danfojs wrote (the committed fixture was
 * written by danfojs-node 1.2.0 before it was dropped), the table is showable, and results of
 * several runs into one folder merge — a seed written later aggregates exactly as if both had
 * been run together.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { aggregate, mergeResults, resultsCsv, resultsFrame, reviveVariantResult, writeResults, type AblationResults, type VariantResult } from '../../src/experiments/results';
import { tableHtml, toTable } from '../../src/viz/html';
import { loadRun } from '../../src/viz/files';

const tmp = mkdtempSync(join(tmpdir(), 'notellm2-results-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A run of variant `name` with seed-dependent numbers; k selects the probe pattern (0: no probes). */
const run = (name: string, seed: number, k: number, epochs = 1): VariantResult => ({
  name,
  preset: name,
  seed,
  config: { model: {} as never, train: { seed, epochs } as never, preset: name },
  metrics: { 'R@1': 0.1 + 0.2 * k, 'R@10': 1 / 3 + seed / 7, 'R@100': 1 },
  subsets: { visual: { 'R@1': 0, 'R@10': 2 / 3, 'R@100': 1 }, text: { 'R@1': NaN, 'R@10': 0.5, 'R@100': 1 } },
  probes:
    k === 0
      ? undefined
      : {
          zeroImage: { metrics: { 'R@1': 0.05, 'R@10': 0.25 + seed / 9, 'R@100': 0.9 }, subsets: {} },
          emptyText: { metrics: { 'R@1': 1e-7, 'R@10': 0.125, 'R@100': 0.75 }, subsets: {} },
        },
  nQueries: 10,
  poolSize: 20,
  trainSeconds: 1.5 + seed,
  evalSeconds: 0.5,
  steps: 3,
  bestEpoch: 0,
  valLoss: [1],
  curve: [{ step: 0, loss: 2 + seed }],
  backend: 'wasm',
});

const results = (variants: VariantResult[][], seedList: number[]): AblationResults => ({
  dataset: 'synth',
  datasetDir: '/data/synth',
  backend: 'wasm',
  seed: seedList[0],
  seedList,
  pretrain: {},
  variants: variants.map(aggregate),
  wallSeconds: 1,
});

test('results.csv: the bytes danfojs wrote for the same results (header, NaN, exponents, probes)', () => {
  const r = results([[run('basic', 0, 1), run('basic', 1, 1)], [run('text-only', 0, 0)], [run('late+early', 0, 2), run('late+early', 1, 2)]], [0, 1]);
  assert.equal(resultsCsv(r), readFileSync(join(__dirname, '../fixtures/results-csv/results.csv'), 'utf8'));
});

test('results.csv quotes a field holding a comma or a quote; the table shows in notebooks (columns, values)', () => {
  const r = results([[run('q16, "wide"', 0, 1)]], [0]);
  const line = resultsCsv(r).split('\n')[1];
  assert.ok(line.startsWith('"q16, ""wide""",all,1,'), line);
  const frame = resultsFrame(r);
  assert.deepEqual(frame.shape, [5, 9]); // all, two subsets, two probes × variant, subset, seeds and 3 metrics ± std
  assert.deepEqual(toTable(frame).columns, frame.columns);
  assert.equal(frame.rows()[0].variant, 'q16, "wide"');
  assert.match(tableHtml(frame), /<td[^>]*>q16, /, 'rendered as an HTML table');
  assert.match(frame.toString(), /^variant {5,}subset/);
});

test('mergeResults: a seed added later aggregates exactly as both seeds run together; a seed run again is replaced and named', () => {
  const together = results([[run('basic', 0, 1), run('basic', 1, 1)], [run('micl', 0, 2)]], [0, 1]);
  const first = results([[run('basic', 0, 1)], [run('micl', 0, 2)]], [0]);
  const second = results([[run('basic', 1, 1)]], [1]);
  const m = mergeResults(first, second);
  assert.deepEqual(m.replaced, []);
  assert.deepEqual({ ...m.results, wallSeconds: 0 }, { ...together, wallSeconds: 0 });
  assert.equal(m.results.wallSeconds, 2);
  const again = mergeResults(m.results, results([[run('basic', 1, 1)]], [1]));
  assert.deepEqual(again.replaced, ['basic seed 1']);
  assert.deepEqual(again.results.variants, together.variants);
});

test('mergeResults refuses another dataset and a variant name trained with another configuration', () => {
  const a = results([[run('basic', 0, 1)]], [0]);
  assert.throws(() => mergeResults(a, { ...results([[run('basic', 1, 1)]], [1]), datasetDir: '/data/other' }), /results on dataset \/data\/synth, not \/data\/other/);
  assert.throws(() => mergeResults(a, results([[run('basic', 1, 1, 3)]], [1])), /variant "basic" is already in the run folder with another configuration \(train\.epochs: 1 vs 3\)/);
});

test('writeResults into a folder with results merges results.json, results.csv and curves.json, and says so', async () => {
  const dir = join(tmp, 'run');
  await writeResults(dir, results([[run('basic', 0, 1)]], [0]), [run('basic', 0, 1)]);
  const lines: string[] = [];
  const w = await writeResults(dir, results([[run('basic', 1, 1)], [run('micl', 1, 2)]], [1]), [run('basic', 1, 1), run('micl', 1, 2)], { log: (m) => lines.push(m) });
  assert.match(lines.join('\n'), /merged into the results already in .*: 1 earlier variant×seed result\(s\) kept/);
  const json = JSON.parse(readFileSync(w.json, 'utf8')) as AblationResults;
  assert.deepEqual(json.seedList, [0, 1]);
  assert.deepEqual(json.variants.map((v) => [v.name, v.seeds.map((s) => s.seed)]), [['basic', [0, 1]], ['micl', [1]]]);
  const curves = JSON.parse(readFileSync(w.curves, 'utf8')).curves as Array<{ preset: string; seed: number }>;
  assert.deepEqual(curves.map((c) => `${c.preset}-s${c.seed}`), ['basic-s0', 'basic-s1', 'micl-s1']);
  assert.equal(readFileSync(w.csv, 'utf8'), resultsCsv(w.results));
});

test('a result from a worker (JSON: NaN arrives as null) is revived, so results.json leaves the empty subset out and the report reads it', async () => {
  const viaIpc = JSON.parse(JSON.stringify(run('basic', 0, 1))) as VariantResult;
  assert.equal(viaIpc.subsets.text['R@1'], null);
  const revived = reviveVariantResult(viaIpc);
  assert.ok(Number.isNaN(revived.subsets.text['R@1']));
  assert.deepEqual(aggregate([revived]), aggregate([run('basic', 0, 1)]));
  const dir = join(tmp, 'revived');
  await writeResults(dir, results([[revived]], [0]), [revived]);
  const seed = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')).variants[0].seeds[0];
  assert.deepEqual(seed.subsets.text, { 'R@10': 0.5, 'R@100': 1 });
  assert.equal(loadRun(dir).results.variants.length, 1, "the report's schema accepts it");
});
