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
  const r = await runBench({
    configs: [
      { backend: 'wasm', gemm: 'ort' }, { backend: 'wasm', gemm: 'backend' }, { backend: 'wasm', gemm: 'ort', ortThreads: 1 },
      { backend: 'wasm', gemm: 'ort', simd: false },
    ],
    steps: 3, extras: false, matMulReps: 1, warmup: 0, stepsPerTurn: 2,
  });
  assert.equal(tf.memory().numTensors, before, 'the bench disposes everything it made');
  assert.equal(r.backend, 'wasm');
  assert.equal(r.gemm, 'ort');
  const d = r.reference;
  assert.deepEqual([d.layers, d.dim, d.heads, d.batch, d.seqLen, d.pairs, d.mlpHidden], [4, 128, 4, 16, 48, 8, 344]);
  // embedding 512·128 + 4 layers × (4·128² attention + 3·128·344 SwiGLU + 2·128 norms) + 128 final norm + 128·512 head
  assert.equal(d.params, 512 * 128 + 4 * (4 * 128 * 128 + 3 * 128 * 344 + 2 * 128) + 128 + 128 * 512);
  assert.deepEqual(r.runs.map((f) => f.label), ['wasm/ort', 'wasm/backend', 'wasm/ort:1t', 'wasm/ort:no-simd']);
  // Interleaved in turns of 2: every configuration still takes exactly 3 timed steps, and
  // each counts only its own products (the same number of products per step on each route).
  for (const f of r.runs) {
    assert.equal(f.trainStep.steps, 3);
    assert.equal(f.trainStep.interleaved, true);
    assert.ok(f.trainStep.minMs <= f.trainStep.medianMs && f.trainStep.medianMs <= f.trainStep.p90Ms);
  }
  const { ort, backend } = r.runs[0].gemmInfo.calls;
  // 3 timed steps in two turns, each turn opening with an untimed step: 5 steps in all
  assert.ok(ort > 0 && ort % 5 === 0, 'the ort run used ORT');
  assert.equal(r.runs[1].gemmInfo.calls.ort, 0, 'the backend run did not');
  assert.equal(r.runs[1].gemmInfo.calls.backend, ort + backend, 'the backend run took every product itself');
  assert.deepEqual(r.runs[2].gemmInfo.calls, { ort, backend });
  assert.equal(r.runs[2].gemmInfo.ortThreads, 1);
  // without the SIMD kernels RoPE's rotation runs as a product (two per layer and direction)
  assert.equal(r.runs[3].gemmInfo.calls.ort, ort + 5 * 4 * 2 * 2);
  // Identical stacks and data: the routes walk the same losses (to float32 rounding).
  for (const f of r.runs.slice(1)) {
    assert.ok(Math.abs(f.trainStep.lastLoss - r.runs[0].trainStep.lastLoss) < 1e-3 * Math.abs(r.runs[0].trainStep.lastLoss) + 1e-6, f.label);
  }
  // Same seed, same data: both GEMMs start from the same loss (to float32 rounding).
  assert.ok(Math.abs(r.runs[0].trainStep.firstLoss - r.runs[1].trainStep.firstLoss) < 1e-4);
  assert.ok(r.trainStepMs > 0 && Number.isFinite(r.ratios['wasm/backend']));
  assert.equal(Object.keys(r.matMulGflops).length, 4);
  const text = formatBench(r);
  assert.match(text, /4 layers, d=128, 4 heads/);
  assert.match(text, /wasm\/backend/);
  assert.match(text, /wasm\/ort:1t/);
});
