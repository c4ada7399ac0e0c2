import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SWEEPS, sweepVariants } from '../../src/experiments/presets';
import { resolveModelConfig } from '../../src/model/config';
import { resolveTrainConfig } from '../../src/train/config';

test('the query-token sweep gives one Q-Former variant per paper value, per preset', () => {
  const v = sweepVariants(['basic', 'notellm2'], 'queries');
  assert.deepEqual(v.map((x) => x.name), ['basic@q8', 'basic@q16', 'basic@q32', 'basic@q48', 'notellm2@q8', 'notellm2@q16', 'notellm2@q32', 'notellm2@q48']);
  assert.deepEqual(v.map((x) => resolveModelConfig(x.model).connector.numQueries), [8, 16, 32, 48, 8, 16, 32, 48]);
});

test('the mICL-ratio sweep sets the loss weights 1:1, 3:1, 9:1, 19:1', () => {
  const v = sweepVariants(['micl'], 'micl-ratio');
  assert.deepEqual(v.map((x) => resolveTrainConfig(x.train).miclWeights), SWEEPS.miclRatio.map(([text, vision]) => ({ text, vision })));
  assert.deepEqual(v.map((x) => x.name), ['micl@1to1', 'micl@3to1', 'micl@9to1', 'micl@19to1']);
});

test('connector and vision-freezing sweeps; unknown sweeps and presets are rejected with the valid names', () => {
  assert.deepEqual(sweepVariants(['basic'], 'connector').map((x) => resolveModelConfig(x.model).connector.kind), ['mlp', 'qformer']);
  assert.deepEqual(sweepVariants(['basic'], 'freeze-vision').map((x) => resolveTrainConfig(x.train).freezeVision), [true, false]);
  assert.throws(() => sweepVariants(['basic'], 'heads'), /valid sweeps: queries, micl-ratio, connector, freeze-vision/);
  assert.throws(() => sweepVariants(['nope'], 'queries'), /valid presets: text-only, basic/);
});
