/** Shared helpers for the backend tests: float64 reference products and seeded data. */
import { Rng, tf as tfNs } from '../../src/backend';

/** Row-major data with a shape, as plain numbers. */
export interface Arr {
  data: Float32Array;
  shape: number[];
}

export function randomArr(rng: Rng, shape: number[]): Arr {
  const n = shape.reduce((x, y) => x * y, 1);
  return { data: rng.normalArray(n, 1), shape };
}

/** Transposes the last two axes. */
export function transposeLast(x: Arr): Arr {
  const r = x.shape.length;
  const rows = x.shape[r - 2], cols = x.shape[r - 1];
  const batch = x.data.length / (rows * cols);
  const out = new Float32Array(x.data.length);
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[b * rows * cols + j * rows + i] = x.data[b * rows * cols + i * cols + j];
  }
  return { data: out, shape: [...x.shape.slice(0, -2), cols, rows] };
}

/**
 * Float64 reference for a·b on untransposed operands, batch dims broadcasting when one
 * side's flattened batch is 1 (the cases tfjs supports). Returns the flat result and the
 * sum of |a_ik·b_kj| per output element (for a rounding-aware tolerance).
 */
export function refMatMul(a: Arr, b: Arr): { y: Float64Array; mag: Float64Array; k: number } {
  const ra = a.shape.length, rb = b.shape.length;
  const m = a.shape[ra - 2], k = a.shape[ra - 1], n = b.shape[rb - 1];
  if (b.shape[rb - 2] !== k) throw new Error(`refMatMul: inner dims ${k} vs ${b.shape[rb - 2]}`);
  const batchShapeA = a.shape.slice(0, -2), batchShapeB = b.shape.slice(0, -2);
  const batchA = batchShapeA.reduce((x, y) => x * y, 1), batchB = batchShapeB.reduce((x, y) => x * y, 1);
  const batch = Math.max(batchA, batchB);
  const y = new Float64Array(batch * m * n), mag = new Float64Array(batch * m * n);
  for (let bi = 0; bi < batch; bi++) {
    const ao = (batchA === 1 ? 0 : bi) * m * k, bo = (batchB === 1 ? 0 : bi) * k * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0, g = 0;
        for (let p = 0; p < k; p++) {
          const t = a.data[ao + i * k + p] * b.data[bo + p * n + j];
          s += t;
          g += Math.abs(t);
        }
        y[bi * m * n + i * n + j] = s;
        mag[bi * m * n + i * n + j] = g;
      }
    }
  }
  return { y, mag, k };
}

/**
 * Max over elements of |got − want| / (1e-6 + (k+4)·eps32·Σ|a·b|), the classic float32
 * dot-product error bound: ≤ 1 means within float32 rounding of the exact product. A wrong
 * transposition or batch offset gives errors of order |y| ≈ √k, hundreds of times the bound.
 */
export function roundingRatio(got: ArrayLike<number>, ref: { y: ArrayLike<number>; mag: ArrayLike<number>; k: number }): number {
  const want = ref.y, mag = ref.mag;
  if (got.length !== want.length) throw new Error(`length ${got.length} vs ${want.length}`);
  let worst = 0;
  const eps = 2 ** -23;
  for (let i = 0; i < got.length; i++) {
    const r = Math.abs(got[i] - want[i]) / (1e-6 + (ref.k + 4) * eps * mag[i]);
    if (!(r <= worst)) worst = Number.isNaN(r) ? Infinity : Math.max(worst, r);
  }
  return worst;
}

/**
 * A tiny transformer-shaped training run (embedding gather, one attention block with
 * batched and transposed products, a linear head, softmax cross-entropy, Adam), every
 * parameter drawn from Rng(seed). Returns the losses and the final parameters, flattened.
 */
export function tinyTrain(tf: typeof tfNs, RngCtor: typeof Rng, seed: number, steps: number): { losses: number[]; params: number[] } {
  const rng = new RngCtor(seed);
  const V = 17, D = 16, B = 4, T = 6;
  const param = (rows: number, cols: number, std: number) => {
    const init = tf.tensor2d(rng.normalArray(rows * cols, std), [rows, cols]);
    const v = tf.variable(init);
    init.dispose();
    return v;
  };
  const p = { emb: param(V, D, 0.3), wq: param(D, D, 0.25), wk: param(D, D, 0.25), wv: param(D, D, 0.25), head: param(D, V, 0.25) };
  const ids = Int32Array.from({ length: B * T }, () => rng.int(V));
  const targets = Int32Array.from({ length: B }, () => rng.int(V));
  const opt = tf.train.adam(0.01);
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    const loss = opt.minimize(() => {
      const x = tf.gather(p.emb, tf.tensor1d(ids, 'int32')); // [B·T, D]
      const q = tf.reshape(tf.matMul(x, p.wq), [B, T, D]);
      const k = tf.reshape(tf.matMul(x, p.wk), [B, T, D]);
      const v = tf.reshape(tf.matMul(x, p.wv), [B, T, D]);
      const att = tf.softmax(tf.div(tf.matMul(q, k, false, true), Math.sqrt(D))); // [B, T, T]
      const h = tf.matMul(att, v); // [B, T, D]
      const last = tf.reshape(tf.slice(h, [0, T - 1, 0], [B, 1, D]), [B, D]);
      const logits = tf.matMul(last, p.head); // [B, V]
      return tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor1d(targets, 'int32'), V), logits) as tfNs.Scalar;
    }, true) as tfNs.Scalar;
    losses.push(loss.dataSync()[0]);
    loss.dispose();
  }
  const params = Object.values(p).flatMap((t) => Array.from(t.dataSync()));
  for (const t of Object.values(p)) t.dispose();
  opt.dispose();
  return { losses, params };
}

/**
 * Values of a tensor made inside tf.tidy, disposed after reading. (Returning a large typed
 * array from tidy makes tfjs walk it element by element looking for tensors.)
 */
export function read(make: () => tfNs.Tensor): Float32Array | Int32Array | Uint8Array {
  const t = tfNs.tidy(make);
  const v = t.dataSync().slice();
  t.dispose();
  return v;
}

/** Runs fn on the cpu backend and returns to wasm (tensors created inside are disposed). */
export async function onCpu<T>(fn: () => T): Promise<T> {
  await tfNs.setBackend('cpu');
  try {
    return fn();
  } finally {
    await tfNs.setBackend('wasm');
  }
}
