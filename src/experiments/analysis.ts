/**
 * What a run's numbers mean (docs/method.md "Uncertainty and paired comparisons", "Reported
 * outcomes"): after aggregation, the results gain 95 % intervals for every variant and
 * baseline, the baselines as rows, paired comparisons, the paper's claims with verdicts and,
 * for a regime sweep, the regime map. One function, shared by `ablate`, `train` and `eval`;
 * `reanalyser` does it again when a run's results merge into a folder holding earlier seeds.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { BootstrapOptions } from '../eval/stats';
import type { BaselineRun } from './baselines';
import { checkClaims } from './claims';
import { regimeMap } from './regimes';
import { withoutStatistics, type AblationResults, type QueryOutcomes, type VariantResult } from './results';
import { variantQueriesFile } from './run-folder';
import { RunStatistics, comparisonPairs, statisticsEntities } from './statistics';

/** What the statistics read of each (variant, seed): its name, cell and per-query ranks. */
export type AnalysedRun = Pick<VariantResult, 'name' | 'seed' | 'group' | 'queries'>;

/** Adds the statistics to `results` (in place) and returns it. */
export function analyseRun(results: AblationResults, runs: readonly AnalysedRun[], baselines: readonly BaselineRun[], opts: BootstrapOptions = {}): AblationResults {
  const t0 = performance.now();
  const entities = statisticsEntities(runs, baselines);
  const stats = new RunStatistics(entities, opts);
  for (const v of results.variants) v.intervals = stats.intervals(v.name);
  results.baselines = baselines.map(({ queries: _q, seconds: _s, ...b }) => ({ ...b, intervals: stats.intervals(b.name) }));
  results.comparisons = stats.comparisons(comparisonPairs(entities));
  results.claims = checkClaims(stats, results.variants.map((v) => v.name));
  const regimes = regimeMap(stats, results.variants);
  if (regimes.length) results.regimes = regimes;
  else delete results.regimes;
  results.statistics = {
    level: stats.level,
    replicates: stats.replicateCount,
    permutations: stats.permutationCount,
    seconds: (performance.now() - t0) / 1000,
  };
  return results;
}

/**
 * For writeResults (results.ts) after a merge: the merged results' statistics over every
 * (variant, seed) the folder now holds — this run's per-query ranks from `runs`, earlier ones
 * from `<run>/queries/` — and this run's baselines (same dataset and protocol: the merge
 * refuses others). Without the ranks of some earlier seed (a folder written before they were
 * kept) the statistics are left out, and `log` says why.
 */
export function reanalyser(
  runDir: string,
  runs: readonly VariantResult[],
  baselines: readonly BaselineRun[],
  opts: BootstrapOptions & { log?: (msg: string) => void } = {},
): (merged: AblationResults) => AblationResults {
  return (merged) => {
    const outcomes: AnalysedRun[] = [];
    const missing: string[] = [];
    for (const v of merged.variants) {
      for (const s of v.seeds) {
        const fresh = runs.find((r) => r.name === v.name && r.seed === s.seed);
        if (fresh?.queries) {
          outcomes.push(fresh);
          continue;
        }
        const file = variantQueriesFile(runDir, v.name, s.seed);
        if (!existsSync(file)) {
          missing.push(`${v.name} seed ${s.seed}`);
          continue;
        }
        outcomes.push({ name: v.name, seed: s.seed, group: v.group, queries: JSON.parse(readFileSync(file, 'utf8')) as QueryOutcomes });
      }
    }
    if (missing.length || baselines.length === 0) {
      opts.log?.(`statistics left out of the merged results: ${missing.length ? `no per-query ranks kept for ${missing.join(', ')}` : 'no baselines given'}`);
      return withoutStatistics(merged);
    }
    return analyseRun(merged, outcomes, baselines, opts);
  };
}
