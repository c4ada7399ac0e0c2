import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf, assertNoTensorLeak } from '../../src/backend';
import { ParamStore } from '../../src/model/params';
import { ViT, patchify, resolveViTConfig, type ViTConfig } from '../../src/model/vit';
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
