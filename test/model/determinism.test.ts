import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../../src/backend';
import { ParamStore, ViT, createConnector, DecoderLM, type ParamRecord } from '../../src/model';
import { maxAbsDiff, randn } from './helpers';

let defaultBackend = '';
before(async () => {
  defaultBackend = (await initBackend()).name;
});

const VIT = { imageSize: 8, patchSize: 4, dim: 16, depth: 2, heads: 2 };
const LM = { vocabSize: 20, dim: 16, nLayers: 2, nHeads: 2 };

function build(seed: number, order: 'vision-first' | 'lm-first') {
  const store = new ParamStore(seed);
  const parts = order === 'vision-first'
    ? (() => { const vit = new ViT(VIT, store); const conn = createConnector({ kind: 'qformer', numQueries: 4, heads: 2 }, store, 16, 16); return { vit, conn, lm: new DecoderLM(LM, store) }; })()
    : (() => { const lm = new DecoderLM(LM, store); const vit = new ViT(VIT, store); return { vit, lm, conn: createConnector({ kind: 'qformer', numQueries: 4, heads: 2 }, store, 16, 16) }; })();
  return { store, ...parts };
}

function assertSameRecord(a: ParamRecord, b: ParamRecord): void {
  assert.deepEqual(Object.keys(a), Object.keys(b));
  for (const k of Object.keys(a)) assert.deepEqual(a[k].data, b[k].data, k);
}

test('same seed → identical parameters whatever the creation order; another seed differs', () => {
  const a = build(7, 'vision-first'), b = build(7, 'lm-first'), c = build(8, 'vision-first');
  assertSameRecord(a.store.export(), b.store.export());
  assert.notDeepEqual(a.store.export()['lm.layers.0.attn.q.weight'].data, c.store.export()['lm.layers.0.attn.q.weight'].data);
  [a, b, c].forEach((m) => m.store.dispose());
});

/** Image → ViT → Q-Former → spliced before text embeddings → LM; returns the final states [b, t, d]. */
function pipeline(m: ReturnType<typeof build>, images: tf.Tensor4D, ids: tf.Tensor2D): tf.Tensor3D {
  return tf.tidy(() => {
    const v = m.vit.forward(images);
    const img = m.conn.apply(v.patches);
    return m.lm.forward(tf.concat([img, m.lm.embed(ids)], 1) as tf.Tensor3D).last;
  });
}

test('same seed, same backend → bit-identical outputs; wasm and cpu agree (parameters exactly, outputs within 1e-5)', async () => {
  const images = randn([2, 8, 8, 3], 1) as tf.Tensor4D;
  const ids = tf.tensor2d([[1, 2, 3], [4, 5, 6]], [2, 3], 'int32');
  const imgData = Array.from(images.dataSync());
  const a = build(3, 'vision-first'), b = build(3, 'lm-first');
  const outA = pipeline(a, images, ids), outB = pipeline(b, images, ids);
  assert.equal(maxAbsDiff(outA, outB), 0);
  const recDefault = a.store.export();
  const outDefault = Array.from(outA.dataSync());
  tf.dispose([outA, outB, images, ids]);
  a.store.dispose();
  b.store.dispose();

  const other = defaultBackend === 'cpu' ? 'wasm' : 'cpu';
  await initBackend(other);
  try {
    const c = build(3, 'vision-first');
    assertSameRecord(recDefault, c.store.export());
    const imagesC = tf.tensor4d(imgData, [2, 8, 8, 3]);
    const idsC = tf.tensor2d([[1, 2, 3], [4, 5, 6]], [2, 3], 'int32');
    const outC = pipeline(c, imagesC, idsC);
    const got = Array.from(outC.dataSync());
    const worst = Math.max(...got.map((v, i) => Math.abs(v - outDefault[i])));
    assert.ok(worst < 1e-5, `${defaultBackend} vs ${other}: max |Δ| = ${worst}`);
    tf.dispose([imagesC, idsC, outC]);
    c.store.dispose();
  } finally {
    await initBackend(defaultBackend);
  }
});
