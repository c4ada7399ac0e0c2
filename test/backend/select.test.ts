import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, Rng, tf } from '../../src/backend';

test('default backend is wasm here (no native tfjs installed)', async () => {
  const info = await initBackend();
  assert.equal(info.name, 'wasm');
  assert.equal(tf.getBackend(), 'wasm');
});

test('an unknown backend name is rejected with the valid list', async () => {
  await assert.rejects(initBackend('metal'), /not one of tensorflow-gpu, tensorflow, wasm, cpu/);
});

test('Rng: same seed, same stream; normals have mean≈0, std≈1', () => {
  const a = new Rng(7), b = new Rng(7), c = new Rng(8);
  const xa = Array.from({ length: 5 }, () => a.next());
  const xb = Array.from({ length: 5 }, () => b.next());
  assert.deepEqual(xa, xb);
  assert.notDeepEqual(xa, Array.from({ length: 5 }, () => c.next()));
  const r = new Rng(1);
  const n = 20000;
  let s = 0, s2 = 0;
  for (let i = 0; i < n; i++) { const x = r.normal(); s += x; s2 += x * x; }
  assert.ok(Math.abs(s / n) < 0.03, `mean ${s / n}`);
  assert.ok(Math.abs(Math.sqrt(s2 / n) - 1) < 0.03, `std ${Math.sqrt(s2 / n)}`);
});
