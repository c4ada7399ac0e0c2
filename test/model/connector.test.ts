import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf, assertNoTensorLeak } from '../../src/backend';
import { ParamStore } from '../../src/model/params';
import { createConnector, resolveConnectorConfig, type ConnectorKind } from '../../src/model/connector';
import { checkInputGrad, checkParamGrads, maxAbsDiff, projLoss, randn } from './helpers';

before(async () => {
  await initBackend();
});

const DV = 8, DL = 12;

test('factory rejects unknown kinds with the valid list; defaults', () => {
  const s = new ParamStore(0);
  assert.throws(() => createConnector({ kind: 'perceiver' as ConnectorKind }, s, DV, DL), /kind "perceiver" is not one of mlp, qformer/);
  assert.deepEqual(resolveConnectorConfig({ kind: 'qformer' }, 24), { kind: 'qformer', numQueries: 16, layers: 2, dim: 24, heads: 4, mlpRatio: 4, initStd: 0.02 });
  assert.throws(() => createConnector({ kind: 'qformer', dim: 10, heads: 4 }, s, DV, DL), /heads \(4\) must divide the Q-Former width \(10\)/);
  assert.throws(() => createConnector({ kind: 'qformer', numQueries: 0 }, s, DV, DL), /numQueries must be a positive integer/);
  s.dispose();
});

test("'mlp': one LLM token per vision token, mlp2x_gelu parameters, each token projected on its own", () => {
  const s = new ParamStore(1);
  const c = createConnector({ kind: 'mlp', initStd: 0.3 }, s, DV, DL);
  assert.equal(c.kind, 'mlp');
  assert.equal(c.numTokens(5), 5);
  assert.deepEqual(s.list(), ['connector.projector.fc1.bias', 'connector.projector.fc1.weight', 'connector.projector.fc2.bias', 'connector.projector.fc2.weight']);
  assert.deepEqual(s.get('connector.projector.fc1.weight').shape, [DV, DL]);
  assert.deepEqual(s.get('connector.projector.fc2.weight').shape, [DL, DL]);
  tf.tidy(() => {
    const v = randn([2, 5, DV], 2) as tf.Tensor3D;
    const out = c.apply(v);
    assert.deepEqual(out.shape, [2, 5, DL]);
    const one = c.apply(tf.slice(v, [1, 3, 0], [1, 1, DV]) as tf.Tensor3D);
    assert.ok(maxAbsDiff(tf.slice(out, [1, 3, 0], [1, 1, DL]), one) < 1e-6);
    assert.throws(() => c.apply(tf.zeros([1, 2, DV + 1]) as tf.Tensor3D), /vision tokens must be \[b, n, 8\]/);
  });
  s.dispose();
});

test("'qformer': query count (8, 16) sets the token count whatever the number of vision tokens; parameter layout", () => {
  for (const numQueries of [8, 16]) {
    const s = new ParamStore(2);
    const c = createConnector({ kind: 'qformer', numQueries, layers: 2, heads: 2 }, s, DV, DL);
    assert.equal(c.kind, 'qformer');
    assert.equal(c.numTokens(5), numQueries);
    assert.equal(c.numTokens(50), numQueries);
    assert.deepEqual(s.get('connector.qformer.queries').shape, [numQueries, DV]);
    assert.deepEqual(s.get('connector.qformer.layers.1.cross_attn.k.weight').shape, [DV, DV]);
    for (const p of ['connector.qformer.vision_norm.weight', 'connector.qformer.layers.0.self_attn.q.weight', 'connector.qformer.layers.1.mlp.fc2.bias', 'connector.qformer.norm.bias']) {
      assert.ok(s.has(p), p);
    }
    assert.deepEqual(s.get('connector.projector.fc1.weight').shape, [DV, DL]);
    tf.tidy(() => {
      for (const n of [3, 7]) assert.deepEqual(c.apply(randn([2, n, DV], n) as tf.Tensor3D).shape, [2, numQueries, DL]);
    });
    s.dispose();
  }
  // a Q-Former narrower than the vision width: cross-attention keys/values read the vision width
  const s = new ParamStore(3);
  const c = createConnector({ kind: 'qformer', numQueries: 4, dim: 6, heads: 2, layers: 1 }, s, DV, DL, 'conn');
  assert.deepEqual(s.get('conn.qformer.layers.0.cross_attn.k.weight').shape, [DV, 6]);
  assert.deepEqual(s.get('conn.projector.fc1.weight').shape, [6, DL]);
  tf.tidy(() => assert.deepEqual(c.apply(randn([1, 5, DV], 1) as tf.Tensor3D).shape, [1, 4, DL]));
  s.dispose();
});

test("'qformer': output ignores vision-token order, depends on their content, and examples are independent", () => {
  const s = new ParamStore(4);
  const c = createConnector({ kind: 'qformer', numQueries: 4, heads: 2, layers: 2, initStd: 0.3 }, s, DV, DL);
  tf.tidy(() => {
    const v = randn([2, 5, DV], 9) as tf.Tensor3D;
    const out = c.apply(v);
    const perm = tf.gather(v, tf.tensor1d([3, 0, 4, 1, 2], 'int32'), 1) as tf.Tensor3D;
    assert.ok(maxAbsDiff(c.apply(perm), out) < 1e-5);
    const other = tf.concat([tf.slice(v, [0, 0, 0], [1, 5, DV]), randn([1, 5, DV], 10)], 0) as tf.Tensor3D;
    const out2 = c.apply(other);
    assert.ok(maxAbsDiff(tf.slice(out2, [0, 0, 0], [1, 4, DL]), tf.slice(out, [0, 0, 0], [1, 4, DL])) < 1e-6);
    assert.ok(maxAbsDiff(tf.slice(out2, [1, 0, 0], [1, 4, DL]), tf.slice(out, [1, 0, 0], [1, 4, DL])) > 1e-3);
  });
  s.dispose();
});

test('gradients vs finite differences for both connectors (parameters and vision tokens)', () => {
  for (const kind of ['mlp', 'qformer'] as const) {
    const s = new ParamStore(5);
    const c = createConnector({ kind, numQueries: 3, heads: 2, layers: 2, initStd: 0.3 }, s, DV, DL);
    const v = randn([2, 4, DV], 6);
    checkParamGrads(s, () => projLoss(c.apply(v as tf.Tensor3D)), { directions: 3 });
    checkInputGrad(v, (x) => projLoss(c.apply(x as tf.Tensor3D)));
    v.dispose();
    s.dispose();
  }
});

test('no tensor leak across forward + backward', async () => {
  for (const kind of ['mlp', 'qformer'] as const) {
    const s = new ParamStore(6);
    const c = createConnector({ kind, numQueries: 4, heads: 2, layers: 1 }, s, DV, DL);
    const v = randn([2, 5, DV], 7) as tf.Tensor3D;
    await assertNoTensorLeak(() => {
      const { value, grads } = s.variableGrads(() => projLoss(c.apply(v)));
      value.dispose();
      Object.values(grads).forEach((g) => g.dispose());
      c.apply(v).dispose();
    });
    v.dispose();
    s.dispose();
  }
});
