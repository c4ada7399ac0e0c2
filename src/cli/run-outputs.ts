/**
 * The files a finished run writes into its folder, in one step shared by `notellm2 ablate`
 * and `notellm2 train`: results.json, results.csv, comparisons.csv and curves.json (merged
 * with the results of earlier runs into the same folder, the statistics redone over every seed
 * it then holds); then, for the report, embeddings.json and neighbours.json (from the saved
 * test-note embeddings), saliency.json (when asked) and report.html (with PNGs when asked).
 * Names: experiments/run-folder.ts.
 */
import { ensureDataset, type RunDataOptions } from '../experiments/datasets';
import { writeRunExtras } from '../viz/report-data';
import { writeResults, type AblationResults, type VariantResult } from '../experiments/results';
import { saliencyForRun } from '../experiments/saliency';
import { reanalyser } from '../experiments/analysis';
import type { BaselineRun } from '../experiments/baselines';
import { writeReport } from '../viz/report';

export interface RunOutputOptions {
  /** The dataset the run used (name or folder), for the neighbour gallery when results.json does not name its folder. */
  dataset: string;
  /** How the run read its dataset (bad rows left out, image check): every step reads it alike. */
  data: RunDataOptions;
  /** false: results files only (no embeddings.json, neighbours.json, saliency.json, report). Defaults to true. */
  report?: boolean;
  /** Measure modality saliency of the trained variants (saliency.json). Defaults to false. */
  saliency?: boolean;
  png?: boolean;
  log: (msg: string) => void;
  /** The run's baselines with their per-query ranks (runAblation's), for the statistics after a merge. */
  baselines?: BaselineRun[];
}

/** Writes the run's files (see the module comment) and returns their paths. */
export async function writeRunOutputs(out: string, results: AblationResults, runs: VariantResult[], o: RunOutputOptions): Promise<string[]> {
  const written = await writeResults(out, results, runs, { log: o.log, analyse: reanalyser(out, runs, o.baselines ?? [], { log: o.log }) });
  const files = [written.json, written.csv, ...(written.comparisons ? [written.comparisons] : []), written.curves];
  if (o.report === false) return files;
  // The report's projection and neighbour gallery, from every variant the folder now holds.
  const all = written.results.variants.flatMap((v) => v.seeds.map((s) => ({ name: v.name, preset: v.preset, seed: s.seed })));
  const datasetDir = typeof results.datasetDir === 'string' ? results.datasetDir : (await ensureDataset(o.dataset)).dir;
  const extras = await writeRunExtras({ out, datasetDir, runs: all, skipBad: o.data.skipBad, imageSizes: o.data.imageSizes });
  files.push(extras.embeddings, extras.neighbours);
  // Where each variant this run trained looks, per layer (the report's saliency figure).
  if (o.saliency && runs.length) {
    const s = await saliencyForRun(out, { presets: [...new Set(runs.map((r) => r.name))], seed: Math.min(...runs.map((r) => r.seed)), log: o.log });
    if (s.file) files.push(s.file);
  }
  const report = await writeReport(out, { png: o.png });
  files.push(report.html, ...report.pngs);
  return files;
}
