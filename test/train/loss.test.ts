import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, assertNoTensorLeak, tf } from '../../src/backend';
import {
  createTemperature,
  infoNce,
  miclLoss,
  withGenerativeLoss,
  tokenCrossEntropy,
  shiftForNextToken,
  IGNORE_INDEX,
} from '../../src/train/loss';

before(async () => {
  await initBackend();
});

/**
 * Plain float64 reference of docs/method.md's symmetric InfoNCE: e = [a; b], s_ij = exp(τ)·cos,
 * diagonal excluded, target of row i is (i + B) mod 2B, mean over the 2B rows.
 */
function refInfoNce(a: number[][], b: number[][], tau: number): number {
  const e = [...a, ...b].map((r) => {
    const n = Math.sqrt(r.reduce((s, x) => s + x * x, 0));
    return r.map((x) => x / n);
  });
  const N = e.length;
  const B = a.length;
  const scale = Math.exp(tau);
  let total = 0;
  for (let i = 0; i < N; i++) {
    const s: number[] = [];
    for (let j = 0; j < N; j++) s.push(j === i ? -Infinity : scale * e[i].reduce((acc, x, k) => acc + x * e[j][k], 0));
    const max = Math.max(...s);
    const lse = max + Math.log(s.reduce((acc, x) => acc + Math.exp(x - max), 0));
    total += lse - s[(i + B) % N];
  }
  return total / N;
}

const A = [
  [0.3, -1.2, 0.5],
  [1.1, 0.4, -0.7],
  [-0.2, 0.9, 1.3],
];
const Bm = [
  [0.1, -0.8, 0.9],
  [0.7, 0.6, -0.2],
  [-1.0, 0.3, 0.4],
];

test('InfoNCE: one pair has no negatives, so the loss is exactly 0', () => {
  const l = tf.tidy(() => infoNce(tf.tensor2d([[1, 2]]), tf.tensor2d([[-3, 0.5]]), tf.scalar(3)).dataSync()[0]);
  assert.ok(Math.abs(l) < 1e-6, `loss ${l}`);
});

test('InfoNCE: closed form for two orthogonal pairs, log(1 + 2·exp(−e^τ))', () => {
  // a1 = b1 = (1,0), a2 = b2 = (0,1): each anchor sees its partner at cos 1 and two notes at
  // cos 0 (its own self is masked), so every row's loss is −log(e^s / (e^s + 2)), s = e^τ.
  for (const tau of [0, 1, 3]) {
    const l = tf.tidy(() =>
      infoNce(tf.tensor2d([[1, 0], [0, 1]]), tf.tensor2d([[2, 0], [0, 5]]), tf.scalar(tau)).dataSync()[0],
    );
    const want = Math.log(1 + 2 * Math.exp(-Math.exp(tau)));
    assert.ok(Math.abs(l - want) < 1e-5, `tau ${tau}: ${l} vs ${want}`);
  }
});

test('InfoNCE matches the float64 reference on fixed numbers (and the self-mask matters)', () => {
  for (const tau of [0.5, 3.0]) {
    const got = tf.tidy(() => infoNce(tf.tensor2d(A), tf.tensor2d(Bm), tf.scalar(tau)).dataSync()[0]);
    const want = refInfoNce(A, Bm, tau);
    assert.ok(Math.abs(got - want) < 1e-4 * Math.max(1, want), `tau ${tau}: ${got} vs ${want}`);
  }
  // Without the mask each row would include its own cos = 1 logit; the loss would differ.
  const unmasked = (() => {
    const e = [...A, ...Bm].map((r) => r.map((x) => x / Math.hypot(...r)));
    let t = 0;
    for (let i = 0; i < 6; i++) {
      const s = e.map((r) => 0.5 * r.reduce((acc, x, k) => acc + x * e[i][k], 0));
      t += Math.log(s.reduce((acc, x) => acc + Math.exp(x), 0)) - s[(i + 3) % 6];
    }
    return t / 6;
  })();
  const got = tf.tidy(() => infoNce(tf.tensor2d(A), tf.tensor2d(Bm), tf.scalar(Math.log(0.5))).dataSync()[0]);
  assert.ok(Math.abs(got - unmasked) > 0.05, 'masked and unmasked losses should differ');
});

test('InfoNCE gradients (a, b, τ) match central finite differences of the float64 reference', () => {
  const tau0 = 1.2;
  const [ga, gb, gt] = tf.tidy(() => {
    const g = tf.grads((a: tf.Tensor, b: tf.Tensor, t: tf.Tensor) => infoNce(a as tf.Tensor2D, b as tf.Tensor2D, t));
    return g([tf.tensor2d(A), tf.tensor2d(Bm), tf.scalar(tau0)]).map((x) => Array.from(x.dataSync()));
  });
  const h = 1e-5;
  const fd = (which: 'a' | 'b', i: number, k: number): number => {
    const plus = (which === 'a' ? A : Bm).map((r) => [...r]);
    const minus = (which === 'a' ? A : Bm).map((r) => [...r]);
    plus[i][k] += h;
    minus[i][k] -= h;
    const fp = which === 'a' ? refInfoNce(plus, Bm, tau0) : refInfoNce(A, plus, tau0);
    const fm = which === 'a' ? refInfoNce(minus, Bm, tau0) : refInfoNce(A, minus, tau0);
    return (fp - fm) / (2 * h);
  };
  for (let i = 0; i < 3; i++) {
    for (let k = 0; k < 3; k++) {
      const da = fd('a', i, k), db = fd('b', i, k);
      assert.ok(Math.abs(ga[i * 3 + k] - da) < 2e-4, `dL/da[${i}][${k}] ${ga[i * 3 + k]} vs ${da}`);
      assert.ok(Math.abs(gb[i * 3 + k] - db) < 2e-4, `dL/db[${i}][${k}] ${gb[i * 3 + k]} vs ${db}`);
    }
  }
  const dt = (refInfoNce(A, Bm, tau0 + h) - refInfoNce(A, Bm, tau0 - h)) / (2 * h);
  assert.ok(Math.abs(gt[0] - dt) < 2e-4, `dL/dτ ${gt[0]} vs ${dt}`);
  assert.ok(Math.abs(dt) > 1e-3, 'τ gradient should be non-trivial here');
});

test('createTemperature: a trainable scalar initialised at 3.0 whose gradient flows', async () => {
  const tau = createTemperature();
  assert.equal(tau.trainable, true);
  assert.deepEqual(tau.shape, []);
  assert.equal(tau.dataSync()[0], 3);
  await assertNoTensorLeak(() => {
    const { grads, value } = tf.variableGrads(() => infoNce(tf.tensor2d(A), tf.tensor2d(Bm), tau), [tau]);
    const g = grads[tau.name].dataSync()[0];
    const h = 1e-5;
    const want = (refInfoNce(A, Bm, 3 + h) - refInfoNce(A, Bm, 3 - h)) / (2 * h);
    assert.ok(Math.abs(g - want) < 2e-4, `${g} vs ${want}`);
    value.dispose();
    grads[tau.name].dispose();
  });
  tau.dispose();
});

test('InfoNCE: shape mismatches throw with the shapes', () => {
  assert.throws(
    () => tf.tidy(() => infoNce(tf.tensor2d([[1, 2]]), tf.tensor2d([[1, 2, 3]]), tf.scalar(3))),
    /\[1,2\].*\[1,3\]/,
  );
});

test('mICL loss = (w_t·L_m + w_v·L_v)/(w_t + w_v), default 9:1; generative combination', () => {
  const [d, r, g] = tf.tidy(() => [
    miclLoss(tf.scalar(2), tf.scalar(7)).dataSync()[0],
    miclLoss(tf.scalar(2), tf.scalar(7), { text: 1, vision: 3 }).dataSync()[0],
    withGenerativeLoss(tf.scalar(2), tf.scalar(7)).dataSync()[0],
  ]);
  assert.ok(Math.abs(d - (9 * 2 + 7) / 10) < 1e-6, `${d}`); // 2.5
  assert.ok(Math.abs(r - (2 + 21) / 4) < 1e-6, `${r}`); // 5.75
  assert.ok(Math.abs(g - (2 + 0.01 * 7) / 1.01) < 1e-6, `${g}`);
  assert.throws(() => miclLoss(tf.scalar(1), tf.scalar(1), { text: 0, vision: 0 }), /positive sum/);
});

test('mICL gradient splits 0.9 / 0.1 between the two losses', () => {
  const [gm, gv] = tf.tidy(() =>
    tf.grads((m: tf.Tensor, v: tf.Tensor) => miclLoss(m as tf.Scalar, v as tf.Scalar))([tf.scalar(1), tf.scalar(1)]).map(
      (x) => x.dataSync()[0],
    ),
  );
  assert.ok(Math.abs(gm - 0.9) < 1e-6 && Math.abs(gv - 0.1) < 1e-6, `${gm} ${gv}`);
});

test('token cross-entropy skips ignored positions and matches a hand computation', () => {
  // logits [1, 3, 3]; targets [2, IGNORE, 0]
  const logits = [[[1, 2, 3], [5, 5, 5], [0, -1, 1]]];
  const lse = (r: number[]) => Math.log(r.reduce((s, x) => s + Math.exp(x), 0));
  const want = (lse(logits[0][0]) - 3 + (lse(logits[0][2]) - 0)) / 2;
  const got = tf.tidy(() => tokenCrossEntropy(tf.tensor3d(logits), [[2, IGNORE_INDEX, 0]]).dataSync()[0]);
  assert.ok(Math.abs(got - want) < 1e-5, `${got} vs ${want}`);
  const allIgnored = tf.tidy(() => tokenCrossEntropy(tf.tensor3d(logits), [[IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]]).dataSync()[0]);
  assert.ok(allIgnored === 0, `all-ignored loss ${allIgnored}`);
  assert.throws(() => tokenCrossEntropy(tf.tensor3d(logits), [[3, 0, 0]]), /target 3 at flat position 0 is not in \[0, 3\)/);
  // Gradient w.r.t. logits: (softmax − onehot)/count on kept rows, 0 on the ignored row.
  const g = tf.tidy(() =>
    Array.from(tf.grad((x: tf.Tensor) => tokenCrossEntropy(x, [[2, IGNORE_INDEX, 0]]))(tf.tensor3d(logits)).dataSync()),
  );
  const sm = (r: number[]) => r.map((x) => Math.exp(x - lse(r)));
  const want0 = sm(logits[0][0]).map((p, k) => (p - (k === 2 ? 1 : 0)) / 2);
  for (let k = 0; k < 3; k++) {
    assert.ok(Math.abs(g[k] - want0[k]) < 1e-5);
    assert.ok(g[3 + k] === 0, `ignored row gradient ${g[3 + k]}`);
  }
});

test('shiftForNextToken: targets are the next ids, last and padding ignored', () => {
  assert.deepEqual(shiftForNextToken([[5, 6, 7, 0]], 0), [[6, 7, IGNORE_INDEX, IGNORE_INDEX]]);
  assert.deepEqual(shiftForNextToken([[5, 6]]), [[6, IGNORE_INDEX]]);
});

test('no tensor leak across InfoNCE forward + backward', async () => {
  const tau = createTemperature();
  const a = tf.variable(tf.tensor2d(A));
  const b = tf.variable(tf.tensor2d(Bm));
  await assertNoTensorLeak(() => {
    for (let i = 0; i < 3; i++) {
      const { value, grads } = tf.variableGrads(() => miclLoss(infoNce(a, b, tau), infoNce(b, a, tau)));
      value.dispose();
      tf.dispose(grads);
    }
  });
  tf.dispose([tau, a, b]);
});
