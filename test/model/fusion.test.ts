import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../../src/backend';
import { ParamStore } from '../../src/model/params';
import { LateFusionGate } from '../../src/model/fusion';

test('late-fusion gate matches z = σ(W_g[h; v]), ĥ = z⊙h + (1−z)⊙v, v = W_v·CLS on fixed numbers', async () => {
  await initBackend();
  const store = new ParamStore(0);
  const gate = new LateFusionGate(store, 'fusion', 3, 2);
  // W_v [3, 2] and W_g [4, 2] set by hand.
  const Wv = [[1, 0], [0, 1], [1, -1]];
  const Wg = [[0.5, 0], [0, -0.5], [1, 0], [0, 1]];
  store.get('fusion.v.weight').assign(tf.tensor2d(Wv));
  store.get('fusion.g.weight').assign(tf.tensor2d(Wg));
  const cls = [2, -1, 0.5];
  const h = [0.3, -0.7];
  // v = cls · W_v = [2 + 0.5, -1 - 0.5] = [2.5, -1.5]
  const v = [2.5, -1.5];
  // [h; v] = [0.3, -0.7, 2.5, -1.5]; W_g pre-activation = [0.15 + 2.5, 0.35 - 1.5] = [2.65, -1.15]
  const sig = (x: number) => 1 / (1 + Math.exp(-x));
  const z = [sig(2.65), sig(-1.15)];
  const expected = [z[0] * h[0] + (1 - z[0]) * v[0], z[1] * h[1] + (1 - z[1]) * v[1]];
  const before = tf.memory().numTensors;
  const got = tf.tidy(() => {
    const vv = gate.visual(tf.tensor2d([cls]));
    return gate.apply(tf.tensor2d([h]), vv).arraySync()[0];
  });
  assert.equal(tf.memory().numTensors, before);
  for (let i = 0; i < 2; i++) assert.ok(Math.abs(got[i] - expected[i]) < 1e-6, `ĥ[${i}] = ${got[i]}, expected ${expected[i]}`);
  store.dispose();
});

test('gate saturated towards h passes the LM side through unchanged', async () => {
  await initBackend();
  const store = new ParamStore(1);
  const gate = new LateFusionGate(store, 'fusion', 4, 4);
  // A huge positive W_g on the h half drives z → 1 when h > 0: ĥ = h.
  store.get('fusion.g.weight').assign(tf.concat([tf.eye(4).mul(1e4), tf.zeros([4, 4])], 0));
  const out = tf.tidy(() => {
    const h = tf.tensor2d([[0.5, 1, 2, 3]]);
    return gate.apply(h, gate.visual(tf.randomNormal([1, 4], 0, 1, 'float32', 3))).arraySync()[0];
  });
  assert.deepEqual(out.map((x) => +x.toFixed(5)), [0.5, 1, 2, 3]);
  store.dispose();
});
