/**
 * The vocabulary of dataset validation (docs/method.md "Data and pairs"): the problem kinds a
 * dataset folder in the reference layout can have, one problem located at `file:line`, the
 * report a load returns, and the error a strict load throws. A leaf module: the CSV reader,
 * the loaders and the validation summary all speak it without importing each other.
 */
/** Every kind of problem the loader reports. Each has one planted case in test/fixtures/broken/. */
export const PROBLEM_KINDS = [
  /** A required table (notes or pairs of a split) is absent. */
  'missing-file',
  /** Bytes that are not valid UTF-8, or a file that looks like UTF-16. */
  'bad-encoding',
  /** CSV that cannot be parsed (a stray quote) or a JSONL line that is not JSON. */
  'syntax',
  /** A CSV row with the wrong number of columns. */
  'column-count',
  /**
   * A field with the wrong value: empty id, a note paired with itself, a JSON field of the wrong
   * type, a control character (NUL …) in an id or text, a numeric id beyond exact integers.
   */
  'bad-field',
  /** A note id seen before (in the same or another notes file). */
  'duplicate-id',
  /** A note with no title, no content and no topics. */
  'empty-note',
  /** A pair naming a note that no notes file holds. */
  'unknown-note',
  /** A pairs file (train, val or test) left with no usable pair. */
  'empty-split',
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

/**
 * Kinds that concern a whole table rather than rows: skipping bad rows cannot mend them, so a
 * run stops on them even with --skip-bad.
 */
export const DATASET_KINDS: readonly ProblemKind[] = ['missing-file', 'empty-split'];

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
