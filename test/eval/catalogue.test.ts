import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend, assertNoTensorLeak, Rng, tf } from '../../src/backend';
import { EmbeddingCatalogue, CATALOGUE_FILES } from '../../src/eval/catalogue';

let dir: string;
before(async () => {
  await initBackend();
  dir = mkdtempSync(join(tmpdir(), 'notellm2-cat-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

// Four notes on the unit circle (scaled): cosines to a = (1, 0) are b 0.8, c 0, d −1.
const cat = () =>
  EmbeddingCatalogue.fromEntries([
    ['a', [2, 0]],
    ['b', [0.8, 0.6]],
    ['c', [0, 5]],
    ['d', [-1, 0]],
  ]);

test('nearest: cosine top-k, best first, self and excluded ids left out', async () => {
  const c = cat();
  const byId = await c.nearest('a', 2);
  assert.deepEqual(byId.map((n) => n.id), ['b', 'c']);
  assert.ok(Math.abs(byId[0].score - 0.8) < 1e-6 && Math.abs(byId[1].score) < 1e-6);
  assert.equal(byId[0].index, 1);
  const withSelf = await c.nearest('a', 1, { excludeSelf: false });
  assert.deepEqual(withSelf.map((n) => n.id), ['a']);
  assert.ok(Math.abs(withSelf[0].score - 1) < 1e-6);
  const byVec = await c.nearest([0, -3], 4, { exclude: ['c'] });
  // (0, −1): a 0, b −0.6, d 0 (tie with a: lower row first), c excluded.
  assert.deepEqual(byVec.map((n) => n.id), ['a', 'd', 'b']);
  assert.deepEqual((await c.nearest('d', 10)).map((n) => n.id), ['c', 'b', 'a']);
});

test('nearestMany agrees with brute force on random data, across chunk sizes', async () => {
  const rng = new Rng(5);
  const N = 200, D = 6;
  const vecs = rng.normalArray(N * D, 1);
  const c = new EmbeddingCatalogue(Array.from({ length: N }, (_, i) => `r${i}`), vecs, D);
  const queries = ['r3', 'r77', Array.from(rng.normalArray(D, 1))];
  const brute = (q: ArrayLike<number>, self: number) => {
    const nq = Math.hypot(...Array.from(q));
    const s = Array.from({ length: N }, (_, j) => {
      let d = 0, nv = 0;
      for (let k = 0; k < D; k++) { d += q[k] * vecs[j * D + k]; nv += vecs[j * D + k] ** 2; }
      return { j, s: d / (nq * Math.sqrt(nv)) };
    }).filter((x) => x.j !== self);
    return s.sort((x, y) => y.s - x.s).slice(0, 7).map((x) => x.j);
  };
  const want = [brute(c.vector('r3'), 3), brute(c.vector('r77'), 77), brute(queries[2] as number[], -1)];
  for (const chunkElements of [1, 250, 1 << 22]) {
    const got = await c.nearestMany(queries, 7, { chunkElements });
    assert.deepEqual(got.map((l) => l.map((n) => n.index)), want, `chunkElements ${chunkElements}`);
  }
});

test('save/load round trip (safetensors + ids.json) and clear errors', async () => {
  const c = cat();
  const d = join(dir, 'cat1');
  await c.save(d, { model: 'notellm2' });
  assert.deepEqual(readdirSync(d).sort(), [CATALOGUE_FILES.embeddings, CATALOGUE_FILES.ids].sort());
  const back = await EmbeddingCatalogue.load(d);
  assert.deepEqual(back.ids, c.ids);
  assert.equal(back.dim, 2);
  assert.deepEqual(Array.from(back.vectors), Array.from(c.vectors));
  assert.deepEqual((await back.nearest('a', 2)).map((n) => n.id), ['b', 'c']);
  writeFileSync(join(d, CATALOGUE_FILES.ids), JSON.stringify(['a', 'b']));
  await assert.rejects(EmbeddingCatalogue.load(d), /ids\.json: 2 ids but .*embeddings\.safetensors holds 4 rows/);
  assert.throws(() => new EmbeddingCatalogue(['a', 'a'], new Float32Array(4), 2), /id "a" appears twice \(rows 0 and 1\)/);
  assert.throws(() => new EmbeddingCatalogue(['a'], new Float32Array(3), 2), /needs 2 values, got 3/);
  assert.throws(() => c.vector('zz'), /unknown id "zz"/);
});

test('fromTensor and no tensor leak in queries', async () => {
  const t = tf.tensor2d([[1, 0], [0, 1], [1, 1]]);
  const c = await EmbeddingCatalogue.fromTensor(['x', 'y', 'z'], t);
  t.dispose();
  assert.deepEqual((await c.nearest('x', 1)).map((n) => n.id), ['z']);
  await assertNoTensorLeak(async () => {
    await c.nearestMany(['x', 'y', 'z'], 2, { chunkElements: 3 });
  });
});
