/**
 * Modality saliency of a run's trained variants (docs/method.md "Modality saliency"): each
 * variant is restored from its checkpoint (restore.ts: loadTrainedVariant) and measured on
 * the same sample of test pairs; the result is merged into the run's saliency.json:
 *
 *   { presets: [{ preset, layers: [{ sv, st, so, attnImage, attnText }] }] }
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { Rng, tf } from '../backend';
import { readJsonFile, writeJsonAtomic } from '../model/checkpoint';
import type { CheckpointChoice } from '../train/trainer';
import type { RepresentationBatch } from '../train/representation';
import { computeSaliency, type ModalitySaliencyLayer } from '../eval/saliency';
import { loadTrainedVariant } from './restore';
import { lockRunFolder, runFile, runVariants } from './run-folder';

export interface RunSaliencyOptions {
  /** Variant names (default: every variant of the run). */
  presets?: string[];
  /** Batches of test pairs. Defaults to 4. */
  batches?: number;
  /** Related pairs per batch (2× as many notes). Defaults to 16. */
  pairsPerBatch?: number;
  /** Which trained seed to read (default: the run's first). */
  seed?: number;
  /** Seed of the test-pair sample (default 0; the same pairs for every variant). */
  sampleSeed?: number;
  checkpoint?: CheckpointChoice;
  datasetDir?: string;
  tokenizerPath?: string;
  /** Write or update `<run>/saliency.json`. Defaults to true. */
  write?: boolean;
  log?: (msg: string) => void;
}

export interface RunSaliencyEntry {
  preset: string;
  seed: number;
  layers: ModalitySaliencyLayer[];
  examples: number;
  /** Mean L_m over the batches. */
  loss: number;
}

/**
 * Modality saliency of the trained variants of a run on test pairs (docs/method.md "Modality
 * saliency"): per layer S_v, S_t, S_o and the attention mass of n_m on image and text.
 * Writes (merging by preset) `<run>/saliency.json` unless `write` is false.
 */
export async function saliencyForRun(runDir: string, opts: RunSaliencyOptions = {}): Promise<{ entries: RunSaliencyEntry[]; file?: string }> {
  const log = opts.log ?? (() => {});
  // Writing saliency.json: hold the folder against a run or another step writing into it.
  const lock = opts.write === false ? null : lockRunFolder(runDir, 'notellm2 saliency');
  try {
    return await measure(runDir, opts, log);
  } finally {
    lock?.release();
  }
}

async function measure(runDir: string, opts: RunSaliencyOptions, log: (msg: string) => void): Promise<{ entries: RunSaliencyEntry[]; file?: string }> {
  const { names, seeds } = runVariants(runDir);
  const chosen = opts.presets ?? names;
  for (const p of chosen) {
    if (!names.includes(p)) throw new Error(`saliency: the run ${runDir} has no variant "${p}"; it has ${names.join(', ')}`);
  }
  const seed = opts.seed ?? seeds[0] ?? 0;
  const nBatches = opts.batches ?? 4;
  const perBatch = opts.pairsPerBatch ?? 16;
  if (!Number.isInteger(nBatches) || nBatches < 1) throw new Error(`saliency: batches must be an integer ≥ 1, got ${nBatches}`);
  if (!Number.isInteger(perBatch) || perBatch < 2) throw new Error(`saliency: pairsPerBatch must be an integer ≥ 2, got ${perBatch}`);
  const entries: RunSaliencyEntry[] = [];
  for (const name of chosen) {
    const v = await loadTrainedVariant(runDir, name, seed, opts);
    try {
      const pairs = new Rng(opts.sampleSeed ?? 0).shuffle([...v.dataset.pairs.test]);
      if (pairs.length < 2) throw new Error(`saliency: ${v.dataset.dir} has ${pairs.length} test pairs; at least 2 are needed`);
      const batches: RepresentationBatch[] = [];
      try {
        for (let k = 0; k < nBatches && k * perBatch + 2 <= pairs.length; k++) {
          const chunk = pairs.slice(k * perBatch, (k + 1) * perBatch);
          const note = (id: string) => {
            const n = v.dataset.notes.get(id);
            if (!n) throw new Error(`saliency: test pair names note ${id}, which ${v.dataset.dir} does not hold`);
            return n;
          };
          batches.push(await v.batch([...chunk.map((p) => note(p.a)), ...chunk.map((p) => note(p.b))])); // [a; b]
        }
        const t0 = performance.now();
        const r = computeSaliency(v.model, batches.map((b) => b.inputs));
        log(`${name} (seed ${seed}): ${r.examples} notes in ${batches.length} batches, L_m ${r.loss.toFixed(3)}, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        entries.push({ preset: name, seed, layers: r.layers, examples: r.examples, loss: r.loss });
      } finally {
        for (const b of batches) tf.dispose(b.owned);
      }
    } finally {
      v.dispose();
    }
  }
  if (opts.write === false) return { entries };
  const file = await writeSaliencyFile(runDir, entries);
  return { entries, file };
}

/** Writes `<run>/saliency.json`, replacing the entries of these presets and keeping the others. */
export async function writeSaliencyFile(runDir: string, entries: ReadonlyArray<{ preset: string; layers: ModalitySaliencyLayer[] }>): Promise<string> {
  const file = runFile(resolve(runDir), 'saliency');
  let presets: Array<{ preset: string; layers: unknown[] }> = [];
  if (existsSync(file)) {
    const old = (await readJsonFile(file)) as { presets?: unknown };
    if (!old || !Array.isArray(old.presets)) throw new Error(`${file}: expected { "presets": [...] }; move the file aside to rewrite it`);
    presets = old.presets as typeof presets;
  }
  for (const e of entries) {
    const layers = e.layers.map(({ sv, st, so, attnImage, attnText }) => ({ sv, st, so, attnImage, attnText }));
    const at = presets.findIndex((p) => p.preset === e.preset);
    if (at >= 0) presets[at] = { preset: e.preset, layers };
    else presets.push({ preset: e.preset, layers });
  }
  await writeJsonAtomic(file, { presets });
  return file;
}
