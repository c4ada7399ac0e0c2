/**
 * The run folder: every path and file name inside it is spelled here, once
 * (docs/architecture.md "Contracts").
 *
 *   <run>/results.json      the results table (results.ts: AblationResults)
 *   <run>/results.csv       the same, one row per variant or baseline × subset
 *   <run>/comparisons.csv   paired differences between variants and baselines (results.json `comparisons`)
 *   <run>/curves.json       training curves
 *   <run>/embeddings.json   test-note embeddings of one variant, for the report's projection
 *   <run>/neighbours.json   a few queries and their nearest test notes, for the report
 *   <run>/saliency.json     per-layer modality saliency of the trained variants
 *   <run>/report.html       the report
 *   <run>/figures/          PNGs of the report's figures (report --png)
 *   <run>/checkpoints/<name>-s<seed>/{best,last}/   a variant's checkpoints (the trainer's folder)
 *   <run>/embeddings/<name>-s<seed>/                a variant's test-note EmbeddingCatalogue
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { checkpointSlot, type CheckpointChoice } from '../train/trainer';

/** File names inside a run folder. */
export const RUN_FILES = {
  results: 'results.json',
  csv: 'results.csv',
  comparisons: 'comparisons.csv',
  curves: 'curves.json',
  embeddings: 'embeddings.json',
  neighbours: 'neighbours.json',
  saliency: 'saliency.json',
  report: 'report.html',
} as const;
export type RunFile = keyof typeof RUN_FILES;

/** Sub-folders of a run folder. */
export const RUN_DIRS = { checkpoints: 'checkpoints', embeddings: 'embeddings', figures: 'figures' } as const;

/** `<run>/<file>` for one of RUN_FILES. */
export function runFile(runDir: string, file: RunFile): string {
  return join(runDir, RUN_FILES[file]);
}

/** A variant's folder name under checkpoints/ and embeddings/: `<name>-s<seed>`. */
export function variantKey(name: string, seed: number): string {
  return `${name}-s${seed}`;
}

/** The inverse of variantKey, or null for a folder name of another shape. */
export function parseVariantKey(key: string): { name: string; seed: number } | null {
  const m = /^(.+)-s(\d+)$/.exec(key);
  return m ? { name: m[1], seed: Number(m[2]) } : null;
}

/** `<run>/checkpoints`. */
export function checkpointsRoot(runDir: string): string {
  return join(runDir, RUN_DIRS.checkpoints);
}

/** The trainer's folder of a variant: it holds the two checkpoints `best/` and `last/`. */
export function variantCheckpointRoot(runDir: string, name: string, seed: number): string {
  return join(checkpointsRoot(runDir), variantKey(name, seed));
}

/** One checkpoint of a variant (the folder holding model.safetensors and config.json). */
export function variantCheckpointDir(runDir: string, name: string, seed: number, which: CheckpointChoice): string {
  return checkpointSlot(variantCheckpointRoot(runDir, name, seed), which);
}

/** A variant's saved test-note embeddings (an EmbeddingCatalogue folder). */
export function variantEmbeddingsDir(runDir: string, name: string, seed: number): string {
  return join(runDir, RUN_DIRS.embeddings, variantKey(name, seed));
}

/** The variant folders under `<run>/checkpoints` (names without a seed suffix left out). */
export function checkpointVariants(runDir: string): string[] {
  const root = checkpointsRoot(runDir);
  if (!existsSync(root)) return [];
  return readdirSync(root, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name);
}

/** Variant names and seeds of a run: from results.json, else from the checkpoint folders. */
export function runVariants(runDir: string): { names: string[]; seeds: number[] } {
  const resultsFile = runFile(resolve(runDir), 'results');
  if (existsSync(resultsFile)) {
    const r = JSON.parse(readFileSync(resultsFile, 'utf8')) as { variants?: Array<{ name?: unknown }>; seedList?: unknown; seed?: unknown };
    const names = (r.variants ?? []).map((v) => v.name).filter((n): n is string => typeof n === 'string');
    const seeds = Array.isArray(r.seedList) ? r.seedList.filter((s): s is number => Number.isInteger(s)) : Number.isInteger(r.seed) ? [r.seed as number] : [];
    if (names.length && seeds.length) return { names, seeds };
  }
  if (!existsSync(checkpointsRoot(resolve(runDir)))) {
    throw new Error(`${runDir}: neither ${RUN_FILES.results} nor a ${RUN_DIRS.checkpoints} folder (is this a run folder written by \`notellm2 ablate\`?)`);
  }
  const names = new Set<string>();
  const seeds = new Set<number>();
  for (const d of checkpointVariants(resolve(runDir))) {
    const k = parseVariantKey(d);
    if (k) {
      names.add(k.name);
      seeds.add(k.seed);
    }
  }
  return { names: [...names], seeds: [...seeds].sort((a, b) => a - b) };
}
