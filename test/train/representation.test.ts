import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, Rng, tf } from '../../src/backend';
import type { Note, Pair } from '../../src/data/schema';
import type { ImageStore } from '../../src/data/images';
import { trainTokenizer } from '../../src/data/tokenizer';
import { ParamStore } from '../../src/model/params';
import { resolveModelConfig, type ModelConfig } from '../../src/model/config';
import { NoteLLM2Model } from '../../src/model/notellm2';
import { PromptEncoder } from '../../src/model/batch';
import { renderPrompt } from '../../src/model/prompt';
import { PRESETS, PRESET_NAMES, presetConfig } from '../../src/experiments/presets';
import { resolveTrainConfig } from '../../src/train/config';
import { train } from '../../src/train/trainer';
import { RepresentationTask, VisionFeatureCache, buildInputs, embedNotes, embeddingOrder, type VisionSource } from '../../src/train/representation';

// Tiny world: 4 topics × 4 colours; a note's image is a solid colour, its text names its topic.
const TOPICS = ['cooking pasta sauce', 'mountain hiking trail', 'jazz piano chords', 'garden tomato seeds'];
const COLOURS = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]];
const notes = new Map<string, Note>();
for (let i = 0; i < 16; i++) {
  const t = i % 4, c = Math.floor(i / 4);
  notes.set(`n${i}`, { id: `n${i}`, title: TOPICS[t].split(' ')[0], content: TOPICS[t], topics: [TOPICS[t].split(' ')[1]], imageId: `i${i}`, category: [`t${t}`], });
}
const colourOf = (id: string) => Math.floor(Number(id.slice(1)) / 4);
// Pairs alternate between "same topic" and "same colour".
const pairs: Pair[] = [];
for (let i = 0; i < 16; i++) {
  const j = i % 2 === 0 ? (i + 4) % 16 : 4 * Math.floor(i / 4) + ((i + 1) % 4);
  pairs.push({ a: `n${i}`, b: `n${j}` });
}
const IMG = 8;
const fakeImages = {
  batch(ids: readonly string[]) {
    const data = new Float32Array(ids.length * IMG * IMG * 3);
    ids.forEach((id, k) => {
      const col = COLOURS[colourOf(id)];
      for (let p = 0; p < IMG * IMG; p++) {
        // a left-right gradient so that flipping changes the image
        const x = p % IMG;
        for (let ch = 0; ch < 3; ch++) data[(k * IMG * IMG + p) * 3 + ch] = col[ch] * 2 - 1 + x * 0.05;
      }
    });
    return tf.tensor4d(data, [ids.length, IMG, IMG, 3]);
  },
  // What the feature cache asks of an image store besides batch(): loading (recorded) and a key of the files.
  loaded: [] as string[][],
  async load(ids: readonly string[]) {
    this.loaded.push([...ids]);
  },
  async fileKey(ids: readonly string[]) {
    return ids.map((id) => `${id}:${colourOf(id)}`).join(',');
  },
} as unknown as ImageStore;

const tiny: ModelConfig = {
  vision: { imageSize: IMG, patchSize: 4, dim: 16, depth: 1, heads: 2 },
  connector: { numQueries: 4, layers: 1, heads: 2 },
  lm: { dim: 16, nLayers: 2, nHeads: 2 },
  outDim: 8,
};

async function setup(preset: string, extra: ModelConfig = {}) {
  await initBackend();
  const cfg0 = { ...tiny, ...presetConfig(preset), ...extra };
  const corpus = [...notes.values()].flatMap((n) => [renderPrompt('micl', n, resolveModelConfig().text), renderPrompt('basic', n, resolveModelConfig().text)]);
  const tok = trainTokenizer(corpus, { vocabSize: 320 });
  const cfg = resolveModelConfig(cfg0, tok.vocabSize);
  const store = new ParamStore(7);
  const model = new NoteLLM2Model(cfg, store);
  const encoder = new PromptEncoder(tok, cfg, model.imageTokens);
  const vision: VisionSource = model.vit ? { kind: 'cache', cache: await VisionFeatureCache.build(model, fakeImages, [...notes.keys()], { flips: true }) } : { kind: 'none' };
  return { cfg, store, model, encoder, vision, tok };
}

for (const preset of PRESET_NAMES) {
  test(`preset ${preset}: a tiny run lowers the loss, without leaking tensors`, async () => {
    const { store, model, encoder, vision, cfg } = await setup(preset);
    const tcfg = resolveTrainConfig({ epochs: 12, batchPairs: 4, lr: 1e-2, warmup: 0.05, seed: 1 });
    store.setTrainable('vit', false);
    const task = new RepresentationTask(model, encoder, vision, notes, pairs, pairs.slice(0, 8), tcfg);
    const before = tf.memory().numTensors;
    const r = await train(task, store, tcfg, { tauPath: 'loss.tau' });
    assert.equal(tf.memory().numTensors, before, 'tensor count after training');
    const first = r.valLoss[0];
    const last = Math.min(...r.valLoss.slice(-3));
    assert.ok(last < first * 0.9, `${preset}: validation loss ${first.toFixed(4)} → ${last.toFixed(4)}`);
    assert.equal(cfg.micl, PRESETS[preset as keyof typeof PRESETS].micl);
    store.dispose();
  });
}

test('mICL: changing only the text leaves n_v unchanged (and changes n_m)', async () => {
  const { store, model, encoder, vision } = await setup('notellm2');
  const base = [...notes.values()].slice(0, 4);
  const edited = base.map((n) => ({ ...n, id: n.id, title: 'completely different', content: 'other words here entirely', topics: ['zzz'] }));
  const e1 = embedNotes(model, encoder, vision, base, { visual: true });
  const enc2 = new PromptEncoder(encoder.tokenizer, model.cfg, model.imageTokens);
  const e2 = embedNotes(model, enc2, vision, edited, { visual: true });
  for (let i = 0; i < e1.nv!.length; i++) assert.ok(Math.abs(e1.nv![i] - e2.nv![i]) < 1e-5, `n_v[${i}]`);
  let diff = 0;
  for (let i = 0; i < e1.nm.length; i++) diff += Math.abs(e1.nm[i] - e2.nm[i]);
  assert.ok(diff > 1e-3, 'n_m must depend on the text');
  store.dispose();
});

test('embedNotes embeds in prompt-length order and returns rows in the caller\'s order, each as if embedded alone', async () => {
  const { store, model, encoder, vision } = await setup('notellm2');
  const words = TOPICS.join(' ').split(' ');
  // Notes of very different prompt lengths, listed longest-first-ish so sorting reorders them.
  const varied = [...notes.values()].slice(0, 7).map((n, i) => ({ ...n, content: words.slice(0, ((i * 5) % 7) * 2).join(' ') }));
  const order = embeddingOrder(encoder, varied);
  const length = varied.map((n) => encoder.encodeNote(n).ids.length);
  assert.deepEqual([...order].sort((a, b) => a - b), [...varied.keys()], 'a permutation');
  for (let i = 1; i < order.length; i++) assert.ok(length[order[i - 1]] <= length[order[i]], 'by length');
  assert.notDeepEqual(order, [...varied.keys()], 'this list must be reordered for the test to mean anything');
  assert.deepEqual(embeddingOrder(encoder, varied, { emptyText: true }), [...varied.keys()]);
  const before = tf.memory().numTensors;
  const batched = embedNotes(model, encoder, vision, varied, { chunk: 3, visual: true });
  assert.equal(tf.memory().numTensors, before, 'tensor count after embedding');
  varied.forEach((n, i) => {
    const alone = embedNotes(model, encoder, vision, [n], { visual: true });
    for (let d = 0; d < batched.dim; d++) {
      assert.ok(Math.abs(batched.nm[i * batched.dim + d] - alone.nm[d]) < 1e-5, `n_m of note ${i}, dim ${d}`);
      assert.ok(Math.abs(batched.nv![i * batched.dim + d] - alone.nv![d]) < 1e-5, `n_v of note ${i}, dim ${d}`);
    }
  });
  store.dispose();
});

test('frozen vision features: a feature file is written, read back identical, and not read for other weights or a damaged file', async () => {
  const { mkdtempSync, readdirSync, truncateSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'nlm2-features-'));
  const { store, model } = await setup('basic');
  const ids = [...notes.keys()];
  const flags = ids.map((_, i) => i % 3 === 0);
  const read = (c: VisionFeatureCache) => {
    const f = c.batch(ids, flags);
    const out = [Array.from(f.cls.dataSync()), Array.from(f.tokens.dataSync())];
    tf.dispose([f.cls, f.tokens]);
    return out;
  };
  const before = tf.memory().numTensors;
  const first = await VisionFeatureCache.build(model, fakeImages, ids, { flips: true, chunk: 5, dir });
  assert.equal(first.fromDisk, false);
  const files = () => readdirSync(dir).filter((f) => f.startsWith('vision-features-')).sort();
  assert.equal(files().length, 1);
  fakeImages.loaded.length = 0;
  const again = await VisionFeatureCache.build(model, fakeImages, ids, { flips: true, chunk: 5, dir });
  assert.equal(again.fromDisk, true);
  assert.deepEqual(fakeImages.loaded, [ids.slice(0, 5)], 'read from the file: only the first chunk\'s images were loaded');
  assert.deepEqual(read(again), read(first));
  fakeImages.loaded.length = 0;
  const memoryOnly = await VisionFeatureCache.build(model, fakeImages, ids, { flips: true, chunk: 5 });
  assert.deepEqual(fakeImages.loaded, [ids], 'no feature folder: every image loaded up front');
  assert.deepEqual(read(memoryOnly), read(first));
  // Another encoder (one weight changed): another file, features computed.
  const w = 'vit.patch_embed.weight'; // (a key bias would not do: attention is invariant to it)
  const original = store.get(w).clone();
  tf.tidy(() => store.get(w).assign(tf.add(original, 0.5)));
  const other = await VisionFeatureCache.build(model, fakeImages, ids, { flips: true, chunk: 5, dir });
  assert.equal(other.fromDisk, false);
  assert.notDeepEqual(read(other), read(first));
  assert.equal(files().length, 2);
  store.get(w).assign(original);
  original.dispose();
  // A damaged file is ignored and rewritten.
  for (const f of files()) truncateSync(join(dir, f), 100);
  const rebuilt = await VisionFeatureCache.build(model, fakeImages, ids, { flips: true, chunk: 5, dir });
  assert.equal(rebuilt.fromDisk, false);
  assert.deepEqual(read(rebuilt), read(first));
  assert.equal((await VisionFeatureCache.build(model, fakeImages, ids, { flips: true, chunk: 5, dir })).fromDisk, true);
  assert.equal(tf.memory().numTensors, before, 'tensor count');
  store.dispose();
});

test('late-only with the gate forced to pass the LM side equals text-only (same LM and head weights)', async () => {
  const late = await setup('late-only');
  const text = await setup('text-only');
  // Copy the shared weights (lm.*, head) from the text-only model into the late-only one.
  late.store.load(text.store.export('lm'), { strict: false });
  late.store.load(text.store.export('head'), { strict: false });
  // z = σ(W_g[h; v]) → 1 needs a large positive pre-activation whatever h is: a huge constant
  // is not expressible without bias, so drive v to 0 instead (W_v = 0): ĥ = z⊙h + (1−z)⊙0 ≠ h…
  // …and also W_g's h-block = 0, v-block = 0 → z = ½ → ĥ = h/2, whose L2-normalised head output equals h's.
  late.store.get('fusion.v.weight').assign(tf.zerosLike(late.store.get('fusion.v.weight')));
  late.store.get('fusion.g.weight').assign(tf.zerosLike(late.store.get('fusion.g.weight')));
  const some = [...notes.values()].slice(0, 6);
  const a = embedNotes(late.model, late.encoder, late.vision, some);
  const b = embedNotes(text.model, text.encoder, text.vision, some);
  for (let i = 0; i < a.nm.length; i++) assert.ok(Math.abs(a.nm[i] - b.nm[i]) < 1e-5, `embedding[${i}] ${a.nm[i]} vs ${b.nm[i]}`);
  late.store.dispose();
  text.store.dispose();
});

test('probes: zero image changes an image model but not text-only; empty text changes text-only', async () => {
  const basic = await setup('basic');
  const some = [...notes.values()].slice(0, 4);
  const plain = embedNotes(basic.model, basic.encoder, basic.vision, some);
  const zero = embedNotes(basic.model, basic.encoder, basic.vision, some, { zeroImage: true });
  assert.ok(plain.nm.some((v, i) => Math.abs(v - zero.nm[i]) > 1e-4));
  const text = await setup('text-only');
  const t1 = embedNotes(text.model, text.encoder, text.vision, some);
  const t2 = embedNotes(text.model, text.encoder, text.vision, some, { zeroImage: true });
  assert.deepEqual(Array.from(t1.nm), Array.from(t2.nm));
  const t3 = embedNotes(text.model, text.encoder, text.vision, some, { emptyText: true });
  // all four notes now have the same (empty) prompt and no image: identical embeddings
  for (let i = 0; i < 8; i++) assert.ok(Math.abs(t3.nm[i] - t3.nm[8 + i]) < 1e-6);
  basic.store.dispose();
  text.store.dispose();
});

test('splicing checks image-token count against the prompt slots and says which and how many', async () => {
  const { model, encoder, vision, store } = await setup('basic');
  const batch = buildInputs(model, encoder, vision, [...notes.values()].slice(0, 2));
  assert.throws(
    () => tf.tidy(() => model.splice(model.lm.embed(batch.inputs.ids), tf.zeros([2, 3, 16]) as tf.Tensor3D, batch.inputs.imageStart)),
    /connector produced 3 image tokens but the prompt holds 4 image slots/,
  );
  tf.dispose(batch.owned);
  store.dispose();
});

test('a preset config round-trips through JSON to the same resolved config and identical embeddings', async () => {
  const { cfg, store, model, encoder, vision } = await setup('notellm2', { connector: { kind: 'mlp' } });
  const again = resolveModelConfig(JSON.parse(JSON.stringify(cfg)));
  assert.deepEqual(again, cfg);
  const store2 = new ParamStore(123);
  const model2 = new NoteLLM2Model(again, store2);
  store2.load(store.export(), { strict: false });
  const some = [...notes.values()].slice(0, 3);
  const a = embedNotes(model, encoder, vision, some);
  const b = embedNotes(model2, new PromptEncoder(encoder.tokenizer, again, model2.imageTokens), vision, some);
  assert.deepEqual(Array.from(a.nm), Array.from(b.nm));
  store.dispose();
  store2.dispose();
  void Rng;
});
