import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import sharp from 'sharp';
import { initBackend, Rng, tf } from '../../src/backend';
import { ImageStore, type ImageSource } from '../../src/data/images';
import { trainTokenizer } from '../../src/data/tokenizer';
import { DecoderLM } from '../../src/model/lm';
import { ParamStore } from '../../src/model/params';
import { IGNORE_INDEX } from '../../src/train/loss';
import {
  augmentViews,
  cropBoxes,
  makeWindows,
  noteText,
  pretrainingNoteIds,
  pretrainLM,
  pretrainVision,
  readCorpusFile,
  resolveAugmentConfig,
} from '../../src/train/pretrain';

const tmp = mkdtempSync(join(tmpdir(), 'nl2-pretrain-'));
before(async () => {
  await initBackend();
});
after(() => rmSync(tmp, { recursive: true, force: true }));

// ---------------------------------------------------------------------------------------------
// LM

const SENTENCE = 'the quick brown fox jumps over the lazy dog';
const corpus = Array.from({ length: 40 }, () => SENTENCE);
const tokenizer = trainTokenizer([SENTENCE, 'a b c d e f g h i j'], { vocabSize: 280 });
const lmCfg = { dim: 32, nLayers: 2, nHeads: 2 };
const lmTrain = { seed: 1, epochs: 100, maxSteps: 80, batchPairs: 8, lr: 1e-2, warmup: 0.1 };

test('windows: packing cuts one stream at stride seqLen; padding ignores pad targets', () => {
  const docs = [[1, 10, 11, 2], [1, 12, 2]]; // <bos>=1, <eos>=2
  const pack = makeWindows(docs, 3, 'pack', 0);
  // stream 1 10 11 2 1 12 2 → windows [1 10 11 | 2], [2 1 12 | 2]; the final 2 predicts nothing.
  assert.deepEqual(pack.inputs, [[1, 10, 11], [2, 1, 12]]);
  assert.deepEqual(pack.targets, [[10, 11, 2], [1, 12, 2]]);
  assert.equal(pack.tokens, 6);
  // One token short of a full window: the tail row is padded, its missing target ignored.
  const tail = makeWindows([[1, 10, 11, 2], [1, 2]], 3, 'pack', 0);
  assert.deepEqual(tail.inputs, [[1, 10, 11], [2, 1, 0]]);
  assert.deepEqual(tail.targets, [[10, 11, 2], [1, 2, IGNORE_INDEX]]);
  assert.equal(tail.tokens, 5);
  const pad = makeWindows(docs, 3, 'pad', 0);
  assert.deepEqual(pad.inputs, [[1, 10, 11], [1, 12]]);
  assert.deepEqual(pad.targets, [[10, 11, 2], [12, 2]]);
  assert.equal(pad.tokens, 5);
});

test('note text, training-split ids and corpus files', async () => {
  assert.equal(noteText({ title: 'Hi ', topics: ['a', 'b'], content: '' }), 'Hi\n#a #b');
  const ids = pretrainingNoteIds({
    noteIds: { train: ['n1', 'n2', 'n3', 'n4'], test: ['t1'] },
    pairs: { train: [{ a: 'n1', b: 'n2' }], val: [{ a: 'n3', b: 'n1x' }], test: [{ a: 't1', b: 'n4' }] },
  });
  assert.deepEqual(ids, ['n1', 'n2']);
  const f = join(tmp, 'corpus.txt');
  writeFileSync(f, 'one\r\n\n  \ntwo three\n');
  assert.deepEqual(await readCorpusFile(f), ['one', 'two three']);
});

test('LM pretraining learns the next token: greedy decoding reproduces the corpus; loss ≪ ln V; no leak', async () => {
  const before = tf.memory().numTensors;
  const r = await pretrainLM({ corpus, tokenizer, lm: lmCfg, train: lmTrain, seqLen: 16, cacheDir: null });
  assert.equal(tf.memory().numTensors, before);
  assert.equal(r.cached, false);
  assert.equal(r.steps, 80);
  assert.ok(Object.keys(r.weights).every((p) => p.startsWith('lm.')));
  const lnV = Math.log(tokenizer.vocabSize);
  assert.ok(Math.abs(r.history[0].loss - lnV) < 0.3, `initial loss ${r.history[0].loss} vs ln V ${lnV}`);
  // The corpus is deterministic after <bos>: the reachable loss is ≈ 0.
  assert.ok(r.trainPerplexity < 1.2 && r.valPerplexity < 1.2, `perplexity train ${r.trainPerplexity}, val ${r.valPerplexity}`);
  // A copy-the-input bug would also reach ≈ 0 loss; it would not predict the NEXT token.
  const store = new ParamStore(123);
  const lm = new DecoderLM({ ...lmCfg, vocabSize: tokenizer.vocabSize }, store, 'lm');
  store.load(r.weights);
  const ids = [tokenizer.bosId, ...tokenizer.encode(SENTENCE), tokenizer.eosId];
  const predicted = tf.tidy(() => {
    const x = tf.tensor2d([ids.slice(0, -1)], [1, ids.length - 1], 'int32');
    return Array.from(tf.argMax(lm.logits(lm.forward(lm.embed(x)).last), 2).dataSync());
  });
  assert.deepEqual(predicted, ids.slice(1));
  store.dispose();
});

test('LM cache: same inputs load without training (identical weights); a changed config or corpus misses', async () => {
  const cacheDir = join(tmp, 'cache-lm');
  const cfg = { ...lmTrain, maxSteps: 4 };
  let steps = 0;
  const onStep = () => void steps++;
  const a = await pretrainLM({ corpus, tokenizer, lm: lmCfg, train: cfg, seqLen: 16, cacheDir, onStep });
  assert.equal(a.cached, false);
  assert.equal(steps, 4);
  const b = await pretrainLM({ corpus, tokenizer, lm: lmCfg, train: cfg, seqLen: 16, cacheDir, onStep });
  assert.equal(b.cached, true);
  assert.equal(steps, 4, 'a cache hit must not train');
  assert.equal(b.key, a.key);
  assert.deepEqual(Object.keys(b.weights).sort(), Object.keys(a.weights).sort());
  for (const p of Object.keys(a.weights)) assert.deepEqual(b.weights[p].data, a.weights[p].data, p);
  assert.deepEqual(b.history.map((h) => h.loss), a.history.map((h) => h.loss));
  assert.equal(b.trainPerplexity, a.trainPerplexity);
  const c = await pretrainLM({ corpus, tokenizer, lm: lmCfg, train: { ...cfg, lr: 1e-3 }, seqLen: 16, cacheDir, onStep });
  assert.equal(c.cached, false);
  assert.notEqual(c.key, a.key);
  const d = await pretrainLM({ corpus: [...corpus.slice(1), 'the lazy dog'], tokenizer, lm: lmCfg, train: cfg, seqLen: 16, cacheDir, onStep });
  assert.equal(d.cached, false);
  assert.notEqual(d.key, a.key);
  assert.equal(steps, 12);
});

test('LM cache lock: concurrent calls train once; a lock left by a dead process is taken over', async () => {
  const cacheDir = join(tmp, 'cache-lock');
  const cfg = { ...lmTrain, maxSteps: 3 };
  let steps = 0;
  const call = () => pretrainLM({ corpus, tokenizer, lm: lmCfg, train: cfg, seqLen: 16, cacheDir, onStep: () => void steps++ });
  const [a, b] = await Promise.all([call(), call()]);
  assert.deepEqual([a.cached, b.cached].sort(), [false, true]);
  assert.equal(steps, 3);
  // A lock whose owner has exited (a crashed run) must not block the next one.
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
  const d = { ...cfg, seed: 6 };
  const probe = await pretrainLM({ corpus, tokenizer, lm: lmCfg, train: d, seqLen: 16, cacheDir: join(tmp, 'cache-lock3') });
  rmSync(join(probe.dir!, 'model'), { recursive: true });
  writeFileSync(join(probe.dir!, 'lock'), String(dead));
  const again = await pretrainLM({ corpus, tokenizer, lm: lmCfg, train: d, seqLen: 16, cacheDir: join(tmp, 'cache-lock3') });
  assert.equal(again.cached, false);
  assert.deepEqual(again.history.map((h) => h.loss), probe.history.map((h) => h.loss));
});

test('LM: an interrupted run resumes from its cache folder and ends as the uninterrupted run', async () => {
  const cfg = { ...lmTrain, maxSteps: 10, checkpointEvery: 3 };
  const ref = await pretrainLM({ corpus, tokenizer, lm: lmCfg, train: cfg, seqLen: 16, cacheDir: null });
  const cacheDir = join(tmp, 'cache-resume');
  await assert.rejects(
    pretrainLM({ corpus, tokenizer, lm: lmCfg, train: cfg, seqLen: 16, cacheDir, onStep: (r) => { if (r.step === 7) throw new Error('interrupted'); } }),
    /interrupted/,
  );
  const r = await pretrainLM({ corpus, tokenizer, lm: lmCfg, train: cfg, seqLen: 16, cacheDir });
  assert.equal(r.resumed, true);
  assert.equal(r.cached, false);
  assert.deepEqual(r.history.map((h) => h.loss), ref.history.map((h) => h.loss));
  for (const p of Object.keys(ref.weights)) assert.deepEqual(r.weights[p].data, ref.weights[p].data, p);
});

// ---------------------------------------------------------------------------------------------
// Vision

test('augmentation: boxes respect scale/ratio; a flipped full-frame view is the mirror image', () => {
  const aug = resolveAugmentConfig({ scale: [0.5, 1], ratio: [0.75, 4 / 3] });
  const boxes = cropBoxes(200, aug, new Rng(5));
  let flipped = 0;
  for (let i = 0; i < 200; i++) {
    const [y1, x1, y2, x2] = boxes.subarray(i * 4, i * 4 + 4);
    const w = Math.abs(x2 - x1), h = y2 - y1;
    if (x1 > x2) flipped++;
    assert.ok(Math.min(x1, x2) >= 0 && Math.max(x1, x2) <= 1 + 1e-6 && y1 >= 0 && y2 <= 1 + 1e-6);
    assert.ok(w * h >= 0.5 - 1e-5 && w * h <= 1 + 1e-5, `area ${w * h}`);
    // Clipping to the frame can only pull the ratio towards 1.
    assert.ok(w / h >= 0.75 - 1e-4 && w / h <= 4 / 3 + 1e-4, `ratio ${w / h}`);
  }
  assert.ok(flipped > 70 && flipped < 130, `${flipped} of 200 flipped`);

  // Full-frame crops (scale 1, ratio 1) without noise: each view is the image or its mirror.
  const img = tf.tensor4d(Array.from({ length: 2 * 4 * 4 * 3 }, (_, i) => i), [2, 4, 4, 3]);
  const full = resolveAugmentConfig({ scale: [1, 1], ratio: [1, 1], noise: 0 });
  const views = augmentViews(img, 4, full, new Rng(9));
  const flips = cropBoxes(4, full, new Rng(9));
  const mirrored = tf.reverse(img, 2);
  for (let v = 0; v < 4; v++) {
    const expected = (flips[v * 4 + 1] > flips[v * 4 + 3] ? mirrored : img).slice([v % 2], [1]);
    const got = views.slice([v], [1]);
    assert.ok(tf.max(tf.abs(tf.sub(got, expected))).dataSync()[0] < 1e-4, `view ${v}`);
    tf.dispose([expected, got]);
  }
  tf.dispose([img, views, mirrored]);
});

/** 24 images, 24×24: a background and a square of colours from a small palette, at seeded places. */
async function makeImages(dir: string): Promise<{ source: ImageSource; ids: string[] }> {
  const palette = [[220, 40, 40], [40, 200, 60], [50, 60, 220], [230, 220, 40], [30, 30, 30], [240, 240, 240]];
  const rng = new Rng(11);
  const ids: string[] = [];
  for (let k = 0; k < 24; k++) {
    const bg = palette[k % 6];
    const fg = palette[(Math.floor(k / 6) + 1 + (k % 6)) % 6];
    const s = 8 + rng.int(6), x0 = rng.int(24 - s), y0 = rng.int(24 - s);
    const px = Buffer.alloc(24 * 24 * 3);
    for (let y = 0; y < 24; y++) for (let x = 0; x < 24; x++) {
      const c = x >= x0 && x < x0 + s && y >= y0 && y < y0 + s ? fg : bg;
      px.set(c, (y * 24 + x) * 3);
    }
    await sharp(px, { raw: { width: 24, height: 24, channels: 3 } }).png().toFile(join(dir, `i${k}.png`));
    ids.push(`i${k}`);
  }
  return { source: { dir, imagePath: (id) => join(dir, `${id}.png`) }, ids };
}

const vitCfg = { imageSize: 16, patchSize: 4, dim: 32, depth: 2, heads: 2 };

test('vision pretraining lowers the contrastive loss, views find their sibling above chance, cache hits; no leak', async () => {
  const dir = join(tmp, 'imgs');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  const { source, ids } = await makeImages(dir);
  const imageStore = new ImageStore(source, { size: 24 });
  const cacheDir = join(tmp, 'cache-vision');
  const train = { seed: 2, epochs: 100, maxSteps: 40, batchPairs: 8, lr: 2e-3 };
  let steps = 0;
  const before = tf.memory().numTensors;
  const r = await pretrainVision({ images: ids, imageStore, vit: vitCfg, train, valFraction: 1 / 3, cacheDir, onStep: () => void steps++ });
  assert.equal(tf.memory().numTensors, before);
  assert.equal(r.cached, false);
  assert.equal(steps, 40);
  assert.deepEqual(r.images, { train: 16, val: 8 });
  assert.ok(Object.keys(r.weights).length > 0 && Object.keys(r.weights).every((p) => p.startsWith('vit.')), 'only vit.* (head discarded)');
  // 2B = 16 views: a random encoder's loss sits near ln(15) ≈ 2.71.
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const first = mean(r.history.slice(0, 4).map((h) => h.loss));
  const last = mean(r.history.slice(-4).map((h) => h.loss));
  assert.ok(first > 2.2, `initial loss ${first}`);
  assert.ok(last < 0.6 * first, `loss ${first} → ${last}`);
  assert.ok(r.valLoss.at(-1)! < r.valLoss[0], `validation ${r.valLoss[0]} → ${r.valLoss.at(-1)}`);
  // Held-out images (never trained on): chance is 1/8.
  const va = r.viewAgreement;
  assert.equal(va.n, 8);
  assert.ok(va.after >= 4 * va.chance, `view agreement ${JSON.stringify(va)}`);
  // Untrained, every image lands near the same point (margin ≈ 1e-4); trained, siblings stand out.
  assert.ok(va.marginAfter > 0.03 && va.marginAfter > 30 * Math.abs(va.marginBefore), `margin ${va.marginBefore} → ${va.marginAfter}`);

  const hit = await pretrainVision({ images: ids, imageStore, vit: vitCfg, train, valFraction: 1 / 3, cacheDir, onStep: () => void steps++ });
  assert.equal(hit.cached, true);
  assert.equal(steps, 40);
  for (const p of Object.keys(r.weights)) assert.deepEqual(hit.weights[p].data, r.weights[p].data, p);
  assert.deepEqual(hit.viewAgreement, r.viewAgreement);

  // Changing one image's bytes (same ids, same config) changes the key: it retrains.
  const small = { images: ids, vit: vitCfg, train: { ...train, maxSteps: 2 }, valFraction: 1 / 3, cacheDir };
  const a = await pretrainVision({ ...small, imageStore: new ImageStore(source, { size: 24 }) });
  assert.equal(a.cached, false);
  await sharp({ create: { width: 24, height: 24, channels: 3, background: { r: 1, g: 2, b: 3 } } }).png().toFile(join(dir, 'i0.png'));
  const b = await pretrainVision({ ...small, imageStore: new ImageStore(source, { size: 24 }) });
  assert.equal(b.cached, false);
  assert.notEqual(b.key, a.key);
});
