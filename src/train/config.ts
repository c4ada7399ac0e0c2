/**
 * Training configuration, defaults in one place (`resolveTrainConfig`). The paper's reference
 * optimisation (docs/method.md "Training objective") is AdamW, lr 3e-6 for a 7B model, weight
 * decay 0.001, 10 % warm-up, one epoch, 128 pairs per step; the defaults here keep the
 * decay, warm-up and temperature and scale batch, lr and epochs to laptop-size models.
 */
import { DECAY_KINDS, type DecayKind } from './optim';
import { formatLMTrain, parseLMTrain } from '../model/lm-train';

export interface TrainConfig {
  /** Seed of parameter init, shuffling and augmentation. Defaults to 0. */
  seed?: number;
  /** Passes over the training pairs. Defaults to 3. */
  epochs?: number;
  /** Stop after this many optimiser steps (0: no limit). Defaults to 0. */
  maxSteps?: number;
  /** Related pairs per step (2× notes). Defaults to 16 (paper: 128). */
  batchPairs?: number;
  /** Peak learning rate. Defaults to 5e-4. */
  lr?: number;
  /** Decoupled weight decay. Defaults to 0.001 (paper). */
  weightDecay?: number;
  /** Warm-up fraction of the run. Defaults to 0.1 (paper). */
  warmup?: number;
  /** Learning-rate shape after warm-up. Defaults to 'cosine'. */
  decay?: DecayKind;
  /** Global gradient-norm clip. Defaults to 1.0. */
  clipNorm?: number;
  /** Initial temperature τ, used as exp(τ). Defaults to 3.0 (paper). */
  tauInit?: number;
  /** mICL loss weights text:vision. Defaults to 9:1 (paper). */
  miclWeights?: { text: number; vision: number };
  /** Keep the vision encoder frozen (paper). Defaults to true. */
  freezeVision?: boolean;
  /** Further parameter-path prefixes to freeze. Defaults to []. */
  freeze?: string[];
  /**
   * How an imported LLM trains: 'full', 'last:N' (the last N layers and the final norm) or
   * 'lora:R' / 'lora:R:ALPHA' (rank-R adapters on the attention projections), the frozen weights
   * held outside the wasm heap (src/model/lm-train.ts). Defaults to 'full'.
   */
  lmTrain?: string;
  /** Random horizontal flip of training images (paper). Defaults to true. */
  flip?: boolean;
  /** Save the resumable `last` checkpoint every this many steps (0: at epoch ends only). Defaults to 0. */
  checkpointEvery?: number;
}

/**
 * Every field set; `lmTrain` only where it is not 'full', so configs saved before it existed
 * (pretraining cache keys, resume checks) read the same. Read it through `lmTrainOf`.
 */
/** The LLM training mode of a resolved config ('full' when the field is absent). */
export function lmTrainOf(cfg: Pick<ResolvedTrainConfig, 'lmTrain'>): string {
  return cfg.lmTrain ?? 'full';
}

export type ResolvedTrainConfig = Required<Omit<TrainConfig, 'lmTrain'>> & { lmTrain?: string };

export function resolveTrainConfig(cfg: TrainConfig = {}): ResolvedTrainConfig {
  const r: ResolvedTrainConfig = {
    seed: cfg.seed ?? 0,
    epochs: cfg.epochs ?? 3,
    maxSteps: cfg.maxSteps ?? 0,
    batchPairs: cfg.batchPairs ?? 16,
    lr: cfg.lr ?? 5e-4,
    weightDecay: cfg.weightDecay ?? 0.001,
    warmup: cfg.warmup ?? 0.1,
    decay: cfg.decay ?? 'cosine',
    clipNorm: cfg.clipNorm ?? 1.0,
    tauInit: cfg.tauInit ?? 3.0,
    miclWeights: cfg.miclWeights ?? { text: 9, vision: 1 },
    freezeVision: cfg.freezeVision ?? true,
    freeze: cfg.freeze ?? [],
    flip: cfg.flip ?? true,
    checkpointEvery: cfg.checkpointEvery ?? 0,
  };
  if (cfg.lmTrain !== undefined && cfg.lmTrain !== 'full') r.lmTrain = formatLMTrain(parseLMTrain(cfg.lmTrain));
  for (const k of ['epochs', 'batchPairs'] as const) {
    if (!Number.isInteger(r[k]) || r[k] <= 0) throw new Error(`train config: ${k} must be a positive integer, got ${JSON.stringify(r[k])}`);
  }
  for (const k of ['maxSteps', 'checkpointEvery', 'seed'] as const) {
    if (!Number.isInteger(r[k]) || r[k] < 0) throw new Error(`train config: ${k} must be a non-negative integer, got ${JSON.stringify(r[k])}`);
  }
  for (const k of ['lr', 'weightDecay', 'warmup', 'clipNorm', 'tauInit'] as const) {
    if (!Number.isFinite(r[k]) || r[k] < 0) throw new Error(`train config: ${k} must be a finite number ≥ 0, got ${JSON.stringify(r[k])}`);
  }
  if (!DECAY_KINDS.includes(r.decay)) throw new Error(`train config: decay must be one of ${DECAY_KINDS.join(', ')}, got "${r.decay}"`);
  const w = r.miclWeights;
  if (!(w.text >= 0 && w.vision >= 0 && w.text + w.vision > 0)) {
    throw new Error(`train config: miclWeights must be non-negative with a positive sum, got ${JSON.stringify(w)}`);
  }
  return r;
}
