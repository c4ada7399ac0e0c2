/**
 * LLM training modes (src/model/lm-train.ts) and the hand-written layer backward they use
 * (src/model/block-grad.ts): the parser, frozen weights outside the backend and outside every
 * variable list, exactly the named tensors trained, LoRA's start and gradients, the fused
 * backward against tfjs's automatic gradient, vocabulary growth, trained-only state, and the
 * merge → Hugging Face export → import round trip.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { initBackend, tf, Rng } from '../../src/backend';
import { ParamStore } from '../../src/model/params';
import { DecoderLM, type LMConfig } from '../../src/model/lm';
import {
  buildLMForTraining, exportTrainedLM, formatLMTrain, growLMVocab, lmNativePaths, lmTrainedPaths, lmWeights, loadTrainedLM,
  parseLMTrain, releaseLMNative, type LMTrainMode,
} from '../../src/model/lm-train';
import { importHfLM, restoreHfLM, writeHfLMFolder } from '../../src/model/hf/llama';
import { readSafetensors } from '../../src/model/checkpoint';
import { createTemperature, infoNce } from '../../src/train/loss';
import { AdamW } from '../../src/train/optim';
import { checkParamGrads } from './helpers';

const FIXTURES = resolve(__dirname, '..', 'fixtures', 'hf');
const configOf = (name: string) => JSON.parse(readFileSync(join(FIXTURES, name, 'config.json'), 'utf8')) as Record<string, unknown>;

/** GQA (4 query, 2 key/value heads), head width 8 ≠ 24/4, Qwen2-style q/k/v biases, no head. */
const CFG: LMConfig = { vocabSize: 37, dim: 24, nLayers: 3, nHeads: 4, nKVHeads: 2, headDim: 8, mlpHidden: 40, qkvBias: true, head: 'none', initStd: 0.2 };

let defaultBackend = '';
let dir: string;
before(async () => {
  defaultBackend = (await initBackend()).name;
  dir = mkdtempSync(join(tmpdir(), 'notellm2-lmtrain-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function ids(b: number, t: number, vocab: number, seed: number): tf.Tensor2D {
  const rng = new Rng(seed);
  return tf.tensor2d(Int32Array.from({ length: b * t }, () => rng.int(vocab)), [b, t], 'int32');
}

/** Sets every variable under `prefix` whose path matches `re` to seeded random values (biases, LoRA B start at zero). */
function randomise(store: ParamStore, re: RegExp, seed: number, std = 0.2): void {
  for (const [path, v] of store.entries()) {
    if (!re.test(path)) continue;
    const data = new Rng(seed).fork(path).normalArray(v.size, std);
    tf.tidy(() => v.assign(tf.tensor(data, v.shape, 'float32')));
  }
}

/** Symmetric InfoNCE on the last token, as representation training computes it. */
function reprLoss(lm: DecoderLM, x: tf.Tensor2D, tau: tf.Tensor, inputsNeedGrad = true): tf.Scalar {
  return tf.tidy(() => {
    const [b, t] = x.shape;
    const d = lm.cfg.dim;
    const e = tf.reshape(tf.slice(lm.forward(lm.embed(x), { inputsNeedGrad }).last, [0, t - 1, 0], [b, 1, d]), [b, d]) as tf.Tensor2D;
    return infoNce(tf.slice(e, [0, 0], [b / 2, d]) as tf.Tensor2D, tf.slice(e, [b / 2, 0], [b / 2, d]) as tf.Tensor2D, tau);
  });
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test('parseLMTrain: the valid forms, canonical spellings, and errors that list the valid forms', () => {
  assert.deepEqual(parseLMTrain('full'), { kind: 'full' });
  assert.deepEqual(parseLMTrain('last:4'), { kind: 'last', layers: 4 });
  assert.deepEqual(parseLMTrain('lora:8'), { kind: 'lora', rank: 8, alpha: 16 });
  assert.deepEqual(parseLMTrain(' lora:4:8 '), { kind: 'lora', rank: 4, alpha: 8 });
  for (const s of ['full', 'last:4', 'lora:8', 'lora:8:4']) assert.equal(formatLMTrain(parseLMTrain(s)), s);
  assert.equal(formatLMTrain(parseLMTrain('lora:8:16')), 'lora:8');
  const valid = /valid forms: full, last:N, lora:R, lora:R:ALPHA/;
  for (const [bad, why] of [
    ['', /unknown mode ""/], ['lora', /"lora" takes the rank/], ['lora:0', /rank R must be a positive integer, got "0"/],
    ['lora:x', /rank R must be a positive integer/], ['last:-1', /number of layers N must be a positive integer/], ['last', /"last" takes one argument/],
    ['full:2', /"full" takes no argument/], ['adapter:8', /unknown mode "adapter"/], ['lora:8:0', /alpha must be a positive number, got "0"/], ['lora:2.5', /rank R/],
  ] as const) {
    assert.throws(() => parseLMTrain(bad), (e: Error) => why.test(e.message) && valid.test(e.message), `"${bad}"`);
  }
  assert.throws(() => buildLMForTraining({ ...CFG }, new ParamStore(0), 'last:4'), /last:4: the LLM has only 3 layers/);
});

test('trained paths per mode; frozen weights live outside the store and every variable list', () => {
  const cases: Array<[string, string[]]> = [
    ['lora:2', [0, 1, 2].flatMap((i) => ['q', 'k', 'v', 'o'].flatMap((p) => [`lm.layers.${i}.attn.${p}.lora_a`, `lm.layers.${i}.attn.${p}.lora_b`]))],
    ['last:1', ['lm.norm.weight', ...['attn_norm.weight', 'mlp_norm.weight', 'attn.q.weight', 'attn.q.bias', 'attn.k.weight', 'attn.k.bias', 'attn.v.weight', 'attn.v.bias', 'attn.o.weight', 'mlp.gate.weight', 'mlp.up.weight', 'mlp.down.weight'].map((p) => `lm.layers.2.${p}`)]],
  ];
  for (const [mode, expected] of cases) {
    const store = new ParamStore(1);
    const lm = buildLMForTraining(CFG, store, mode);
    assert.deepEqual(lmTrainedPaths(mode, CFG), [...expected].sort(), mode);
    assert.deepEqual(store.trainableEntries().map(([p]) => p), lmTrainedPaths(mode, CFG), mode);
    const native = lmNativePaths(parseLMTrain(mode), lm.cfg);
    assert.ok(native.includes('lm.embed.weight') && native.includes('lm.layers.0.attn.q.weight') && native.includes('lm.layers.0.mlp.down.weight'), mode);
    for (const p of native) assert.ok(!store.has(p), `${mode}: ${p} must not be in the store`);
    assert.equal(native.includes('lm.layers.2.attn.q.weight'), mode.startsWith('lora'), mode);
    assert.ok(lm.nativeEmbedding && lm.layers[0].attn.q.native && lm.layers[0].mlp.gate.native);
    assert.throws(() => lm.embedding, /frozen outside the backend/);
    assert.throws(() => lm.layers[0].attn.q.weight, /frozen outside the backend/);
    releaseLMNative(lm);
    store.dispose();
  }
  const full = new ParamStore(1);
  const lm = buildLMForTraining(CFG, full, 'full');
  assert.deepEqual(full.trainableEntries().map(([p]) => p), full.list());
  assert.deepEqual(lmTrainedPaths('full', CFG), full.list());
  assert.equal(lm.nativeEmbedding, null);
  full.dispose();
});

test('LoRA with B = 0 gives exactly the base model; the native layout equals the in-store model', () => {
  const x = ids(2, 6, CFG.vocabSize, 3);
  const plainStore = new ParamStore(4);
  const plain = new DecoderLM(CFG, plainStore);
  randomise(plainStore, /\.bias$/, 5);
  const loraStore = new ParamStore(4);
  const lora = buildLMForTraining(CFG, loraStore, 'lora:3');
  randomise(loraStore, /\.bias$/, 5);
  // The same native weights without adapters.
  const base = new DecoderLM(CFG, loraStore, 'lm', { native: lora.options.native, blockGrad: 'fused' });
  tf.tidy(() => {
    const hl = lora.forward(lora.embed(x)).last.dataSync();
    const hb = base.forward(base.embed(x)).last.dataSync();
    assert.equal(maxDiff(hl, hb), 0);
    const hp = plain.forward(plain.embed(x)).last.dataSync();
    assert.ok(maxDiff(hl, hp) < 1e-5, `native layout vs store: ${maxDiff(hl, hp)}`);
  });
  x.dispose();
  releaseLMNative(lora);
  plainStore.dispose();
  loraStore.dispose();
});

test('fused layer backward = automatic gradient (values and every trainable gradient), for full, last:N and LoRA', async () => {
  for (const backend of [defaultBackend, 'cpu']) {
    await initBackend(backend);
    try {
      for (const mode of ['full', 'last:2', 'lora:3']) {
        const store = new ParamStore(6);
        const fused = buildLMForTraining(CFG, store, mode);
        randomise(store, /\.(bias|lora_b)$/, 7);
        const auto = new DecoderLM(CFG, store, 'lm', { ...fused.options, blockGrad: 'autodiff' });
        const x = ids(4, 5, CFG.vocabSize, 8);
        const tau = tf.scalar(2);
        const run = (lm: DecoderLM) => store.variableGrads(() => reprLoss(lm, x, tau));
        const a = run(fused), b = run(auto);
        // LoRA on a native base runs through the merged W + s·A·B: the same up to rounding.
        const la = a.value.dataSync()[0], lb = b.value.dataSync()[0];
        if (mode.startsWith('lora')) assert.ok(Math.abs(la - lb) <= 1e-6 * Math.abs(lb), `${backend} ${mode}: loss ${la} vs ${lb}`);
        else assert.equal(la, lb, `${backend} ${mode}: loss`);
        assert.deepEqual(Object.keys(a.grads).sort(), lmTrainedPaths(mode, CFG), `${backend} ${mode}: gradient set`);
        assert.deepEqual(Object.keys(b.grads).sort(), Object.keys(a.grads).sort());
        for (const [path, g] of Object.entries(a.grads)) {
          const ga = g.dataSync(), gb = b.grads[path].dataSync();
          const scale = Math.max(1e-3, ...Array.from(gb, Math.abs));
          assert.ok(maxDiff(ga, gb) <= 2e-5 * scale + 1e-7, `${backend} ${mode} ${path}: ${maxDiff(ga, gb)} (scale ${scale})`);
        }
        if (mode === 'last:2') {
          // The frozen first layer, fed by the frozen embedding, keeps nothing for a backward pass: same gradients.
          const c = store.variableGrads(() => reprLoss(fused, x, tau, false));
          for (const [path, g] of Object.entries(c.grads)) assert.equal(maxDiff(g.dataSync(), a.grads[path].dataSync()), 0, `inputsNeedGrad false: ${path}`);
          tf.dispose([c.value, ...Object.values(c.grads)]);
          // …and a gradient asked through it after all is an error, not a silent zero.
          const sc = tf.variable(tf.scalar(1));
          assert.throws(() => tf.variableGrads(() => tf.tidy(() => {
            const h = fused.forward(tf.mul(fused.embed(x), sc) as tf.Tensor3D, { inputsNeedGrad: false }).last;
            return tf.sum(h) as tf.Scalar;
          }), [sc]), /ran with inputsNeedGrad false/);
          sc.dispose();
        }
        tf.dispose([a.value, b.value, ...Object.values(a.grads), ...Object.values(b.grads), x, tau]);
        releaseLMNative(fused);
        store.dispose();
      }
    } finally {
      await initBackend(defaultBackend);
    }
  }
});

test('LoRA adapter gradients agree with finite differences (cpu backend, float32 tolerances)', async () => {
  await initBackend('cpu');
  try {
    const store = new ParamStore(9);
    const lm = buildLMForTraining({ ...CFG, nLayers: 2 }, store, 'lora:2');
    randomise(store, /\.lora_b$/, 10, 0.3);
    const x = ids(4, 5, CFG.vocabSize, 11);
    const tau = tf.scalar(1);
    checkParamGrads(store, () => reprLoss(lm, x, tau), { directions: 3 });
    tf.dispose([x, tau]);
    releaseLMNative(lm);
    store.dispose();
  } finally {
    await initBackend(defaultBackend);
  }
});

test('an AdamW step changes exactly the trained tensors; native weights untouched; tensor count stable', () => {
  for (const mode of ['lora:2', 'last:1', 'full'] as const) {
    const store = new ParamStore(12);
    const lm = buildLMForTraining(CFG, store, mode);
    randomise(store, /\.(bias|lora_b)$/, 13);
    const before = store.export();
    const nativeBefore = [...(lm.options.native ?? new Map())].map(([p, m]) => [p, Float32Array.from(m.data)] as const);
    const tau = createTemperature();
    const params = new Map([...store.trainableEntries(), ['loss.tau', tau] as [string, tf.Variable]]);
    const opt = new AdamW(params, { lr: 1e-2 });
    const x = ids(4, 5, CFG.vocabSize, 14);
    const counts: number[] = [];
    for (let i = 0; i < 3; i++) {
      opt.minimize(() => reprLoss(lm, x, tau));
      counts.push(tf.memory().numTensors);
    }
    assert.equal(new Set(counts).size, 1, `${mode}: tensors per step ${counts}`);
    const after = store.export();
    const trained = new Set(lmTrainedPaths(mode, CFG));
    for (const path of Object.keys(before)) {
      const changed = maxDiff(before[path].data, after[path].data) > 0;
      assert.equal(changed, trained.has(path), `${mode}: ${path} ${changed ? 'changed' : 'did not change'}`);
    }
    for (const [path, data] of nativeBefore) assert.equal(maxDiff(data, lm.options.native!.get(path)!.data), 0, `${mode}: native ${path}`);
    tf.dispose([x, tau]);
    opt.dispose();
    releaseLMNative(lm);
    store.dispose();
  }
});

test('growLMVocab: new rows (and untied head columns) are the mean of the old ones, in the store or native', () => {
  for (const mode of ['full', 'lora:2']) {
    const store = new ParamStore(15);
    const lm = buildLMForTraining({ ...CFG, head: 'untied' }, store, mode);
    const embOld = Float32Array.from(lm.nativeEmbedding?.data ?? (lm.embedding.dataSync() as Float32Array));
    const headOld = Float32Array.from(lm.head!.native?.data ?? (lm.head!.weight.dataSync() as Float32Array));
    const v = CFG.vocabSize, d = CFG.dim!;
    const grown = growLMVocab(store, lm, v + 3);
    assert.equal(grown.cfg.vocabSize, v + 3);
    const emb = grown.nativeEmbedding?.data ?? (grown.embedding.dataSync() as Float32Array);
    const head = grown.head!.native?.data ?? (grown.head!.weight.dataSync() as Float32Array);
    assert.equal(maxDiff(emb.subarray(0, v * d), embOld), 0);
    for (let j = 0; j < d; j++) {
      let mean = 0;
      for (let i = 0; i < v; i++) mean += embOld[i * d + j] / v;
      for (let i = v; i < v + 3; i++) assert.ok(Math.abs(emb[i * d + j] - mean) < 1e-6, `${mode}: embedding row ${i}`);
      let hm = 0;
      for (let i = 0; i < v; i++) hm += headOld[j * v + i] / v;
      for (let i = 0; i < v; i++) assert.equal(head[j * (v + 3) + i], headOld[j * v + i]);
      for (let i = v; i < v + 3; i++) assert.ok(Math.abs(head[j * (v + 3) + i] - hm) < 1e-6, `${mode}: head column ${i}`);
    }
    assert.equal(Boolean(grown.nativeEmbedding), mode !== 'full');
    assert.deepEqual(store.trainableEntries().map(([p]) => p), lmTrainedPaths(mode, { ...CFG, head: 'untied', vocabSize: v + 3 }));
    tf.tidy(() => assert.deepEqual(grown.embed(tf.tensor2d([[v + 2, 0]], [1, 2], 'int32')).shape, [1, 2, d]));
    assert.throws(() => growLMVocab(store, grown, v), /must be an integer ≥ the current 40/);
    releaseLMNative(grown);
    store.dispose();
  }
});

/** Hidden states of `lm` on fixed ids. */
function hidden(lm: DecoderLM, x: tf.Tensor2D): Float32Array {
  const h = tf.tidy(() => lm.forward(lm.embed(x)).last);
  const v = Float32Array.from(h.dataSync() as Float32Array);
  h.dispose();
  return v;
}

test('merge → export → import: the export reads back to the LoRA model\'s hidden states (llama_gqa, qwen2 with biases), vocabulary grown', async () => {
  for (const name of ['llama_gqa', 'qwen2']) {
    const folder = join(FIXTURES, name);
    const imp = await importHfLM(folder, { head: 'none', train: 'lora:4' });
    for (const p of lmNativePaths(parseLMTrain('lora:4'), imp.lm.cfg)) assert.ok(!imp.store.has(p), `${name}: ${p} imported into the store`);
    randomise(imp.store, /\.lora_b$/, 16, 0.05);
    const v = imp.lm.cfg.vocabSize;
    const lm = growLMVocab(imp.store, imp.lm, v + 3);
    const x = ids(2, 7, v + 3, 17);
    const want = hidden(lm, x);
    const out = join(dir, `${name}-export`);
    const written = await writeHfLMFolder(out, imp.store, lm, { sourceConfig: configOf(name) });
    const cfg = JSON.parse(readFileSync(written.configPath, 'utf8'));
    assert.equal(cfg.vocab_size, v + 3);
    assert.equal(cfg.tie_word_embeddings, false);
    assert.deepEqual(cfg.architectures, configOf(name).architectures);
    const keys = Object.keys((await readSafetensors(written.weightsPath)).tensors);
    assert.ok(keys.includes('model.embed_tokens.weight') && keys.includes('model.layers.0.self_attn.q_proj.weight') && keys.includes('model.norm.weight'));
    assert.ok(!keys.some((k) => /lora|lm_head/.test(k)), keys.join(', '));
    assert.equal(keys.includes('model.layers.0.self_attn.q_proj.bias'), name === 'qwen2');
    const back = await importHfLM(out, { head: 'none' });
    const got = hidden(back.lm, x);
    assert.ok(maxDiff(got, want) <= 1e-5, `${name}: ${maxDiff(got, want)}`);
    // The merged weights are what lmWeights reports.
    const qMerged = lmWeights(imp.store, lm).get('lm.layers.1.attn.q.weight')!.values();
    assert.equal(maxDiff(qMerged, back.store.get('lm.layers.1.attn.q.weight').dataSync()), 0);
    x.dispose();
    releaseLMNative(lm);
    imp.store.dispose();
    back.store.dispose();
  }
  // A head is written only when it exists; an importer asked for the causal LM refuses the head-less export.
  await assert.rejects(importHfLM(join(dir, 'llama_gqa-export')), /missing: lm_head\.weight/);
  const mismatch = await importHfLM(join(FIXTURES, 'llama_gqa'), { head: 'none' });
  await assert.rejects(writeHfLMFolder(join(dir, 'bad'), mismatch.store, mismatch.lm, { sourceConfig: configOf('qwen2') }), /does not describe this model/);
  mismatch.store.dispose();
});

test('trained-only state: export the trained tensors, restore from the base folder + them; wrong sets refused', async () => {
  const folder = join(FIXTURES, 'llama_gqa');
  for (const mode of ['lora:2', 'last:1', 'full'] as const) {
    const imp = await importHfLM(folder, { head: 'none', train: mode });
    const lm = growLMVocab(imp.store, imp.lm, imp.lm.cfg.vocabSize + 2);
    randomise(imp.store, mode === 'lora:2' ? /\.lora_b$/ : /layers\.2\.attn\.q\.weight$/, 18, 0.05);
    const record = exportTrainedLM(imp.store, lm, mode);
    assert.deepEqual(Object.keys(record).sort(), lmTrainedPaths(mode, lm.cfg));
    const x = ids(2, 5, lm.cfg.vocabSize, 19);
    const want = hidden(lm, x);
    const back = await restoreHfLM(folder, mode, record, { vocabSize: lm.cfg.vocabSize });
    assert.ok(maxDiff(hidden(back.lm, x), want) <= 1e-6, mode);
    const missing = { ...record };
    delete missing[Object.keys(record)[0]];
    await assert.rejects(restoreHfLM(folder, mode, missing, { vocabSize: lm.cfg.vocabSize }), /missing 1/);
    assert.throws(() => loadTrainedLM(back.store, back.lm, mode as LMTrainMode | string, { ...record, 'lm.extra.weight': record[Object.keys(record)[0]] }), /unexpected 1 \[lm\.extra\.weight\]/);
    x.dispose();
    releaseLMNative(lm);
    releaseLMNative(back.lm);
    imp.store.dispose();
    back.store.dispose();
  }
});
