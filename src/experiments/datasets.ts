/**
 * Dataset names the runner accepts: the built-in `synth` and `openmoji` (built on first use
 * under datasets/, git-ignored) or a path to a folder in the reference layout.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { buildSynth, type SynthConfig } from '../data/synth';
import { buildOpenmoji, type OpenmojiConfig } from '../data/openmoji';
import { loadDataset, type LoadResult } from '../data/loaders';
import { DATASET_KINDS, formatProblem } from '../data/problems';
import { builtinDatasetDir, CACHE_DIR } from '../data/write';

/**
 * How a run reads its dataset, the same way at every step (preparation, each variant's training
 * and evaluation, the report, saliency, and `eval`/`embed`/`saliency` on the saved run): every
 * image decoded by the pipeline's own decoder at the vision tower's input side(s) — outcomes
 * remembered per file under datasets/cache, so this costs once — and bad rows failing the run
 * or, with `skipBad`, left out.
 */
export interface RunDataOptions {
  skipBad?: boolean;
  /** Input sides of the run's vision towers (usually one). */
  imageSizes: number[];
}

/**
 * Loads a dataset folder as a run reads it (RunDataOptions). With `skipBad`, problems of whole
 * tables (a missing file, a split without a usable pair) still stop the run: leaving rows out
 * cannot mend them.
 */
export async function loadRunDataset(dir: string, data: RunDataOptions): Promise<LoadResult> {
  const loaded = await loadDataset(dir, { images: 'decode', imageSize: data.imageSizes, cacheDir: resolve(CACHE_DIR), skipBad: data.skipBad });
  const fatal = loaded.report.problems.filter((p) => DATASET_KINDS.includes(p.kind));
  if (fatal.length) {
    throw new Error(`dataset ${loaded.report.dir} cannot be used even with --skip-bad:\n  ${fatal.map(formatProblem).join('\n  ')}`);
  }
  return loaded;
}

export const BUILTIN_DATASETS = ['synth', 'openmoji'] as const;
export type BuiltinDataset = (typeof BUILTIN_DATASETS)[number];

/**
 * Resolves a dataset name or path to a folder in the reference layout, building a built-in
 * dataset when its folder is absent. Returns the folder and what happened.
 */
export async function ensureDataset(
  nameOrPath: string,
  opts: { synth?: SynthConfig; openmoji?: OpenmojiConfig; log?: (msg: string) => void } = {},
): Promise<{ dir: string; name: string; built: boolean }> {
  const log = opts.log ?? (() => {});
  const done = (dir: string) => existsSync(resolve(dir, 'note_pairs_test.csv')) && existsSync(resolve(dir, 'notes_test.csv'));
  const builtin = async (name: BuiltinDataset, build: (dir: string) => Promise<unknown>) => {
    const dir = builtinDatasetDir(name);
    if (done(dir)) return { dir, name, built: false };
    log(`building the ${name} dataset in ${dir} …`);
    await build(dir);
    return { dir, name, built: true };
  };
  switch (nameOrPath) {
    case 'synth':
      return builtin('synth', (dir) => buildSynth(dir, opts.synth ?? {}));
    case 'openmoji':
      return builtin('openmoji', (dir) => buildOpenmoji(dir, opts.openmoji ?? {}));
    default: {
      const dir = resolve(nameOrPath);
      if (!existsSync(dir)) {
        throw new Error(`dataset "${nameOrPath}": not one of ${BUILTIN_DATASETS.join(', ')} and no folder ${dir} exists`);
      }
      return { dir, name: nameOrPath, built: false };
    }
  }
}
