/**
 * The single-step commands end to end on the smoke synth dataset (random towers, 3 steps):
 * `train` writes a run folder; `eval` of its saved checkpoint reproduces the recall the run
 * reported exactly; `embed` reproduces the test-note catalogue the run saved bit for bit and
 * prints correct neighbours; a rerun needs --resume and then reports the same numbers; the
 * report's extras (embeddings.json, neighbours.json) are right about the catalogue.
 */
process.env.NOTELLM2_SMOKE = '1';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../../src/backend';
import { EmbeddingCatalogue } from '../../src/eval/catalogue';
import { loadDataset } from '../../src/data/loaders';
import { loadRun } from '../../src/viz/files';
import { trainCommand, type TrainCommandResult } from '../../src/cli/train';
import { evalCommand } from '../../src/cli/eval';
import { embedCommand } from '../../src/cli/embed';

const tmp = mkdtempSync(join(tmpdir(), 'notellm2-cli-'));
const out = join(tmp, 'run');
const quiet = { log: () => {}, progress: 'silent' as const };
let trained: TrainCommandResult;

before(async () => {
  await initBackend();
  trained = await trainCommand({ dataset: 'synth', preset: 'notellm2', maxSteps: 3, batch: 8, pretrain: false, out, ...quiet });
});
after(() => rmSync(tmp, { recursive: true, force: true }));

const readJson = (f: string) => JSON.parse(readFileSync(f, 'utf8'));

function cosine(a: Float32Array, b: Float32Array): number {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / Math.sqrt(aa * bb);
}

test('train writes the run folder: results.json with one variant, checkpoints, embeddings, extras, report', () => {
  const results = readJson(join(out, 'results.json'));
  assert.equal(results.variants.length, 1);
  assert.equal(results.variants[0].name, 'notellm2');
  assert.equal(trained.run.steps, 3);
  for (const f of ['results.csv', 'curves.json', 'embeddings.json', 'neighbours.json', 'report.html']) assert.ok(existsSync(join(out, f)), f);
  for (const k of ['best', 'last']) assert.ok(existsSync(join(trained.checkpointDir, k, 'model.safetensors')), k);
  const run = loadRun(out); // the report's own schemas accept the extras
  assert.ok(run.embeddings && run.embeddings.points.length === 160, 'all 160 smoke test notes (≤ 600) are projected');
  assert.ok(run.neighbours && run.neighbours.length === 6);
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  assert.ok(html.includes('notellm2-gallery') && html.includes('data:image/png;base64,'), 'the report shows the neighbour gallery with images');
});

test('eval of the saved checkpoint reproduces the recall train reported, exactly', async () => {
  const json = join(tmp, 'eval.json');
  const r = await evalCommand({ checkpoint: trained.checkpointDir, json, log: () => {} });
  const v = readJson(join(out, 'results.json')).variants[0];
  const e = readJson(json).variants[0];
  assert.deepEqual(e.metrics, v.metrics);
  assert.deepEqual(e.subsets, v.subsets);
  assert.deepEqual(e.probes, v.probes);
  assert.deepEqual(r.evaluation.metrics, trained.run.metrics);
  assert.equal(r.evaluation.nQueries, trained.run.nQueries);
  assert.ok(Object.keys(e.metrics).includes('R@10') && e.metrics['R@10'] > 0);
});

test('embed reproduces the catalogue the run saved and prints correct neighbours', async () => {
  const lines: string[] = [];
  const res = await embedCommand({ checkpoint: out, out: join(tmp, 'emb'), neighbours: 's00000', k: 5, log: (m) => lines.push(m) });
  const saved = await EmbeddingCatalogue.load(trained.embeddingsDir);
  const written = await EmbeddingCatalogue.load(join(tmp, 'emb'));
  assert.deepEqual(written.ids, saved.ids);
  assert.deepEqual(written.vectors, saved.vectors); // bit for bit

  // Neighbours: the 5 highest cosines among the other test notes, best first, by brute force.
  const q = saved.vector('s00000');
  const expected = saved.ids.filter((id) => id !== 's00000').map((id) => ({ id, s: cosine(q, saved.vector(id)) })).sort((a, b) => b.s - a.s);
  const got = res.neighbours!;
  assert.equal(got.length, 5);
  got.forEach((h, i) => {
    assert.ok(Math.abs(h.score - expected[i].s) < 1e-5, `rank ${i + 1}: score ${h.score} vs ${expected[i].s}`);
    assert.ok(Math.abs(cosine(q, saved.vector(h.id)) - h.score) < 1e-5);
  });
  assert.ok(lines.some((l) => l.includes(got[0].id)), 'the neighbours are printed');
});

test('a rerun into the same folder needs --resume, and then reports the same numbers', async () => {
  await assert.rejects(trainCommand({ dataset: 'synth', preset: 'notellm2', maxSteps: 3, batch: 8, pretrain: false, out, report: false, ...quiet }), /--resume/);
  const again = await trainCommand({ dataset: 'synth', preset: 'notellm2', maxSteps: 3, batch: 8, pretrain: false, out, report: false, resume: true, ...quiet });
  assert.equal(again.run.steps, 3, 'nothing left to train');
  assert.deepEqual(again.run.metrics, trained.run.metrics);
});

test("extras: each neighbour's score is its cosine to the query and `relevant` matches the test pairs", async () => {
  const saved = await EmbeddingCatalogue.load(trained.embeddingsDir);
  const { dataset } = await loadDataset(join('datasets', 'synth-smoke'), { images: 'exists' });
  const related = (a: string, b: string) => dataset.pairs.test.some((p) => (p.a === a && p.b === b) || (p.a === b && p.b === a));
  const { queries } = readJson(join(out, 'neighbours.json'));
  for (const q of queries) {
    assert.ok(q.query.image.startsWith('data:image/png;base64,'));
    let prev = Infinity;
    for (const n of q.neighbours) {
      const c = cosine(saved.vector(q.query.id), saved.vector(n.id));
      assert.ok(Math.abs(c - n.score) < 2e-4, `${q.query.id} → ${n.id}: ${n.score} vs cosine ${c}`);
      assert.ok(n.score <= prev + 1e-9);
      prev = n.score;
      assert.equal(n.relevant, related(q.query.id, n.id));
      assert.notEqual(n.id, q.query.id);
    }
  }
  const { points } = readJson(join(out, 'embeddings.json'));
  for (const p of points.slice(0, 20)) {
    const v = saved.vector(p.id);
    p.vector.forEach((x: number, i: number) => assert.ok(Math.abs(x - v[i]) <= 5e-5 + 1e-9));
    assert.equal(p.category, dataset.notes.get(p.id)!.category[1], 'synth colours by topic (level 1), not the constant root');
  }
});
