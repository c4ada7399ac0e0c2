/**
 * AdamW with decoupled weight decay (Loshchilov & Hutter), per-parameter decay exclusion,
 * global-norm gradient clipping, and the learning-rate schedule of docs/method.md "Training
 * objective" (linear warm-up over a fraction of the steps, then cosine or linear decay).
 *
 * The state (first/second moments and the step count) exports to named Float32Arrays and
 * imports back bit-for-bit, so a resumed run takes exactly the steps an uninterrupted one
 * would have taken.
 */
import { tf } from '../backend';
import { adamwUpdate, fusedAdamWAvailable, hostSumOfSquares } from '../backend/fused-adamw';
import type { Float32Record } from '../model/checkpoint';

// ---------------------------------------------------------------------------------------------
// Learning-rate schedule
// ---------------------------------------------------------------------------------------------

export type DecayKind = 'cosine' | 'linear' | 'constant';
export const DECAY_KINDS: readonly DecayKind[] = ['cosine', 'linear', 'constant'];

export interface ScheduleConfig {
  /** Peak learning rate (reached at the end of warm-up). */
  lr: number;
  /** Number of optimiser steps in the whole run. */
  totalSteps: number;
  /** Warm-up length: a fraction of totalSteps when < 1, else a step count. Defaults to 0.1 (docs/method.md: 10 %). */
  warmup?: number;
  /** Shape after warm-up. Defaults to 'cosine'. */
  decay?: DecayKind;
  /** Final learning rate as a fraction of `lr`. Defaults to 0. */
  minLrRatio?: number;
}

/** Warm-up length in steps: ceil(fraction · total) for a fraction, the number itself otherwise. */
export function warmupSteps(cfg: Pick<ScheduleConfig, 'totalSteps' | 'warmup'>): number {
  const w = cfg.warmup ?? 0.1;
  if (!(w >= 0)) throw new Error(`schedule: warmup must be ≥ 0 (a fraction < 1 or a step count), got ${w}`);
  return w < 1 ? Math.ceil(w * cfg.totalSteps) : Math.floor(w);
}

/**
 * Learning rate for the update with 0-based index `step`.
 *
 * Warm-up: lr·(step + 1)/W for step < W, so the first update already moves (a schedule that
 * starts at exactly 0 wastes its first step). After warm-up, progress p = (step − W)/(T − W)
 * runs from 0 towards 1 and the rate decays from lr to minLrRatio·lr:
 * cosine `min + (lr − min)·½(1 + cos πp)`, linear `lr − (lr − min)·p`, constant `lr`.
 * Steps past T keep the final rate.
 */
export function learningRateAt(step: number, cfg: ScheduleConfig): number {
  const { lr, totalSteps } = cfg;
  const decay = cfg.decay ?? 'cosine';
  const minLr = lr * (cfg.minLrRatio ?? 0);
  if (!(totalSteps >= 1)) throw new Error(`schedule: totalSteps must be ≥ 1, got ${totalSteps}`);
  if (!(step >= 0)) throw new Error(`schedule: step must be ≥ 0, got ${step}`);
  if (!DECAY_KINDS.includes(decay)) throw new Error(`schedule: decay "${decay}" is not one of ${DECAY_KINDS.join(', ')}`);
  const W = Math.min(warmupSteps(cfg), totalSteps);
  if (step < W) return (lr * (step + 1)) / W;
  const p = Math.min(1, (step - W) / Math.max(1, totalSteps - W));
  switch (decay) {
    case 'cosine':
      return minLr + (lr - minLr) * 0.5 * (1 + Math.cos(Math.PI * p));
    case 'linear':
      return lr - (lr - minLr) * p;
    case 'constant':
      return lr;
    default: {
      const never: never = decay;
      throw new Error(`schedule: decay "${never}" is not one of ${DECAY_KINDS.join(', ')}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Gradient clipping
// ---------------------------------------------------------------------------------------------

/** √(Σ‖g‖²) over all gradients (one number, read back synchronously). */
export function globalNorm(grads: Record<string, tf.Tensor>): number {
  const list = Object.values(grads);
  if (list.length === 0) return 0;
  // On wasm/cpu a plain loop over each gradient's memory (float64 sum, no kernels).
  const host = list.map(hostSumOfSquares);
  if (host.every((x): x is number => x !== null)) return Math.sqrt(host.reduce((a, b) => a + b, 0));
  return tf.tidy(() => tf.sqrt(tf.addN(list.map((g) => tf.sum(tf.square(g))))).dataSync()[0]);
}

/** min(1, maxNorm / (norm + 1e-6)): the factor clipping multiplies every gradient by. */
export function clipScale(norm: number, maxNorm: number): number {
  return Math.min(1, maxNorm / (norm + 1e-6));
}

/**
 * Scales all gradients by min(1, maxNorm / (norm + 1e-6)) (the PyTorch clip_grad_norm_ rule).
 * Returns new tensors (the caller disposes them and the inputs) and the norm before clipping.
 */
export function clipByGlobalNorm(
  grads: Record<string, tf.Tensor>,
  maxNorm: number,
): { grads: Record<string, tf.Tensor>; norm: number } {
  if (!(maxNorm > 0)) throw new Error(`clipByGlobalNorm: maxNorm must be > 0, got ${maxNorm}`);
  const norm = globalNorm(grads);
  const scale = clipScale(norm, maxNorm);
  const out: Record<string, tf.Tensor> = {};
  for (const [k, g] of Object.entries(grads)) out[k] = tf.tidy(() => tf.mul(g, scale));
  return { grads: out, norm };
}

// ---------------------------------------------------------------------------------------------
// AdamW
// ---------------------------------------------------------------------------------------------

export interface AdamWConfig {
  /** Learning rate: a number, or a function of the 0-based step (e.g. learningRateAt). Defaults to 1e-3. */
  lr?: number | ((step: number) => number);
  /** Defaults to 0.9. */
  beta1?: number;
  /** Defaults to 0.999. */
  beta2?: number;
  /** Defaults to 1e-8. */
  eps?: number;
  /** Decoupled weight decay coefficient. Defaults to 0.01 (docs/method.md's reference run uses 0.001). */
  weightDecay?: number;
  /** Clip the global gradient norm to this value before the update. Defaults to none. */
  clipNorm?: number;
  /** Which parameters get weight decay. Defaults to `defaultDecayFilter`. */
  decay?: (name: string, shape: readonly number[]) => boolean;
  /**
   * Run the update as one fused kernel per parameter where the backend allows (wasm, cpu;
   * backend/fused-adamw.ts). false composes tfjs ops (what other backends always do).
   * Defaults to true.
   */
  fused?: boolean;
}

/**
 * The usual exclusion: no decay on vectors and scalars (biases, norm gains, the temperature τ)
 * nor on anything named like a norm, bias or temperature; decay on matrices and embeddings.
 */
export function defaultDecayFilter(name: string, shape: readonly number[]): boolean {
  if (shape.length < 2) return false;
  return !/(^|[./_])(bias|norm|layernorm|rmsnorm|tau|temperature|logit_scale)([./_]|$)/i.test(name);
}

/** What a step did, for logging. */
export interface StepInfo {
  /** 0-based index of the step just taken. */
  step: number;
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
}

/** The optimiser's exportable state: step count plus moments as `m.<param>` / `v.<param>`. */
export interface AdamWState {
  step: number;
  tensors: Float32Record;
}

type ParamSource = Record<string, tf.Variable> | Map<string, tf.Variable>;

export class AdamW {
  private readonly params: Map<string, tf.Variable>;
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();
  private readonly decays = new Map<string, boolean>();
  private readonly cfg: Required<Omit<AdamWConfig, 'clipNorm' | 'decay'>> & { clipNorm?: number };
  private t = 0;

  constructor(params: ParamSource, config: AdamWConfig = {}) {
    this.params = params instanceof Map ? new Map(params) : new Map(Object.entries(params));
    this.cfg = {
      lr: config.lr ?? 1e-3,
      beta1: config.beta1 ?? 0.9,
      beta2: config.beta2 ?? 0.999,
      eps: config.eps ?? 1e-8,
      weightDecay: config.weightDecay ?? 0.01,
      clipNorm: config.clipNorm,
      fused: config.fused ?? true,
    };
    const { beta1, beta2, eps, weightDecay } = this.cfg;
    if (!(beta1 >= 0 && beta1 < 1)) throw new Error(`AdamW: beta1 must be in [0, 1), got ${beta1}`);
    if (!(beta2 >= 0 && beta2 < 1)) throw new Error(`AdamW: beta2 must be in [0, 1), got ${beta2}`);
    if (!(eps > 0)) throw new Error(`AdamW: eps must be > 0, got ${eps}`);
    if (!(weightDecay >= 0)) throw new Error(`AdamW: weightDecay must be ≥ 0, got ${weightDecay}`);
    const decay = config.decay ?? defaultDecayFilter;
    for (const [name, p] of this.params) {
      this.decays.set(name, decay(name, p.shape));
      this.m.set(name, tf.tidy(() => tf.variable(tf.zerosLike(p), false)));
      this.v.set(name, tf.tidy(() => tf.variable(tf.zerosLike(p), false)));
    }
  }

  /** Number of steps taken so far (the 0-based index of the next one). */
  get step(): number {
    return this.t;
  }

  /** Parameter names that receive weight decay. */
  get decayedNames(): string[] {
    return [...this.decays].filter(([, d]) => d).map(([n]) => n);
  }

  /** The learning rate the next step will use. */
  currentLr(): number {
    const lr = this.cfg.lr;
    return typeof lr === 'function' ? lr(this.t) : lr;
  }

  /**
   * One AdamW update. `grads` is keyed by parameter name (or by the tf.Variable's own name, as
   * tf.variableGrads returns). Parameters without a gradient are left untouched, moments
   * included (frozen or unused this step). The caller keeps ownership of `grads`.
   *
   *   p ← p − lr·wd·p                      (decoupled decay, only where the filter allows)
   *   m ← β1·m + (1 − β1)·g,  v ← β2·v + (1 − β2)·g²
   *   p ← p − lr·(m / (1 − β1ᵗ)) / (√(v / (1 − β2ᵗ)) + eps)
   */
  applyGradients(grads: Record<string, tf.Tensor>): StepInfo {
    const named: Record<string, tf.Tensor> = {};
    for (const [name, p] of this.params) {
      const g = grads[name] ?? grads[p.name];
      if (g === undefined) continue;
      if (!sameShape(g.shape, p.shape)) {
        throw new Error(`AdamW: gradient for "${name}" has shape ${JSON.stringify(g.shape)}, parameter has ${JSON.stringify(p.shape)}`);
      }
      named[name] = g;
    }
    const known = new Set<string>();
    for (const [name, p] of this.params) known.add(name).add(p.name);
    for (const k of Object.keys(grads)) {
      if (!known.has(k)) throw new Error(`AdamW: gradient "${k}" matches no parameter (known: ${[...this.params.keys()].join(', ')})`);
    }

    // Clipping folds into the update as a gradient multiplier (no scaled copies).
    const gradNorm = globalNorm(named);
    const gradScale = this.cfg.clipNorm !== undefined ? clipScale(gradNorm, this.cfg.clipNorm) : 1;

    const lr = this.currentLr();
    const t = this.t + 1;
    const { beta1, beta2, eps, weightDecay } = this.cfg;
    // Bias corrections in float64 on the JS side, applied as scalars.
    const bc1 = 1 - Math.pow(beta1, t);
    const bc2 = 1 - Math.pow(beta2, t);
    const host = this.cfg.fused && fusedAdamWAvailable();
    for (const [name, g] of Object.entries(named)) {
      const p = this.params.get(name)!;
      const m = this.m.get(name)!;
      const v = this.v.get(name)!;
      const decay = this.decays.get(name)! ? lr * weightDecay : 0;
      tf.tidy(() => {
        if (host && p.dtype === 'float32' && g.dtype === 'float32') {
          // wasm/cpu: one kernel per parameter (backend/fused-adamw.ts), same formula.
          const [p1, m1, v1] = adamwUpdate(p, g, m, v, { lr, beta1, beta2, eps, bc1, bc2, decay, gradScale });
          p.assign(p1);
          m.assign(m1);
          v.assign(v1);
          return;
        }
        const gs = gradScale === 1 ? g : tf.mul(g, gradScale);
        const m1 = tf.add(tf.mul(m, beta1), tf.mul(gs, 1 - beta1));
        const v1 = tf.add(tf.mul(v, beta2), tf.mul(tf.square(gs), 1 - beta2));
        const update = tf.div(tf.div(m1, bc1), tf.add(tf.sqrt(tf.div(v1, bc2)), eps));
        const decayed = decay > 0 ? tf.mul(p, 1 - decay) : p;
        p.assign(tf.sub(decayed, tf.mul(update, lr)));
        m.assign(m1);
        v.assign(v1);
      });
    }
    this.t = t;
    return { step: t - 1, lr, gradNorm };
  }

  /**
   * Computes the loss and its gradients for the trainable variables among the parameters and
   * applies one step. `lossFn` runs inside tf.variableGrads (keep it synchronous).
   */
  minimize(lossFn: () => tf.Scalar): StepInfo & { loss: number } {
    const vars = [...this.params.values()].filter((p) => p.trainable);
    const { value, grads } = tf.variableGrads(lossFn, vars);
    try {
      const loss = value.dataSync()[0];
      return { ...this.applyGradients(grads), loss };
    } finally {
      value.dispose();
      for (const g of Object.values(grads)) g.dispose();
    }
  }

  /** Copies the state out: step count and Float32Array moments named `m.<param>` / `v.<param>`. */
  exportState(): AdamWState {
    const tensors: Float32Record = {};
    for (const [name, m] of this.m) tensors[`m.${name}`] = { shape: [...m.shape], data: m.dataSync() as Float32Array };
    for (const [name, v] of this.v) tensors[`v.${name}`] = { shape: [...v.shape], data: v.dataSync() as Float32Array };
    // dataSync may hand back the backend's own buffer: copy so later steps cannot alias it.
    for (const t of Object.values(tensors)) t.data = Float32Array.from(t.data);
    return { step: this.t, tensors };
  }

  /** Restores a state from exportState (names and shapes must match this optimiser's parameters). */
  importState(state: AdamWState): void {
    if (!Number.isInteger(state.step) || state.step < 0) {
      throw new Error(`AdamW.importState: step must be a non-negative integer, got ${state.step}`);
    }
    const expected = new Set<string>();
    for (const name of this.params.keys()) expected.add(`m.${name}`).add(`v.${name}`);
    for (const k of Object.keys(state.tensors)) {
      if (!expected.has(k)) throw new Error(`AdamW.importState: unexpected tensor "${k}" (this optimiser has ${[...expected].join(', ')})`);
    }
    for (const k of expected) {
      const t = state.tensors[k];
      if (!t) throw new Error(`AdamW.importState: missing tensor "${k}"`);
      const name = k.slice(2);
      const target = (k.startsWith('m.') ? this.m : this.v).get(name)!;
      if (!sameShape(t.shape, target.shape)) {
        throw new Error(`AdamW.importState: "${k}" has shape ${JSON.stringify(t.shape)}, expected ${JSON.stringify(target.shape)}`);
      }
      if (!(t.data instanceof Float32Array)) throw new Error(`AdamW.importState: "${k}" must hold float32 data`);
    }
    for (const k of expected) {
      const t = state.tensors[k];
      const target = (k.startsWith('m.') ? this.m : this.v).get(k.slice(2))!;
      tf.tidy(() => target.assign(tf.tensor(t.data, t.shape, 'float32')));
    }
    this.t = state.step;
  }

  /** Frees the moment variables (not the parameters). */
  dispose(): void {
    for (const x of this.m.values()) x.dispose();
    for (const x of this.v.values()) x.dispose();
    this.m.clear();
    this.v.clear();
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
