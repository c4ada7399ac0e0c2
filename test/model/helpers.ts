/**
 * Finite-difference gradient checks shared by the model tests.
 *
 * The loss is a scalar L(θ, x). For a random direction u (over all trainable parameters, or
 * over an input), the analytic directional derivative ⟨∇L, u⟩ is compared with the central
 * difference (L(θ + εu) − L(θ − εu)) / 2ε. float32 arithmetic bounds the agreement to about
 * 1e-3 relative at ε ≈ 1e-2, so tolerances are relative and a few directions are tried.
 */
import assert from 'node:assert/strict';
import { tf, Rng } from '../../src/backend';
import type { ParamStore } from '../../src/model/params';

export interface FdOptions {
  eps?: number;
  rtol?: number;
  directions?: number;
  seed?: number;
  /** Only parameters at or below this prefix. */
  prefix?: string;
}

/** A random tensor from a seeded Rng (standard normal × scale). */
export function randn(shape: number[], seed: number, scale = 1): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const r = new Rng(seed);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = r.normal() * scale;
  return tf.tensor(data, shape);
}

function close(analytic: number, numeric: number, rtol: number, what: string): void {
  const scale = Math.max(Math.abs(analytic), Math.abs(numeric), 1e-3);
  assert.ok(
    Math.abs(analytic - numeric) <= rtol * scale,
    `${what}: analytic ${analytic} vs finite difference ${numeric} (rel err ${(Math.abs(analytic - numeric) / scale).toExponential(2)})`,
  );
  assert.ok(Math.abs(analytic) > 1e-6, `${what}: gradient is ~0 (${analytic}); the check would be vacuous`);
}

/** Checks ∇_θ L against central differences along random directions in parameter space. */
export function checkParamGrads(store: ParamStore, loss: () => tf.Scalar, opts: FdOptions = {}): void {
  const eps = opts.eps ?? 1e-2;
  const rtol = opts.rtol ?? 2e-2;
  const entries = store.trainableEntries(opts.prefix ?? '');
  assert.ok(entries.length > 0, 'no trainable parameters to check');
  const rng = new Rng(opts.seed ?? 123);
  const { value, grads } = store.variableGrads(loss, opts.prefix ?? '');
  value.dispose();
  for (const [path, g] of Object.entries(grads)) {
    assert.ok(g, `no gradient for ${path}`);
  }
  for (let d = 0; d < (opts.directions ?? 2); d++) {
    // One random direction over all parameters, scaled to unit norm so the step ε·u stays
    // small however many parameters there are.
    const raw = entries.map(([, v]) => randn([...v.shape], rng.int(1e9)));
    const norm = Math.sqrt(raw.reduce((s, t) => s + tf.tidy(() => tf.sum(tf.square(t)).dataSync()[0]), 0));
    const dirs = raw.map((t) => tf.tidy(() => tf.div(t, norm)));
    raw.forEach((t) => t.dispose());
    const analytic = entries.reduce((s, [path], i) => s + tf.tidy(() => tf.sum(tf.mul(grads[path], dirs[i])).dataSync()[0]), 0);
    const saved = entries.map(([, v]) => v.clone());
    const shift = (sign: number): number => {
      entries.forEach(([, v], i) => tf.tidy(() => v.assign(tf.add(saved[i], tf.mul(dirs[i], sign * eps)))));
      return tf.tidy(() => loss().dataSync()[0]);
    };
    const numeric = (shift(1) - shift(-1)) / (2 * eps);
    entries.forEach(([, v], i) => v.assign(saved[i]));
    saved.forEach((t) => t.dispose());
    dirs.forEach((t) => t.dispose());
    close(analytic, numeric, rtol, `parameter direction ${d}`);
  }
  Object.values(grads).forEach((g) => g.dispose());
}

/** Checks ∇_x L for an input tensor x against central differences along random directions. */
export function checkInputGrad(x: tf.Tensor, loss: (x: tf.Tensor) => tf.Scalar, opts: FdOptions = {}): void {
  const eps = opts.eps ?? 1e-2;
  const rtol = opts.rtol ?? 2e-2;
  const rng = new Rng(opts.seed ?? 321);
  const g = tf.grad(loss)(x);
  for (let d = 0; d < (opts.directions ?? 2); d++) {
    const [analytic, numeric] = tf.tidy(() => {
      const r = randn([...x.shape], rng.int(1e9));
      const u = tf.div(r, tf.norm(r)); // unit direction
      const a = tf.sum(tf.mul(g, u)).dataSync()[0];
      const lp = loss(tf.add(x, tf.mul(u, eps))).dataSync()[0];
      const lm = loss(tf.sub(x, tf.mul(u, eps))).dataSync()[0];
      return [a, (lp - lm) / (2 * eps)];
    });
    close(analytic, numeric, rtol, `input direction ${d}`);
  }
  g.dispose();
}

/** Scalar loss Σ out ⊙ R for a fixed random R of out's shape (a linear read-out; exercises every output entry). */
export function projLoss(out: tf.Tensor, seed = 99): tf.Scalar {
  return tf.tidy(() => tf.sum(tf.mul(out, randn([...out.shape], seed))) as tf.Scalar);
}

/** Max |a − b|. */
export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}
