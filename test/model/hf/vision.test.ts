import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, cpSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend, tf } from '../../../src/backend';
import { ParamStore } from '../../../src/model/params';
import { readSafetensors, writeSafetensors, type TensorRecord } from '../../../src/model/checkpoint';
import { readHfReference, decodeRefTensor, DEFAULT_REFERENCE_TOLERANCE, type HfReference, type RefTensor } from '../../../src/model/hf/reference';
import {
  compareVisionReference,
  importHfVision,
  readHfVision,
  readHfVisionSpec,
  parseHfPreprocessing,
  HF_PREPROCESSOR_FILE,
} from '../../../src/model/hf/vision';
import { resolveModelConfig } from '../../../src/model/config';
import { NoteLLM2Model } from '../../../src/model/notellm2';
import sharp from 'sharp';
import { CLIP_MEAN, CLIP_STD, loadImage } from '../../../src/data/images';

const FIXTURES = join(__dirname, '../../fixtures/hf');
const VISION_FIXTURES = ['clip_vision', 'clip_vision_v5', 'clip_vision_proj', 'siglip_vision', 'siglip_vision_v5'];
const fixture = (name: string) => join(FIXTURES, name);

let tmp: string;
before(async () => {
  await initBackend();
  tmp = mkdtempSync(join(tmpdir(), 'notellm2-hf-vision-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

let folders = 0;
/** A copy of a fixture folder with its config edited and its tensors rewritten by `tensors` (when given). */
async function variant(
  name: string,
  edit: (cfg: Record<string, unknown>) => Record<string, unknown> = (c) => c,
  tensors?: (t: TensorRecord) => TensorRecord,
): Promise<string> {
  const dir = join(tmp, `${name}-${folders++}`);
  cpSync(fixture(name), dir, { recursive: true });
  const cfgPath = join(dir, 'config.json');
  writeFileSync(cfgPath, JSON.stringify(edit(JSON.parse(readFileSync(cfgPath, 'utf8')))));
  if (tensors) {
    const path = join(dir, 'model.safetensors');
    await writeSafetensors(path, tensors((await readSafetensors(path)).tensors));
  }
  return dir;
}

function rekey(t: TensorRecord, f: (k: string) => string | null): TensorRecord {
  const out: TensorRecord = {};
  for (const [k, v] of Object.entries(t)) {
    const nk = f(k);
    if (nk !== null) out[nk] = v;
  }
  return out;
}

/** The reference's pixel_values [b, c, h, w] as NHWC images. */
function nhwcImages(ref: HfReference): tf.Tensor4D {
  const pv = decodeRefTensor(ref.inputs.pixel_values, 'pixel_values');
  return tf.transpose(tf.tensor4d(pv.data, pv.shape as [number, number, number, number]), [0, 2, 3, 1]) as tf.Tensor4D;
}

/** Names the reference lists: hidden_states expanded to its entries. */
function listedNames(outputs: Record<string, RefTensor | RefTensor[]>): string[] {
  return Object.entries(outputs).flatMap(([n, v]) => (Array.isArray(v) ? v.map((_, i) => `${n}[${i}]`) : [n]));
}

for (const name of VISION_FIXTURES) {
  test(`${name}: every reference output within 1e-4, no tensor left behind`, async () => {
    const ref = await readHfReference(fixture(name));
    const before = tf.memory().numTensors;
    const report = await compareVisionReference(fixture(name), ref, DEFAULT_REFERENCE_TOLERANCE);
    assert.equal(tf.memory().numTensors, before, 'tensors left alive by compareVisionReference');
    assert.deepEqual(report.outputs.map((o) => o.name), listedNames(ref.outputs));
    for (const o of report.outputs) {
      assert.ok(Number.isFinite(o.maxAbsDiff) && o.maxAbsDiff <= 1e-4, `${name} ${o.name}: max |diff| ${o.maxAbsDiff} ${o.note ?? ''}`);
      assert.ok(o.compared > 0);
    }
    assert.ok(report.ok);
    assert.equal(report.modelClass, ref.modelClass);
    const expected = name.startsWith('clip')
      ? ['embeddings_output', 'hidden_states[2]', 'last_hidden_state', 'pooler_output', 'cls_last_hidden_state']
      : ['embeddings_output', 'hidden_states[2]', 'last_hidden_state', 'pooler_output'];
    if (name === 'clip_vision_proj') expected.push('image_embeds');
    for (const e of expected) assert.ok(report.outputs.some((o) => o.name === e), `${name}: ${e} not compared`);
  });
}

test('the comparison fails on a wrong port: CLIP eps 1e-6, exact GELU for quick_gelu, SigLIP erf GELU', async () => {
  const cases: Array<[string, (c: Record<string, unknown>) => Record<string, unknown>]> = [
    ['clip_vision', (c) => ({ ...c, layer_norm_eps: 1e-6 })],
    ['clip_vision', (c) => ({ ...c, hidden_act: 'gelu' })],
    ['siglip_vision', (c) => ({ ...c, hidden_act: 'gelu' })],
  ];
  for (const [name, edit] of cases) {
    const dir = await variant(name, edit);
    const report = await compareVisionReference(dir, await readHfReference(fixture(name)), 1e-4);
    assert.equal(report.ok, false, `${name} with ${JSON.stringify(edit({}))} passed`);
    const worst = Math.max(...report.outputs.map((o) => o.maxAbsDiff));
    assert.ok(worst > 1e-4 && worst < 1, `${name}: worst ${worst}`);
  }
});

test('key prefix: vision_model. present (v4) or absent (v5) gives the same parameters; both spellings at once is refused', async () => {
  for (const [v4, v5] of [['clip_vision', 'clip_vision_v5'], ['siglip_vision', 'siglip_vision_v5']]) {
    const a = await readHfVision(fixture(v4));
    const b = await readHfVision(fixture(v5));
    assert.deepEqual(Object.keys(a.weights).sort(), Object.keys(b.weights).sort());
    for (const [path, t] of Object.entries(a.weights)) {
      assert.deepEqual(t.shape, b.weights[path].shape, path);
      assert.deepEqual(t.data, b.weights[path].data, path);
    }
  }
  // v4's file with the prefix stripped reads the same too.
  const stripped = await variant('clip_vision', undefined, (t) => rekey(t, (k) => k.replace(/^vision_model\./, '')));
  assert.deepEqual((await readHfVision(stripped)).weights, (await readHfVision(fixture('clip_vision'))).weights);
  const both = await variant('clip_vision', undefined, (t) => ({ ...t, 'post_layernorm.weight': t['vision_model.post_layernorm.weight'] }));
  await assert.rejects(readHfVision(both), /key "vision_model\.post_layernorm\.weight" is given twice \(also as "post_layernorm\.weight"\)/);
});

test('the patch convolution lands on patchify order: row (py·P + px)·C + c of patch_embed holds conv[d, c, py, px]', async () => {
  const imp = await readHfVision(fixture('clip_vision'));
  const conv = (await readSafetensors(join(fixture('clip_vision'), 'model.safetensors'))).tensors['vision_model.embeddings.patch_embedding.weight'];
  const w = imp.weights['vit.patch_embed.weight'];
  const [D, C, P] = [64, 3, 8];
  assert.deepEqual(w.shape, [P * P * C, D]);
  for (const [d, c, py, px] of [[0, 0, 0, 0], [5, 2, 1, 7], [63, 1, 7, 0], [17, 2, 3, 4]]) {
    assert.equal(w.data[((py * P + px) * C + c) * D + d], conv.data[((d * C + c) * P + py) * P + px]);
  }
  assert.equal(imp.weights['vit.patch_embed.bias'], undefined, 'CLIP has no patch bias');
  const sig = await readHfVision(fixture('siglip_vision'));
  // in_proj rows 0…D−1 are q, D…2D−1 k, 2D…3D−1 v; ours are transposed [in, out].
  const raw = (await readSafetensors(join(fixture('siglip_vision'), 'model.safetensors'))).tensors;
  const inW = raw['vision_model.head.attention.in_proj_weight'].data;
  const inB = raw['vision_model.head.attention.in_proj_bias'].data;
  ['q', 'k', 'v'].forEach((n, j) => {
    const ours = sig.weights[`vit.head.attn.${n}.weight`];
    assert.deepEqual(ours.shape, [D, D]);
    assert.equal(ours.data[3 * D + 10], inW[(j * D + 10) * D + 3], `${n}: weight[out 10, in 3]`);
    assert.equal(sig.weights[`vit.head.attn.${n}.bias`].data[9], inB[j * D + 9]);
  });
  assert.deepEqual(sig.weights['vit.head.probe'].shape, [D]);
});

test('imported configs: CLIP and SigLIP ViT fields and preprocessing defaults', async () => {
  const clip = await readHfVisionSpec(fixture('clip_vision_proj'));
  assert.equal(clip.modelClass, 'CLIPVisionModelWithProjection');
  assert.deepEqual(clip.config, {
    imageSize: 32, patchSize: 8, channels: 3, dim: 64, depth: 2, heads: 4, mlpDim: 128, normEps: 1e-5, activation: 'quick_gelu',
    patchBias: false, classToken: true, preNorm: true, finalNorm: 'pooled', pooling: 'cls', projectionDim: 32,
  });
  assert.equal(clip.preprocessingFromFile, false);
  assert.deepEqual(clip.preprocessing, { resize: { shortestEdge: 32 }, crop: { height: 32, width: 32 }, resample: 'bicubic', mean: [...CLIP_MEAN], std: [...CLIP_STD] });
  const sig = await readHfVisionSpec(fixture('siglip_vision'));
  assert.deepEqual(sig.config, {
    imageSize: 32, patchSize: 8, channels: 3, dim: 64, depth: 2, heads: 4, mlpDim: 128, normEps: 1e-6, activation: 'gelu_tanh',
    patchBias: true, classToken: false, preNorm: false, finalNorm: 'all', pooling: 'attention', projectionDim: 0,
  });
  assert.deepEqual(sig.preprocessing, { resize: { height: 32, width: 32 }, crop: null, resample: 'bicubic', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
});

test('preprocessor_config.json: size forms, crop, resample, mean/std are read; unsupported values are refused', async () => {
  const clipDir = await variant('clip_vision');
  writeFileSync(join(clipDir, HF_PREPROCESSOR_FILE), JSON.stringify({
    image_processor_type: 'CLIPImageProcessor', do_resize: true, size: { shortest_edge: 36 }, do_center_crop: true,
    crop_size: { height: 32, width: 32 }, resample: 2, do_rescale: true, rescale_factor: 0.00392156862745098,
    do_normalize: true, image_mean: [0.1, 0.2, 0.3], image_std: [0.4, 0.5, 0.6], do_convert_rgb: true,
  }));
  const clip = await readHfVisionSpec(clipDir);
  assert.equal(clip.preprocessingFromFile, true);
  assert.deepEqual(clip.preprocessing, { resize: { shortestEdge: 36 }, crop: { height: 32, width: 32 }, resample: 'bilinear', mean: [0.1, 0.2, 0.3], std: [0.4, 0.5, 0.6] });

  // the values flow into the image pipeline: a uniform 50×40 image comes out 32×32 at (v/255 − mean)/std
  const img = join(clipDir, 'uniform.png');
  await sharp(Buffer.alloc(50 * 40 * 3, 200), { raw: { width: 50, height: 40, channels: 3 } }).png().toFile(img);
  const px = await loadImage(img, clip.config.imageSize!, clip.preprocessing);
  assert.equal(px.length, 32 * 32 * 3);
  for (let c = 0; c < 3; c++) assert.equal(px[3 * 77 + c], Math.fround((200 / 255 - [0.1, 0.2, 0.3][c]) / [0.4, 0.5, 0.6][c]));

  const sigDir = await variant('siglip_vision');
  writeFileSync(join(sigDir, HF_PREPROCESSOR_FILE), JSON.stringify({
    image_processor_type: 'SiglipImageProcessor', size: { height: 32, width: 32 }, resample: 3, image_mean: 0.5, image_std: [0.5, 0.5, 0.5],
  }));
  assert.deepEqual((await readHfVisionSpec(sigDir)).preprocessing, { resize: { height: 32, width: 32 }, crop: null, resample: 'bicubic', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });

  const p = (raw: Record<string, unknown>, family: 'clip' | 'siglip' = 'clip') => parseHfPreprocessing(raw, family, 32, 'pre.json');
  assert.deepEqual(p({ size: 32 }).resize, { shortestEdge: 32 }); // a bare number: CLIP's short side
  assert.deepEqual(p({ size: 32 }, 'siglip').resize, { height: 32, width: 32 });
  assert.deepEqual(p({ do_normalize: false }).mean, [0, 0, 0]);
  assert.deepEqual(p({ size: { height: 40, width: 40 }, do_center_crop: true, crop_size: 32 }).crop, { height: 32, width: 32 });
  assert.throws(() => p({ resample: 4 }), /pre\.json: resample 4 is not supported; supported: 0 \(nearest\), 1 \(lanczos\), 2 \(bilinear\), 3 \(bicubic\)/);
  assert.throws(() => p({ size: { shortest_edge: 32, longest_edge: 64 } }), /size .* is not supported; supported: \{"shortest_edge": n\}, \{"height": h, "width": w\} or a number/);
  assert.throws(() => p({ crop_size: { height: 24, width: 24 } }), /gives 24×24 images but the encoder's image_size is 32/);
  assert.throws(() => p({ size: { height: 32, width: 40 } }, 'siglip'), /the output is 32×40; the encoder takes square images/);
  assert.throws(() => p({ image_mean: [0.5, 0.5] }), /image_mean \[0\.5,0\.5\] is not supported; supported: 3 numbers/);
  assert.throws(() => p({ rescale_factor: 1 }), /rescale_factor 1 is not supported \(supported: 1\/255/);
  assert.throws(() => p({ rescale_factor: '1/255' }), /rescale_factor "1\/255" is not supported/);
  assert.throws(() => p({ do_resize: false }), /do_resize false is not supported/);
  assert.throws(() => p({ image_processor_type: 'ViTImageProcessor' }), /image processor "ViTImageProcessor" is not supported; supported: CLIPImageProcessor, /);
});

test('refusals name the field or key and what is supported', async () => {
  const reject = async (dir: string, re: RegExp) => assert.rejects(readHfVision(dir), re);
  await reject(await variant('clip_vision', (c) => ({ ...c, model_type: 'vit' })), /model_type "vit" is not supported; supported: clip_vision_model, siglip_vision_model, clip, siglip/);
  await reject(await variant('siglip_vision', (c) => ({ ...c, architectures: ['Siglip2VisionModel'] })), /architecture "Siglip2VisionModel" is not supported; supported: CLIPVisionModel, CLIPVisionModelWithProjection, CLIPModel, SiglipVisionModel, SiglipModel/);
  await reject(await variant('clip_vision', (c) => ({ ...c, architectures: ['SiglipVisionModel'] })), /architecture "SiglipVisionModel" does not go with model_type "clip_vision_model"/);
  await reject(await variant('clip_vision', (c) => ({ ...c, hidden_act: 'relu' })), /hidden_act "relu" is not supported; supported: gelu, gelu_pytorch_tanh, gelu_new, quick_gelu/);
  await reject(await variant('clip_vision', (c) => ({ ...c, image_size: 36 })), /patch_size \(8\) must divide image_size \(36\)/);
  await reject(await variant('clip_vision', (c) => ({ ...c, image_size: [32, 32] })), /field "image_size \(one side of a square image\)" must be a positive integer, got \[32,32\]/);
  await reject(await variant('clip_vision', (c) => ({ ...c, num_attention_heads: 5 })), /num_attention_heads \(5\) must divide hidden_size \(64\)/);
  await reject(await variant('siglip_vision', (c) => ({ ...c, vision_use_head: false })), /vision_use_head false is not supported \(supported: true\)/);
  // weights that do not match the config
  await reject(await variant('clip_vision', (c) => ({ ...c, image_size: 40 })), /key "vision_model\.embeddings\.position_embedding\.weight" has shape \[17,64\], the config implies \[26,64\]/);
  await reject(await variant('clip_vision', (c) => ({ ...c, intermediate_size: 96 })), /key "vision_model\.encoder\.layers\.0\.mlp\.fc1\.bias" has shape \[128\], the config implies \[96\]/);
  await reject(await variant('clip_vision', (c) => ({ ...c, num_hidden_layers: 3 })), /missing keys for CLIPVisionModel .*"encoder\.layers\.2\.layer_norm1\.weight"/);
  await reject(await variant('clip_vision', (c) => ({ ...c, num_hidden_layers: 1 })), /unexpected keys for CLIPVisionModel: "vision_model\.encoder\.layers\.1\./);
  await reject(await variant('siglip_vision', undefined, (t) => rekey(t, (k) => (k.endsWith('head.probe') ? null : k))), /missing key for SiglipVisionModel \(with or without "vision_model\."\): "head\.probe"/);
  await reject(await variant('clip_vision', undefined, (t) => ({ ...t, 'vision_model.extra.weight': t['vision_model.post_layernorm.weight'] })), /unexpected key for CLIPVisionModel: "vision_model\.extra\.weight"/);
  // a CLIPVisionModel with a stray projection is refused; the class that has one reads it
  await reject(await variant('clip_vision_proj', (c) => ({ ...c, architectures: ['CLIPVisionModel'] })), /unexpected key for CLIPVisionModel: "visual_projection\.weight"/);
  await assert.rejects(readHfVision(fixture('clip_vision'), { asClass: 'CLIPVisionModelWithProjection' }), /a CLIPVisionModel checkpoint cannot be read as CLIPVisionModelWithProjection; readable as: CLIPVisionModel$/);
  await assert.rejects(readHfVision(fixture('clip_vision'), { asClass: 'ViTModel' }), /cannot read as "ViTModel"; supported: CLIPVisionModel, /);
  await assert.rejects(readHfVision(join(tmp, 'nowhere')), /no config\.json: not a Hugging Face checkpoint folder/);
  // what the comparison refuses
  const ref = await readHfReference(fixture('clip_vision'));
  await assert.rejects(compareVisionReference(fixture('clip_vision'), { ...ref, modelClass: 'LlamaForCausalLM' }, 1e-4), /model_class "LlamaForCausalLM" is not a vision class this importer reads/);
  await assert.rejects(compareVisionReference(fixture('siglip_vision'), ref, 1e-4), /a SiglipVisionModel checkpoint cannot be read as CLIPVisionModel/);
});

test('a full CLIPModel / SiglipModel checkpoint: vision_config nested (missing fields take transformers defaults), text tower skipped', async () => {
  const clipFull = await variant(
    'clip_vision_proj',
    (c) => {
      const { architectures: _a, model_type: _m, hidden_act: _h, layer_norm_eps: _e, projection_dim: _p, ...vision } = c;
      return { architectures: ['CLIPModel'], model_type: 'clip', projection_dim: 32, text_config: { hidden_size: 16 }, vision_config: vision };
    },
    (t) => ({ ...t, 'text_model.embeddings.token_embedding.weight': t['vision_model.post_layernorm.weight'], 'text_projection.weight': t['visual_projection.weight'], logit_scale: { shape: [], data: new Float32Array([2.6]) } }),
  );
  const spec = await readHfVisionSpec(clipFull);
  assert.equal(spec.savedClass, 'CLIPModel');
  assert.equal(spec.config.activation, 'quick_gelu');
  assert.equal(spec.config.normEps, 1e-5);
  assert.equal(spec.config.projectionDim, 32); // the top-level field, not vision_config's default 512
  for (const name of ['clip_vision_proj', 'clip_vision']) {
    // the reference's class says how to read the folder: with or without the projection
    const report = await compareVisionReference(clipFull, await readHfReference(fixture(name)), 1e-4);
    assert.ok(report.ok, `${name}: ${JSON.stringify(report.outputs)}`);
  }
  const sigFull = await variant(
    'siglip_vision',
    (c) => {
      const { architectures: _a, model_type: _m, hidden_act: _h, layer_norm_eps: _e, vision_use_head: _u, ...vision } = c;
      return { architectures: ['SiglipModel'], model_type: 'siglip', vision_config: vision };
    },
    (t) => ({ ...t, 'text_model.head.weight': t['vision_model.post_layernorm.weight'], logit_scale: { shape: [1], data: new Float32Array([1]) }, logit_bias: { shape: [1], data: new Float32Array([-10]) } }),
  );
  assert.ok((await compareVisionReference(sigFull, await readHfReference(fixture('siglip_vision')), 1e-4)).ok);
  // without vision_config there is nothing to read
  await assert.rejects(readHfVision(await variant('clip_vision', (c) => ({ ...c, model_type: 'clip', architectures: ['CLIPModel'] }))), /model_type "clip" needs a "vision_config" object/);
});

test('composition: the imported tower feeds NoteLLM2Model; SigLIP\'s pooled output is the feature late fusion reads', async () => {
  for (const name of ['clip_vision', 'siglip_vision']) {
    const spec = await readHfVisionSpec(fixture(name));
    const cfg = resolveModelConfig({ vision: spec.config, earlyFusion: true, lateFusion: true, connector: { kind: 'mlp' }, lm: { dim: 32, nLayers: 1, nHeads: 2 } }, 50);
    const store = new ParamStore(3);
    const before = tf.memory().numTensors;
    const model = new NoteLLM2Model(cfg, store);
    const imp = await readHfVision(fixture(name));
    store.load(imp.weights, { strict: false });
    const ref = await readHfReference(fixture(name));
    tf.tidy(() => {
      const images = nhwcImages(ref);
      const f = model.visionFeatures(images);
      const pooled = ref.outputs.pooler_output as RefTensor;
      const last = ref.outputs.last_hidden_state as RefTensor;
      // the global feature: CLIP's post_layernorm(CLS), SigLIP's attention-pooled output
      const cls = f.cls.dataSync();
      assert.ok(pooled.data.every((v, i) => Math.abs(v - cls[i]) < 1e-4), `${name}: cls ≠ pooler_output`);
      // the tokens after it: the patch tokens of last_hidden_state (CLIP: without its CLS row)
      assert.deepEqual(f.tokens.shape, [2, 17, 64]);
      const patches = tf.slice(f.tokens, [0, 1, 0], [-1, -1, -1]).dataSync();
      const skip = name.startsWith('clip') ? 1 : 0;
      for (let b = 0; b < 2; b++) {
        for (let t = 0; t < 16; t++) {
          for (let d = 0; d < 64; d++) assert.ok(Math.abs(patches[(b * 16 + t) * 64 + d] - last.data[(b * (16 + skip) + t + skip) * 64 + d]) < 1e-4);
        }
      }
      const t = model.imageTokens + 2;
      const out = model.forward({ ids: tf.zeros([2, t], 'int32') as tf.Tensor2D, lastIndex: [t - 1, t - 1], visualIndex: -1, imageStart: 0, vision: f });
      assert.deepEqual(out.nm.shape, [2, 64]);
      assert.ok(out.gate && out.nm.dataSync().every(Number.isFinite));
    });
    store.dispose();
    assert.equal(tf.memory().numTensors, before);
  }
});

test('importHfVision builds the tower in a store and refuses a store that already has one', async () => {
  const store = new ParamStore(0);
  const before = tf.memory().numTensors;
  const imp = await importHfVision(fixture('siglip_vision_v5'), store, { prefix: 'tower' });
  assert.ok(store.has('tower.head.probe') && !store.has('tower.cls') && !store.has('tower.norm_pre'));
  assert.deepEqual(store.get('tower.pos').shape, [16, 64]);
  assert.deepEqual(store.get('tower.patch_embed.bias').shape, [64]);
  await assert.rejects(importHfVision(fixture('siglip_vision'), store, { prefix: 'tower' }), /already holds parameters under "tower"/);
  const ref = await readHfReference(fixture('siglip_vision_v5'));
  const pooled = ref.outputs.pooler_output as RefTensor;
  tf.tidy(() => {
    const images = nhwcImages(ref);
    const cls = imp.vit.forward(images).cls.dataSync();
    assert.ok(pooled.data.every((v, i) => Math.abs(v - cls[i]) < 1e-4));
  });
  store.dispose();
  assert.equal(tf.memory().numTensors, before);
});
