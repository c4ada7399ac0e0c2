import { test } from 'node:test';
import assert from 'node:assert/strict';
import { REGIME_GRID, REGIME_PRESETS, SWEEPS, sweepVariants } from '../../src/experiments/presets';
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
  assert.throws(() => sweepVariants(['basic'], 'heads'), /valid sweeps: queries, micl-ratio, connector, freeze-vision, regime/);
  assert.throws(() => sweepVariants(['nope'], 'queries'), /valid presets: text-only, basic/);
});

test('the regime sweep puts every preset in every cell of the grid, with scaled pretraining, a cell group and its axes', () => {
  const v = sweepVariants(['basic', 'notellm2'], 'regime');
  assert.equal(v.length, REGIME_GRID.lm.length * REGIME_GRID.vision.length * 2);
  assert.deepEqual(v.slice(0, 2).map((x) => x.name), ['basic@lm0x-vit0x', 'notellm2@lm0x-vit0x']);
  assert.deepEqual(v[v.length - 1], { name: 'notellm2@lm1x-vit1x', preset: 'notellm2', pretrainScale: { lm: 1, vision: 1 }, group: 'lm1x-vit1x', axes: { lm: 1, vision: 1 } });
  assert.deepEqual([...new Set(v.map((x) => x.group))], ['lm0x-vit0x', 'lm0x-vit1x', 'lm0.25x-vit0x', 'lm0.25x-vit1x', 'lm1x-vit0x', 'lm1x-vit1x']);
  assert.equal(sweepVariants([...REGIME_PRESETS], 'regime', { smoke: true }).length, 4 * 4, 'smoke: the 2 × 2 corners');
});
