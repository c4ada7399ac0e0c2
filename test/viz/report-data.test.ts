/**
 * The report extras on hand-built catalogues: category level choice, the sampled projection
 * points, and neighbour galleries whose answer is known (a query's partner placed on the
 * query's own vector must come first, with score 1, marked relevant).
 */
process.env.NOTELLM2_SMOKE = '1';
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, Rng } from '../../src/backend';
import type { Dataset, Note } from '../../src/data/schema';
import { loadDataset } from '../../src/data/loaders';
import { ensureDataset } from '../../src/experiments/datasets';
import { keepPairs } from '../../src/eval/recall';
import { EmbeddingCatalogue } from '../../src/eval/catalogue';
import { categoryLevel, embeddingPoints, neighbourQueries } from '../../src/viz/report-data';

const note = (id: string, category: string[]): Note => ({ id, title: `t${id}`, content: '', topics: [], imageId: id, category });

let dataset: Dataset;
before(async () => {
  await initBackend();
  dataset = (await loadDataset((await ensureDataset('synth')).dir, { images: 'exists' })).dataset;
});

test('categoryLevel: the deepest level with 2..max groups, else the shallowest with 2', () => {
  const emoji = Array.from({ length: 40 }, (_, i) => note(`e${i}`, [`group${i % 4}`, `sub${i}`]));
  assert.equal(categoryLevel(emoji), 0, '40 subgroups are too many; 4 groups colour well');
  const synth = Array.from({ length: 40 }, (_, i) => note(`s${i}`, ['synth', `topic${i % 20}`]));
  assert.equal(categoryLevel(synth), 1, 'a constant root is useless; 20 topics is the only level that separates');
  const deep = Array.from({ length: 12 }, (_, i) => note(`d${i}`, ['root', `a${i % 2}`, `b${i % 3}`]));
  assert.equal(categoryLevel(deep), 2);
  assert.equal(categoryLevel([note('x', [])]), 0);
});

test('embeddingPoints: every note up to the cap, a seeded sample in catalogue order beyond it, rounded vectors', () => {
  const notes = new Map<string, Note>();
  const ids: string[] = [];
  const vectors = new Float32Array(50 * 3);
  for (let i = 0; i < 50; i++) {
    const id = `n${String(i).padStart(2, '0')}`;
    ids.push(id);
    notes.set(id, note(id, ['root', `c${i % 5}`]));
    vectors.set([i + 0.123456, -i, 1 / (i + 1)], i * 3);
  }
  const cat = new EmbeddingCatalogue(ids, vectors, 3);
  const all = embeddingPoints(cat, notes, { preset: 'p' });
  assert.equal(all.preset, 'p');
  assert.equal(all.points.length, 50);
  assert.deepEqual(all.points[7], { id: 'n07', category: 'c2', title: 'tn07', vector: [7.1235, -7, 0.125] });
  const some = embeddingPoints(cat, notes, { maxPoints: 10, seed: 3 });
  assert.equal(some.points.length, 10);
  const rows = some.points.map((p) => ids.indexOf(p.id!));
  assert.deepEqual(rows, [...rows].sort((a, b) => a - b), 'kept in catalogue order');
  assert.equal(new Set(rows).size, 10);
  assert.deepEqual(embeddingPoints(cat, notes, { maxPoints: 10, seed: 3 }), some, 'seeded');
  assert.notDeepEqual(embeddingPoints(cat, notes, { maxPoints: 10, seed: 4 }).points.map((p) => p.id), some.points.map((p) => p.id));
});

test('neighbourQueries: the partner on the query vector ranks first with score 1 and is marked relevant', async () => {
  const testIds = dataset.noteIds.test;
  const dim = 8;
  const rng = new Rng(11);
  const vectors = new Float32Array(rng.normalArray(testIds.length * dim, 1));
  const row = new Map(testIds.map((id, i) => [id, i]));
  // Each kept pair's target gets exactly its query's vector.
  const kept = keepPairs(dataset.pairs.test);
  for (const p of kept) vectors.copyWithin(row.get(p.target)! * dim, row.get(p.query)! * dim, (row.get(p.query)! + 1) * dim);
  const cat = new EmbeddingCatalogue(testIds, vectors, dim);
  const queries = await neighbourQueries(cat, dataset, { queries: 5, k: 4 });
  assert.equal(queries.length, 5);
  const partner = new Map(kept.map((p) => [p.query, p.target]));
  for (const q of queries) {
    assert.ok(partner.has(q.query.id), 'queries are queries of kept test pairs');
    assert.equal(q.neighbours.length, 4);
    assert.equal(q.neighbours[0].id, partner.get(q.query.id));
    assert.equal(q.neighbours[0].score, 1);
    assert.equal(q.neighbours[0].relevant, true);
    assert.ok(q.query.image!.startsWith('data:image/png;base64,'));
    // 64×64 RGB PNG: the IHDR width and height.
    const png = Buffer.from(q.query.image!.split(',')[1], 'base64');
    assert.deepEqual([png.readUInt32BE(16), png.readUInt32BE(20)], [64, 64]);
  }
  // Labels are taken in turn: the synth test pairs have several, so the first queries differ in label.
  const labels = queries.map((q) => q.query.category!.split(' · ')[1]);
  const distinct = new Set(kept.map((p) => p.pair.label)).size;
  assert.equal(new Set(labels.slice(0, Math.min(distinct, 5))).size, Math.min(distinct, 5));
  assert.deepEqual(await neighbourQueries(cat, dataset, { queries: 5, k: 4 }), queries, 'deterministic');
});
