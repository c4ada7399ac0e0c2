import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend, tf, type Rng } from '../../src/backend';
import { ParamStore } from '../../src/model/params';
import { resolveTrainConfig } from '../../src/train/config';
import { NonFiniteLossError, train, type TrainTask } from '../../src/train/trainer';
import { loadCheckpoint } from '../../src/model/checkpoint';

// Linear regression y = x·w* with noise-free targets: the loss must fall, and the run is
// small enough to compare step by step.
function regression(store: ParamStore, opts: { poisonAt?: number } = {}): TrainTask<{ x: tf.Tensor2D; y: tf.Tensor2D; poison: boolean }> {
  const n = 64;
  const X = Array.from({ length: n }, (_, i) => [Math.sin(i), Math.cos(1.3 * i), ((i % 7) - 3) / 3]);
  const wStar = [0.5, -1.5, 2];
  const Y = X.map((r) => [r[0] * wStar[0] + r[1] * wStar[1] + r[2] * wStar[2]]);
  const w = store.param('w', [3, 1], { kind: 'zeros' });
  let calls = 0;
  return {
    trainSize: 48,
    valSize: 16,
    batch(split, idx, rng: Rng | null) {
      const off = split === 'train' ? 0 : 48;
      // The augmentation rng is consumed so that resume must reproduce it too.
      const jitter = rng ? rng.next() * 1e-3 : 0;
      if (split === 'train') calls++;
      return {
        x: tf.tensor2d(idx.map((i) => X[off + i].map((v) => v + jitter))),
        y: tf.tensor2d(idx.map((i) => Y[off + i])),
        poison: split === 'train' && opts.poisonAt !== undefined && calls > opts.poisonAt,
      };
    },
    loss(b) {
      const err = tf.sub(tf.matMul(b.x, w), b.y);
      const l = tf.mean(tf.square(err)) as tf.Scalar;
      return b.poison ? (tf.mul(l, Infinity) as tf.Scalar) : l;
    },
    disposeBatch(b) {
      tf.dispose([b.x, b.y]);
    },
  };
}

const cfg = resolveTrainConfig({ epochs: 4, batchPairs: 8, lr: 0.2, warmup: 0.1, seed: 3 });

test('loss falls; validation each epoch; no tensor leak', async () => {
  await initBackend();
  const store = new ParamStore(0);
  const task = regression(store);
  const before = tf.memory().numTensors;
  const r = await train(task, store, cfg);
  assert.equal(tf.memory().numTensors, before);
  assert.equal(r.steps, 4 * 6);
  assert.equal(r.valLoss.length, 4);
  assert.ok(r.history.at(-1)!.loss < r.history[0].loss / 4, `loss ${r.history[0].loss} → ${r.history.at(-1)!.loss}`);
  assert.ok(r.valLoss[3] < r.valLoss[0]);
  store.dispose();
});

test('resume from the last checkpoint reproduces the uninterrupted losses exactly', async () => {
  await initBackend();
  const dir = mkdtempSync(join(tmpdir(), 'nl2-trainer-'));
  try {
    const full = new ParamStore(0);
    const ref = await train(regression(full), full, cfg);
    const a = new ParamStore(0);
    // Interrupt after step 9 (the epoch-1 checkpoint at step 6 and a mid-epoch one at 8 exist).
    const stopAt = 9;
    await assert.rejects(
      train(regression(a), a, { ...cfg, checkpointEvery: 2 }, {
        checkpointDir: dir,
        onStep: (rec) => {
          if (rec.step + 1 === stopAt) throw new Error('interrupted');
        },
      }),
      /interrupted/,
    );
    a.dispose();
    const b = new ParamStore(99); // different init: everything must come from the checkpoint
    const resumed = await train(regression(b), b, { ...cfg, checkpointEvery: 2 }, { checkpointDir: dir });
    assert.equal(resumed.resumed, true);
    assert.equal(resumed.history.length, ref.history.length);
    for (let i = 0; i < ref.history.length; i++) {
      assert.equal(resumed.history[i].loss, ref.history[i].loss, `step ${i}`);
    }
    assert.deepEqual(Array.from(b.get('w').dataSync()), Array.from(full.get('w').dataSync()));
    full.dispose();
    b.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a non-finite loss stops with a clear message and keeps the last good checkpoint', async () => {
  await initBackend();
  const dir = mkdtempSync(join(tmpdir(), 'nl2-trainer-'));
  try {
    const store = new ParamStore(0);
    await assert.rejects(
      train(regression(store, { poisonAt: 8 }), store, cfg, { checkpointDir: dir }),
      (e: unknown) => e instanceof NonFiniteLossError && /non-finite loss \(Infinity\) at step 8 .*last good checkpoint is kept/.test((e as Error).message),
    );
    assert.ok(existsSync(join(dir, 'last', 'model.safetensors')));
    assert.ok(Number.isFinite(store.get('w').dataSync()[0]));
    store.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('resuming under a different configuration is refused with the folder named', async () => {
  await initBackend();
  const dir = mkdtempSync(join(tmpdir(), 'nl2-trainer-'));
  try {
    const a = new ParamStore(0);
    await train(regression(a), a, cfg, { checkpointDir: dir, config: { lr: 0.2 } });
    a.dispose();
    const b = new ParamStore(0);
    await assert.rejects(
      train(regression(b), b, cfg, { checkpointDir: dir, config: { lr: 0.3 } }),
      (e: Error) => e.message.includes(join(dir, 'last')) && /different configuration \(lr is 0\.2 there, 0\.3 now\)/.test(e.message),
    );
    b.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a resumed run keeps the best-checkpoint bookkeeping: the same best epoch, best loss and best/ weights as an uninterrupted run', async () => {
  await initBackend();
  const refDir = mkdtempSync(join(tmpdir(), 'nl2-trainer-'));
  const dir = mkdtempSync(join(tmpdir(), 'nl2-trainer-'));
  try {
    const full = new ParamStore(0);
    const ref = await train(regression(full), full, cfg, { checkpointDir: refDir });
    full.dispose();
    // The best epoch comes after the interruption below, so the resumed run must write best/ itself.
    assert.ok(ref.bestEpoch >= 1, `best epoch ${ref.bestEpoch}`);
    // Interrupted in the second epoch (only the first has been validated and saved).
    const a = new ParamStore(0);
    await assert.rejects(
      train(regression(a), a, cfg, { checkpointDir: dir, onStep: (rec) => { if (rec.step === 8) throw new Error('interrupted'); } }),
      /interrupted/,
    );
    a.dispose();
    // trainer.json has no Infinity: the best loss of epoch 1 is a number, a fresh run's is null.
    assert.equal(typeof JSON.parse(readFileSync(join(dir, 'last', 'trainer.json'), 'utf8')).bestValLoss, 'number');
    const b = new ParamStore(99);
    const resumed = await train(regression(b), b, cfg, { checkpointDir: dir });
    b.dispose();
    assert.equal(resumed.resumed, true);
    assert.equal(resumed.bestEpoch, ref.bestEpoch);
    assert.equal(resumed.bestValLoss, ref.bestValLoss);
    assert.deepEqual(resumed.valLoss, ref.valLoss);
    for (const slot of ['best', 'last']) {
      const want = await loadCheckpoint(join(refDir, slot));
      const got = await loadCheckpoint(join(dir, slot));
      assert.deepEqual(got.weights, want.weights, `${slot}/ weights`);
      assert.deepEqual({ ...(got.trainer as object), seconds: 0 }, { ...(want.trainer as object), seconds: 0 }, `${slot}/trainer.json`);
    }
  } finally {
    rmSync(refDir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a run interrupted before its first validation resumes with no best yet (bestValLoss null ↔ Infinity)', async () => {
  await initBackend();
  const dir = mkdtempSync(join(tmpdir(), 'nl2-trainer-'));
  try {
    const a = new ParamStore(0);
    await assert.rejects(
      train(regression(a), a, { ...cfg, checkpointEvery: 2 }, { checkpointDir: dir, onStep: (rec) => { if (rec.step === 4) throw new Error('interrupted'); } }),
      /interrupted/,
    );
    a.dispose();
    const saved = JSON.parse(readFileSync(join(dir, 'last', 'trainer.json'), 'utf8'));
    assert.equal(saved.bestValLoss, null);
    assert.equal(saved.bestEpoch, -1);
    assert.ok(!existsSync(join(dir, 'best')));
    const b = new ParamStore(0);
    const r = await train(regression(b), b, { ...cfg, checkpointEvery: 2 }, { checkpointDir: dir });
    b.dispose();
    const c = new ParamStore(0);
    const ref = await train(regression(c), c, cfg);
    c.dispose();
    assert.equal(r.bestEpoch, ref.bestEpoch);
    assert.equal(r.bestValLoss, ref.bestValLoss);
    assert.ok(existsSync(join(dir, 'best', 'model.safetensors')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a 400-step soak with checkpoints keeps the tensor count flat, and each epoch line of the log says so (tensors, RSS)', async () => {
  await initBackend();
  const dir = mkdtempSync(join(tmpdir(), 'nl2-trainer-'));
  try {
    const store = new ParamStore(0);
    const task = regression(store);
    const lines: string[] = [];
    const stream = { write: (s: string) => void lines.push(...s.split('\n').filter(Boolean)), isTTY: false };
    const before = tf.memory().numTensors;
    const r = await train(task, store, resolveTrainConfig({ epochs: 100, maxSteps: 400, batchPairs: 8, lr: 0.05, seed: 1, checkpointEvery: 50 }), {
      checkpointDir: dir,
      progress: { mode: 'lines', stream, lineEverySeconds: 3600 },
    });
    assert.equal(r.steps, 400);
    assert.equal(tf.memory().numTensors, before, 'no tensor left behind');
    const epochs = lines.map((l) => /epoch (\d+): validation loss \S+; (\d+) tensors, RSS (\d+) MB/.exec(l)).filter((m) => m !== null);
    assert.equal(epochs.length, 67, 'one line per epoch (66 full epochs and the last partial one)');
    const counts = new Set(epochs.map((m) => Number(m![2])));
    assert.equal(counts.size, 1, `tensor count flat across epochs, got ${[...counts].join(', ')}`);
    store.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
