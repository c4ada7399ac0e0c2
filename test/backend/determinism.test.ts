/**
 * Seeding: the same seed on the same backend and GEMM gives bit-identical parameters and
 * losses; kernels (including ONNX Runtime's multi-threaded GEMM) are deterministic.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf, Rng, setGemm, setGemmMinFlops, DEFAULT_MIN_FLOPS, gemmInfo, resetGemmStats } from '../../src/backend';
import { read, tinyTrain } from './helpers';

for (const gemm of ['backend', 'ort'] as const) {
  test(`wasm, gemm=${gemm}: same seed → identical losses and parameters; other seed differs`, async () => {
    await initBackend('wasm');
    setGemm(gemm);
    setGemmMinFlops(0);
    resetGemmStats();
    const before = tf.memory().numTensors;
    const a = tinyTrain(tf, Rng, 42, 4);
    const b = tinyTrain(tf, Rng, 42, 4);
    const c = tinyTrain(tf, Rng, 43, 4);
    assert.equal(tf.memory().numTensors, before, 'training leaves no tensors');
    assert.deepEqual(a.losses, b.losses);
    assert.deepEqual(a.params, b.params);
    assert.notDeepEqual(a.params, c.params);
    assert.ok(a.losses[3] < a.losses[0], `loss decreases: ${a.losses}`);
    if (gemm === 'ort') assert.ok(gemmInfo().calls.ort > 0);
    setGemmMinFlops(DEFAULT_MIN_FLOPS);
  });
}

test('ONNX Runtime multi-threaded products are bit-identical across repeats', async () => {
  await initBackend('wasm');
  setGemm('ort');
  const rng = new Rng(1);
  const a = tf.tensor2d(rng.normalArray(300 * 200, 1), [300, 200]);
  const b = tf.tensor2d(rng.normalArray(200 * 250, 1), [200, 250]);
  const first = read(() => tf.matMul(a, b, false, false));
  for (let i = 0; i < 5; i++) {
    const again = read(() => tf.matMul(a, b, false, false));
    assert.deepEqual(again, first);
  }
  a.dispose();
  b.dispose();
});
