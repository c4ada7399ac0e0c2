/**
 * Modality saliency of a run's trained variants (src/experiments/saliency.ts): a checkpoint
 * in a run folder is restored (τ included) and measured on the sampled test pairs exactly as
 * computeSaliency measures the same model built in memory; saliency.json merges by preset.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { initBackend, Rng, tf } from '../../src/backend';
import { ParamStore } from '../../src/model/params';
import { resolveModelConfig } from '../../src/model/config';
import { NoteLLM2Model } from '../../src/model/notellm2';
import { PromptEncoder } from '../../src/model/batch';
import { renderPrompt } from '../../src/model/prompt';
import { saveCheckpoint } from '../../src/model/checkpoint';
import { computeSaliency } from '../../src/eval/saliency';
import { TAU_PATH, buildInputs } from '../../src/train/representation';
import { resolveTrainConfig } from '../../src/train/config';
import { loadDataset } from '../../src/data/loaders';
import { ImageStore } from '../../src/data/images';
import { saveTokenizer, trainTokenizer } from '../../src/data/tokenizer';
import { presetConfig } from '../../src/experiments/presets';
import { saliencyForRun } from '../../src/experiments/saliency';
import { runFile, variantCheckpointDir } from '../../src/experiments/run-folder';

const vision = { imageSize: 8, patchSize: 4, dim: 16, depth: 1, heads: 2 }; // 4 patches

before(async () => {
  await initBackend();
});

test('saliencyForRun: loads a run\'s checkpoint (τ included), matches computeSaliency on the same pairs, merges saliency.json', async () => {
  const root = mkdtempSync(join(tmpdir(), 'saliency-run-'));
  try {
    const datasetDir = resolve('test/fixtures/good');
    const { dataset } = await loadDataset(datasetDir, { images: 'exists' });
    const limits = resolveModelConfig().text;
    const corpus = [...dataset.notes.values()].flatMap((n) => [renderPrompt('basic', n, limits), renderPrompt('micl', n, limits)]);
    const tok = trainTokenizer(corpus, { vocabSize: 300 });
    const tokenizerPath = join(root, 'tokenizer.json');
    saveTokenizer(tok, tokenizerPath);
    const cfg = resolveModelConfig({ ...presetConfig('micl'), vision, connector: { numQueries: 2, layers: 1, heads: 2 }, lm: { dim: 8, nLayers: 2, nHeads: 2, initStd: 0.3 }, outDim: 4 }, tok.vocabSize);
    const store = new ParamStore(4);
    const runDir = join(root, 'run');
    try {
      const model = new NoteLLM2Model(cfg, store);
      store.param(TAU_PATH, [], { kind: 'constant', value: 1.25 });
      const train = resolveTrainConfig({});
      await saveCheckpoint(variantCheckpointDir(runDir, 'micl', 3, 'best'), {
        weights: store.export(),
        config: { model: cfg, train, preset: 'micl', name: 'micl', datasetDir, tokenizerPath, pretrained: {} },
      });
      writeFileSync(runFile(runDir, 'saliency'), JSON.stringify({ presets: [{ preset: 'other', layers: [{ sv: 1, st: 0, so: 0 }] }] }));
      const { entries, file } = await saliencyForRun(runDir, { batches: 1, pairsPerBatch: 2 });
      assert.equal(entries.length, 1);
      assert.equal(entries[0].preset, 'micl');
      assert.equal(entries[0].seed, 3);
      assert.equal(entries[0].examples, 4);

      // The same two test pairs, in the sample's order, through the model as built here.
      const pairs = new Rng(0).shuffle([...dataset.pairs.test]).slice(0, 2);
      const notes = [...pairs.map((p) => dataset.notes.get(p.a)!), ...pairs.map((p) => dataset.notes.get(p.b)!)];
      const images = ImageStore.shared(dataset, { size: cfg.vision.imageSize });
      await images.load(notes.map((n) => n.id));
      const batch = buildInputs(model, new PromptEncoder(tok, cfg, model.imageTokens), { kind: 'images', images }, notes);
      try {
        const direct = computeSaliency(model, [batch.inputs]);
        assert.ok(Math.abs(direct.loss - entries[0].loss) < 1e-5, `L_m ${entries[0].loss} (loaded) vs ${direct.loss}`);
        direct.layers.forEach((l, i) => {
          for (const k of ['sv', 'st', 'so', 'attnImage', 'attnText'] as const) {
            assert.ok(Math.abs(l[k] - entries[0].layers[i][k]) < 1e-5, `layer ${i} ${k}: ${entries[0].layers[i][k]} vs ${l[k]}`);
          }
        });
        assert.ok(entries[0].layers.every((l) => l.sv > 0 && l.attnImage > 0), 'an mICL model has image tokens');
        // τ came from the checkpoint: with the default 3.0 the loss differs.
        assert.ok(Math.abs(computeSaliency(model, [batch.inputs], { tau: 3 }).loss - direct.loss) > 1e-4);
      } finally {
        tf.dispose(batch.owned);
      }
      const written = JSON.parse(readFileSync(file!, 'utf8')) as { presets: Array<{ preset: string; layers: unknown[] }> };
      assert.deepEqual(written.presets.map((p) => p.preset), ['other', 'micl']);
      assert.equal(written.presets[1].layers.length, 2);
      await assert.rejects(saliencyForRun(runDir, { presets: ['basic'] }), /has no variant "basic"; it has micl/);
    } finally {
      store.dispose();
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
