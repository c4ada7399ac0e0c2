import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf, assertNoTensorLeak } from '../../src/backend';
import { ParamStore } from '../../src/model/params';
import { Linear, LayerNorm, RMSNorm, GeluMLP, SwiGLUMLP, mlp2xGelu, gelu, geluTanh, quickGelu, silu, swigluHidden } from '../../src/model/layers';
import { checkInputGrad, checkParamGrads, projLoss, randn } from './helpers';

before(async () => {
  await initBackend();
});

/** Overwrites every parameter under `prefix` with seeded random values (so gains/biases are not trivially 1/0). */
function randomise(store: ParamStore, prefix: string, scale = 0.5): void {
  for (const [path, v] of store.entries(prefix)) {
    tf.tidy(() => v.assign(tf.add(v, randn([...v.shape], path.length * 7919 + v.size, scale))));
  }
}

test('ParamStore: same seed gives identical values whatever the creation order; other seeds differ', () => {
  const a = new ParamStore(5), b = new ParamStore(5), c = new ParamStore(6);
  a.param('x.w', [3, 4], { kind: 'normal', std: 1 });
  a.param('y.w', [2], { kind: 'normal', std: 1 });
  b.param('y.w', [2], { kind: 'normal', std: 1 });
  b.param('x.w', [3, 4], { kind: 'normal', std: 1 });
  c.param('x.w', [3, 4], { kind: 'normal', std: 1 });
  const ea = a.export(), eb = b.export(), ec = c.export();
  assert.deepEqual(Object.keys(ea), ['x.w', 'y.w']);
  assert.deepEqual(ea['x.w'].data, eb['x.w'].data);
  assert.deepEqual(ea['y.w'].data, eb['y.w'].data);
  assert.notDeepEqual(ea['x.w'].data, ec['x.w'].data);
  assert.notDeepEqual(Array.from(ea['x.w'].data.slice(0, 2)), Array.from(ea['y.w'].data)); // paths fork different streams
  // truncated normal: nothing beyond 2 std
  assert.ok(ea['x.w'].data.every((v) => Math.abs(v) <= 2));
  [a, b, c].forEach((s) => s.dispose());
});

test('ParamStore: get/list/entries, re-requesting a path returns the same variable, errors name the path', () => {
  const s = new ParamStore(1);
  const w = s.param('enc.fc.weight', [2, 2], { kind: 'ones' });
  assert.equal(s.param('enc.fc.weight', [2, 2], { kind: 'zeros' }), w);
  s.param('enc.fc.bias', [2], { kind: 'constant', value: 3 });
  assert.deepEqual(s.list('enc'), ['enc.fc.bias', 'enc.fc.weight']);
  assert.deepEqual(Array.from(s.get('enc.fc.bias').dataSync()), [3, 3]);
  assert.equal(s.numParams(), 6);
  assert.throws(() => s.get('enc.fc.wieght'), /no parameter "enc.fc.wieght".*enc\.fc\.bias, enc\.fc\.weight/);
  assert.throws(() => s.param('enc.fc.weight', [3, 2], { kind: 'ones' }), /exists with shape \[2,2\], requested \[3,2\]/);
  assert.throws(() => s.param('bad path', [1], { kind: 'ones' }), /dot-separated/);
  s.dispose();
});

test('ParamStore: trainable flags per prefix (segment-wise, most specific wins, also for later params)', () => {
  const s = new ParamStore(1);
  s.param('vit.a', [1], { kind: 'ones' });
  s.param('vitx.a', [1], { kind: 'ones' });
  s.param('lm.a', [1], { kind: 'ones' });
  s.setTrainable('vit', false);
  s.setTrainable('vit.head', true);
  s.param('vit.b', [1], { kind: 'ones' });
  s.param('vit.head.w', [1], { kind: 'ones' });
  assert.equal(s.get('vit.a').trainable, false);
  assert.equal(s.get('vit.b').trainable, false);
  assert.equal(s.get('vit.head.w').trainable, true);
  assert.equal(s.get('vitx.a').trainable, true);
  assert.deepEqual(s.trainableEntries().map(([p]) => p), ['lm.a', 'vit.head.w', 'vitx.a']);
  // variableGrads sees only trainable parameters, keyed by path
  const { value, grads } = s.variableGrads(() => tf.sum(tf.addN(s.entries().map(([, v]) => tf.mul(v, 2)))) as tf.Scalar);
  assert.deepEqual(Object.keys(grads).sort(), ['lm.a', 'vit.head.w', 'vitx.a']);
  assert.deepEqual(Array.from(grads['lm.a'].dataSync()), [2]);
  value.dispose();
  Object.values(grads).forEach((g) => g.dispose());
  s.dispose();
});

test('ParamStore: export/load round trip; strict load rejects mismatches', () => {
  const a = new ParamStore(1), b = new ParamStore(2);
  for (const s of [a, b]) {
    s.param('m.w', [2, 3], { kind: 'normal', std: 1 });
    s.param('m.b', [3], { kind: 'normal', std: 1 });
  }
  const rec = a.export();
  b.load(rec);
  assert.deepEqual(b.export(), rec);
  assert.throws(() => b.load({ 'm.w': rec['m.w'] }), /missing 1 \[m\.b\]/);
  const rep = b.load({ 'm.w': rec['m.w'], 'z.q': rec['m.b'] }, { strict: false });
  assert.deepEqual(rep, { loaded: ['m.w'], missing: ['m.b'], unexpected: ['z.q'] });
  assert.throws(() => b.load({ 'm.w': { shape: [3, 2], data: new Float32Array(6) } }, { strict: false }), /shape \[2,3\] in the store but \[3,2\]/);
  a.dispose();
  b.dispose();
});

test('Linear: weight is [in, out], y = x·W + b by hand, any leading rank', () => {
  const s = new ParamStore(3);
  const lin = new Linear(s, 'fc', 3, 2, { initStd: 1 });
  assert.deepEqual(s.get('fc.weight').shape, [3, 2]);
  s.get('fc.bias').assign(tf.tensor1d([0.5, -1]));
  const W = Array.from(s.get('fc.weight').dataSync());
  const x = [1, 2, -1, 0.5, 0, 3];
  const y = tf.tidy(() => lin.apply(tf.tensor3d(x, [1, 2, 3])));
  assert.deepEqual(y.shape, [1, 2, 2]);
  const got = Array.from(y.dataSync());
  for (let r = 0; r < 2; r++) {
    for (let c = 0; c < 2; c++) {
      let want = [0.5, -1][c];
      for (let k = 0; k < 3; k++) want += x[r * 3 + k] * W[k * 2 + c];
      assert.ok(Math.abs(got[r * 2 + c] - want) < 1e-5, `y[${r},${c}] = ${got[r * 2 + c]}, want ${want}`);
    }
  }
  const nb = new Linear(s, 'nb', 3, 2, { bias: false });
  assert.equal(nb.bias, null);
  assert.ok(!s.has('nb.bias'));
  assert.throws(() => lin.apply(tf.zeros([2, 4])), /Linear fc: input feature size 4.*expected 3/);
  y.dispose();
  s.dispose();
});

test('LayerNorm and RMSNorm: hand-worked values', () => {
  const s = new ParamStore(0);
  const ln = new LayerNorm(s, 'ln', 4);
  const rms = new RMSNorm(s, 'rms', 2);
  const a = tf.tidy(() => Array.from(ln.apply(tf.tensor2d([[1, 2, 3, 4]])).dataSync()));
  // mean 2.5, var 1.25 → (x − 2.5)/√(1.25 + 1e-5)
  const sd = Math.sqrt(1.25 + 1e-5);
  [1, 2, 3, 4].forEach((v, i) => assert.ok(Math.abs(a[i] - (v - 2.5) / sd) < 1e-5));
  const r = tf.tidy(() => Array.from(rms.apply(tf.tensor2d([[3, 4]])).dataSync()));
  const rmsv = Math.sqrt(12.5 + 1e-6);
  assert.ok(Math.abs(r[0] - 3 / rmsv) < 1e-5 && Math.abs(r[1] - 4 / rmsv) < 1e-5, `${r}`);
  // the gain scales the output
  s.get('rms.weight').assign(tf.tensor1d([2, -1]));
  const r2 = tf.tidy(() => Array.from(rms.apply(tf.tensor2d([[3, 4]])).dataSync()));
  assert.ok(Math.abs(r2[0] - 6 / rmsv) < 1e-5 && Math.abs(r2[1] + 4 / rmsv) < 1e-5);
  s.dispose();
});

test('gelu (exact, erf) and silu values', () => {
  const g = tf.tidy(() => Array.from(gelu(tf.tensor1d([-1, 0, 1, 2])).dataSync()));
  [-0.15865526, 0, 0.84134475, 1.95449974].forEach((w, i) => assert.ok(Math.abs(g[i] - w) < 1e-5, `gelu ${g[i]} vs ${w}`));
  const z = tf.tidy(() => Array.from(silu(tf.tensor1d([-1, 0, 1])).dataSync()));
  [-0.26894142, 0, 0.73105858].forEach((w, i) => assert.ok(Math.abs(z[i] - w) < 1e-5));
});

test('geluTanh and quickGelu: values against the formulas in double precision, gradients, GeluMLP activation choice', () => {
  const xs = [-4, -1.5, -0.3, 0, 0.2, 1, 2.5, 6];
  const tanhRef = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
  const quickRef = (x: number) => x / (1 + Math.exp(-1.702 * x));
  tf.tidy(() => {
    const x = tf.tensor1d(xs);
    const t = Array.from(geluTanh(x).dataSync()), q = Array.from(quickGelu(x).dataSync()), e = Array.from(gelu(x).dataSync());
    xs.forEach((v, i) => {
      assert.ok(Math.abs(t[i] - tanhRef(v)) < 1e-6, `geluTanh(${v}) = ${t[i]}, want ${tanhRef(v)}`);
      assert.ok(Math.abs(q[i] - quickRef(v)) < 1e-6, `quickGelu(${v}) = ${q[i]}, want ${quickRef(v)}`);
    });
    // the three differ where it matters (what an importer must not mix up)
    assert.ok(Math.abs(t[6] - e[6]) > 3e-4 && Math.abs(q[6] - e[6]) > 1e-2, `at 2.5: ${t[6]}, ${q[6]}, ${e[6]}`);
  });
  for (const f of [geluTanh, quickGelu]) checkInputGrad(randn([3, 4], 5, 2), (x) => tf.sum(tf.mul(f(x), randn([3, 4], 6))) as tf.Scalar);
  const s = new ParamStore(2);
  const mlp = new GeluMLP(s, 'm', 4, 6, 4, { activation: 'quick_gelu', initStd: 0.5 });
  tf.tidy(() => {
    const x = randn([2, 4], 7);
    const want = mlp.fc2.apply(quickGelu(mlp.fc1.apply(x)));
    assert.deepEqual(Array.from(mlp.apply(x).dataSync()), Array.from(want.dataSync()));
  });
  assert.throws(() => new GeluMLP(s, 'n', 4, 6, 4, { activation: 'relu' as never }), /activation "relu" is not one of gelu, gelu_tanh, quick_gelu/);
  s.dispose();
});

test('MLPs: shapes and parameter layout (GELU with biases, SwiGLU without, mlp2x_gelu in→out→out)', () => {
  const s = new ParamStore(0);
  const g = new GeluMLP(s, 'g', 4, 16, 6);
  const w = new SwiGLUMLP(s, 'w', 4, 12);
  const p = mlp2xGelu(s, 'proj', 5, 8);
  assert.deepEqual(s.list('g'), ['g.fc1.bias', 'g.fc1.weight', 'g.fc2.bias', 'g.fc2.weight']);
  assert.deepEqual(s.list('w'), ['w.down.weight', 'w.gate.weight', 'w.up.weight']);
  assert.deepEqual(s.get('proj.fc1.weight').shape, [5, 8]);
  assert.deepEqual(s.get('proj.fc2.weight').shape, [8, 8]);
  tf.tidy(() => {
    assert.deepEqual(g.apply(tf.zeros([2, 3, 4])).shape, [2, 3, 6]);
    assert.deepEqual(w.apply(tf.zeros([2, 3, 4])).shape, [2, 3, 4]);
    assert.deepEqual(p.apply(tf.zeros([7, 5])).shape, [7, 8]);
  });
  assert.equal(swigluHidden(128), 344); // ⌈(8·128/3) / 8⌉·8
  s.dispose();
});

test('gradients vs central finite differences: Linear, LayerNorm, RMSNorm, GeluMLP, SwiGLU', () => {
  const blocks: Array<[string, (s: ParamStore) => (x: tf.Tensor) => tf.Tensor]> = [
    ['linear', (s) => { const m = new Linear(s, 'linear', 4, 3, { initStd: 0.5 }); return (x) => m.apply(x); }],
    ['ln', (s) => { const m = new LayerNorm(s, 'ln', 4); return (x) => m.apply(x); }],
    ['rms', (s) => { const m = new RMSNorm(s, 'rms', 4); return (x) => m.apply(x); }],
    ['gelu', (s) => { const m = new GeluMLP(s, 'gelu', 4, 8, 3, { initStd: 0.5 }); return (x) => m.apply(x); }],
    ['swiglu', (s) => { const m = new SwiGLUMLP(s, 'swiglu', 4, 8, { initStd: 0.5 }); return (x) => m.apply(x); }],
  ];
  for (const [name, build] of blocks) {
    const s = new ParamStore(11);
    const f = build(s);
    randomise(s, name, 0.3);
    const x = randn([2, 3, 4], 5);
    checkParamGrads(s, () => projLoss(f(x)), { directions: 3 });
    checkInputGrad(x, (xx) => projLoss(f(xx)), { directions: 2 });
    x.dispose();
    s.dispose();
  }
});

test('no tensor leak across forward + backward of every layer', async () => {
  const s = new ParamStore(2);
  const lin = new Linear(s, 'a', 4, 4);
  const ln = new LayerNorm(s, 'b', 4);
  const rms = new RMSNorm(s, 'c', 4);
  const g = new GeluMLP(s, 'd', 4, 8, 4);
  const w = new SwiGLUMLP(s, 'e', 4, 8);
  const x = randn([2, 3, 4], 1);
  await assertNoTensorLeak(() => {
    const { value, grads } = s.variableGrads(() => projLoss(w.apply(g.apply(rms.apply(ln.apply(lin.apply(x)))))));
    value.dispose();
    Object.values(grads).forEach((t) => t.dispose());
  });
  x.dispose();
  s.dispose();
});

test('the finite-difference checker rejects a wrong gradient (so the checks above can fail)', () => {
  // y = x², with a custom gradient that is off by a factor 1.1
  const fn = (x: tf.Tensor, save: tf.GradSaveFunc) => {
    save([x]);
    return { value: tf.square(x), gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(dy, tf.mul(saved[0], 2.2)) };
  };
  const wrong = tf.customGrad(fn as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (x: tf.Tensor) => tf.Tensor;
  const x = randn([3, 4], 8);
  assert.throws(() => checkInputGrad(x, (xx) => projLoss(wrong(xx))), /analytic .* vs finite difference/);
  checkInputGrad(x, (xx) => projLoss(tf.square(xx)));
  x.dispose();
});
