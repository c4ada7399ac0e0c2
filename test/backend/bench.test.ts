/**
 * The bench harness runs end to end and reports the exact reference dimensions; speed
 * figures are medians for people to read, never asserted here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../../src/backend';
import { formatBench, median, runBench } from '../../src/bench';

test('median of odd and even lists', () => {
  assert.equal(median([5, 1, 3]), 3);
  assert.equal(median([4, 1, 3, 2]), 2.5);
});

test('runBench: one step of the reference stack on wasm/ort and wasm/backend, dims and structure', async () => {
  await initBackend('wasm');
  const before = tf.memory().numTensors;
  const r = await runBench({ configs: [{ backend: 'wasm', gemm: 'ort' }, { backend: 'wasm', gemm: 'backend' }], steps: 1, extras: false, matMulReps: 1, warmup: 0 });
  assert.equal(tf.memory().numTensors, before, 'the bench disposes everything it made');
  assert.equal(r.backend, 'wasm');
  assert.equal(r.gemm, 'ort');
  const d = r.reference;
  assert.deepEqual([d.layers, d.dim, d.heads, d.batch, d.seqLen, d.pairs, d.mlpHidden], [4, 128, 4, 16, 48, 8, 344]);
  // embedding 512·128 + 4 layers × (4·128² attention + 3·128·344 SwiGLU + 2·128 norms) + 128 final norm + 128·512 head
  assert.equal(d.params, 512 * 128 + 4 * (4 * 128 * 128 + 3 * 128 * 344 + 2 * 128) + 128 + 128 * 512);
  assert.equal(r.runs.length, 2);
  assert.ok(r.runs[0].gemmInfo.calls.ort > 0, 'the ort run used ORT');
  assert.equal(r.runs[1].gemmInfo.calls.ort, 0, 'the backend run did not');
  // Same seed, same data: both GEMMs start from the same loss (to float32 rounding).
  assert.ok(Math.abs(r.runs[0].trainStep.firstLoss - r.runs[1].trainStep.firstLoss) < 1e-4);
  assert.ok(r.trainStepMs > 0 && Number.isFinite(r.ratios['wasm/backend']));
  assert.equal(Object.keys(r.matMulGflops).length, 4);
  const text = formatBench(r);
  assert.match(text, /4 layers, d=128, 4 heads/);
  assert.match(text, /wasm\/backend/);
});
