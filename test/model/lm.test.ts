import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf, assertNoTensorLeak } from '../../src/backend';
import { ParamStore } from '../../src/model/params';
import { DecoderLM, lmLayout, resolveLMConfig, tokenAt, type LMConfig } from '../../src/model/lm';
import { setSimd } from '../../src/backend/wasm-simd';
import { ropeKernelAvailable } from '../../src/backend/rope-kernel';
import { rmsNormKernelAvailable } from '../../src/backend/rmsnorm-kernel';
import { gateKernelAvailable } from '../../src/backend/gate-kernel';
import { checkInputGrad, checkParamGrads, maxAbsDiff, projLoss, randn } from './helpers';

let defaultBackend = '';
before(async () => {
  defaultBackend = (await initBackend()).name;
});

const CFG: LMConfig = { vocabSize: 11, dim: 8, nLayers: 2, nHeads: 2, mlpHidden: 12 };

function ids(rows: number[][]): tf.Tensor2D {
  return tf.tensor2d(rows, [rows.length, rows[0].length], 'int32');
}

test('LM config defaults and validation', () => {
  const r = resolveLMConfig({ vocabSize: 100 });
  assert.deepEqual(r, { vocabSize: 100, dim: 128, nLayers: 4, nHeads: 4, mlpHidden: 344, ropeTheta: 10000, normEps: 1e-6, attnBias: false, initStd: 0.02 });
  assert.throws(() => resolveLMConfig({ vocabSize: 10, dim: 12, nHeads: 4 }), /must be an even integer/);
  assert.throws(() => resolveLMConfig({ vocabSize: 0 }), /vocabSize must be a positive integer/);
});

test('parameter paths and shapes follow the LLaMA layout', () => {
  const s = new ParamStore(0);
  new DecoderLM(CFG, s);
  const perLayer = ['attn.k.weight', 'attn.o.weight', 'attn.q.weight', 'attn.v.weight', 'attn_norm.weight', 'mlp.down.weight', 'mlp.gate.weight', 'mlp.up.weight', 'mlp_norm.weight'];
  assert.deepEqual(s.list('lm'), [
    'lm.embed.weight', 'lm.head.weight',
    ...perLayer.map((p) => `lm.layers.0.${p}`), ...perLayer.map((p) => `lm.layers.1.${p}`),
    'lm.norm.weight',
  ]);
  assert.deepEqual(s.get('lm.embed.weight').shape, [11, 8]);
  assert.deepEqual(s.get('lm.head.weight').shape, [8, 11]);
  assert.deepEqual(s.get('lm.layers.1.mlp.down.weight').shape, [12, 8]);
  // embeddings 88 + head 88 + final norm 8 + 2 × (4·64 + 2·8 + 3·96)
  assert.equal(s.numParams(), 88 + 88 + 8 + 2 * (256 + 16 + 288));
  const other = new ParamStore(0);
  new DecoderLM(CFG, other, 'text');
  assert.ok(other.has('text.layers.1.attn.q.weight'));
  s.dispose();
  other.dispose();
});

test('shapes: embed, forward (hidden states, attentions on request), logits; hiddenStates[0] is the input', () => {
  const s = new ParamStore(1);
  const lm = new DecoderLM(CFG, s);
  tf.tidy(() => {
    const e = lm.embed(ids([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]));
    assert.deepEqual(e.shape, [2, 5, 8]);
    // embed is a row lookup
    assert.deepEqual(Array.from(tf.slice(e, [1, 2, 0], [1, 1, 8]).dataSync()), Array.from(tf.slice(s.get('lm.embed.weight'), [8, 0], [1, 8]).dataSync()));
    const r = lm.forward(e);
    assert.deepEqual(r.last.shape, [2, 5, 8]);
    assert.equal(r.hiddenStates.length, 3);
    r.hiddenStates.forEach((h) => assert.deepEqual(h.shape, [2, 5, 8]));
    assert.equal(r.attentions, undefined);
    assert.equal(maxAbsDiff(r.hiddenStates[0], e), 0);
    assert.ok(maxAbsDiff(r.last, lm.norm.apply(r.hiddenStates[2])) < 1e-6);
    const ra = lm.forward(e, { returnAttentions: true });
    assert.equal(ra.attentions?.length, 2);
    ra.attentions?.forEach((a) => assert.deepEqual(a.shape, [2, 2, 5, 5]));
    assert.equal(maxAbsDiff(ra.last, r.last), 0);
    assert.deepEqual(lm.logits(r.last).shape, [2, 5, 11]);
    assert.throws(() => lm.embed(tf.tensor2d([[1, 2]])), /ids must be int32/);
    assert.throws(() => lm.forward(tf.zeros([1, 3, 7]) as tf.Tensor3D), /inputsEmbeds must be \[b, t, 8\]/);
  });
  s.dispose();
});

test('causality through the whole stack: changing token t+1 leaves hidden states ≤ t exactly unchanged', () => {
  const s = new ParamStore(2);
  const lm = new DecoderLM({ ...CFG, initStd: 0.3 }, s);
  tf.tidy(() => {
    const a = lm.forward(lm.embed(ids([[1, 2, 3, 4, 5, 6]])));
    const b = lm.forward(lm.embed(ids([[1, 2, 3, 9, 0, 7]])));
    for (let l = 0; l <= 2; l++) {
      assert.equal(maxAbsDiff(tf.slice(a.hiddenStates[l], [0, 0, 0], [1, 3, 8]), tf.slice(b.hiddenStates[l], [0, 0, 0], [1, 3, 8])), 0);
    }
    assert.equal(maxAbsDiff(tf.slice(a.last, [0, 0, 0], [1, 3, 8]), tf.slice(b.last, [0, 0, 0], [1, 3, 8])), 0);
    assert.ok(maxAbsDiff(tf.slice(a.last, [0, 3, 0], [1, 1, 8]), tf.slice(b.last, [0, 3, 0], [1, 1, 8])) > 1e-3);
  });
  s.dispose();
});

test('right padding: the state at the last real token does not depend on the pads after it', () => {
  const s = new ParamStore(3);
  const lm = new DecoderLM({ ...CFG, initStd: 0.3 }, s);
  tf.tidy(() => {
    const padded = lm.forward(lm.embed(ids([[4, 5, 6, 0, 0], [1, 2, 3, 4, 5]]))).last;
    const alone = lm.forward(lm.embed(ids([[4, 5, 6]]))).last;
    assert.ok(maxAbsDiff(tf.slice(padded, [0, 2, 0], [1, 1, 8]), tf.slice(alone, [0, 2, 0], [1, 1, 8])) < 1e-5);
  });
  s.dispose();
});

test('per-layer attention masks: ones change nothing, zeros do, wrong count is rejected, gradients flow to every layer', () => {
  const s = new ParamStore(4);
  const lm = new DecoderLM({ ...CFG, initStd: 0.3 }, s);
  const e = lm.embed(ids([[1, 2, 3, 4], [5, 6, 7, 8]]));
  tf.tidy(() => {
    const base = lm.forward(e).last;
    const ones = [tf.ones([2, 2, 4, 4]), tf.ones([1, 1, 4, 4])];
    assert.equal(maxAbsDiff(lm.forward(e, { attnMasks: ones }).last, base), 0);
    const off = lm.forward(e, { attnMasks: [tf.ones([1, 1, 4, 4]), tf.zeros([1, 1, 4, 4])] });
    assert.ok(maxAbsDiff(off.last, base) > 1e-3);
    // a zeroed layer adds only its MLP branch: hidden state 1 is unchanged
    assert.equal(maxAbsDiff(off.hiddenStates[1], lm.forward(e).hiddenStates[1]), 0);
    assert.throws(() => lm.forward(e, { attnMasks: [tf.ones([1, 1, 4, 4])] }), /one per layer \(2\)/);
  });
  const loss = (m0: tf.Tensor, m1: tf.Tensor) => projLoss(lm.forward(e, { attnMasks: [m0, m1] }).last);
  const m = [tf.ones([2, 2, 4, 4]), tf.ones([2, 2, 4, 4])];
  const grads = tf.grads(loss)(m);
  const attn = tf.tidy(() => lm.forward(e, { returnAttentions: true }).attentions as tf.Tensor4D[]);
  for (let l = 0; l < 2; l++) {
    const g = grads[l].arraySync() as number[][][][];
    assert.ok(Math.abs(g[1][0][3][1]) > 1e-5, `layer ${l} mask gradient is zero`);
    assert.equal(Math.abs(g[0][1][1][3]), 0); // future entries carry no saliency
    // finite difference on one entry (affine in that entry)
    const eps = 0.05;
    const num = tf.tidy(() => {
      const d = tf.buffer([2, 2, 4, 4]);
      d.set(eps, 1, 0, 3, 1);
      const dt = d.toTensor();
      const shifted = (sign: number) => m.map((t, i) => (i === l ? tf.add(t, tf.mul(dt, sign)) : t));
      const [p0, p1] = shifted(1), [n0, n1] = shifted(-1);
      return (loss(p0, p1).dataSync()[0] - loss(n0, n1).dataSync()[0]) / (2 * eps);
    });
    assert.ok(Math.abs(num - g[1][0][3][1]) < 2e-2 * Math.abs(num) + 1e-5, `layer ${l}: ${g[1][0][3][1]} vs ${num}`);
    // zero saliency exactly where the attention is zero
    const a = attn[l].arraySync() as number[][][][];
    assert.equal(a[0][1][1][3], 0);
  }
  tf.dispose([e, ...m, ...grads, ...attn]);
  s.dispose();
});

test('gradients vs finite differences through embed → LM → logits (cpu backend: wasm lacks the gather gradient without the backend kernel)', async () => {
  await initBackend('cpu');
  try {
    const s = new ParamStore(5);
    const lm = new DecoderLM({ ...CFG, initStd: 0.3 }, s);
    const x = ids([[1, 2, 3, 4], [5, 6, 7, 0]]);
    checkParamGrads(s, () => projLoss(lm.logits(lm.forward(lm.embed(x)).last)), { directions: 3 });
    const e = randn([2, 4, 8], 6);
    checkInputGrad(e, (ee) => projLoss(lm.forward(ee as tf.Tensor3D).last));
    // frozen embeddings receive no gradient
    s.setTrainable('lm.embed', false);
    const { value, grads } = s.variableGrads(() => projLoss(lm.forward(lm.embed(x)).last));
    assert.ok(!('lm.embed.weight' in grads) && 'lm.layers.0.attn.q.weight' in grads);
    tf.dispose([x, e, value, ...Object.values(grads)]);
    s.dispose();
  } finally {
    await initBackend(defaultBackend);
  }
});

test('no tensor leak across forward + backward (attentions, masks, logits)', async () => {
  const s = new ParamStore(6);
  const lm = new DecoderLM(CFG, s);
  const e = randn([2, 4, 8], 7) as tf.Tensor3D;
  const masks = [tf.ones([1, 1, 4, 4]), tf.ones([1, 1, 4, 4])];
  await assertNoTensorLeak(() => {
    const { value, grads } = s.variableGrads(
      () => {
        const r = lm.forward(e, { attnMasks: masks, returnAttentions: true });
        return tf.add(projLoss(lm.logits(r.last)), tf.sum(r.attentions?.[1] as tf.Tensor)) as tf.Scalar;
      },
      'lm.layers',
    );
    value.dispose();
    Object.values(grads).forEach((g) => g.dispose());
    const r = lm.forward(e, { returnAttentions: true });
    tf.dispose([r.last, ...r.hiddenStates, ...(r.attentions ?? [])]);
  });
  tf.dispose([e, ...masks]);
  s.dispose();
});

test('tokenAt reads one token per example (exact values, gradient only at the chosen rows, bad indices rejected)', () => {
  tf.tidy(() => {
    const h = randn([3, 4, 2], 12) as tf.Tensor3D;
    const got = tokenAt(h, [3, 0, 2]).arraySync();
    const all = h.arraySync() as number[][][];
    assert.deepEqual(got, [all[0][3], all[1][0], all[2][2]]);
    const g = tf.grad((x: tf.Tensor) => tf.sum(tokenAt(x as tf.Tensor3D, [1, 1, 3])))(h).arraySync() as number[][][];
    assert.deepEqual(g[0], [[0, 0], [1, 1], [0, 0], [0, 0]]);
    assert.deepEqual(g[2][3], [1, 1]);
    assert.throws(() => tokenAt(h, [0, 4, 1]), /index\[1\] = 4 is outside 0 … 3/);
    assert.throws(() => tokenAt(h, [0, 1]), /2 indices for a batch of 3/);
  });
});

// ---------------------------------------------------------------------------------------------
// Llama / Qwen2 layouts: GQA and MQA, head width ≠ dim / heads, separate biases, tied or no head
// ---------------------------------------------------------------------------------------------

const VARIANTS: Array<{ name: string; cfg: LMConfig }> = [
  { name: 'GQA 4/2, headDim 6, Qwen2 biases, tied head', cfg: { vocabSize: 11, dim: 8, nLayers: 2, nHeads: 4, nKVHeads: 2, headDim: 6, mlpHidden: 12, qkvBias: true, head: 'tied' } },
  { name: 'MQA 3/1, headDim 4, dim 10, all biases + MLP biases, untied', cfg: { vocabSize: 9, dim: 10, nLayers: 2, nHeads: 3, nKVHeads: 1, headDim: 4, mlpHidden: 14, attnBias: true, mlpBias: true } },
  { name: 'GQA 2/1, headDim 8 (the SIMD widths), no head', cfg: { vocabSize: 7, dim: 8, nLayers: 2, nHeads: 2, nKVHeads: 1, headDim: 8, mlpHidden: 16, oBias: true, head: 'none' } },
];

/** Random values on every bias (they start at zero) so they count in the checks. */
function randomBiases(s: ParamStore): void {
  for (const p of s.list().filter((x) => x.endsWith('.bias'))) {
    const v = s.get(p);
    tf.tidy(() => v.assign(randn([...v.shape], p.length, 0.3)));
  }
}

test('resolved configs carry the new fields only where they differ from their defaults (so default configs serialise as before)', () => {
  const base = resolveLMConfig({ vocabSize: 100 });
  const spelled = resolveLMConfig({ vocabSize: 100, nKVHeads: 4, headDim: 32, qkvBias: false, oBias: false, mlpBias: false, head: 'untied' });
  assert.deepEqual(spelled, base);
  assert.equal(JSON.stringify(spelled), JSON.stringify(base));
  assert.deepEqual(lmLayout(base), { nKVHeads: 4, headDim: 32, qkvBias: false, oBias: false, mlpBias: false, head: 'untied' });
  const qwen = resolveLMConfig({ vocabSize: 10, dim: 8, nHeads: 4, nKVHeads: 2, qkvBias: true, head: 'tied' });
  assert.deepEqual({ nKVHeads: qwen.nKVHeads, qkvBias: qwen.qkvBias, head: qwen.head, oBias: qwen.oBias, headDim: qwen.headDim }, { nKVHeads: 2, qkvBias: true, head: 'tied', oBias: undefined, headDim: undefined });
  // attnBias sets both switches unless one is given
  assert.deepEqual(lmLayout(resolveLMConfig({ vocabSize: 10, dim: 8, nHeads: 2, attnBias: true, oBias: false })), { nKVHeads: 2, headDim: 4, qkvBias: true, oBias: false, mlpBias: false, head: 'untied' });
  // resolving a resolved config changes nothing
  assert.deepEqual(resolveLMConfig(qwen), qwen);
  assert.throws(() => resolveLMConfig({ vocabSize: 10, dim: 8, nHeads: 4, nKVHeads: 3 }), /nKVHeads \(3\) must be a positive divisor of nHeads \(4\)/);
  assert.throws(() => resolveLMConfig({ vocabSize: 10, dim: 10, nHeads: 4, headDim: 5 }), /headDim must be a positive even integer/);
  assert.throws(() => resolveLMConfig({ vocabSize: 10, head: 'shared' as never }), /head must be one of untied, tied, none/);
  // an explicit headDim lifts the dim % nHeads rule
  assert.equal(resolveLMConfig({ vocabSize: 10, dim: 10, nHeads: 3, headDim: 4 }).headDim, 4);
});

test('Llama/Qwen2 layouts: parameter shapes, biases where switched on, head parameter only when untied', () => {
  for (const { name, cfg } of VARIANTS) {
    const s = new ParamStore(0);
    const lm = new DecoderLM(cfg, s);
    const hd = cfg.headDim!, q = cfg.nHeads! * hd, kv = cfg.nKVHeads! * hd, d = cfg.dim!;
    assert.deepEqual(s.get('lm.layers.1.attn.q.weight').shape, [d, q], name);
    assert.deepEqual(s.get('lm.layers.1.attn.k.weight').shape, [d, kv], name);
    assert.deepEqual(s.get('lm.layers.1.attn.o.weight').shape, [q, d], name);
    const l = lm.layout;
    assert.equal(s.has('lm.layers.0.attn.v.bias'), l.qkvBias, name);
    assert.equal(s.has('lm.layers.0.attn.o.bias'), l.oBias, name);
    assert.equal(s.has('lm.layers.0.mlp.down.bias'), l.mlpBias, name);
    assert.equal(s.has('lm.head.weight'), l.head === 'untied', name);
    assert.equal(lm.head !== null, l.head === 'untied', name);
    assert.equal(lm.rope.headDim, hd);
    s.dispose();
  }
});

test('a default config and the same config spelled out build identical parameters and bit-identical outputs', () => {
  const a = new ParamStore(7), b = new ParamStore(7);
  const la = new DecoderLM({ ...CFG, initStd: 0.3 }, a);
  const lb = new DecoderLM({ ...CFG, initStd: 0.3, nKVHeads: 2, headDim: 4, qkvBias: false, oBias: false, mlpBias: false, head: 'untied' }, b);
  assert.deepEqual(a.list(), b.list());
  tf.tidy(() => {
    const x = ids([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]);
    assert.deepEqual(Array.from(la.logits(la.forward(la.embed(x)).last).dataSync()), Array.from(lb.logits(lb.forward(lb.embed(x)).last).dataSync()));
  });
  a.dispose();
  b.dispose();
});

test('tied logits are h·Eᵀ; a model without a head refuses logits', () => {
  const s = new ParamStore(8);
  const lm = new DecoderLM(VARIANTS[0].cfg, s);
  tf.tidy(() => {
    const h = randn([2, 3, 8], 4) as tf.Tensor3D;
    const got = lm.logits(h);
    assert.deepEqual(got.shape, [2, 3, 11]);
    const hs = h.dataSync(), e = lm.embedding.dataSync(), g = got.dataSync();
    for (let r = 0; r < 6; r++) {
      for (let v = 0; v < 11; v++) {
        let want = 0;
        for (let d = 0; d < 8; d++) want += hs[r * 8 + d] * e[v * 8 + d];
        assert.ok(Math.abs(g[r * 11 + v] - want) < 1e-5);
      }
    }
  });
  const none = new DecoderLM(VARIANTS[2].cfg, s, 'other');
  assert.throws(() => tf.tidy(() => none.logits(tf.zeros([1, 2, 8]) as tf.Tensor3D)), /has no LM head \(head: 'none'\)/);
  s.dispose();
});

test('causality through the whole stack for GQA, MQA, headDim ≠ dim/heads and biases', () => {
  for (const { name, cfg } of VARIANTS) {
    const s = new ParamStore(2);
    const lm = new DecoderLM({ ...cfg, initStd: 0.3 }, s);
    randomBiases(s);
    const d = cfg.dim!;
    tf.tidy(() => {
      const a = lm.forward(lm.embed(ids([[1, 2, 3, 4, 5, 6]])));
      const b = lm.forward(lm.embed(ids([[1, 2, 3, 6, 0, 5]])));
      for (let l = 0; l <= 2; l++) {
        assert.equal(maxAbsDiff(tf.slice(a.hiddenStates[l], [0, 0, 0], [1, 3, d]), tf.slice(b.hiddenStates[l], [0, 0, 0], [1, 3, d])), 0, `${name} layer ${l}`);
      }
      assert.equal(maxAbsDiff(tf.slice(a.last, [0, 0, 0], [1, 3, d]), tf.slice(b.last, [0, 0, 0], [1, 3, d])), 0, name);
      assert.ok(maxAbsDiff(tf.slice(a.last, [0, 3, 0], [1, 1, d]), tf.slice(b.last, [0, 3, 0], [1, 1, d])) > 1e-3, name);
    });
    s.dispose();
  }
});

test('gradients vs finite differences for GQA, MQA, headDim ≠ dim/heads, biases and a tied head (cpu backend, as above)', async () => {
  await initBackend('cpu');
  try {
    for (const { cfg } of VARIANTS) {
      const s = new ParamStore(5);
      const lm = new DecoderLM({ ...cfg, initStd: 0.3 }, s);
      randomBiases(s);
      const x = ids([[1, 2, 3, 4], [5, 6, 0, 1]]);
      const out = (h: tf.Tensor3D) => (lm.layout.head === 'none' ? h : lm.logits(h));
      checkParamGrads(s, () => projLoss(out(lm.forward(lm.embed(x)).last)), { directions: 3 });
      const e = randn([2, 4, cfg.dim!], 6);
      checkInputGrad(e, (ee) => projLoss(lm.forward(ee as tf.Tensor3D).last));
      tf.dispose([x, e]);
      s.dispose();
    }
  } finally {
    await initBackend(defaultBackend);
  }
});

test('the wasm SIMD kernels (RoPE, RMSNorm, gate) still apply to GQA models and agree with the tfjs-op path', async (t) => {
  if (defaultBackend !== 'wasm') {
    t.skip(`the kernels are wasm-only; the backend here is ${defaultBackend}`);
    return;
  }
  const s = new ParamStore(9);
  const lm = new DecoderLM({ ...VARIANTS[2].cfg, initStd: 0.3 }, s);
  randomBiases(s);
  const x = ids([[1, 2, 3, 4, 5], [6, 0, 1, 2, 3]]);
  const run = (on: boolean) => {
    setSimd(on);
    try {
      assert.equal(ropeKernelAvailable(8), on);
      assert.equal(rmsNormKernelAvailable(8), on);
      assert.equal(gateKernelAvailable(), on);
      return tf.tidy(() => Array.from(lm.forward(lm.embed(x)).last.dataSync()));
    } finally {
      setSimd(true);
    }
  };
  const k = run(true), o = run(false);
  k.forEach((v, i) => assert.ok(Math.abs(v - o[i]) < 1e-5, `last[${i}]: kernel ${v}, ops ${o[i]}`));
  x.dispose();
  s.dispose();
});
