import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { initBackend, Rng, tf } from '../../src/backend';
import { loadDataset } from '../../src/data/loaders';
import {
  CLIP_MEAN, CLIP_STD, decodeImage, defaultPreprocessing, ImageStore, loadImage, normalizeImage, preprocessingSize,
  type ImagePreprocessing, type ImageSource,
} from '../../src/data/images';

const GOOD = resolve(__dirname, '../fixtures/good');

before(async () => {
  await initBackend();
});

/** Writes a PNG of w×h RGB pixels given row-major, returns its path. */
async function png(dir: string, name: string, w: number, h: number, px: number[][]): Promise<string> {
  const path = join(dir, name);
  await sharp(Buffer.from(px.flat()), { raw: { width: w, height: h, channels: 3 } }).png().toFile(path);
  return path;
}

/** CLIP normalisation of one byte value, worked in double and rounded once to float32. */
const clip = (v: number, c: number) => Math.fround((v / 255 - CLIP_MEAN[c]) / CLIP_STD[c]);

test('a 2×2 image of known colours: exact bytes, then exact CLIP-normalised floats (HWC)', async () => {
  // t1.png: red, green / blue, white.
  const rgb = await decodeImage(join(GOOD, 'images_test/t1.png'), 2);
  assert.deepEqual([...rgb], [255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255]);
  const x = normalizeImage(rgb, 2);
  const expected = [
    [255, 0, 0], [0, 255, 0],
    [0, 0, 255], [255, 255, 255],
  ].flatMap((p) => p.map((v, c) => clip(v, c)));
  assert.deepEqual([...x], expected);
  // Worked separately in double precision: (1 − 0.48145466) / 0.26862954, −0.4578275 / 0.26130258,
  // −0.40821073 / 0.27577711 for red's three channels.
  assert.equal(x[0], Math.fround(1.930336254158794));
  assert.equal(x[1], Math.fround(-1.7520971281645974));
  assert.equal(x[2], Math.fround(-1.4802197687835659));
});

test('resize keeps the short side and crops the centre (wide and tall)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'notellm2-img-'));
  // 4×2, columns valued 10, 20, 30, 40: short side already 2, so the crop keeps columns 20, 30.
  const wide = await png(dir, 'wide.png', 4, 2, [10, 20, 30, 40, 10, 20, 30, 40].map((v) => [v, v, v]));
  assert.deepEqual([...(await decodeImage(wide, 2))].filter((_, i) => i % 3 === 0), [20, 30, 20, 30]);
  // 2×4, rows valued 10, 20, 30, 40: the crop keeps rows 20, 30.
  const tall = await png(dir, 'tall.png', 2, 4, [10, 10, 20, 20, 30, 30, 40, 40].map((v) => [v, v, v]));
  assert.deepEqual([...(await decodeImage(tall, 2))].filter((_, i) => i % 3 === 0), [20, 20, 30, 30]);
  rmSync(dir, { recursive: true });
});

test('downscaling is bicubic: a step edge rings (overshoot), which linear and nearest never do', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'notellm2-img-'));
  const px: number[][] = [];
  for (let y = 0; y < 12; y++) for (let x = 0; x < 12; x++) px.push(Array(3).fill(x < 6 ? 100 : 200));
  const rgb = await decodeImage(await png(dir, 'step.png', 12, 12, px), 5);
  const row = [0, 1, 2, 3, 4].map((x) => rgb[x * 3]);
  assert.equal(row[0], 100);
  assert.equal(row[2], 150); // the edge sits on the middle output pixel
  assert.ok(row[1] < 100 && row[3] > 200, `expected cubic overshoot, got ${row}`);
  for (let y = 1; y < 5; y++) assert.deepEqual([0, 1, 2, 3, 4].map((x) => rgb[(y * 5 + x) * 3]), row);
  rmSync(dir, { recursive: true });
});

test('every format decodes: SVG (file and bare name), JPEG under a bare name, WebP', async () => {
  // t3: bare-named SVG, left half blue, right half red.
  const flag = await decodeImage(join(GOOD, 'images_test/t3'), 8);
  assert.deepEqual([...flag.subarray(0, 3)], [0, 0, 255]);
  assert.deepEqual([...flag.subarray(7 * 3, 8 * 3)], [255, 0, 0]);
  // n3.svg: a yellow circle on a transparent background, flattened on white.
  const sun = await decodeImage(join(GOOD, 'images/n3.svg'), 16);
  assert.deepEqual([...sun.subarray(0, 3)], [255, 255, 255]);
  const centre = (8 * 16 + 8) * 3;
  assert.deepEqual([...sun.subarray(centre, centre + 3)], [255, 204, 0]);
  // n2: a JPEG named without an extension, flat green (lossy: within a few levels).
  const green = await decodeImage(join(GOOD, 'images/n2'), 4);
  for (let i = 0; i < green.length; i += 3) {
    assert.ok(Math.abs(green[i] - 0) <= 4 && Math.abs(green[i + 1] - 160) <= 4 && Math.abs(green[i + 2] - 0) <= 4, `${green.subarray(i, i + 3)}`);
  }
  // n4.webp (lossless 6×4): output is 3×3 channels of the requested size.
  assert.equal((await decodeImage(join(GOOD, 'images/n4.webp'), 3)).length, 27);
  await assert.rejects(decodeImage(join(GOOD, 'notes_train.csv'), 4), /cannot decode image .*notes_train\.csv/);
});

test('normalizeImage flips left↔right on request', () => {
  const rgb = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]); // 2×2
  const flipped = normalizeImage(rgb, 2, undefined, 0, true);
  const swapped = new Uint8Array([4, 5, 6, 1, 2, 3, 10, 11, 12, 7, 8, 9]);
  assert.deepEqual([...flipped], [...normalizeImage(swapped, 2)]);
});

async function goodStore(opts: { cacheDir?: string } = {}) {
  const { dataset } = await loadDataset(GOOD);
  return { dataset, store: new ImageStore(dataset, { size: 4, ...opts }) };
}

test('ImageStore decodes each image once; batches are NHWC tensors of the normalised pixels', async () => {
  const { dataset, store } = await goodStore();
  const ids = [...dataset.noteIds.train, ...dataset.noteIds.test];
  let stats = await store.load(ids);
  assert.equal(stats.decoded, 7);
  assert.equal(stats.images, 7);
  assert.ok(stats.imagesPerSecond > 0 && Number.isFinite(stats.imagesPerSecond));
  stats = await store.load([...ids, 'n1']);
  assert.equal(stats.decoded, 7, 'a second load must not decode again');
  assert.equal(stats.memoryHits, 8);

  const before = tf.memory().numTensors;
  const t = store.batch(['t1', 'n3']);
  assert.deepEqual(t.shape, [2, 4, 4, 3]);
  const data = await t.data();
  t.dispose();
  assert.equal(tf.memory().numTensors, before);
  assert.deepEqual([...data.subarray(0, 48)], [...normalizeImage(await decodeImage(dataset.imagePath('t1'), 4), 4)]);
  assert.deepEqual([...data.subarray(48)], [...normalizeImage(store.pixels('n3'), 4)]);
  assert.throws(() => new ImageStore(dataset, { size: 4 }).pixels('n1'), /not loaded; call await store\.load/);
});

test('ImageStore flips from the seeded Rng (one draw per image), on the cached bytes', async () => {
  const { dataset, store } = await goodStore();
  const ids = dataset.noteIds.train.concat(dataset.noteIds.test);
  await store.load(ids);
  const seed = 11;
  const flippedArr = store.array(ids, { flip: new Rng(seed) });
  const draws = new Rng(seed);
  const flips = ids.map(() => draws.next() < 0.5);
  assert.ok(flips.includes(true) && flips.includes(false), `seed ${seed} should flip some and keep some: ${flips}`);
  const per = 4 * 4 * 3;
  ids.forEach((id, i) => {
    const want = normalizeImage(store.pixels(id), 4, undefined, 0, flips[i]);
    assert.deepEqual([...flippedArr.subarray(i * per, (i + 1) * per)], [...want], id);
  });
  // n1 is left red / right blue, so a flipped n1 starts with blue.
  const i1 = ids.indexOf('n1');
  const first = flippedArr.subarray(i1 * per, i1 * per + 3);
  assert.equal(first[2] > first[0], flips[i1]);
  assert.equal(store.stats.decoded, 7);
});

test('the disk cache: a fresh store reads it instead of decoding; a touched image invalidates it', async () => {
  const cacheDir = mkdtempSync(join(tmpdir(), 'notellm2-cache-'));
  const { dataset, store } = await goodStore({ cacheDir });
  const ids = [...dataset.noteIds.train];
  await store.load(ids);
  assert.equal(store.stats.decoded, 4);
  assert.deepEqual(readdirSync(cacheDir).filter((f) => f.endsWith('.bin')).length, 1);

  const again = (await goodStore({ cacheDir })).store;
  const stats = await again.load(ids);
  assert.equal(stats.decoded, 0);
  assert.equal(stats.diskHits, 4);
  for (const id of ids) assert.deepEqual([...again.pixels(id)], [...store.pixels(id)], id);

  // A new mtime on one image changes the key: decode again, write a second cache file.
  const t = new Date('2024-01-02T03:04:05Z');
  const copyRoot = mkdtempSync(join(tmpdir(), 'notellm2-cachecopy-'));
  const copyDir = join(copyRoot, 'good');
  cpSync(GOOD, copyDir, { recursive: true });
  const copy = (await loadDataset(copyDir)).dataset;
  const s1 = new ImageStore(copy, { size: 4, cacheDir });
  await s1.load(ids);
  const key = await s1.fileKey(ids);
  assert.equal(await new ImageStore(copy, { size: 4 }).fileKey(ids), key, 'the files key needs no decoding and no cache');
  assert.notEqual(await new ImageStore(copy, { size: 8 }).fileKey(ids), key, 'another size');
  utimesSync(copy.imagePath('n1'), t, t);
  assert.notEqual(await s1.fileKey(ids), key, 'a touched file');
  const s2 = new ImageStore(copy, { size: 4, cacheDir });
  const st = await s2.load(ids);
  assert.equal(st.decoded, 4);
  assert.equal(st.diskHits, 0);
  // A damaged cache file is ignored (decoded again), not trusted.
  for (const f of readdirSync(cacheDir)) writeFileSync(join(cacheDir, f), 'garbage');
  const s3 = new ImageStore(copy, { size: 4, cacheDir });
  assert.equal((await s3.load(ids)).decoded, 4);
  rmSync(cacheDir, { recursive: true });
  rmSync(copyRoot, { recursive: true });
});

test('ImageStore.shared returns one store per dataset and size', async () => {
  const { dataset } = await loadDataset(GOOD);
  const src: ImageSource = dataset;
  assert.equal(ImageStore.shared(src, { size: 4 }), ImageStore.shared(src, { size: 4 }));
  assert.notEqual(ImageStore.shared(src, { size: 4 }), ImageStore.shared(src, { size: 8 }));
  ImageStore.clearShared();
});

test('an imported preprocessing: its mean/std replace CLIP\'s; the default one changes nothing', async () => {
  const rgb = await decodeImage(join(GOOD, 'images_test/t1.png'), 2);
  const norm = { mean: [0.5, 0.25, 0], std: [0.5, 0.25, 2] };
  const x = normalizeImage(rgb, 2, undefined, 0, false, norm);
  const want = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]].flatMap((p) => p.map((v, c) => Math.fround((v / 255 - norm.mean[c]) / norm.std[c])));
  assert.deepEqual([...x], want);
  assert.deepEqual([...x.subarray(0, 3)], [1, -1, 0]);
  assert.deepEqual([...normalizeImage(rgb, 2, undefined, 0, false)], [...normalizeImage(rgb, 2)]);
  assert.throws(() => normalizeImage(rgb, 2, undefined, 0, false, { mean: [0, 0, 0], std: [1, 0, 1] }), /std must be positive/);
  // defaultPreprocessing(size) is this pipeline's own: bytes and floats identical to passing none
  for (const path of [join(GOOD, 'images_test/t3'), join(GOOD, 'images/n4.webp')]) {
    assert.deepEqual([...(await decodeImage(path, 6, defaultPreprocessing(6)))], [...(await decodeImage(path, 6))]);
    assert.deepEqual([...(await loadImage(path, 6, defaultPreprocessing(6)))], [...(await loadImage(path, 6))]);
  }
});

test('an imported preprocessing: short side to 4 then a 2×2 centre crop, or a fill resize to height × width', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'notellm2-img-'));
  // 8×4, columns valued 10 … 80 in pairs: short side 4 → 8 columns of 4 rows kept as they are
  // (no scaling), long side int(4 · 8 / 4) = 8; the 2×2 centre crop keeps columns 3, 4 and rows 1, 2.
  const cols = [10, 20, 30, 40, 50, 60, 70, 80];
  const wide = await png(dir, 'wide.png', 8, 4, Array.from({ length: 32 }, (_, i) => Array(3).fill(cols[i % 8])));
  const crop: ImagePreprocessing = { resize: { shortestEdge: 4 }, crop: { height: 2, width: 2 }, resample: 'nearest', mean: [0, 0, 0], std: [1, 1, 1] };
  assert.equal(preprocessingSize(crop), 2);
  assert.deepEqual([...(await decodeImage(wide, 2, crop))].filter((_, i) => i % 3 === 0), [40, 50, 40, 50]);
  // fill: 8×4 → 4×4 nearest keeps every other column, the aspect ratio is not kept
  const fill: ImagePreprocessing = { resize: { height: 4, width: 4 }, crop: null, resample: 'nearest', mean: [0, 0, 0], std: [1, 1, 1] };
  const filled = [...(await decodeImage(wide, 4, fill))].filter((_, i) => i % 3 === 0);
  assert.equal(new Set(filled.slice(0, 4)).size, 4, `${filled}`);
  for (let y = 1; y < 4; y++) assert.deepEqual(filled.slice(y * 4, y * 4 + 4), filled.slice(0, 4));
  await assert.rejects(decodeImage(wide, 3, crop), /the preprocessing gives 2-pixel images, 3 requested/);
  assert.throws(() => preprocessingSize({ ...fill, resize: { height: 4, width: 6 } }), /the output is 4×6; the encoder takes square images/);
  assert.throws(() => preprocessingSize({ ...crop, crop: null }), /a square output needs a crop/);
  assert.throws(() => preprocessingSize({ ...crop, resample: 'box' as never }), /resample "box" is not one of nearest, bilinear, bicubic, lanczos/);
  rmSync(dir, { recursive: true });
});

test('ImageStore with an imported preprocessing: its pixels and its normalisation, its own cache entry', async () => {
  const { dataset } = await loadDataset(GOOD);
  const cacheDir = mkdtempSync(join(tmpdir(), 'notellm2-imgcache-'));
  const pre: ImagePreprocessing = { resize: { height: 4, width: 4 }, crop: null, resample: 'bilinear', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };
  const plain = new ImageStore(dataset, { size: 4, cacheDir });
  const mine = new ImageStore(dataset, { size: 4, cacheDir, preprocessing: pre });
  const ids = ['t1', 'n3'];
  await plain.load(ids);
  await mine.load(ids);
  assert.equal(mine.stats.decoded, 2, 'another preprocessing must not read the CLIP-sized cache');
  assert.equal(readdirSync(cacheDir).length, 2);
  const arr = mine.array(ids);
  assert.deepEqual([...arr.subarray(0, 48)], [...normalizeImage(await decodeImage(dataset.imagePath('t1'), 4, pre), 4, undefined, 0, false, pre)]);
  assert.deepEqual([...arr.subarray(0, 3)].map((v) => Math.round(v * 1e6) / 1e6), [1, -1, -1]); // t1's top-left is red: (1 − 0.5) / 0.5
  assert.notDeepEqual([...arr], [...plain.array(ids)]);
  const again = new ImageStore(dataset, { size: 4, cacheDir, preprocessing: pre });
  await again.load(ids);
  assert.equal(again.stats.diskHits, 2);
  assert.throws(() => new ImageStore(dataset, { size: 8, preprocessing: pre }), /the preprocessing gives 4-pixel images but size is 8/);
  assert.notEqual(ImageStore.shared(dataset, { size: 4 }), ImageStore.shared(dataset, { size: 4, preprocessing: pre }));
  ImageStore.clearShared();
  rmSync(cacheDir, { recursive: true });
});
