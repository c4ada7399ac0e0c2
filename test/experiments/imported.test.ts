/**
 * Runs with imported towers (`--lm`, `--vision`): the llama_gqa and clip_vision fixtures
 * (tiny random Hugging Face checkpoints) glued on the smoke synth dataset. Checks the wiring, not
 * recall: the LLM's own tokenizer with <pad>, <IMG>, <IMG_EMB> added (ids that survive a
 * reload), the embedding grown by mean rows, connector and gate widths following the
 * imports, no pretraining, checkpoints holding only what training changed (not the frozen
 * vision tower), `eval` of a checkpoint reproducing the run's recall, and a changed source
 * folder refused on restore.
 */
process.env.NOTELLM2_SMOKE = '1';
import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { initBackend, tf } from '../../src/backend';
import { loadTokenizer } from '../../src/data/tokenizer';
import { readSafetensors } from '../../src/model/checkpoint';
import { HfCheckpoint } from '../../src/model/hf/weights';
import { runAblation } from '../../src/experiments/runner';
import { restoreVariant } from '../../src/experiments/restore';
import { evaluateVariant } from '../../src/experiments/evaluate';
import { importTokenizer, loadImportedTowers, tokenizerRoles } from '../../src/experiments/sources';
import { ParamStore } from '../../src/model/params';
import { resolveModelConfig } from '../../src/model/config';
import { presetConfig } from '../../src/experiments/presets';
import { variantCheckpointDir, variantEmbeddingsDir } from '../../src/experiments/run-folder';
import { exportVariant, EXPORT_MODEL_DIR } from '../../src/experiments/export';
import { EmbeddingCatalogue } from '../../src/eval/catalogue';
import type { AblationResults, VariantResult } from '../../src/experiments/results';

const FIX = resolve('test/fixtures');
const tmp = mkdtempSync(join(tmpdir(), 'notellm2-imported-'));
const lmDir = join(tmp, 'lm');
const out = join(tmp, 'run');
let results: AblationResults;
let runs: VariantResult[];
const logs: string[] = [];

before(async () => {
  await initBackend();
  // A Hugging Face LLM folder: the llama_gqa checkpoint with a tokenizer of its 300 ids.
  cpSync(join(FIX, 'hf', 'llama_gqa'), lmDir, { recursive: true });
  cpSync(join(FIX, 'hf', 'tokenizer-300'), lmDir, { recursive: true });
  cpSync(lmDir, `${lmDir}-lora`, { recursive: true }); // untouched by the changed-source test
  ({ results, runs } = await runAblation({
    dataset: 'synth',
    variants: ['basic', 'notellm2'],
    out,
    workers: 1,
    lm: lmDir,
    vision: join(FIX, 'hf', 'clip_vision'),
    train: { maxSteps: 2, batchPairs: 4 },
    model: { connector: { numQueries: 2, layers: 1 } },
    progress: 'silent',
    log: (m) => logs.push(m),
  }));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

test('the tokenizer is the LLM folder\'s, with <pad>, <IMG>, <IMG_EMB> added as ids 300–302 that survive a reload', () => {
  const { tokenizer, path } = importTokenizer(lmDir, tmp);
  assert.deepEqual([tokenizer.padId, tokenizer.imgId, tokenizer.imgEmbId], [300, 301, 302]);
  assert.equal(tokenizer.bosId, tokenizer.tokenToId('<s>'));
  assert.equal(tokenizer.vocabSize, 303);
  const again = loadTokenizer(path, { specialTokens: tokenizerRoles(lmDir) });
  assert.deepEqual([again.padId, again.imgId, again.imgEmbId, again.vocabSize], [300, 301, 302, 303]);
  const text = 'Note: {"image": "<IMG>"}, compress this note into one word: "<IMG_EMB>".';
  assert.deepEqual(again.encode(text), tokenizer.encode(text));
});

test('imported towers replace pretraining; the model takes their layouts; widths follow', () => {
  assert.ok(!logs.some((m) => m.includes('pretrained')), `no pretraining: ${logs.join(' | ')}`);
  assert.deepEqual(results.pretrain, {});
  const cfg = runs[1].config.model;
  assert.equal(cfg.lm.vocabSize, 303);
  assert.equal(cfg.lm.dim, 64);
  assert.equal(cfg.lm.nKVHeads, 2);
  assert.equal(cfg.lm.head, 'none');
  assert.equal(cfg.vision.dim, 64);
  assert.equal(cfg.vision.imageSize, 32);
  for (const r of runs) {
    const values = Object.values(r.metrics);
    assert.ok(values.length > 0 && values.every(Number.isFinite), `${r.name}: recall computed (${JSON.stringify(r.metrics)})`);
    assert.equal(r.steps, 2);
  }
});

test('checkpoints hold what training changed, plus the sources with their hashes; the grown embedding rows are the mean', async () => {
  const dir = variantCheckpointDir(out, 'notellm2', 0, 'best');
  const { tensors } = await readSafetensors(join(dir, 'model.safetensors'));
  const names = Object.keys(tensors);
  assert.ok(!names.some((n) => n.startsWith('vit.')), 'the frozen imported vision tower is not copied');
  for (const p of ['lm.embed.weight', 'lm.layers.2.attn.q.weight', 'fusion.g.weight', 'fusion.v.weight', 'head.weight', 'loss.tau']) {
    assert.ok(names.includes(p), `${p} is trained and saved (saved: ${names.slice(0, 8).join(', ')} …)`);
  }
  assert.ok(names.some((n) => n.startsWith('connector.')), 'the connector is saved');
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  assert.equal(cfg.sources.lm.folder, lmDir);
  assert.match(cfg.sources.lm.files['model.safetensors'], /^[0-9a-f]{64}$/);
  assert.match(cfg.sources.vision.files['config.json'], /^[0-9a-f]{64}$/);
  // Before training, the three added rows are the mean of the 300 stored ones.
  const store = new ParamStore(0);
  try {
    await loadImportedTowers(store, resolveModelConfig({ ...presetConfig('basic'), lm: cfg.model.lm }), cfg.sources);
    const e = store.get('lm.embed.weight'); // [303, 64]
    assert.deepEqual(e.shape, [303, 64]);
    const rows = e.arraySync() as number[][];
    const ckpt = await HfCheckpoint.open(lmDir);
    try {
      const stored = await ckpt.read('model.embed_tokens.weight'); // [300, 64]
      for (let j = 0; j < 64; j++) {
        let mean = 0;
        for (let i = 0; i < 300; i++) mean += stored.data[i * 64 + j] / 300;
        assert.ok(Math.abs(rows[7][j] - stored.data[7 * 64 + j]) === 0, 'stored rows are kept');
        for (const r of [300, 301, 302]) assert.ok(Math.abs(rows[r][j] - mean) < 1e-6, `row ${r}, column ${j}: ${rows[r][j]} vs mean ${mean}`);
      }
    } finally {
      await ckpt.close();
    }
  } finally {
    store.dispose();
  }
});

test('eval of a saved checkpoint reproduces the run\'s recall; a changed source folder is refused', async () => {
  const v = await restoreVariant(variantCheckpointDir(out, 'notellm2', 0, 'best'));
  try {
    const e = await evaluateVariant(v);
    assert.deepEqual(e.metrics, runs[1].metrics);
    assert.deepEqual(e.subsets, runs[1].subsets);
  } finally {
    v.dispose();
  }
  assert.equal(tf.memory().numTensors >= 0, true);
  appendFileSync(join(lmDir, 'config.json'), ' ');
  await assert.rejects(restoreVariant(variantCheckpointDir(out, 'notellm2', 0, 'best')), /--lm: the model folder .* is not the one the run was trained from: config\.json \(changed\)/);
});

test('the run folder holds one checkpoint folder per variant and no pretraining cache was needed', () => {
  assert.deepEqual(readdirSync(join(out, 'checkpoints')).sort(), ['basic-s0', 'notellm2-s0']);
  assert.ok(Number.isFinite(runs[0].metrics['R@10']));
  assert.ok(existsSync(join(out, 'checkpoints', 'basic-s0', 'best', 'model.safetensors')));
});

test('--lm-train lora:2: checkpoints hold the adapters and no base weight; eval of the checkpoint reproduces the run; an export loads back to the same embeddings', async () => {
  const loraOut = join(tmp, 'lora');
  const { runs: loraRuns } = await runAblation({
    dataset: 'synth',
    variants: ['notellm2'],
    out: loraOut,
    workers: 1,
    lm: lmDir.replace(/lm$/, 'lm-lora'),
    vision: join(FIX, 'hf', 'clip_vision'),
    train: { maxSteps: 2, batchPairs: 4, lmTrain: 'lora:2' },
    model: { connector: { numQueries: 2, layers: 1 } },
    progress: 'silent',
    log: () => {},
  });
  assert.equal(loraRuns[0].config.train.lmTrain, 'lora:2');
  const dir = variantCheckpointDir(loraOut, 'notellm2', 0, 'best');
  const names = Object.keys((await readSafetensors(join(dir, 'model.safetensors'))).tensors);
  const lmNames = names.filter((n) => n.startsWith('lm.'));
  assert.equal(lmNames.length, 3 * 4 * 2, `a and b of q, k, v, o in 3 layers: ${lmNames.join(', ')}`);
  assert.ok(lmNames.every((n) => /\.lora_[ab]$/.test(n)));
  const v = await restoreVariant(dir);
  try {
    assert.deepEqual((await evaluateVariant(v)).metrics, loraRuns[0].metrics);
  } finally {
    v.dispose();
  }

  // Export: a Hugging Face folder (LoRA merged, Hugging Face names, grown vocabulary, no head)
  // plus the rest; loaded back, it embeds the test notes as the run did.
  const exp = join(tmp, 'export');
  await exportVariant(dir, exp);
  const keys = Object.keys((await readSafetensors(join(exp, 'model.safetensors'))).tensors);
  assert.ok(keys.includes('model.embed_tokens.weight') && keys.includes('model.layers.2.self_attn.q_proj.weight') && keys.includes('model.norm.weight'));
  assert.ok(!keys.some((k) => k.includes('lora') || k === 'lm_head.weight'), 'adapters merged, no head');
  const hfConfig = JSON.parse(readFileSync(join(exp, 'config.json'), 'utf8'));
  assert.equal(hfConfig.vocab_size, 303);
  const back = await restoreVariant(join(exp, EXPORT_MODEL_DIR));
  try {
    const e = await evaluateVariant(back);
    const saved = await EmbeddingCatalogue.load(variantEmbeddingsDir(loraOut, 'notellm2', 0));
    let max = 0;
    for (let i = 0; i < saved.vectors.length; i++) max = Math.max(max, Math.abs(saved.vectors[i] - e.catalogue.vectors[i]));
    assert.ok(max < 1e-5, `exported model's embeddings differ by ${max}`);
    assert.deepEqual(e.metrics, loraRuns[0].metrics);
  } finally {
    back.dispose();
  }
});
