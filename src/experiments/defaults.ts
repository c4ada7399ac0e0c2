/**
 * The step budget of a default ablation run (`npm start`, `notellm2 ablate`): six presets must
 * train and evaluate within about a quarter of an hour on a 2-core laptop, so each variant
 * gets a fixed number of optimiser steps (about a quarter of an epoch of the synth training
 * pairs at 16 pairs per step) rather than the paper's full epoch. `--epochs/--max-steps`
 * override it.
 */
export const DEFAULT_ABLATION_TRAIN: TrainConfig = { epochs: 1, maxSteps: 240, batchPairs: 16 };

/**
 * The small setting used when NOTELLM2_SMOKE=1 (notebook tests, a quick look): the smoke-size
 * datasets (built by the data layer under that variable) and short training runs.
 */
import type { TrainConfig } from '../train/config';

export interface SmokeDefaults {
  train: TrainConfig;
  pretrain: { lm: TrainConfig; vision: TrainConfig };
}

export function smokeDefaults(env: NodeJS.ProcessEnv = process.env): SmokeDefaults | undefined {
  if (env.NOTELLM2_SMOKE !== '1') return undefined;
  return {
    train: { epochs: 1, maxSteps: 15 },
    pretrain: { lm: { maxSteps: 30 }, vision: { maxSteps: 30 } },
  };
}
