import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf, assertNoTensorLeak, Rng } from '../../src/backend';
import { ParamStore } from '../../src/model/params';
import { MultiHeadAttention, type AttentionKind } from '../../src/model/attention';
import { RoPE } from '../../src/model/rope';
import { checkInputGrad, checkParamGrads, maxAbsDiff, projLoss, randn } from './helpers';

before(async () => {
  await initBackend();
});

const D = 8, H = 2;

function mha(kind: AttentionKind, opts: { rope?: boolean; seed?: number; contextDim?: number; initStd?: number } = {}) {
  const store = new ParamStore(opts.seed ?? 4);
  const layer = new MultiHeadAttention(store, 'attn', {
    dim: D, heads: H, kind, contextDim: kind === 'cross' ? opts.contextDim : undefined,
    rope: opts.rope ? new RoPE(D / H) : null, initStd: opts.initStd ?? 0.4,
  });
  return { store, layer };
}

test('shapes for causal, bidirectional and cross; probabilities are rows summing to 1; causal upper triangle is exactly 0', () => {
  for (const kind of ['causal', 'bidirectional', 'cross'] as const) {
    const { store, layer } = mha(kind, { contextDim: 6, rope: kind !== 'cross' });
    tf.tidy(() => {
      const x = randn([2, 5, D], 1) as tf.Tensor3D;
      const ctx = kind === 'cross' ? (randn([2, 7, 6], 2) as tf.Tensor3D) : undefined;
      const r = layer.forward(x, { context: ctx, returnProbs: true });
      const tk = kind === 'cross' ? 7 : 5;
      assert.deepEqual(r.out.shape, [2, 5, D]);
      assert.deepEqual(r.probs?.shape, [2, H, 5, tk]);
      const rowSums = tf.sum(r.probs as tf.Tensor, -1).dataSync();
      rowSums.forEach((v) => assert.ok(Math.abs(v - 1) < 1e-5));
      const p = r.probs?.arraySync() as number[][][][];
      if (kind === 'causal') {
        for (let i = 0; i < 5; i++) for (let j = i + 1; j < 5; j++) assert.equal(p[1][1][i][j], 0);
      } else {
        assert.ok(p[1][1][0][4] > 0);
      }
      assert.equal(layer.forward(x, { context: ctx }).probs, undefined);
    });
    store.dispose();
  }
});

test('config and input errors say what was expected', () => {
  const s = new ParamStore(0);
  assert.throws(() => new MultiHeadAttention(s, 'a', { dim: 8, heads: 2, kind: 'sideways' as AttentionKind }), /not one of causal, bidirectional, cross/);
  assert.throws(() => new MultiHeadAttention(s, 'b', { dim: 8, heads: 3, kind: 'causal' }), /positive divisor of dim/);
  assert.throws(() => new MultiHeadAttention(s, 'c', { dim: 8, heads: 2, kind: 'cross', rope: new RoPE(4) }), /RoPE is for self-attention/);
  const cross = new MultiHeadAttention(s, 'd', { dim: 8, heads: 2, kind: 'cross', contextDim: 3 });
  const self = new MultiHeadAttention(s, 'e', { dim: 8, heads: 2, kind: 'bidirectional' });
  assert.throws(() => new MultiHeadAttention(s, 'f', { dim: 8, heads: 2, kind: 'causal', contextDim: 4 }), /only for kind "cross"/);
  tf.tidy(() => {
    assert.throws(() => cross.forward(tf.zeros([1, 2, 8])), /needs opts\.context \[b, tk, 3\]/);
    assert.throws(() => self.forward(tf.zeros([1, 2, 8]), { context: tf.zeros([1, 2, 8]) }), /only for "cross"/);
    assert.throws(() => self.forward(tf.zeros([1, 2, 8]), { keyPadding: tf.ones([1, 3]) }), /keyPadding must be \[1, 2\]/);
  });
  assert.deepEqual(s.list('d'), ['d.k.bias', 'd.k.weight', 'd.o.bias', 'd.o.weight', 'd.q.bias', 'd.q.weight', 'd.v.bias', 'd.v.weight']);
  assert.deepEqual(s.get('d.k.weight').shape, [3, 8]);
  s.dispose();
});

test('matches an independent plain-JS reference of scaled dot-product attention (bidirectional, 2 heads)', () => {
  const { store, layer } = mha('bidirectional');
  const T = 3;
  const x = randn([1, T, D], 3) as tf.Tensor3D;
  const out = tf.tidy(() => Array.from(layer.forward(x).out.dataSync()));
  const xs = Array.from(x.dataSync());
  const P = (name: string) => ({ w: Array.from(store.get(`attn.${name}.weight`).dataSync()), b: Array.from(store.get(`attn.${name}.bias`).dataSync()) });
  const lin = (p: { w: number[]; b: number[] }, row: number[]) =>
    Array.from({ length: D }, (_, c) => p.b[c] + row.reduce((s, v, k) => s + v * p.w[k * D + c], 0));
  const rows = Array.from({ length: T }, (_, t) => xs.slice(t * D, t * D + D));
  const [q, k, v] = ['q', 'k', 'v'].map((n) => rows.map((r) => lin(P(n), r)));
  const hd = D / H;
  const merged = rows.map(() => new Array<number>(D).fill(0));
  for (let h = 0; h < H; h++) {
    for (let i = 0; i < T; i++) {
      const s = Array.from({ length: T }, (_, j) => {
        let d = 0;
        for (let c = 0; c < hd; c++) d += q[i][h * hd + c] * k[j][h * hd + c];
        return d / Math.sqrt(hd);
      });
      const m = Math.max(...s);
      const e = s.map((z) => Math.exp(z - m));
      const z = e.reduce((a, b) => a + b, 0);
      for (let j = 0; j < T; j++) for (let c = 0; c < hd; c++) merged[i][h * hd + c] += (e[j] / z) * v[j][h * hd + c];
    }
  }
  const want = merged.flatMap((r) => lin(P('o'), r));
  want.forEach((w, i) => assert.ok(Math.abs(out[i] - w) < 1e-4, `out[${i}] = ${out[i]}, reference ${w}`));
  x.dispose();
  store.dispose();
});

test('causality: changing token t+1 leaves outputs at positions ≤ t exactly unchanged (with RoPE)', () => {
  const { store, layer } = mha('causal', { rope: true });
  const T = 6;
  for (const t of [0, 2, 4]) {
    tf.tidy(() => {
      const x = randn([2, T, D], 10);
      const changed = tf.concat([tf.slice(x, [0, 0, 0], [2, t + 1, D]), randn([2, T - t - 1, D], 11 + t)], 1);
      const a = layer.forward(x as tf.Tensor3D).out;
      const b = layer.forward(changed as tf.Tensor3D).out;
      assert.equal(maxAbsDiff(tf.slice(a, [0, 0, 0], [2, t + 1, D]), tf.slice(b, [0, 0, 0], [2, t + 1, D])), 0);
      assert.ok(maxAbsDiff(tf.slice(a, [0, t + 1, 0], [2, 1, D]), tf.slice(b, [0, t + 1, 0], [2, 1, D])) > 1e-4);
    });
  }
  store.dispose();
});

test('key padding: padded keys get probability 0 and real queries match the unpadded sequence', () => {
  const { store, layer } = mha('bidirectional', { rope: true });
  tf.tidy(() => {
    const x = randn([2, 5, D], 20) as tf.Tensor3D;
    const pad = tf.tensor2d([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], [2, 5], 'int32');
    const r = layer.forward(x, { keyPadding: pad, returnProbs: true });
    const p = r.probs?.arraySync() as number[][][][];
    for (let h = 0; h < H; h++) for (let i = 0; i < 5; i++) assert.equal(p[0][h][i][3] + p[0][h][i][4], 0);
    const short = layer.forward(tf.slice(x, [0, 0, 0], [1, 3, D]) as tf.Tensor3D).out;
    assert.ok(maxAbsDiff(tf.slice(r.out, [0, 0, 0], [1, 3, D]), short) < 1e-5);
    // the unpadded example is unaffected by the other's padding
    const full = layer.forward(tf.slice(x, [1, 0, 0], [1, 5, D]) as tf.Tensor3D).out;
    assert.ok(maxAbsDiff(tf.slice(r.out, [1, 0, 0], [1, 5, D]), full) < 1e-5);
  });
  store.dispose();
});

test('RoPE: q·k depends only on the relative position; position 0 is the identity; norms are preserved', () => {
  const hd = 8;
  const rope = new RoPE(hd);
  const rng = new Rng(3);
  tf.tidy(() => {
    const q = randn([1, 1, 1, hd], rng.int(1e6));
    const k = randn([1, 1, 1, hd], rng.int(1e6));
    const dot = (m: number, n: number) => tf.sum(tf.mul(rope.apply(q, m), rope.apply(k, n))).dataSync()[0];
    for (const [m, n] of [[3, 1], [7, 2], [0, 5]]) {
      const base = dot(m, n);
      for (const s of [1, 4, 11]) assert.ok(Math.abs(dot(m + s, n + s) - base) < 1e-4, `(${m},${n}) shift ${s}: ${dot(m + s, n + s)} vs ${base}`);
    }
    assert.ok(Math.abs(dot(3, 1) - dot(2, 1)) > 1e-3); // but it does depend on the offset
    assert.equal(maxAbsDiff(rope.apply(q, 0), q), 0);
    const n0 = tf.norm(q).dataSync()[0], n9 = tf.norm(rope.apply(q, 9)).dataSync()[0];
    assert.ok(Math.abs(n0 - n9) < 1e-5);
    // a multi-token tensor rotates token t by position offset + t
    const seq = tf.concat([q, q, q], 1);
    assert.ok(maxAbsDiff(tf.slice(rope.apply(seq, 4), [0, 2, 0, 0], [1, 1, 1, hd]), rope.apply(q, 6)) < 1e-6);
  });
  assert.throws(() => new RoPE(7), /positive even integer/);
});

test('RoPE: the rotation-matrix product equals rotate_half written as split/negate/concat, bit for bit', () => {
  const hd = 8;
  const rope = new RoPE(hd);
  tf.tidy(() => {
    const x = randn([2, 5, 3, hd], 17);
    const [x1, x2] = tf.split(x, 2, 3);
    const { cos, sin } = rope.tables(5, 2);
    const want = tf.add(tf.mul(x, tf.tensor(cos, [5, 1, hd])), tf.mul(tf.concat([tf.neg(x2), x1], 3), tf.tensor(sin, [5, 1, hd])));
    assert.deepEqual(Array.from(rope.apply(x, 2).dataSync()), Array.from(want.dataSync()));
    // the scale attention folds into the query's rotation
    const scaled = rope.apply(x, 2, 0.25).dataSync();
    want.dataSync().forEach((w, i) => assert.ok(Math.abs(scaled[i] - 0.25 * w) <= 1e-6 * (1 + Math.abs(w)), `scaled[${i}]`));
  });
});

test('gradients vs finite differences: causal (RoPE), bidirectional (key padding), cross', () => {
  for (const kind of ['causal', 'bidirectional', 'cross'] as const) {
    const { store, layer } = mha(kind, { rope: kind !== 'cross', contextDim: 5, seed: 9 });
    const x = randn([2, 4, D], 30) as tf.Tensor3D;
    const ctx = kind === 'cross' ? (randn([2, 3, 5], 31) as tf.Tensor3D) : undefined;
    const pad = kind === 'bidirectional' ? tf.tensor2d([[1, 1, 1, 0], [1, 1, 1, 1]], [2, 4], 'int32') : undefined;
    const f = (xx: tf.Tensor) => layer.forward(xx as tf.Tensor3D, { context: ctx, keyPadding: pad }).out;
    checkParamGrads(store, () => projLoss(f(x)), { directions: 3 });
    checkInputGrad(x, (xx) => projLoss(f(xx)));
    if (ctx) checkInputGrad(ctx, (c) => projLoss(layer.forward(x, { context: c as tf.Tensor3D }).out));
    for (const t of [x, ctx, pad]) t?.dispose();
    store.dispose();
  }
});

test('saliency mask: dL/dM at M = 1 equals P ⊙ dL/dP (independent re-computation) and finite differences', () => {
  const { store, layer } = mha('causal', { rope: true });
  const B = 2, T = 4, hd = D / H;
  const x = randn([B, T, D], 40) as tf.Tensor3D;
  const ones = tf.ones([B, H, T, T]);
  const lossOfMask = (m: tf.Tensor) => projLoss(layer.forward(x, { attnMask: m }).out);
  const gM = tf.grad(lossOfMask)(ones);
  const P = tf.tidy(() => layer.forward(x, { returnProbs: true }).probs as tf.Tensor4D);
  // dL/dP through the layer's tail only: out = o(merge(P · V)), V from the v projection.
  const gP = tf.grad((p: tf.Tensor) => {
    const v = tf.transpose(tf.reshape(layer.v.apply(x), [B, T, H, hd]), [0, 2, 1, 3]);
    const merged = tf.reshape(tf.transpose(tf.matMul(p as tf.Tensor4D, v), [0, 2, 1, 3]), [B, T, D]);
    return projLoss(layer.o.apply(merged));
  })(P);
  const expected = tf.mul(P, gP);
  assert.ok(maxAbsDiff(gM, expected) < 1e-5, `max diff ${maxAbsDiff(gM, expected)}`);
  const g = gM.arraySync() as number[][][][];
  assert.equal(Math.abs(g[0][1][0][3]), 0); // future key: P = 0, so no saliency
  // L is affine in M (M multiplies after the softmax), so a central difference per entry is exact up to rounding.
  const eps = 0.05;
  for (const [b, h, i, j] of [[0, 0, 3, 1], [1, 1, 2, 2], [1, 0, 3, 0]]) {
    const num = tf.tidy(() => {
      const e = tf.buffer([B, H, T, T]);
      e.set(eps, b, h, i, j);
      const d = e.toTensor();
      return (lossOfMask(tf.add(ones, d)).dataSync()[0] - lossOfMask(tf.sub(ones, d)).dataSync()[0]) / (2 * eps);
    });
    assert.ok(Math.abs(num - g[b][h][i][j]) < 1e-3 * Math.max(1, Math.abs(num)), `M[${b},${h},${i},${j}]: ${g[b][h][i][j]} vs ${num}`);
    assert.ok(Math.abs(num) > 1e-4);
  }
  // a mask broadcast over batch and heads ([1, 1, T, T]) also works and sums the per-head terms
  const gShared = tf.grad(lossOfMask)(tf.ones([1, 1, T, T]));
  assert.ok(maxAbsDiff(gShared, tf.sum(tf.sum(expected, 1, true), 0, true)) < 1e-5);
  tf.dispose([x, ones, gM, P, gP, expected, gShared]);
  store.dispose();
});

test('no tensor leak across forward + backward (with probs, masks, padding, context)', async () => {
  const { store, layer } = mha('causal', { rope: true });
  const c = mha('cross', { contextDim: 5, seed: 2 });
  const x = randn([2, 4, D], 1) as tf.Tensor3D;
  const ctx = randn([2, 3, 5], 2) as tf.Tensor3D;
  const m = tf.ones([2, H, 4, 4]);
  await assertNoTensorLeak(() => {
    for (const s of [store, c.store]) {
      const { value, grads } = s.variableGrads(() => {
        const r = layer.forward(x, { attnMask: m, returnProbs: true });
        const y = c.layer.forward(r.out, { context: ctx, returnProbs: true });
        return tf.add(projLoss(y.out), tf.sum(r.probs as tf.Tensor)) as tf.Scalar;
      });
      value.dispose();
      Object.values(grads).forEach((g) => g.dispose());
    }
  });
  tf.dispose([x, ctx, m]);
  store.dispose();
  c.store.dispose();
});

// ---------------------------------------------------------------------------------------------
// Grouped-query attention, explicit head width, separate q/k/v and o biases
// ---------------------------------------------------------------------------------------------

/** The layouts Llama and Qwen2 checkpoints use beyond plain multi-head attention. */
const GQA_CASES = [
  { name: 'GQA 4/2, headDim 6 ≠ dim/heads, q/k/v biases only', dim: 8, heads: 4, kvHeads: 2, headDim: 6, qkvBias: true, outBias: false },
  { name: 'MQA 3/1, headDim 4, dim 10 not a multiple of heads', dim: 10, heads: 3, kvHeads: 1, headDim: 4, qkvBias: false, outBias: true },
  { name: 'GQA 6/3, headDim 8 (the SIMD RoPE width), all biases', dim: 12, heads: 6, kvHeads: 3, headDim: 8, qkvBias: true, outBias: true },
] as const;

function gqa(c: (typeof GQA_CASES)[number], seed = 5, rope = true) {
  const store = new ParamStore(seed);
  const layer = new MultiHeadAttention(store, 'attn', {
    dim: c.dim, heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim, kind: 'causal',
    qkvBias: c.qkvBias, outBias: c.outBias, rope: rope ? new RoPE(c.headDim, 500) : null, initStd: 0.4,
  });
  // biases start at zero; give them values so they count in the checks below
  for (const p of store.list('attn').filter((x) => x.endsWith('.bias'))) {
    const v = store.get(p);
    tf.tidy(() => v.assign(randn([...v.shape], p.length, 0.3)));
  }
  return { store, layer };
}

test('GQA/MQA parameter shapes: q [d, h·hd], k and v [d, kv·hd], o [h·hd, d]; biases where switched on', () => {
  for (const c of GQA_CASES) {
    const { store } = gqa(c);
    const hq = c.heads * c.headDim, hkv = c.kvHeads * c.headDim;
    assert.deepEqual(store.get('attn.q.weight').shape, [c.dim, hq], c.name);
    assert.deepEqual(store.get('attn.k.weight').shape, [c.dim, hkv], c.name);
    assert.deepEqual(store.get('attn.v.weight').shape, [c.dim, hkv], c.name);
    assert.deepEqual(store.get('attn.o.weight').shape, [hq, c.dim], c.name);
    assert.equal(store.has('attn.q.bias') && store.has('attn.k.bias') && store.has('attn.v.bias'), c.qkvBias, c.name);
    assert.equal(store.has('attn.o.bias'), c.outBias, c.name);
    store.dispose();
  }
  const s = new ParamStore(0);
  assert.throws(() => new MultiHeadAttention(s, 'a', { dim: 8, heads: 4, kvHeads: 3, kind: 'causal' }), /kvHeads \(3\) must be a positive divisor of heads \(4\)/);
  assert.throws(() => new MultiHeadAttention(s, 'b', { dim: 8, heads: 4, headDim: 6, kind: 'causal', rope: new RoPE(4) }), /RoPE head width 4 ≠ headDim = 6/);
  assert.throws(() => new MultiHeadAttention(s, 'c', { dim: 8, heads: 4, headDim: 0, kind: 'causal' }), /headDim must be a positive integer/);
  s.dispose();
});

test('GQA/MQA match an independent plain-JS reference: query head h reads key/value head ⌊h / (H/KV)⌋, rotate_half RoPE, causal softmax', () => {
  for (const c of GQA_CASES) {
    const { store, layer } = gqa(c);
    const T = 5, { dim: D, heads: H, kvHeads: KV, headDim: hd } = c;
    const x = randn([1, T, D], 77) as tf.Tensor3D;
    const r = tf.tidy(() => {
      const o = layer.forward(x, { returnProbs: true });
      return { out: Array.from(o.out.dataSync()), probs: o.probs?.shape };
    });
    assert.deepEqual(r.probs, [1, H, T, T], 'one probability row per query head');
    const xs = Array.from(x.dataSync());
    const W = (n: string) => Array.from(store.get(`attn.${n}.weight`).dataSync());
    const B = (n: string, w: number) => (store.has(`attn.${n}.bias`) ? Array.from(store.get(`attn.${n}.bias`).dataSync()) : new Array<number>(w).fill(0));
    const lin = (w: number[], b: number[], row: number[], out: number) =>
      Array.from({ length: out }, (_, j) => b[j] + row.reduce((s, v, k) => s + v * w[k * out + j], 0));
    const rows = Array.from({ length: T }, (_, t) => xs.slice(t * D, t * D + D));
    const q = rows.map((row) => lin(W('q'), B('q', H * hd), row, H * hd));
    const k = rows.map((row) => lin(W('k'), B('k', KV * hd), row, KV * hd));
    const v = rows.map((row) => lin(W('v'), B('v', KV * hd), row, KV * hd));
    const rot = (vec: number[], pos: number) => {
      const half = hd / 2, out = vec.slice();
      for (let i = 0; i < half; i++) {
        const a = pos * Math.pow(500, (-2 * i) / hd);
        out[i] = vec[i] * Math.cos(a) - vec[i + half] * Math.sin(a);
        out[i + half] = vec[i + half] * Math.cos(a) + vec[i] * Math.sin(a);
      }
      return out;
    };
    const merged = rows.map(() => new Array<number>(H * hd).fill(0));
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / (H / KV));
      for (let i = 0; i < T; i++) {
        const qi = rot(q[i].slice(h * hd, h * hd + hd), i);
        const s = Array.from({ length: i + 1 }, (_, j) => {
          const kj = rot(k[j].slice(kvh * hd, kvh * hd + hd), j);
          return qi.reduce((acc, val, c2) => acc + val * kj[c2], 0) / Math.sqrt(hd);
        });
        const m = Math.max(...s);
        const e = s.map((z) => Math.exp(z - m));
        const z = e.reduce((a, b2) => a + b2, 0);
        for (let j = 0; j <= i; j++) for (let c2 = 0; c2 < hd; c2++) merged[i][h * hd + c2] += (e[j] / z) * v[j][kvh * hd + c2];
      }
    }
    const want = merged.flatMap((row) => lin(W('o'), B('o', D), row, D));
    want.forEach((w, i) => assert.ok(Math.abs(r.out[i] - w) < 1e-4, `${c.name}: out[${i}] = ${r.out[i]}, reference ${w}`));
    x.dispose();
    store.dispose();
  }
});

test('GQA/MQA causality: changing token t+1 leaves outputs at positions ≤ t exactly unchanged', () => {
  for (const c of GQA_CASES) {
    const { store, layer } = gqa(c, 8);
    const T = 6;
    for (const t of [0, 3]) {
      tf.tidy(() => {
        const x = randn([2, T, c.dim], 40);
        const changed = tf.concat([tf.slice(x, [0, 0, 0], [2, t + 1, c.dim]), randn([2, T - t - 1, c.dim], 41 + t)], 1);
        const a = layer.forward(x as tf.Tensor3D).out;
        const b = layer.forward(changed as tf.Tensor3D).out;
        assert.equal(maxAbsDiff(tf.slice(a, [0, 0, 0], [2, t + 1, c.dim]), tf.slice(b, [0, 0, 0], [2, t + 1, c.dim])), 0, `${c.name} t=${t}`);
        assert.ok(maxAbsDiff(tf.slice(a, [0, t + 1, 0], [2, 1, c.dim]), tf.slice(b, [0, t + 1, 0], [2, 1, c.dim])) > 1e-4);
      });
    }
    store.dispose();
  }
});

test('GQA/MQA gradients vs finite differences (parameters incl. biases, input, saliency mask)', () => {
  for (const c of GQA_CASES) {
    const { store, layer } = gqa(c, 9);
    const x = randn([2, 4, c.dim], 50) as tf.Tensor3D;
    const f = (xx: tf.Tensor, m?: tf.Tensor) => layer.forward(xx as tf.Tensor3D, { attnMask: m }).out;
    checkParamGrads(store, () => projLoss(f(x)), { directions: 3 });
    checkInputGrad(x, (xx) => projLoss(f(xx)));
    const m = tf.ones([2, c.heads, 4, 4]);
    checkInputGrad(m, (mm) => projLoss(f(x, mm)));
    tf.dispose([x, m]);
    store.dispose();
  }
});

test('defaults are unchanged: spelling out kvHeads = heads, headDim = dim/heads and both bias switches gives the same parameters and bit-identical outputs', () => {
  for (const bias of [true, false]) {
    const a = new ParamStore(12), b = new ParamStore(12);
    const la = new MultiHeadAttention(a, 'attn', { dim: 16, heads: 2, kind: 'causal', bias, rope: new RoPE(8), initStd: 0.3 });
    const lb = new MultiHeadAttention(b, 'attn', { dim: 16, heads: 2, kvHeads: 2, headDim: 8, qkvBias: bias, outBias: bias, kind: 'causal', bias, rope: new RoPE(8), initStd: 0.3 });
    assert.deepEqual(a.list(), b.list());
    tf.tidy(() => {
      const x = randn([2, 5, 16], 3) as tf.Tensor3D;
      assert.deepEqual(Array.from(la.forward(x).out.dataSync()), Array.from(lb.forward(x).out.dataSync()));
    });
    a.dispose();
    b.dispose();
  }
});

test('no tensor leak across GQA forward + backward', async () => {
  const { store, layer } = gqa(GQA_CASES[0]);
  const x = randn([2, 4, 8], 1) as tf.Tensor3D;
  await assertNoTensorLeak(() => {
    const { value, grads } = store.variableGrads(() => {
      const r = layer.forward(x, { returnProbs: true });
      return tf.add(projLoss(r.out), tf.sum(r.probs as tf.Tensor)) as tf.Scalar;
    });
    value.dispose();
    Object.values(grads).forEach((g) => g.dispose());
  });
  x.dispose();
  store.dispose();
});
