/**
 * Dataset validation: the summary `notellm2 data validate` prints (every problem as
 * `file:line: kind: message`, the message saying what was expected; the kinds are in
 * problems.ts) and the check itself.
 *
 * Loading is strict by default: `loadDataset` collects every problem in one pass and throws a
 * `DatasetError` listing all of them, so nothing is half-loaded. With `skipBad` the bad rows are
 * left out and the report counts them by kind.
 */
import { loadDataset, type LoadOptions, type LoadResult } from './loaders';
import { formatProblem, type ValidationReport } from './problems';

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
  return loadDataset(dir, { images: 'decode', ...opts, skipBad: true });
}
