/**
 * `ablate` and `train` check what they are asked before any pretraining or file write: preset
 * names, numeric flags, the batch against the dataset, --out, a strict dataset, and the results
 * already in the folder. Each failure names what is wrong and leaves no folder behind.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { intArg, numArg } from '../../src/cli/args';
import { trainCommand } from '../../src/cli/train';
import { planAblation, MAX_SEED } from '../../src/experiments/runner';
import { presetConfig } from '../../src/experiments/presets';
import { resolveModelConfig } from '../../src/model/config';
import { resolveTrainConfig } from '../../src/train/config';
import { aggregate, type VariantResult } from '../../src/experiments/results';

const tmp = mkdtempSync(join(tmpdir(), 'notellm2-checks-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const GOOD = 'test/fixtures/good';
const quiet = { log: () => {}, progress: 'silent' as const };

test('numeric flags: infinite, non-integer, out-of-range values are refused with the flag named', () => {
  assert.throws(() => numArg('--lr')('Infinity'), /--lr: expected a finite number > 0, got "Infinity"/);
  assert.throws(() => numArg('--lr')('1e400'), /--lr: expected a finite number > 0/);
  assert.equal(numArg('--lr')('0.001'), 0.001);
  assert.throws(() => intArg('--seed', 0, MAX_SEED)('4294967296'), /--seed: expected an integer from 0 to 4294967295, got "4294967296"/);
  assert.throws(() => intArg('--epochs', 1)('1e300'), /--epochs: expected an integer >= 1/);
  assert.throws(() => intArg('--batch', 2)('2.5'), /--batch: expected an integer >= 2/);
});

test('`ablate --presets bogus` fails at once, before loading towers or creating --out', () => {
  const out = join(tmp, 'bogus');
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'ablate', '--presets', 'basic,bogus', '--out', out], { encoding: 'utf8', env: { ...process.env, NOTELLM2_SMOKE: '1' } });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /notellm2: unknown preset "bogus"; valid presets: text-only, basic/);
  assert.doesNotMatch(r.stdout, /pretrain|training/);
  assert.ok(!existsSync(out));
  assert.ok(performance.now() - t0 < 30_000);
});

test('`train --batch 100000` fails before setup: the dataset has 3 training pairs; nothing is created', async () => {
  const out = join(tmp, 'big-batch');
  await assert.rejects(trainCommand({ dataset: GOOD, preset: 'basic', batch: 100000, pretrain: false, out, ...quiet }), /batch of 100000 pairs \(basic\): .*good has 3 usable training pairs; expected --batch ≤ 3/);
  assert.ok(!existsSync(out));
});

test('--out / and a foreign folder are refused before anything is written; a strict dataset problem too', async () => {
  await assert.rejects(trainCommand({ dataset: GOOD, preset: 'basic', pretrain: false, out: '/', ...quiet }), /--out \/: \/ is a filesystem root/);
  const foreign = join(tmp, 'foreign');
  mkdirSync(foreign);
  writeFileSync(join(foreign, 'thesis.tex'), 'x');
  await assert.rejects(trainCommand({ dataset: GOOD, preset: 'basic', pretrain: false, out: foreign, ...quiet }), /not a notellm2 run \(thesis\.tex\).*--force/);
  const out = join(tmp, 'strict');
  await assert.rejects(trainCommand({ dataset: 'test/fixtures/broken', preset: 'basic', pretrain: false, out, ...quiet }), /notes_train\.csv:3: duplicate-id/);
  assert.ok(!existsSync(out));
});

test('a truncated PNG with a valid header stops `train` at once with its file and line (the check decodes what training decodes)', async () => {
  const data = join(tmp, 'truncated');
  cpSync(GOOD, data, { recursive: true });
  const png = readFileSync(join(data, 'images/n1.png'));
  writeFileSync(join(data, 'images/n1.png'), png.subarray(0, png.length - 20));
  const out = join(tmp, 'truncated-run');
  await assert.rejects(trainCommand({ dataset: data, preset: 'basic', pretrain: false, out, ...quiet }), /notes_train\.csv:1: undecodable-image: images\/n1\.png cannot be decoded/);
  assert.ok(!existsSync(out));
});

test('results already in the folder: another dataset, or the same variant name with another configuration, is refused up front', async () => {
  const out = join(tmp, 'existing');
  mkdirSync(out);
  writeFileSync(join(out, '.notellm2-run'), JSON.stringify({ tool: 'notellm2', created: '2024-01-01T00:00:00Z' }));
  const run = (epochs: number): VariantResult => ({
    name: 'basic', preset: 'basic', seed: 0,
    config: { model: resolveModelConfig(presetConfig('basic'), 2048), train: resolveTrainConfig({ epochs, batchPairs: 2, seed: 0 }), preset: 'basic' },
    metrics: { 'R@10': 0.5 }, subsets: {}, nQueries: 2, poolSize: 3, trainSeconds: 1, evalSeconds: 1, steps: 1, bestEpoch: 0, valLoss: [], curve: [], backend: 'wasm',
  });
  const write = (epochs: number, datasetDir: string) =>
    writeFileSync(join(out, 'results.json'), JSON.stringify({ dataset: 'good', datasetDir, backend: 'wasm', seed: 0, seedList: [0], pretrain: {}, variants: [aggregate([run(epochs)])], wallSeconds: 1 }));
  write(9, join(process.cwd(), GOOD));
  await assert.rejects(
    planAblation({ dataset: GOOD, variants: ['basic'], out, train: { epochs: 1, batchPairs: 2 }, pretrain: false }),
    /already holds variant "basic" trained with another configuration \(train\.epochs: 9 vs 1\)/,
  );
  // The same configuration (another seed) is fine: it will merge.
  const plan = await planAblation({ dataset: GOOD, variants: ['basic'], out, seedBase: 1, train: { epochs: 9, batchPairs: 2 }, pretrain: false });
  assert.deepEqual(plan.seeds, [1]);
  write(9, '/somewhere/else');
  await assert.rejects(planAblation({ dataset: GOOD, variants: ['basic'], out, train: { epochs: 9, batchPairs: 2 }, pretrain: false }), /holds results on dataset \/somewhere\/else/);
});
