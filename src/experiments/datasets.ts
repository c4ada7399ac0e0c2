/**
 * Dataset names the runner accepts: the built-in `synth` and `openmoji` (built on first use
 * under datasets/, git-ignored) or a path to a folder in the reference layout.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { buildSynth, type SynthConfig } from '../data/synth';
import { buildOpenmoji, type OpenmojiConfig } from '../data/openmoji';
import { builtinDatasetDir } from '../data/write';

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
