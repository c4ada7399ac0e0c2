/**
 * `bench --shape` (src/bench/scale.ts): the step runs in every training mode and cleans up,
 * the parameter counts, the heap arithmetic that decides which modes are tried, and the
 * result's shape with a `why` in place of a figure. Speeds are never asserted.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../../src/backend';
import { benchScaleMode, estimateHeapBytes, runScaleBench, SCALE_SHAPES, shapeParams, WASM_HEAP_LIMIT, type ScaleModeFigures } from '../../src/bench/scale';
import { lmTrainedPaths } from '../../src/model/lm-train';
import { lmParamShapes } from '../../src/model/lm-train';
import type { LMConfig } from '../../src/model/lm';

before(async () => {
  await initBackend('wasm');
});

const TINY: LMConfig = { vocabSize: 50, dim: 32, nLayers: 3, nHeads: 4, nKVHeads: 2, headDim: 8, mlpHidden: 48, head: 'none' };

test('shape parameter counts (SmolLM2-135M is 134,515,008 without its tied head)', () => {
  assert.equal(shapeParams(SCALE_SHAPES['smollm-135m']), 134_515_008);
  for (const cfg of [TINY, SCALE_SHAPES['qwen2.5-0.5b']]) {
    let n = 0;
    for (const s of lmParamShapes(cfg).values()) n += s.reduce((a, b) => a * b, 1);
    assert.equal(shapeParams(cfg), n);
  }
});

test('benchScaleMode: every mode steps, trains what the mode says, leaks nothing', () => {
  const before = tf.memory().numTensors;
  for (const mode of ['full', 'lora:2', 'last:1']) {
    const f = benchScaleMode(TINY, mode, { steps: 2, embedBatches: 1 });
    const trained = lmTrainedPaths(mode, TINY);
    const shapes = lmParamShapes(TINY);
    const expected = mode === 'lora:2' ? 3 * 2 * (32 + 32 + 32 + 16 + 32 + 16 + 32 + 32) : trained.reduce((n, p) => n + shapes.get(p)!.reduce((a, b) => a * b, 1), 0);
    assert.equal(f.trainableParams, expected + 1, `${mode}: trained parameters (+ the temperature)`);
    assert.equal(f.stepsMs.length, 2);
    assert.equal(new Set(f.numTensors).size, 1, `${mode}: tensors per step ${f.numTensors}`);
    assert.ok(Number.isFinite(f.firstLoss) && Number.isFinite(f.lastLoss) && f.lastLoss !== f.firstLoss, mode);
    assert.ok(f.notesPerSec! > 0 && f.peakRssMB > 0 && f.wasmHeapMB > 0);
    assert.equal(f.nativeMB > 0, mode !== 'full');
  }
  assert.equal(tf.memory().numTensors, before);
});

test('heap arithmetic: 135M trains fully under 4 GiB, 0.5B and 1.1B only with LoRA or last:N', () => {
  const fits = (shape: string, mode: string) => estimateHeapBytes(SCALE_SHAPES[shape], mode).bytes < WASM_HEAP_LIMIT;
  assert.ok(fits('smollm-135m', 'full') && fits('smollm-135m', 'lora:8') && fits('smollm-135m', 'last:4'));
  assert.ok(!fits('qwen2.5-0.5b', 'full') && fits('qwen2.5-0.5b', 'lora:8') && fits('qwen2.5-0.5b', 'last:4'));
  assert.ok(!fits('tinyllama-1.1b', 'full') && fits('tinyllama-1.1b', 'lora:8') && fits('tinyllama-1.1b', 'last:2'));
  const a = estimateHeapBytes(SCALE_SHAPES['smollm-135m'], 'last:2').bytes, b = estimateHeapBytes(SCALE_SHAPES['smollm-135m'], 'last:4').bytes;
  assert.ok(a < b);
});

test('runScaleBench: figures or a why in place of each, modes beyond the heap never tried', async () => {
  const tried: string[] = [];
  const fake = (mode: string): ScaleModeFigures => ({
    mode, trainableParams: 1, nativeMB: 1, stepMs: mode === 'lora:8' ? 100 : 200, stepsMs: [100], stepCpuMs: 90, firstLoss: 1, lastLoss: 0.5,
    notesPerSec: 7, backendMB: 1, wasmHeapMB: 10, peakRssMB: mode === 'lora:8' ? 500 : 900, numTensors: [1], ortThreads: 1,
  });
  const r = await runScaleBench('tinyllama-1.1b', ['full', 'lora:8', 'last:2'], async (m) => {
    tried.push(m);
    return m === 'last:2' ? { why: 'the step\'s process ended (SIGKILL)' } : fake(m);
  });
  assert.deepEqual(tried, ['lora:8', 'last:2']);
  assert.equal(r.shape, 'tinyllama-1.1b');
  assert.equal(r.params, shapeParams(SCALE_SHAPES['tinyllama-1.1b']));
  assert.match((r.fullStepMs as { why: string }).why, /needs about \d+\.\d\d GiB of wasm heap .*capped at 4 GiB/);
  assert.equal(r.loraStepMs, 100);
  assert.deepEqual(r.lastStepMs, { why: 'the step\'s process ended (SIGKILL)' });
  assert.equal(r.notesPerSec, 7);
  assert.equal(r.peakRssMB, 500);
  assert.ok(JSON.parse(JSON.stringify(r)).modes.full.why);
  const bad = await runScaleBench('smollm-135m', ['last:4'], async () => fake('last:4'), { layers: 2 });
  assert.match((bad.lastStepMs as { why: string }).why, /last:4: the LLM has only 2 layers/);
  await assert.rejects(runScaleBench('gpt-5', ['full'], async () => fake('full')), /--shape "gpt-5" is not one of smollm-135m, qwen2.5-0.5b, tinyllama-1.1b/);
});
