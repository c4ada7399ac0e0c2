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
