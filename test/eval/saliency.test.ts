/**
 * Modality saliency (docs/method.md "Modality saliency") on hand-built models whose answer is known.
 *
 * The hand-worked case: one LM layer with q = k = 0 (uniform causal attention, P[f, j] =
 * 1/(f+1)), no MLP (down = 0), and a rank-1 value map W_v = e_0 ⊗ r, so every token's value
 * is α_j·r with α_j = RMSNorm(x_j)[0]. Then at the final token f
 *
 *   ∂L/∂M[f, j] = P[f, j]·(g_f·W_oᵀ…·r)·α_j = c_e·α_j,   c_e = (per-example constant)/(f+1)
 *
 * and nothing else reaches the loss (one layer, n_m read at f), so per example
 * S_v = |c_e|·α_img, S_t = |c_e|·α_txt, S_o = 0, and after averaging and normalising
 * S_v = α_img / (α_img + α_txt) exactly — whatever the example lengths, unless padding or a
 * wrong span leaks into the means.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { assertNoTensorLeak, initBackend, Rng, tf } from '../../src/backend';
import { ParamStore } from '../../src/model/params';
import { resolveModelConfig, type ModelConfig } from '../../src/model/config';
import { NoteLLM2Model, type ModelInputs } from '../../src/model/notellm2';
import { computeSaliency, multimodalLoss, reduceSaliencyLayer, saliencyMaps, saliencyMatrix } from '../../src/eval/saliency';
import { TAU_PATH, buildInputs } from '../../src/train/representation';
import { PromptEncoder } from '../../src/model/batch';
import { presetConfig } from '../../src/experiments/presets';

const VOCAB = 16;
const PAD = 0;
const vision = { imageSize: 8, patchSize: 4, dim: 16, depth: 1, heads: 2 }; // 4 patches

function build(cfg: ModelConfig, seed = 1): { model: NoteLLM2Model; store: ParamStore } {
  const store = new ParamStore(seed);
  const model = new NoteLLM2Model(resolveModelConfig({ vision, outDim: 4, ...cfg }, VOCAB), store);
  return { model, store };
}

function setParam(store: ParamStore, path: string, values: ArrayLike<number> | number): void {
  const v = store.get(path);
  tf.tidy(() => v.assign(typeof values === 'number' ? tf.fill(v.shape, values) : tf.tensor(Array.from(values), v.shape)));
}

/** Right-padded prompts: `lengths[e]` real tokens each, image slots at imageStart (ids arbitrary there). */
function makeInputs(lengths: number[], opts: { imageStart: number; visualIndex?: number; dv?: number; seed?: number }): ModelInputs {
  const rng = new Rng(opts.seed ?? 7);
  const t = Math.max(...lengths);
  const ids = new Int32Array(lengths.length * t).fill(PAD);
  lengths.forEach((n, e) => {
    for (let j = 0; j < n; j++) ids[e * t + j] = 1 + rng.int(VOCAB - 1);
  });
  const b = lengths.length;
  const dv = opts.dv ?? vision.dim;
  const inputs: ModelInputs = {
    ids: tf.tensor2d(ids, [b, t], 'int32'),
    lastIndex: lengths.map((n) => n - 1),
    visualIndex: opts.visualIndex ?? -1,
    imageStart: opts.imageStart,
  };
  inputs.vision = {
    cls: tf.tensor2d(rng.normalArray(b * dv, 1), [b, dv]),
    tokens: tf.tensor3d(rng.normalArray(b * 5 * dv, 1), [b, 5, dv]),
  };
  return inputs;
}

function disposeInputs(x: ModelInputs): void {
  tf.dispose([x.ids, ...(x.vision ? [x.vision.cls, x.vision.tokens] : [])]);
}

before(async () => {
  await initBackend();
});

test('hand-worked one-layer model: S_v = α_img/(α_img+α_txt), S_o = 0, attention mass = span/(f+1)', async () => {
  const d = 8;
  const { model, store } = build({ earlyFusion: true, connector: { kind: 'mlp' }, lm: { dim: d, nLayers: 1, nHeads: 2 } });
  try {
    assert.equal(model.imageTokens, 4);
    const L = 'lm.layers.0';
    setParam(store, `${L}.attn.q.weight`, 0);
    setParam(store, `${L}.attn.k.weight`, 0);
    setParam(store, `${L}.mlp.down.weight`, 0);
    const rng = new Rng(3);
    const r = rng.normalArray(d, 1);
    const wv = new Float32Array(d * d);
    wv.set(r, 0); // W_v[0, :] = r, other rows 0: v = x[0]·r after the norm
    setParam(store, `${L}.attn.v.weight`, wv);
    // Text tokens: ±1 entries with +1 first (rms 1, so α_txt = 1); pad: huge (must never count).
    const emb = new Float32Array(VOCAB * d);
    for (let id = 0; id < VOCAB; id++) {
      for (let k = 0; k < d; k++) emb[id * d + k] = id === PAD ? 50 : k === 0 ? 1 : rng.next() < 0.5 ? -1 : 1;
    }
    setParam(store, 'lm.embed.weight', emb);
    // Image tokens: the connector's last layer outputs its bias [3, 1, …, 1] for every slot:
    // rms √2, so α_img = 3/√2.
    setParam(store, 'connector.projector.fc2.weight', 0);
    setParam(store, 'connector.projector.fc2.bias', [3, 1, 1, 1, 1, 1, 1, 1]);
    const aImg = 3 / Math.SQRT2;
    const aTxt = 1;

    const lengths = [12, 8, 10, 9, 12, 11]; // 3 pairs, very different padding
    const x = makeInputs(lengths, { imageStart: 1 });
    try {
      const res = await assertNoTensorLeak(() => computeSaliency(model, [x], { tau: 2 }));
      assert.equal(res.layers.length, 1);
      const s = res.layers[0];
      const expSv = aImg / (aImg + aTxt);
      assert.ok(Math.abs(s.sv - expSv) < 1e-4, `S_v ${s.sv} vs hand value ${expSv}`);
      assert.ok(Math.abs(s.st - (1 - expSv)) < 1e-4, `S_t ${s.st} vs ${1 - expSv}`);
      assert.ok(Math.abs(s.so) < 1e-6, `S_o ${s.so} should be 0 with one layer`);
      assert.ok(res.raw[0].sv > 1e-6, 'the gradient reached the masks (non-vacuous)');
      // Uniform attention: mass on the 4 image slots = 4/(f+1), on the text = (f−4)/(f+1).
      const expImg = lengths.reduce((a, n) => a + 4 / n, 0) / lengths.length;
      const expTxt = lengths.reduce((a, n) => a + (n - 1 - 4) / n, 0) / lengths.length;
      assert.ok(Math.abs(s.attnImage - expImg) < 1e-5, `attnImage ${s.attnImage} vs ${expImg}`);
      assert.ok(Math.abs(s.attnText - expTxt) < 1e-5, `attnText ${s.attnText} vs ${expTxt}`);
      assert.equal(res.examples, 6);

      // Per example, I[f, j] = c_e·α_j: equal across text columns, α_img/α_txt on image columns.
      const maps = saliencyMaps(model, x, { tau: 2 });
      const t = maps.t;
      const I = saliencyMatrix(maps.grads[0], maps.b, t);
      lengths.forEach((n, e) => {
        const f = n - 1;
        const row = Array.from(I.slice(e * t * t + f * t, e * t * t + f * t + t));
        const c = row[0] / aTxt;
        for (let j = 0; j < f; j++) {
          const want = c * (j >= 1 && j < 5 ? aImg : aTxt);
          assert.ok(Math.abs(row[j] - want) <= 1e-4 * Math.abs(c) + 1e-9, `example ${e}: I[f, ${j}] = ${row[j]}, expected ${want}`);
        }
        for (let j = f; j < t; j++) assert.equal(row[j], 0, `example ${e}: I[f, ${j}] (diagonal or pad) must be 0`);
      });
    } finally {
      disposeInputs(x);
    }
  } finally {
    store.dispose();
  }
});

test('reduceSaliencyLayer: hand-made maps; pad rows and columns never contribute; the diagonal is zeroed', () => {
  // b = 2, t = 5. Example 0: f = 4, image slots 1…2. Example 1: f = 3 (position 4 is pad).
  const t = 5;
  const b = 2;
  const grads = new Float32Array(b * t * t);
  const attn = new Float32Array(b * t * t);
  const set = (a: Float32Array, e: number, i: number, j: number, v: number) => (a[e * t * t + i * t + j] = v);
  // example 0, final row 4: image cols 1, 2 → −2, 4 (|·| mean 3); text cols 0, 3 → 1, −3 (mean 2)
  set(grads, 0, 4, 1, -2); set(grads, 0, 4, 2, 4); set(grads, 0, 4, 0, 1); set(grads, 0, 4, 3, -3);
  set(grads, 0, 4, 4, 100); // diagonal: zeroed
  // other pairs i > j, i < 4: (1,0) (2,0) (2,1) (3,0) (3,1) (3,2) → values sum |·| = 12, mean 2
  set(grads, 0, 1, 0, 2); set(grads, 0, 2, 1, -4); set(grads, 0, 3, 2, 6);
  set(grads, 0, 1, 3, 77); // upper triangle: not a causal pair
  set(attn, 0, 4, 1, 0.1); set(attn, 0, 4, 2, 0.2); set(attn, 0, 4, 0, 0.3); set(attn, 0, 4, 3, 0.15); set(attn, 0, 4, 4, 0.25);
  // example 1, final row 3: image cols 1, 2 → 6, 0 (mean 3); text col 0 → 5; pad col/row 4 garbage
  set(grads, 1, 3, 1, 6); set(grads, 1, 3, 0, -5);
  set(grads, 1, 4, 0, 1000); set(grads, 1, 4, 3, 1000); set(grads, 1, 3, 4, 1000);
  // other pairs i < 3: (1,0) (2,0) (2,1) → 3, 0, 3: mean 2
  set(grads, 1, 1, 0, 3); set(grads, 1, 2, 1, -3);
  set(attn, 1, 3, 1, 0.4); set(attn, 1, 3, 0, 0.5); set(attn, 1, 3, 4, 9);
  const I = saliencyMatrix(grads, b, t);
  assert.equal(I[0 * t * t + 4 * t + 4], 0);
  const s = reduceSaliencyLayer(I, attn, b, t, { lastIndex: [4, 3], imageStart: 1, imageTokens: 2 });
  assert.ok(Math.abs(s.sv - (3 + 3)) < 1e-6, `Σ S_v ${s.sv}`);
  assert.ok(Math.abs(s.st - (2 + 5)) < 1e-6, `Σ S_t ${s.st}`);
  assert.ok(Math.abs(s.so - (2 + 2)) < 1e-6, `Σ S_o ${s.so}`);
  assert.ok(Math.abs(s.attnImage - (0.3 + 0.4)) < 1e-6, `Σ attnImage ${s.attnImage}`);
  assert.ok(Math.abs(s.attnText - (0.45 + 0.5)) < 1e-6, `Σ attnText ${s.attnText}`);
  // No image tokens: S_v = 0 and every column before f is text.
  const n = reduceSaliencyLayer(I, attn, b, t, { lastIndex: [4, 3], imageStart: -1, imageTokens: 0 });
  assert.equal(n.sv, 0);
  assert.equal(n.attnImage, 0);
  assert.ok(Math.abs(n.st - ((2 + 4 + 1 + 3) / 4 + (5 + 6) / 3)) < 1e-6, `Σ S_t without image ${n.st}`);
  assert.throws(() => reduceSaliencyLayer(I, attn, b, t, { lastIndex: [4, 2], imageStart: 1, imageTokens: 2 }), /image slots 1…2 of example 1 reach its final token 2/);
});

test('∂L/∂M matches central differences (mICL + late fusion, two layers); pad rows and the upper triangle get 0', async () => {
  const { model, store } = build({ earlyFusion: true, micl: true, lateFusion: true, connector: { kind: 'mlp' }, lm: { dim: 8, nLayers: 2, nHeads: 2, initStd: 0.5 } }, 5);
  try {
    const tau = 1.5;
    // image slots 2…5; n_v at 6; lengths vary (pads at the end).
    const lengths = [11, 9, 10, 8];
    const x = makeInputs(lengths, { imageStart: 2, visualIndex: 6, seed: 11 });
    try {
      const maps = await assertNoTensorLeak(() => saliencyMaps(model, x, { tau }));
      const { b, t } = maps;
      const nLayers = 2;
      const lossAt = (masks: tf.Tensor[]) => tf.tidy(() => multimodalLoss(model, x, tau, masks).dataSync()[0]);
      const base = tf.tidy(() => lossAt(Array.from({ length: nLayers }, () => tf.ones([b, 1, t, t]))));
      assert.ok(Math.abs(base - maps.loss) < 1e-5, `loss ${maps.loss} vs ${base}`);
      const eps = 0.02;
      let checked = 0;
      for (let l = 0; l < nLayers; l++) {
        const g = maps.grads[l];
        // the three largest entries and one ordinary lower-triangle entry
        const order = Array.from(g.keys()).sort((p, q) => Math.abs(g[q]) - Math.abs(g[p]));
        const picks = [...order.slice(0, 3), 0 * t * t + 7 * t + 3];
        for (const k of picks) {
          const fd = tf.tidy(() => {
            const delta = new Float32Array(b * t * t);
            delta[k] = eps;
            const d = tf.tensor4d(delta, [b, 1, t, t]);
            const at = (sign: number) =>
              lossAt(Array.from({ length: nLayers }, (_, ll) => (ll === l ? tf.add(tf.ones([b, 1, t, t]), tf.mul(d, sign)) : tf.ones([b, 1, t, t]))));
            return (at(1) - at(-1)) / (2 * eps);
          });
          const scale = Math.max(Math.abs(g[k]), Math.abs(fd), 1e-3);
          assert.ok(Math.abs(g[k] - fd) <= 2e-2 * scale, `layer ${l} entry ${k}: analytic ${g[k]} vs finite difference ${fd}`);
          checked++;
        }
        assert.ok(Math.abs(g[order[0]]) > 1e-4, `layer ${l}: gradient too small for a meaningful check`);
        // Rows after an example's final token (pads) and the upper triangle carry nothing.
        lengths.forEach((n, e) => {
          for (let i = 0; i < t; i++) {
            for (let j = 0; j < t; j++) {
              if (i >= n || j > i) assert.equal(g[e * t * t + i * t + j], 0, `layer ${l} example ${e}: ∂L/∂M[${i}, ${j}] should be 0`);
            }
          }
        });
      }
      assert.equal(checked, 8);
    } finally {
      disposeInputs(x);
    }
  } finally {
    store.dispose();
  }
});

test('text-only and late-only models: S_v = 0, attnImage = 0, shares sum to 1; τ read from the store', async () => {
  for (const cfg of [
    { earlyFusion: false, lateFusion: false },
    { earlyFusion: false, lateFusion: true },
  ] as ModelConfig[]) {
    const { model, store } = build({ ...cfg, lm: { dim: 8, nLayers: 2, nHeads: 2, initStd: 0.3 } }, 9);
    try {
      assert.equal(model.imageTokens, 0);
      const x = makeInputs([7, 9, 6, 9], { imageStart: -1, seed: 2 });
      try {
        const res = await assertNoTensorLeak(() => computeSaliency(model, [x, x]));
        assert.equal(res.layers.length, 2);
        assert.equal(res.examples, 8);
        for (const s of res.layers) {
          assert.equal(s.sv, 0);
          assert.equal(s.attnImage, 0);
          assert.ok(Math.abs(s.st + s.so - 1) < 1e-6, `shares ${s.st} + ${s.so}`);
          assert.ok(s.st > 0 && s.so >= 0);
          assert.ok(s.attnText > 0 && s.attnText < 1, `attention mass on the text before f ${s.attnText} (the rest stays on f itself)`);
        }
        // τ defaults to the store's loss.tau: a different τ gives a different loss.
        const a = computeSaliency(model, [x]).loss;
        store.param(TAU_PATH, [], { kind: 'constant', value: 0.5 });
        const bStore = computeSaliency(model, [x]).loss;
        const bExplicit = computeSaliency(model, [x], { tau: 0.5 }).loss;
        assert.ok(Math.abs(a - bStore) > 1e-4, `τ from the store had no effect (${a} vs ${bStore})`);
        assert.ok(Math.abs(bStore - bExplicit) < 1e-6);
      } finally {
        disposeInputs(x);
      }
    } finally {
      store.dispose();
    }
  }
});
