/**
 * Principal component analysis in plain TypeScript, for 2-D pictures of note embeddings.
 *
 * Power iteration with deflation on the covariance matrix (d × d) or, when there are fewer
 * points than dimensions, on the Gram matrix (n × n) — the two share their non-zero
 * eigenvalues, and a Gram eigenvector u maps to the covariance eigenvector Xᵀu / ‖Xᵀu‖.
 * Deterministic: the start vector comes from a fixed-seed Rng and each component's sign is
 * fixed so that its largest-magnitude entry is positive.
 */
import { Rng } from '../backend/rng';

export interface PcaResult {
  /** [n, k] coordinates of each point on the components. */
  coords: number[][];
  /** [k, d] unit principal axes, largest variance first. */
  components: number[][];
  /** [k] variance along each axis (sample variance, n − 1 denominator). */
  variance: number[];
  /** [k] share of the total variance along each axis. */
  varianceRatio: number[];
  /** [d] the mean that was subtracted. */
  mean: number[];
}

export interface PcaOptions {
  /** Number of components. Defaults to 2. */
  k?: number;
  /** Seed of the power-iteration start vector. Defaults to 0. */
  seed?: number;
  /** Stop when the unit vector moves less than this between iterations. Defaults to 1e-12. */
  tol?: number;
  /** Iteration cap per component. Defaults to 5000. */
  maxIter?: number;
}

/** Top eigenpair of a symmetric PSD matrix `m` ([p, p], row-major), by power iteration. */
function topEigen(m: Float64Array, p: number, rng: Rng, tol: number, maxIter: number): { value: number; vector: Float64Array } {
  let v = new Float64Array(p);
  for (let i = 0; i < p; i++) v[i] = rng.normal();
  normalise(v);
  let w = new Float64Array(p);
  for (let it = 0; it < maxIter; it++) {
    matVec(m, p, v, w);
    const norm = normalise(w);
    if (norm === 0) return { value: 0, vector: v }; // m is zero on v's span: no variance left
    let diff = 0;
    for (let i = 0; i < p; i++) diff += (w[i] - v[i]) ** 2;
    [v, w] = [w, v];
    if (diff < tol * tol) break;
  }
  // Rayleigh quotient vᵀ m v is the eigenvalue estimate for a unit v.
  matVec(m, p, v, w);
  let value = 0;
  for (let i = 0; i < p; i++) value += v[i] * w[i];
  return { value: Math.max(value, 0), vector: v };
}

function matVec(m: Float64Array, p: number, v: Float64Array, out: Float64Array): void {
  for (let i = 0; i < p; i++) {
    let s = 0;
    const row = i * p;
    for (let j = 0; j < p; j++) s += m[row + j] * v[j];
    out[i] = s;
  }
}

function normalise(v: Float64Array): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  const n = Math.sqrt(s);
  if (n > 0) for (let i = 0; i < v.length; i++) v[i] /= n;
  return n;
}

/** PCA of `points` ([n, d]); see the file comment for the method. */
export function pca(points: ArrayLike<number>[], opts: PcaOptions = {}): PcaResult {
  const n = points.length;
  if (n < 2) throw new Error(`pca: need at least 2 points, got ${n}`);
  const d = points[0].length;
  const k = opts.k ?? 2;
  if (!Number.isInteger(k) || k < 1 || k > d) throw new Error(`pca: k must be an integer in 1..${d} (the dimension), got ${k}`);
  const tol = opts.tol ?? 1e-12;
  const maxIter = opts.maxIter ?? 5000;
  const rng = new Rng(opts.seed ?? 0);

  // Centred data X, [n, d].
  const mean = new Float64Array(d);
  points.forEach((p, i) => {
    if (p.length !== d) throw new Error(`pca: point ${i} has ${p.length} dimensions, point 0 has ${d}`);
    for (let j = 0; j < d; j++) {
      if (!Number.isFinite(p[j])) throw new Error(`pca: point ${i} dimension ${j} is not finite (${p[j]})`);
      mean[j] += p[j] / n;
    }
  });
  const x = new Float64Array(n * d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) x[i * d + j] = points[i][j] - mean[j];

  const useGram = n < d;
  const p = useGram ? n : d;
  // m = XᵀX/(n−1) ([d, d]) or XXᵀ/(n−1) ([n, n]).
  const m = new Float64Array(p * p);
  for (let a = 0; a < p; a++) {
    for (let b = a; b < p; b++) {
      let s = 0;
      if (useGram) for (let j = 0; j < d; j++) s += x[a * d + j] * x[b * d + j];
      else for (let i = 0; i < n; i++) s += x[i * d + a] * x[i * d + b];
      m[a * p + b] = m[b * p + a] = s / (n - 1);
    }
  }
  let total = 0;
  for (let a = 0; a < p; a++) total += m[a * p + a];

  const components: number[][] = [];
  const variance: number[] = [];
  for (let c = 0; c < k; c++) {
    const { value, vector } = topEigen(m, p, rng, tol, maxIter);
    // Deflate: m ← m − λ v vᵀ, so the next power iteration finds the next axis.
    for (let a = 0; a < p; a++) for (let b = 0; b < p; b++) m[a * p + b] -= value * vector[a] * vector[b];
    let axis: Float64Array;
    if (useGram) {
      axis = new Float64Array(d);
      for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) axis[j] += x[i * d + j] * vector[i];
      normalise(axis);
    } else axis = vector;
    let big = 0;
    for (let j = 1; j < d; j++) if (Math.abs(axis[j]) > Math.abs(axis[big]) + 1e-12) big = j;
    const sign = axis[big] < 0 ? -1 : 1;
    components.push(Array.from(axis, (a) => a * sign + 0)); // + 0 turns -0 into 0
    variance.push(value);
  }
  const coords = Array.from({ length: n }, (_, i) =>
    components.map((axis) => {
      let s = 0;
      for (let j = 0; j < d; j++) s += x[i * d + j] * axis[j];
      return s;
    }),
  );
  return {
    coords,
    components,
    variance,
    varianceRatio: variance.map((v) => (total > 0 ? v / total : 0)),
    mean: Array.from(mean),
  };
}
