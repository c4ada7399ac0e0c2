/**
 * The files a finished run writes into its folder, in one step shared by `notellm2 ablate`
 * and `notellm2 train`: results.json, results.csv, comparisons.csv and curves.json; then, for the report,
 * embeddings.json and neighbours.json (from the saved test-note embeddings), saliency.json
 * (when asked) and report.html (with PNGs when asked). Names: experiments/run-folder.ts.
 */
import { ensureDataset } from '../experiments/datasets';
import { writeRunExtras } from '../viz/report-data';
import { writeResults, type AblationResults, type VariantResult } from '../experiments/results';
import { saliencyForRun } from '../experiments/saliency';
import { writeReport } from '../viz/report';

export interface RunOutputOptions {
  /** The dataset the run used (name or folder), for the neighbour gallery. */
  dataset: string;
  skipBad?: boolean;
  /** false: results files only (no embeddings.json, neighbours.json, saliency.json, report). Defaults to true. */
  report?: boolean;
  /** Measure modality saliency of the trained variants (saliency.json). Defaults to false. */
  saliency?: boolean;
  png?: boolean;
  log: (msg: string) => void;
}

/** Writes the run's files (see the module comment) and returns their paths. */
export async function writeRunOutputs(out: string, results: AblationResults, runs: VariantResult[], o: RunOutputOptions): Promise<string[]> {
  const written = await writeResults(out, results, runs);
  const files = [written.json, written.csv, ...(written.comparisons ? [written.comparisons] : []), written.curves];
  if (o.report === false) return files;
  // The report's projection and neighbour gallery.
  const extras = await writeRunExtras({ out, datasetDir: (await ensureDataset(o.dataset)).dir, runs, skipBad: o.skipBad });
  files.push(extras.embeddings, extras.neighbours);
  // Where each variant's embedding looks, per layer (the report's saliency figure).
  if (o.saliency) {
    const s = await saliencyForRun(out, { log: o.log });
    if (s.file) files.push(s.file);
  }
  const report = await writeReport(out, { png: o.png });
  files.push(report.html, ...report.pngs);
  return files;
}
