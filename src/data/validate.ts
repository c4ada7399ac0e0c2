/**
 * Dataset validation: the problem kinds a dataset folder in the reference layout can have
 * (docs/method.md "Data and pairs"), how each is reported (`file:line: kind: message`, the message
 * saying what was expected), and the summary `notellm2 data validate` prints.
 *
 * Loading is strict by default: `loadDataset` collects every problem in one pass and throws a
 * `DatasetError` listing all of them, so nothing is half-loaded. With `skipBad` the bad rows are
 * left out and the report counts them by kind.
 */
import type { LoadOptions, LoadResult } from './loaders';

/** Every kind of problem the loader reports. Each has one planted case in test/fixtures/broken/. */
export const PROBLEM_KINDS = [
  /** A required table (notes or pairs of a split) is absent. */
  'missing-file',
  /** Bytes that are not valid UTF-8. */
  'bad-encoding',
  /** CSV that cannot be parsed (a stray quote) or a JSONL line that is not JSON. */
  'syntax',
  /** A CSV row with the wrong number of columns. */
  'column-count',
  /** A field with the wrong value: empty id, a note paired with itself, a JSON field of the wrong type. */
  'bad-field',
  /** A note id seen before (in the same or another notes file). */
  'duplicate-id',
  /** A note with no title, no content and no topics. */
  'empty-note',
  /** A pair naming a note that no notes file holds. */
  'unknown-note',
  /** A label row naming a pair that is not among the test pairs. */
  'unknown-pair',
  /** No image file for the note's image_id. */
  'missing-image',
  /** An image file that sharp cannot decode. */
  'undecodable-image',
  /** An image path leaving the dataset folder (`../`, an absolute path, a symlink out). */
  'image-escape',
] as const;

export type ProblemKind = (typeof PROBLEM_KINDS)[number];

/** One problem, located in a file of the dataset. */
export interface Problem {
  kind: ProblemKind;
  /** Path relative to the dataset folder, e.g. `notes_train.csv`. */
  file: string;
  /** 1-based line of the row (its first line for rows spanning several); 0 when the whole file is meant. */
  line: number;
  /** What is wrong and what was expected. */
  message: string;
}

/** What a load found: sizes, image counts and every problem. */
export interface ValidationReport {
  /** Absolute path of the dataset folder. */
  dir: string;
  /** Notes kept per notes split. */
  notes: { train: number; test: number };
  /** Pairs kept per split. */
  pairs: { train: number; val: number; test: number };
  /** Test pairs that carry a label (from note_pairs_test_labels.csv). */
  labelledPairs: number;
  images: {
    /** Notes whose image file was found inside the dataset folder. */
    found: number;
    /** How deeply images were checked. */
    check: ImageCheck;
  };
  /** Rows left out per kind (the count of problems of that kind). */
  badRows: Partial<Record<ProblemKind, number>>;
  /** Pairs left out only because one of their notes was left out (skipBad). */
  droppedPairs: number;
  problems: Problem[];
  /** True when there is no problem at all. */
  ok: boolean;
}

/**
 * How images are checked while loading. `decode`: fully decode each image (catches truncated
 * files; slow on large photo sets). `header`: read the header only (catches non-images and
 * unknown formats). `exists`: only check that the file is there and inside the folder.
 */
export type ImageCheck = 'decode' | 'header' | 'exists';
export const IMAGE_CHECKS: readonly ImageCheck[] = ['decode', 'header', 'exists'];

/** `file:line: kind: message` (the line is left out when the whole file is meant). */
export function formatProblem(p: Problem): string {
  return `${p.file}${p.line > 0 ? `:${p.line}` : ''}: ${p.kind}: ${p.message}`;
}

/** Counts problems by kind, in PROBLEM_KINDS order. */
export function countByKind(problems: readonly Problem[]): Partial<Record<ProblemKind, number>> {
  const out: Partial<Record<ProblemKind, number>> = {};
  for (const kind of PROBLEM_KINDS) {
    const n = problems.filter((p) => p.kind === kind).length;
    if (n > 0) out[kind] = n;
  }
  return out;
}

/** Orders problems by file, then line, then kind, so reports read top to bottom. */
export function sortProblems(problems: Problem[]): Problem[] {
  return problems.sort(
    (a, b) =>
      a.file.localeCompare(b.file) ||
      a.line - b.line ||
      PROBLEM_KINDS.indexOf(a.kind) - PROBLEM_KINDS.indexOf(b.kind),
  );
}

/** Thrown by a strict load: carries the whole report; the message lists every problem. */
export class DatasetError extends Error {
  constructor(readonly report: ValidationReport) {
    const lines = report.problems.map(formatProblem);
    super(
      `dataset ${report.dir} has ${report.problems.length} problem(s) ` +
        `(load with skipBad to leave the bad rows out):\n  ${lines.join('\n  ')}`,
    );
    this.name = 'DatasetError';
  }
}

/** The human-readable summary printed by `notellm2 data validate`. */
export function formatReport(report: ValidationReport): string {
  const out: string[] = [];
  out.push(`dataset: ${report.dir}`);
  out.push(`notes:   train ${report.notes.train}, test ${report.notes.test}`);
  out.push(
    `pairs:   train ${report.pairs.train}, val ${report.pairs.val}, test ${report.pairs.test}` +
      (report.labelledPairs > 0 ? ` (${report.labelledPairs} labelled)` : ''),
  );
  out.push(`images:  ${report.images.found} found (checked: ${report.images.check})`);
  const kinds = Object.entries(report.badRows);
  if (kinds.length === 0) {
    out.push('bad rows: none');
  } else {
    out.push(`bad rows: ${kinds.map(([k, n]) => `${k} ${n}`).join(', ')}`);
    if (report.droppedPairs > 0) out.push(`pairs dropped with a left-out note: ${report.droppedPairs}`);
    out.push(`problems (${report.problems.length}):`);
    for (const p of report.problems) out.push(`  ${formatProblem(p)}`);
  }
  out.push(report.ok ? 'OK' : `FAILED: ${report.problems.length} problem(s)`);
  return out.join('\n');
}

/**
 * Checks a dataset folder and returns the report without throwing for dataset problems
 * (the same pass as `loadDataset(dir, { skipBad: true })`). Images are fully decoded unless
 * `images` says otherwise.
 */
export async function validateDataset(
  dir: string,
  opts: Omit<LoadOptions, 'skipBad'> = {},
): Promise<LoadResult> {
  // Imported lazily: loaders.ts imports this module's types and helpers.
  const { loadDataset } = await import('./loaders');
  return loadDataset(dir, { images: 'decode', ...opts, skipBad: true });
}
