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
 *   <run>/queries/<name>-s<seed>.json              a variant's per-query ranks (statistics after a merge)
 *   <run>/.notellm2-run     marks the folder as a run folder of this tool (what --out may reuse)
 *   <run>/.notellm2-lock    the lock of the process writing the run (run-lock.ts), while it runs
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, parse, relative, resolve } from 'node:path';
import { checkpointSlot, type CheckpointChoice } from '../train/trainer';
import { acquireLock, type HeldLock } from './run-lock';

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
  marker: '.notellm2-run',
  lock: '.notellm2-lock',
} as const;
export type RunFile = keyof typeof RUN_FILES;

/** Sub-folders of a run folder. */
export const RUN_DIRS = { checkpoints: 'checkpoints', embeddings: 'embeddings', figures: 'figures', queries: 'queries' } as const;

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

/** A variant's per-query ranks (results.ts QueryOutcomes), kept so a later merge can redo the statistics. */
export function variantQueriesFile(runDir: string, name: string, seed: number): string {
  return join(runDir, RUN_DIRS.queries, `${variantKey(name, seed)}.json`);
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

/**
 * Takes the lock of an existing run folder for a step that writes into it on its own
 * (`notellm2 saliency`, `notellm2 report`): it stops at once while a run or another such step
 * holds the folder.
 */
export function lockRunFolder(dir: string, command: string): HeldLock {
  const abs = resolve(dir);
  if (!existsSync(abs) || !statSync(abs).isDirectory()) throw new Error(`${dir}: no such run folder (${abs})`);
  return acquireLock(runFile(abs, 'lock'), command);
}

/** The marker file's content: which tool made the folder, and when. */
interface RunMarker {
  tool: 'notellm2';
  created: string;
}

/** Whether `dir` is a run folder of this tool (it holds the marker file). */
export function isRunFolder(dir: string): boolean {
  try {
    return (JSON.parse(readFileSync(runFile(dir, 'marker'), 'utf8')) as Partial<RunMarker>).tool === 'notellm2';
  } catch {
    return false;
  }
}

/**
 * A run folder written before folders were marked: nothing in it but run-folder names, and the
 * results or the checkpoints among them. (Its results.json is still checked before merging.)
 */
function olderRunFolder(entries: readonly string[]): boolean {
  const known = new Set<string>([...Object.values(RUN_FILES), ...Object.values(RUN_DIRS)]);
  return entries.every((e) => known.has(e)) && (entries.includes(RUN_FILES.results) || entries.includes(RUN_DIRS.checkpoints));
}

/**
 * Checks that a run may write into `out`, creating nothing: never a filesystem root or the home
 * folder, and an existing non-empty folder only when it is a run folder of this tool (it holds
 * the marker) or `force` is given. Returns the absolute path.
 */
export function checkRunOut(out: string, opts: { force?: boolean } = {}): string {
  const dir = resolve(out);
  if (parse(dir).root === dir) throw new Error(`--out ${out}: ${dir} is a filesystem root; choose a folder for the run (e.g. runs/<name>)`);
  if (dir === resolve(homedir())) throw new Error(`--out ${out}: ${dir} is the home folder; choose a folder for the run (e.g. runs/<name>)`);
  if (!existsSync(dir)) return dir;
  if (!statSync(dir).isDirectory()) throw new Error(`--out ${out}: ${dir} is a file, not a folder`);
  const entries = readdirSync(dir);
  if (entries.length === 0 || isRunFolder(dir) || olderRunFolder(entries) || opts.force) return dir;
  const shown = entries.slice(0, 5).join(', ') + (entries.length > 5 ? `, … (${entries.length} entries)` : '');
  throw new Error(
    `--out ${out}: ${dir} already holds files that are not a notellm2 run (${shown}); ` +
      `choose another --out, or pass --force to write the run into it (files of the same names are then replaced)`,
  );
}

export interface RunFolder {
  /** The folder (absolute). */
  readonly dir: string;
  /** Whether this run created it. */
  readonly created: boolean;
  /** Releases the lock (the folder and its files stay). */
  release(): void;
  /**
   * After a failed run: removes the folder this run created when nothing of value is in it
   * (only the marker, the lock and empty folders), so a failed run leaves no empty run folder.
   */
  discardIfEmpty(): void;
}

/** True when `p` is `top` or inside it (both absolute). */
function inside(top: string, p: string): boolean {
  const rel = relative(top, p);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** True when `dir` holds nothing but the marker, the lock and folders that are (recursively) empty. */
function onlyBookkeeping(dir: string, top = true): boolean {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (top && (e.name === RUN_FILES.marker || e.name === RUN_FILES.lock)) continue;
    if (!e.isDirectory() || !onlyBookkeeping(join(dir, e.name), false)) return false;
  }
  return true;
}

/**
 * Opens `out` for a run: checks it (checkRunOut), creates it when absent, marks it as a run
 * folder and takes its lock (run-lock.ts) for `command`. Throws, with nothing created, when the
 * folder may not be used or another process holds it.
 */
export function openRunFolder(out: string, opts: { command: string; force?: boolean; log?: (msg: string) => void }): RunFolder {
  const dir = checkRunOut(out, opts);
  const existed = existsSync(dir);
  if (existed && !isRunFolder(dir) && readdirSync(dir).length > 0) {
    opts.log?.(`writing into ${dir}, which is not a notellm2 run folder (--force): files of the run's names are replaced`);
  }
  // The first folder mkdir creates (the run folder or a parent of it) is what a failed run removes.
  const createdTop = existed ? undefined : mkdirSync(dir, { recursive: true });
  let lock: HeldLock;
  try {
    lock = acquireLock(runFile(dir, 'lock'), opts.command);
  } catch (e) {
    if (createdTop) rmSync(createdTop, { recursive: true, force: true });
    throw e;
  }
  if (!isRunFolder(dir)) {
    const marker: RunMarker = { tool: 'notellm2', created: new Date().toISOString() };
    writeFileSync(runFile(dir, 'marker'), JSON.stringify(marker) + '\n');
  }
  return {
    dir,
    created: createdTop !== undefined,
    release: () => lock.release(),
    discardIfEmpty() {
      if (!createdTop || !existsSync(dir) || !onlyBookkeeping(dir)) return;
      lock.release();
      // Remove the run folder, and the parents mkdir created for it when they hold nothing else.
      rmSync(dir, { recursive: true, force: true });
      for (let p = dirname(dir); inside(createdTop, p) && readdirSync(p).length === 0; p = dirname(p)) {
        rmSync(p, { recursive: true, force: true });
        if (p === createdTop) break;
      }
    },
  };
}
