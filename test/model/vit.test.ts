import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf, assertNoTensorLeak } from '../../src/backend';
import { ParamStore } from '../../src/model/params';
import { ViT, patchify, resolveViTConfig, vitArchitecture, VIT_ARCHITECTURE_DEFAULTS, type ViTConfig } from '../../src/model/vit';
import { checkInputGrad, checkParamGrads, maxAbsDiff, projLoss, randn } from './helpers';

before(async () => {
  await initBackend();
});

const CFG: ViTConfig = { imageSize: 4, patchSize: 2, channels: 3, dim: 8, depth: 2, heads: 2, mlpRatio: 2 };

test('patchify matches a plain-JS patch extraction (row-major grid, features (py, px, c))', () => {
  const [B, Hh, Ww, C, p] = [2, 4, 6, 3, 2];
  const img = randn([B, Hh, Ww, C], 1) as tf.Tensor4D;
  const px = Array.from(img.dataSync());
  const got = tf.tidy(() => patchify(img, p));
  assert.deepEqual(got.shape, [B, 6, p * p * C]);
  const g = Array.from(got.dataSync());
  const gw = Ww / p;
  for (let b = 0; b < B; b++) for (let gy = 0; gy < Hh / p; gy++) for (let gx = 0; gx < gw; gx++) {
    for (let py = 0; py < p; py++) for (let pxx = 0; pxx < p; pxx++) for (let c = 0; c < C; c++) {
      const want = px[((b * Hh + gy * p + py) * Ww + gx * p + pxx) * C + c];
      const at = ((b * 6 + gy * gw + gx) * p * p * C) + (py * p + pxx) * C + c;
      assert.equal(g[at], want);
    }
  }
  assert.throws(() => patchify(tf.zeros([1, 5, 4, 3]) as tf.Tensor4D, 2), /not divisible into 2×2/);
  tf.dispose([img, got]);
});

test('ViT config defaults and validation', () => {
  assert.deepEqual(resolveViTConfig({}), { imageSize: 32, patchSize: 8, channels: 3, dim: 64, depth: 2, heads: 4, mlpRatio: 4, normEps: 1e-5, initStd: 0.02 });
  assert.throws(() => resolveViTConfig({ imageSize: 30, patchSize: 8 }), /patchSize \(8\) must divide imageSize \(30\)/);
  assert.throws(() => resolveViTConfig({ dim: 10, heads: 4 }), /heads \(4\) must divide dim \(10\)/);
});

test('parameter paths and shapes', () => {
  const s = new ParamStore(0);
  new ViT(CFG, s);
  assert.deepEqual(s.get('vit.patch_embed.weight').shape, [12, 8]);
  assert.deepEqual(s.get('vit.cls').shape, [8]);
  assert.deepEqual(s.get('vit.pos').shape, [5, 8]);
  assert.deepEqual(s.get('vit.blocks.1.mlp.fc1.weight').shape, [8, 16]);
  for (const p of ['vit.blocks.0.mlp.fc1.bias', 'vit.blocks.0.attn.q.bias', 'vit.blocks.1.norm2.weight', 'vit.norm_pre.bias', 'vit.norm.weight']) assert.ok(s.has(p), p);
  assert.equal(s.list('vit.blocks.2').length, 0);
  s.dispose();
});

test('shapes and layer choice: 0 … depth and negative indices; −1 is the last layer; layer 0 ignores the blocks', () => {
  const s = new ParamStore(1);
  const vit = new ViT({ ...CFG, initStd: 0.3 }, s);
  const img = randn([2, 4, 4, 3], 2) as tf.Tensor4D;
  tf.tidy(() => {
    const outs = [0, 1, 2].map((layer) => vit.forward(img, { layer }));
    for (const o of outs) {
      assert.deepEqual(o.cls.shape, [2, 8]);
      assert.deepEqual(o.patches.shape, [2, 4, 8]);
    }
    const last = vit.forward(img);
    assert.equal(maxAbsDiff(last.cls, outs[2].cls), 0);
    assert.equal(maxAbsDiff(vit.forward(img, { layer: -2 }).patches, outs[1].patches), 0);
    assert.equal(maxAbsDiff(vit.forward(img, { layer: -3 }).patches, outs[0].patches), 0);
    assert.ok(maxAbsDiff(outs[1].cls, outs[2].cls) > 1e-3);
    // perturbing the blocks leaves layer 0 unchanged and changes layer 2
    const w = s.get('vit.blocks.0.mlp.fc2.weight');
    const saved = w.clone();
    w.assign(tf.add(w, randn([...w.shape], 77, 0.5))); // random: a constant shift would be undone by the next LayerNorm
    assert.equal(maxAbsDiff(vit.forward(img, { layer: 0 }).patches, outs[0].patches), 0);
    assert.ok(maxAbsDiff(vit.forward(img).patches, outs[2].patches) > 1e-3);
    w.assign(saved);
    assert.throws(() => vit.forward(img, { layer: 3 }), /layer 3 is out of range; valid are 0 … 2 or −1 … −3/);
    assert.throws(() => vit.forward(tf.zeros([1, 4, 4, 1]) as tf.Tensor4D), /images must be \[b, 4, 4, 3\] \(NHWC\)/);
  });
  img.dispose();
  s.dispose();
});

test('at layer 0, changing the pixels of one patch changes only that patch token (exactly)', () => {
  const s = new ParamStore(2);
  const vit = new ViT({ ...CFG, initStd: 0.3 }, s);
  tf.tidy(() => {
    const img = randn([1, 4, 4, 3], 3) as tf.Tensor4D;
    // patch (row 1, col 0) = token index 2 covers rows 2–3, columns 0–1
    const delta = tf.pad(tf.ones([1, 2, 2, 3]), [[0, 0], [2, 0], [0, 2], [0, 0]]);
    const a = vit.forward(img, { layer: 0 }), b = vit.forward(tf.add(img, delta) as tf.Tensor4D, { layer: 0 });
    assert.equal(maxAbsDiff(a.cls, b.cls), 0);
    for (let t = 0; t < 4; t++) {
      const d = maxAbsDiff(tf.slice(a.patches, [0, t, 0], [1, 1, 8]), tf.slice(b.patches, [0, t, 0], [1, 1, 8]));
      if (t === 2) assert.ok(d > 1e-3); else assert.equal(d, 0);
    }
  });
  s.dispose();
});

test('gradients vs finite differences (parameters and pixels, CLS and patch read-outs)', () => {
  const s = new ParamStore(3);
  const vit = new ViT({ ...CFG, initStd: 0.3 }, s);
  const img = randn([2, 4, 4, 3], 4);
  const loss = (x: tf.Tensor) => {
    const o = vit.forward(x as tf.Tensor4D);
    return tf.add(projLoss(o.cls, 1), projLoss(o.patches, 2)) as tf.Scalar;
  };
  checkParamGrads(s, () => loss(img), { directions: 3 });
  checkInputGrad(img, loss);
  img.dispose();
  s.dispose();
});

test('no tensor leak across forward + backward', async () => {
  const s = new ParamStore(4);
  const vit = new ViT(CFG, s);
  const img = randn([2, 4, 4, 3], 5) as tf.Tensor4D;
  await assertNoTensorLeak(() => {
    const { value, grads } = s.variableGrads(() => projLoss(vit.forward(img, { layer: -2 }).patches));
    value.dispose();
    Object.values(grads).forEach((g) => g.dispose());
    const o = vit.forward(img);
    tf.dispose([o.cls, o.patches]);
  });
  img.dispose();
  s.dispose();
});

/** CLIP's layout (quick GELU, no patch bias, final norm on the pooled CLS, a projection) and SigLIP's (no CLS, no pre-norm, tanh GELU, attention pooling). */
const CLIP_LIKE: ViTConfig = { ...CFG, mlpRatio: undefined, mlpDim: 12, patchBias: false, activation: 'quick_gelu', finalNorm: 'pooled', projectionDim: 5 };
const SIGLIP_LIKE: ViTConfig = { ...CFG, classToken: false, preNorm: false, activation: 'gelu_tanh', pooling: 'attention', normEps: 1e-6 };

test('architecture fields: resolved only where they depart from the defaults, idempotent, validated', () => {
  for (const cfg of [{}, CFG, { ...CFG, ...VIT_ARCHITECTURE_DEFAULTS }]) {
    const r = resolveViTConfig(cfg);
    assert.deepEqual(Object.keys(r).sort(), ['channels', 'depth', 'dim', 'heads', 'imageSize', 'initStd', 'mlpRatio', 'normEps', 'patchSize']);
  }
  const sig = resolveViTConfig(SIGLIP_LIKE);
  assert.deepEqual({ classToken: sig.classToken, preNorm: sig.preNorm, activation: sig.activation, pooling: sig.pooling, patchBias: sig.patchBias }, { classToken: false, preNorm: false, activation: 'gelu_tanh', pooling: 'attention', patchBias: undefined });
  assert.deepEqual(resolveViTConfig(sig), sig);
  const clip = resolveViTConfig(CLIP_LIKE);
  assert.equal(clip.mlpRatio, 1.5);
  assert.equal(clip.mlpDim, undefined, 'a width the ratio reproduces is not kept twice');
  assert.deepEqual(resolveViTConfig(clip), clip);
  assert.deepEqual(vitArchitecture(clip), { patchBias: false, classToken: true, preNorm: true, activation: 'quick_gelu', finalNorm: 'pooled', pooling: 'cls', projectionDim: 5 });
  assert.throws(() => resolveViTConfig({ classToken: false }), /pooling 'cls' needs classToken true; without a CLS token use pooling 'attention'/);
  assert.throws(() => resolveViTConfig({ activation: 'relu' as never }), /activation "relu" is not one of gelu, gelu_tanh, quick_gelu/);
  assert.throws(() => resolveViTConfig({ finalNorm: 'none' as never }), /finalNorm "none" is not one of all, pooled/);
  assert.throws(() => resolveViTConfig({ pooling: 'mean' as never }), /pooling "mean" is not one of cls, attention/);
  assert.throws(() => resolveViTConfig({ projectionDim: -1 }), /projectionDim must be a non-negative integer/);
  assert.throws(() => resolveViTConfig({ dim: 8, mlpDim: 12, mlpRatio: 2 }), /mlpRatio \(2\) × dim \(8\) ≠ mlpDim \(12\)/);
});

test('architecture fields: parameter paths and shapes of a CLIP-like and a SigLIP-like tower', () => {
  const s = new ParamStore(0);
  new ViT(CLIP_LIKE, s, 'c');
  assert.ok(!s.has('c.patch_embed.bias') && s.has('c.cls') && s.has('c.norm_pre.weight') && !s.has('c.head.probe'));
  assert.deepEqual(s.get('c.blocks.0.mlp.fc1.weight').shape, [8, 12]);
  assert.deepEqual(s.get('c.proj.weight').shape, [8, 5]);
  assert.ok(!s.has('c.proj.bias'));
  const v = new ViT(SIGLIP_LIKE, s, 'g');
  assert.equal(v.numTokens, 4);
  assert.deepEqual(s.get('g.pos').shape, [4, 8]);
  assert.ok(s.has('g.patch_embed.bias') && !s.has('g.cls') && !s.has('g.norm_pre.weight') && !s.has('g.proj.weight'));
  assert.deepEqual(s.list('g.head'), [
    'g.head.attn.k.bias', 'g.head.attn.k.weight', 'g.head.attn.o.bias', 'g.head.attn.o.weight', 'g.head.attn.q.bias', 'g.head.attn.q.weight',
    'g.head.attn.v.bias', 'g.head.attn.v.weight', 'g.head.mlp.fc1.bias', 'g.head.mlp.fc1.weight', 'g.head.mlp.fc2.bias', 'g.head.mlp.fc2.weight',
    'g.head.norm.bias', 'g.head.norm.weight', 'g.head.probe',
  ]);
  s.dispose();
});

test('architecture fields: what forward returns — CLIP-like un-normed patches and normed pooled CLS; SigLIP-like pooled output over all tokens', () => {
  const s = new ParamStore(5);
  const clip = new ViT({ ...CLIP_LIKE, initStd: 0.3 }, s, 'c');
  const sig = new ViT({ ...SIGLIP_LIKE, initStd: 0.3 }, s, 'g');
  const img = randn([2, 4, 4, 3], 6) as tf.Tensor4D;
  tf.tidy(() => {
    const o = clip.forward(img);
    const tr = clip.trace(img);
    assert.equal(tr.hiddenStates.length, 3);
    assert.equal(maxAbsDiff(o.patches, tf.slice(tr.hiddenStates[2], [0, 1, 0], [-1, -1, -1])), 0);
    assert.equal(maxAbsDiff(o.cls, clip.norm.apply(tf.reshape(tf.slice(tr.hiddenStates[2], [0, 0, 0], [-1, 1, -1]), [2, 8]))), 0);
    assert.equal(maxAbsDiff(o.projected!, tf.matMul(o.cls, clip.proj!.weight as tf.Tensor2D)), 0);
    assert.equal(maxAbsDiff(tr.hiddenStates[0], clip.normPre!.apply(tr.embeddings)), 0);
    const g = sig.forward(img);
    const gt = sig.trace(img);
    assert.deepEqual(g.patches.shape, [2, 4, 8]);
    assert.equal(g.projected, undefined);
    assert.equal(maxAbsDiff(g.patches, sig.norm.apply(gt.hiddenStates[2])), 0);
    assert.equal(maxAbsDiff(g.cls, sig.head!.apply(g.patches)), 0);
    assert.equal(maxAbsDiff(gt.hiddenStates[0], gt.embeddings), 0); // no pre-norm
    // the pooled output reads every token: perturbing one patch's pixels moves it
    const delta = tf.pad(tf.ones([1, 2, 2, 3]), [[1, 0], [2, 0], [0, 2], [0, 0]]);
    assert.ok(maxAbsDiff(sig.forward(tf.add(img, delta) as tf.Tensor4D).cls, g.cls) > 1e-3);
  });
  img.dispose();
  s.dispose();
});

test('architecture fields: gradients vs finite differences (attention pooling head, pooled final norm, projection)', () => {
  for (const cfg of [CLIP_LIKE, SIGLIP_LIKE]) {
    const s = new ParamStore(7);
    const vit = new ViT({ ...cfg, initStd: 0.3 }, s);
    const img = randn([2, 4, 4, 3], 8);
    const loss = (x: tf.Tensor) => {
      const o = vit.forward(x as tf.Tensor4D);
      const parts = [projLoss(o.cls, 1), projLoss(o.patches, 2)];
      if (o.projected) parts.push(projLoss(o.projected, 3));
      return tf.addN(parts) as tf.Scalar;
    };
    checkParamGrads(s, () => loss(img), { directions: 3 });
    checkInputGrad(img, loss);
    img.dispose();
    s.dispose();
  }
});

test('architecture fields: no tensor leak across forward, trace and backward', async () => {
  const s = new ParamStore(9);
  const vit = new ViT(SIGLIP_LIKE, s);
  const img = randn([2, 4, 4, 3], 10) as tf.Tensor4D;
  await assertNoTensorLeak(() => {
    const { value, grads } = s.variableGrads(() => projLoss(vit.forward(img).cls));
    value.dispose();
    Object.values(grads).forEach((g) => g.dispose());
    const tr = vit.trace(img);
    tf.dispose([tr.embeddings, ...tr.hiddenStates, tr.lastHiddenState, tr.pooled]);
  });
  img.dispose();
  s.dispose();
});
