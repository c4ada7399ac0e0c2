/**
 * The training loop shared by representation training and unimodal pretraining.
 *
 * A `TrainTask` says how to build a batch from example indices and how to compute its loss;
 * the loop owns everything else: shuffling (a permutation per epoch from the seed), AdamW
 * with warm-up and decay, clipping, validation each epoch, the resumable `last` checkpoint
 * and the `best` checkpoint (by validation loss), progress, and stopping on a non-finite loss.
 *
 * Exact resume: the batch of step s depends only on (seed, s) — the epoch permutation comes
 * from rng.fork(`epoch<e>`) and augmentation from rng.fork(`step<s>`) — so reloading weights,
 * optimiser moments and the step counter continues with the same losses as an uninterrupted run.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { Rng, tf } from '../backend';
import { crashPoint } from '../backend/crash-points';
import { firstDifference } from '../backend/json-diff';
import type { ParamRecord, ParamStore } from '../model/params';
import { CHECKPOINT_FILES, loadCheckpoint, recoverCheckpoint, saveCheckpoint } from '../model/checkpoint';
import { AdamW, learningRateAt } from './optim';
import { createProgress, type ProgressOptions } from './progress';
import type { ResolvedTrainConfig } from './config';

export type Split = 'train' | 'val';

export interface TrainTask<B> {
  /** Number of training examples (e.g. related pairs). */
  readonly trainSize: number;
  /** Number of validation examples (0: no validation). */
  readonly valSize: number;
  /** Notes per example, for the notes/s figure (2 for a pair). Defaults to 1. */
  readonly notesPerExample?: number;
  /** Builds the batch of these example indices; `rng` drives augmentation (train only). */
  batch(split: Split, indices: number[], rng: Rng | null): B | Promise<B>;
  /** The scalar loss of a batch: synchronous, a pure function of the batch and the variables. */
  loss(batch: B): tf.Scalar;
  /** Frees whatever tensors the batch holds. */
  disposeBatch(batch: B): void;
}

export interface StepRecord {
  step: number;
  epoch: number;
  loss: number;
  lr: number;
  gradNorm: number;
  /** Temperature τ when the store holds one at `tauPath`. */
  tau?: number;
}

export interface TrainResult {
  steps: number;
  history: StepRecord[];
  /** Validation loss after each epoch. */
  valLoss: number[];
  bestEpoch: number;
  bestValLoss: number;
  seconds: number;
  /** Whether training continued from a saved `last` checkpoint. */
  resumed: boolean;
}

export interface TrainOptions {
  /** Folder for `last/` and `best/` checkpoints; none: no checkpoints. */
  checkpointDir?: string;
  /** Continue from `<checkpointDir>/last` when it exists. Defaults to true. */
  resume?: boolean;
  /** Saved as config.json beside every checkpoint (so a result can be re-run). */
  config?: unknown;
  /**
   * Parameters left out of the checkpoints: frozen weights that are read from elsewhere on
   * restore (an imported model's folder). Defaults to none: every parameter is saved.
   */
  omitFromCheckpoint?: (path: string) => boolean;
  /** Parameter path of the temperature, reported in progress and history. */
  tauPath?: string;
  /** At the end, load the best-validation weights back into the store. Defaults to true. */
  restoreBest?: boolean;
  progress?: ProgressOptions;
  /** Called after each optimiser step (e.g. to stop a test run early by throwing). */
  onStep?: (rec: StepRecord) => void;
}

/**
 * The two checkpoints the trainer keeps in its folder: `best` (lowest validation loss, what a
 * run evaluates) and `last` (the latest state, what a resume continues from).
 */
export type CheckpointChoice = 'best' | 'last';
export const CHECKPOINT_CHOICES: readonly CheckpointChoice[] = ['best', 'last'];

/** `<checkpointDir>/best` or `<checkpointDir>/last`. */
export function checkpointSlot(checkpointDir: string, which: CheckpointChoice): string {
  if (!CHECKPOINT_CHOICES.includes(which)) throw new Error(`checkpoint choice must be one of ${CHECKPOINT_CHOICES.join(', ')}, got "${which as string}"`);
  return join(checkpointDir, which);
}

/** The store's parameters a checkpoint holds: all of them, less those `omit` names. */
function checkpointWeights(store: ParamStore, omit?: (path: string) => boolean): ParamRecord {
  if (!omit) return store.export();
  const out: ParamRecord = {};
  for (const [path, v] of store.entries()) {
    if (!omit(path)) out[path] = { shape: [...v.shape], data: Float32Array.from(v.dataSync() as Float32Array) };
  }
  return out;
}

export class NonFiniteLossError extends Error {}

interface TrainerState {
  step: number;
  history: StepRecord[];
  valLoss: number[];
  bestEpoch: number;
  bestValLoss: number;
  seconds: number;
}

/**
 * trainer.json as written: JSON has no Infinity or NaN, so `bestValLoss` before any validation
 * (Infinity) and a validation loss without validation pairs (NaN) are stored as null. Reading
 * maps them back, so a resumed run compares against the same best loss as an uninterrupted one.
 */
const finiteOrNull = z.number().nullable();
const TrainerStateFile = z.object({
  step: z.number().int().nonnegative(),
  history: z.array(
    z.object({ step: z.number().int(), epoch: z.number().int(), loss: z.number(), lr: z.number(), gradNorm: finiteOrNull, tau: z.number().optional() }),
  ),
  valLoss: z.array(finiteOrNull),
  bestEpoch: z.number().int().min(-1),
  bestValLoss: finiteOrNull,
  seconds: z.number().nonnegative(),
});

function writeTrainerState(s: TrainerState): unknown {
  return { ...s, bestValLoss: Number.isFinite(s.bestValLoss) ? s.bestValLoss : null, valLoss: s.valLoss.map((v) => (Number.isFinite(v) ? v : null)) };
}

function readTrainerState(raw: unknown, file: string): TrainerState {
  const r = TrainerStateFile.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new Error(`${file}: field "${issue.path.join('.')}": ${issue.message} (not a trainer state written by this version of notellm2?)`);
  }
  const s = r.data;
  return {
    step: s.step,
    history: s.history.map((h) => ({ ...h, gradNorm: h.gradNorm ?? NaN })),
    valLoss: s.valLoss.map((v) => v ?? NaN),
    bestEpoch: s.bestEpoch,
    bestValLoss: s.bestValLoss ?? Infinity,
    seconds: s.seconds,
  };
}

/** Live tensors and resident memory, logged at each epoch end so a long run's growth can be read from its log. */
function memoryNote(): string {
  return `${tf.memory().numTensors} tensors, RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MB`;
}

function permutation(n: number, rng: Rng): number[] {
  return rng.shuffle(Array.from({ length: n }, (_, i) => i));
}

export async function train<B>(task: TrainTask<B>, store: ParamStore, cfg: ResolvedTrainConfig, opts: TrainOptions = {}): Promise<TrainResult> {
  const bsz = cfg.batchPairs;
  const stepsPerEpoch = Math.floor(task.trainSize / bsz);
  if (stepsPerEpoch < 1) {
    throw new Error(`train: ${task.trainSize} training examples cannot fill one batch of ${bsz}; lower batchPairs or add data`);
  }
  const planned = cfg.epochs * stepsPerEpoch;
  const totalSteps = cfg.maxSteps > 0 ? Math.min(cfg.maxSteps, planned) : planned;
  const trainable = new Map(store.trainableEntries());
  const optimizer = new AdamW(trainable, {
    lr: (s) => learningRateAt(s, { lr: cfg.lr, totalSteps, warmup: cfg.warmup, decay: cfg.decay }),
    weightDecay: cfg.weightDecay,
    clipNorm: cfg.clipNorm > 0 ? cfg.clipNorm : undefined,
  });
  const root = new Rng(cfg.seed);
  const lastDir = opts.checkpointDir ? checkpointSlot(opts.checkpointDir, 'last') : undefined;
  const bestDir = opts.checkpointDir ? checkpointSlot(opts.checkpointDir, 'best') : undefined;
  let state: TrainerState = { step: 0, history: [], valLoss: [], bestEpoch: -1, bestValLoss: Infinity, seconds: 0 };
  let resumed = false;
  const progress = createProgress({ label: 'train', ...opts.progress });
  // A run killed inside a checkpoint write leaves the previous checkpoint moved aside and
  // staging folders behind: put the previous one back and clear the rest before reading.
  for (const dir of [lastDir, bestDir]) {
    if (!dir) continue;
    const r = await recoverCheckpoint(dir);
    if (r.restored) progress.log(`recovered ${dir} from ${r.restored} (a checkpoint write was interrupted)`);
    if (r.removed.length) progress.log(`removed ${r.removed.length} unfinished checkpoint folder(s) beside ${dir}`);
  }
  if (lastDir && (opts.resume ?? true) && existsSync(join(lastDir, CHECKPOINT_FILES.weights))) {
    const ck = await loadCheckpoint(lastDir);
    // Resuming under another configuration would silently continue (or skip) the wrong run.
    const diff = opts.config === undefined ? null : firstDifference(ck.config, opts.config);
    if (diff) {
      throw new Error(
        `${lastDir} holds a checkpoint of a different configuration (${diff.path} is ${diff.a} there, ${diff.b} now); ` +
          'resume only with the configuration that wrote it, or remove that folder (or choose another output folder) to start afresh',
      );
    }
    store.load(ck.weights);
    if (ck.optimizer) optimizer.importState(ck.optimizer);
    state = readTrainerState(ck.trainer, join(lastDir, CHECKPOINT_FILES.trainer));
    resumed = true;
  }

  const save = async (dir: string) =>
    saveCheckpoint(dir, {
      weights: checkpointWeights(store, opts.omitFromCheckpoint),
      config: opts.config ?? null,
      optimizer: optimizer.exportState(),
      trainer: writeTrainerState(state),
    });
  const readTau = () => (opts.tauPath && store.has(opts.tauPath) ? store.get(opts.tauPath).dataSync()[0] : undefined);

  const validate = async (): Promise<number> => {
    if (task.valSize < 1) return NaN;
    const order = Array.from({ length: task.valSize }, (_, i) => i);
    let sum = 0;
    let count = 0;
    // Full batches only: the in-batch contrastive loss depends on the batch size.
    const vb = Math.min(bsz, task.valSize);
    for (let i = 0; i + vb <= order.length; i += vb) {
      const batch = await task.batch('val', order.slice(i, i + vb), null);
      try {
        const l = tf.tidy(() => task.loss(batch));
        sum += l.dataSync()[0];
        l.dispose();
        count++;
      } finally {
        task.disposeBatch(batch);
      }
    }
    return sum / count;
  };

  progress.start(totalSteps, state.step);
  const t0 = Date.now() - state.seconds * 1000;
  let bestWeights: ReturnType<ParamStore['export']> | undefined;
  let epochOrder: number[] = [];
  let orderEpoch = -1;
  try {
    while (state.step < totalSteps) {
      const step = state.step;
      const epoch = Math.floor(step / stepsPerEpoch);
      if (epoch !== orderEpoch) {
        epochOrder = permutation(task.trainSize, root.fork(`epoch${epoch}`));
        orderEpoch = epoch;
      }
      const at = (step % stepsPerEpoch) * bsz;
      const tStep = Date.now();
      const batch = await task.batch('train', epochOrder.slice(at, at + bsz), root.fork(`step${step}`));
      let loss: number;
      let info: { lr: number; gradNorm: number };
      try {
        const { value, grads } = store.variableGrads(() => task.loss(batch));
        loss = value.dataSync()[0];
        value.dispose();
        if (!Number.isFinite(loss)) {
          tf.dispose(Object.values(grads));
          const kept = lastDir && existsSync(lastDir) ? `; the last good checkpoint is kept at ${lastDir}` : '';
          throw new NonFiniteLossError(`training stopped: non-finite loss (${loss}) at step ${step} (epoch ${epoch})${kept}`);
        }
        info = optimizer.applyGradients(grads);
        tf.dispose(Object.values(grads));
      } finally {
        task.disposeBatch(batch);
      }
      const rec: StepRecord = { step, epoch, loss, lr: info.lr, gradNorm: info.gradNorm, tau: readTau() };
      state.history.push(rec);
      state.step = step + 1;
      state.seconds = (Date.now() - t0) / 1000;
      const notesPerSec = (bsz * (task.notesPerExample ?? 1) * 1000) / Math.max(1, Date.now() - tStep);
      progress.update(state.step, { loss, tau: rec.tau, lr: info.lr, notesPerSec });
      opts.onStep?.(rec);
      crashPoint('train:step');

      const epochEnd = state.step % stepsPerEpoch === 0 || state.step === totalSteps;
      if (epochEnd) {
        const v = await validate();
        state.valLoss.push(v);
        progress.log(`epoch ${epoch + 1}: validation loss ${Number.isNaN(v) ? 'n/a' : v.toFixed(4)}; ${memoryNote()}`);
        if (Number.isNaN(v) || v < state.bestValLoss) {
          state.bestValLoss = Number.isNaN(v) ? state.bestValLoss : v;
          state.bestEpoch = epoch;
          bestWeights = store.export();
          if (bestDir) await save(bestDir);
        }
        if (lastDir) await save(lastDir);
      } else if (lastDir && cfg.checkpointEvery > 0 && state.step % cfg.checkpointEvery === 0) {
        await save(lastDir);
      }
    }
  } finally {
    progress.stop();
    optimizer.dispose();
  }
  if ((opts.restoreBest ?? true) && state.bestEpoch >= 0) {
    if (bestWeights) store.load(bestWeights);
    else if (bestDir && existsSync(join(bestDir, CHECKPOINT_FILES.weights))) store.load((await loadCheckpoint(bestDir)).weights);
  }
  return {
    steps: state.step,
    history: state.history,
    valLoss: state.valLoss,
    bestEpoch: state.bestEpoch,
    bestValLoss: state.bestValLoss,
    seconds: state.seconds,
    resumed,
  };
}
