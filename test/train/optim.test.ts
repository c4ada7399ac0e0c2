import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, assertNoTensorLeak, tf } from '../../src/backend';
import {
  AdamW,
  clipByGlobalNorm,
  defaultDecayFilter,
  globalNorm,
  learningRateAt,
  warmupSteps,
} from '../../src/train/optim';

before(async () => {
  await initBackend();
});

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-6, what = '') => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol, `${what}[${i}] ${a[i]} vs ${b[i]}`);
};

/** Float64 AdamW reference for one parameter vector (PyTorch AdamW semantics). */
function refAdamW(
  p: number[],
  grads: number[][],
  o: { lr: number; b1: number; b2: number; eps: number; wd: number; clip?: number },
): number[] {
  let m = p.map(() => 0), v = p.map(() => 0);
  grads.forEach((g0, i) => {
    const t = i + 1;
    let g = g0;
    if (o.clip !== undefined) {
      const n = Math.sqrt(g.reduce((s, x) => s + x * x, 0));
      g = g.map((x) => x * Math.min(1, o.clip! / (n + 1e-6)));
    }
    p = p.map((x) => x * (1 - o.lr * o.wd));
    m = m.map((mi, k) => o.b1 * mi + (1 - o.b1) * g[k]);
    v = v.map((vi, k) => o.b2 * vi + (1 - o.b2) * g[k] * g[k]);
    p = p.map((x, k) => x - (o.lr * (m[k] / (1 - o.b1 ** t))) / (Math.sqrt(v[k] / (1 - o.b2 ** t)) + o.eps));
  });
  return p;
}

test('AdamW: first step by hand — decay then a sign step of size lr', () => {
  const w = tf.variable(tf.tensor2d([[1.0, -2.0]]));
  const b = tf.variable(tf.tensor1d([0.5]));
  const opt = new AdamW({ 'lin.weight': w, 'lin.bias': b }, { lr: 0.1, weightDecay: 0.01 });
  assert.deepEqual(opt.decayedNames, ['lin.weight']);
  tf.tidy(() => opt.applyGradients({ 'lin.weight': tf.tensor2d([[0.1, -0.3]]), 'lin.bias': tf.tensor1d([-0.2]) }));
  // w: ×(1 − 0.1·0.01) = [0.999, −1.998]; m̂ = g, v̂ = g², so the step is −0.1·g/(|g| + 1e-8).
  close(w.dataSync(), [0.999 - 0.1, -1.998 + 0.1], 1e-6, 'w');
  // b: excluded from decay: 0.5 + 0.1.
  close(b.dataSync(), [0.6], 1e-6, 'b');
  assert.equal(opt.step, 1);
  opt.dispose();
  tf.dispose([w, b]);
});

test('AdamW: two steps match the float64 reference; excluded parameters get no decay', () => {
  const w = tf.variable(tf.tensor2d([[1.0, -2.0], [0.5, 3.0]]));
  const n = tf.variable(tf.tensor1d([1.0, 1.5]), true, undefined);
  const opt = new AdamW({ 'mlp.fc': w, 'block.norm.weight': n }, { lr: 0.05, beta1: 0.8, beta2: 0.99, eps: 1e-6, weightDecay: 0.1 });
  const gw = [[0.1, -0.3, 0.2, 0.05], [0.2, 0.4, -0.1, 0.0]];
  const gn = [[0.3, -0.1], [-0.5, 0.2]];
  for (let s = 0; s < 2; s++) {
    tf.tidy(() => opt.applyGradients({ 'mlp.fc': tf.tensor2d(gw[s], [2, 2]), 'block.norm.weight': tf.tensor1d(gn[s]) }));
  }
  const o = { lr: 0.05, b1: 0.8, b2: 0.99, eps: 1e-6 };
  close(w.dataSync(), refAdamW([1.0, -2.0, 0.5, 3.0], gw, { ...o, wd: 0.1 }), 1e-6, 'w');
  close(n.dataSync(), refAdamW([1.0, 1.5], gn, { ...o, wd: 0 }), 1e-6, 'norm');
  // And decay did act on w: the no-decay reference differs measurably.
  const noDecay = refAdamW([1.0, -2.0, 0.5, 3.0], gw, { ...o, wd: 0 });
  assert.ok(Math.abs(noDecay[3] - w.dataSync()[3]) > 1e-3);
  opt.dispose();
  tf.dispose([w, n]);
});

test('defaultDecayFilter: matrices decay; vectors, scalars and named norms/τ do not', () => {
  assert.equal(defaultDecayFilter('lm.blocks.0.attn.wq', [8, 8]), true);
  assert.equal(defaultDecayFilter('lm.blocks.0.attn.bias', [8]), false);
  assert.equal(defaultDecayFilter('lm.blocks.0.norm.weight', [8]), false);
  assert.equal(defaultDecayFilter('loss.tau', []), false);
  assert.equal(defaultDecayFilter('vit.norm.weight2d', [1, 8]), false);
});

test('global-norm clipping: norm 5 clipped to 1 scales by 1/5 and changes later Adam steps', () => {
  const { grads, norm } = tf.tidy(() => {
    const r = clipByGlobalNorm({ a: tf.tensor1d([3]), b: tf.tensor1d([4]) }, 1);
    return { grads: r.grads, norm: r.norm };
  });
  assert.ok(Math.abs(norm - 5) < 1e-6);
  close(grads.a.dataSync(), [0.6], 1e-6);
  close(grads.b.dataSync(), [0.8], 1e-6);
  tf.dispose(Object.values(grads));
  // Below the threshold nothing changes.
  const same = clipByGlobalNorm({ a: tf.tensor1d([0.3, 0.4]) }, 1);
  close(same.grads.a.dataSync(), [0.3, 0.4], 1e-6);
  assert.ok(Math.abs(same.norm - 0.5) < 1e-6);
  tf.dispose(Object.values(same.grads));

  // Through AdamW: step 1 is clipped (norm 5 → 1), step 2 (norm 0.5) is not.
  const gs = [[3, 4], [0.3, -0.4]];
  const o = { lr: 0.1, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0 };
  const run = (clipNorm?: number) => {
    const p = tf.variable(tf.tensor1d([1, 1]));
    const opt = new AdamW({ p }, { lr: 0.1, weightDecay: 0, clipNorm });
    const norms = gs.map((g) => tf.tidy(() => opt.applyGradients({ p: tf.tensor1d(g) }).gradNorm));
    const out = Array.from(p.dataSync());
    opt.dispose();
    p.dispose();
    return { out, norms };
  };
  const clipped = run(1);
  close(clipped.out, refAdamW([1, 1], gs, { ...o, clip: 1 }), 1e-6, 'clipped');
  close(clipped.norms, [5, 0.5], 1e-5, 'reported norms');
  const free = run();
  close(free.out, refAdamW([1, 1], gs, o), 1e-6, 'unclipped');
  assert.ok(Math.abs(free.out[0] - clipped.out[0]) > 1e-3, 'clipping should change the second step');
  assert.ok(Math.abs(globalNorm({}) - 0) === 0);
});

test('schedule: warm-up 10 % then cosine / linear decay at chosen steps', () => {
  const cfg = { lr: 1e-3, totalSteps: 100, warmup: 0.1 };
  assert.equal(warmupSteps(cfg), 10);
  const at = (s: number, extra = {}) => learningRateAt(s, { ...cfg, ...extra });
  close([at(0), at(4), at(9)], [1e-4, 5e-4, 1e-3], 1e-12, 'warm-up');
  // Decay starts at step 10 (p = 0); p = (step − 10)/90.
  close([at(10), at(55), at(100)], [1e-3, 0.5e-3, 0], 1e-12, 'cosine');
  close([at(40)], [1e-3 * 0.5 * (1 + Math.cos(Math.PI / 3))], 1e-12, 'cosine p=1/3'); // 0.75e-3
  close([at(55, { decay: 'linear' }), at(82, { decay: 'linear' })], [0.5e-3, 0.2e-3], 1e-12, 'linear');
  close([at(55, { minLrRatio: 0.1 })], [1e-4 + 0.9e-3 * 0.5], 1e-12, 'cosine with floor');
  close([at(70, { decay: 'constant' })], [1e-3], 1e-12, 'constant');
  assert.equal(warmupSteps({ totalSteps: 100, warmup: 7 }), 7);
  assert.throws(() => learningRateAt(0, { ...cfg, decay: 'step' as never }), /not one of cosine, linear, constant/);
});

/** A small least-squares problem: loss = mean((x·W + c − y)²). */
function makeProblem() {
  const x = tf.tensor2d([[1, 2], [3, -1], [0.5, 0.5], [-2, 1]]);
  const y = tf.tensor2d([[1, 0], [0, 1], [1, 1], [-1, 2]]);
  const W = tf.variable(tf.tensor2d([[0.1, -0.2], [0.3, 0.05]]));
  const c = tf.variable(tf.tensor1d([0.0, 0.1]));
  const loss = () => tf.mean(tf.square(tf.sub(tf.add(tf.matMul(x, W), c), y))) as tf.Scalar;
  return { x, y, W, c, loss, dispose: () => tf.dispose([x, y, W, c]) };
}

test('exportState/importState: a resumed run takes exactly the uninterrupted steps', async () => {
  const sched = (s: number) => learningRateAt(s, { lr: 0.05, totalSteps: 8, warmup: 0.25 });
  const cfg = { lr: sched, weightDecay: 0.05, clipNorm: 1.0 };

  const full = makeProblem();
  const optFull = new AdamW({ 'head.W': full.W, 'head.c': full.c }, cfg);
  const lossesFull = Array.from({ length: 8 }, () => optFull.minimize(full.loss).loss);
  assert.ok(lossesFull[7] < lossesFull[0], 'the loss should fall');

  const first = makeProblem();
  const opt1 = new AdamW({ 'head.W': first.W, 'head.c': first.c }, cfg);
  const lossesA = Array.from({ length: 3 }, () => opt1.minimize(first.loss).loss);
  const state = opt1.exportState();
  const weights = { W: Float32Array.from(first.W.dataSync()), c: Float32Array.from(first.c.dataSync()) };
  // Training continues on the original object: the exported copy must not change with it.
  const mBefore = Float32Array.from(state.tensors['m.head.W'].data);
  opt1.minimize(first.loss);
  assert.deepEqual(state.tensors['m.head.W'].data, mBefore);
  opt1.dispose();
  first.dispose();

  const second = makeProblem();
  second.W.assign(tf.tensor2d(weights.W, [2, 2]));
  second.c.assign(tf.tensor1d(weights.c));
  const opt2 = new AdamW({ 'head.W': second.W, 'head.c': second.c }, cfg);
  opt2.importState(state);
  assert.equal(opt2.step, 3);
  const lossesB = Array.from({ length: 5 }, () => opt2.minimize(second.loss).loss);
  assert.deepEqual([...lossesA, ...lossesB], lossesFull);
  assert.deepEqual(Array.from(second.W.dataSync()), Array.from(full.W.dataSync()));

  assert.throws(() => opt2.importState({ step: 1, tensors: { ...state.tensors, 'm.other': state.tensors['m.head.c'] } }), /unexpected tensor "m.other"/);
  const bad = { ...state.tensors, 'v.head.c': { shape: [3], data: new Float32Array(3) } };
  assert.throws(() => opt2.importState({ step: 1, tensors: bad }), /"v.head.c" has shape \[3\], expected \[2\]/);
  optFull.dispose();
  opt2.dispose();
  full.dispose();
  second.dispose();
});

test('AdamW: parameters without gradients are untouched; unknown gradient names throw', () => {
  const a = tf.variable(tf.tensor2d([[1, 2]]));
  const b = tf.variable(tf.tensor2d([[3, 4]]));
  const opt = new AdamW({ a, b }, { lr: 0.1 });
  tf.tidy(() => opt.applyGradients({ a: tf.tensor2d([[1, 1]]) }));
  assert.deepEqual(Array.from(b.dataSync()), [3, 4]);
  assert.notDeepEqual(Array.from(a.dataSync()), [1, 2]);
  assert.throws(() => tf.tidy(() => opt.applyGradients({ zz: tf.tensor2d([[1, 1]]) })), /"zz" matches no parameter/);
  assert.throws(() => tf.tidy(() => opt.applyGradients({ a: tf.tensor1d([1]) })), /shape \[1\], parameter has \[1,2\]/);
  opt.dispose();
  tf.dispose([a, b]);
});

test('AdamW: no tensor leak across steps (minimize, clipping, export/import)', async () => {
  const p = makeProblem();
  const opt = new AdamW({ W: p.W, c: p.c }, { lr: 0.01, clipNorm: 0.5 });
  opt.minimize(p.loss); // moments exist from construction; warm any lazy backend state
  await assertNoTensorLeak(() => {
    for (let i = 0; i < 3; i++) opt.minimize(p.loss);
    opt.importState(opt.exportState());
  });
  opt.dispose();
  p.dispose();
});
