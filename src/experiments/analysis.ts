/**
 * What a run's numbers mean (docs/method.md "Uncertainty and paired comparisons", "Reported
 * outcomes"): after aggregation, the results gain 95 % intervals for every variant and
 * baseline, the baselines as rows, paired comparisons, the paper's claims with verdicts and,
 * for a regime sweep, the regime map. One function, shared by `ablate`, `train` and `eval`.
 */
import type { BootstrapOptions } from '../eval/stats';
import type { BaselineRun } from './baselines';
import { checkClaims } from './claims';
import { regimeMap } from './regimes';
import type { AblationResults, VariantResult } from './results';
import { RunStatistics, comparisonPairs, statisticsEntities } from './statistics';

/** Adds the statistics to `results` (in place) and returns it. */
export function analyseRun(results: AblationResults, runs: readonly VariantResult[], baselines: readonly BaselineRun[], opts: BootstrapOptions = {}): AblationResults {
  const t0 = performance.now();
  const entities = statisticsEntities(runs, baselines);
  const stats = new RunStatistics(entities, opts);
  for (const v of results.variants) v.intervals = stats.intervals(v.name);
  results.baselines = baselines.map(({ queries: _q, seconds: _s, ...b }) => ({ ...b, intervals: stats.intervals(b.name) }));
  results.comparisons = stats.comparisons(comparisonPairs(entities));
  results.claims = checkClaims(stats, results.variants.map((v) => v.name));
  const regimes = regimeMap(stats, results.variants);
  if (regimes.length) results.regimes = regimes;
  results.statistics = {
    level: stats.level,
    replicates: stats.replicateCount,
    permutations: stats.permutationCount,
    seconds: (performance.now() - t0) / 1000,
  };
  return results;
}
