/**
 * The regime map (docs/method.md "Sweeps"): where, on a grid of text-path strength (LM
 * pretraining budget) × image-path strength (vision pretraining budget), the naive model
 * neglects the image, and whether each fix helps there. Per cell, from the run's statistics:
 *
 * - basic's neglect index: R@K of the image-alone probe over R@K of the full input, and of the
 *   text-alone probe over the full input (each interval from the replicate-wise ratio);
 * - neglect: basic's text alone − image alone, paired (claim (a) of claims.ts in that cell);
 * - the paired gain of each fix (micl, late+early, notellm2) over basic.
 *
 * The metric is the claims' (R@100, or the largest K below it).
 */
import type { Estimate } from '../eval/stats';
import { claimMetric, verdictOf } from './claims';
import type { RegimeCell } from './results';
import type { RunStatistics } from './statistics';

/** The fixes the map compares with basic. */
export const REGIME_FIXES = ['micl', 'late+early', 'notellm2'] as const;

/** The regime cells of a run: variants with a `group` and `axes`, named `<preset>@<cell>`. */
export function regimeMap(stats: RunStatistics, variants: ReadonlyArray<{ name: string; preset: string; group?: string; axes?: Record<string, number> }>): RegimeCell[] {
  const metric = claimMetric(stats.metrics);
  if (!metric) return [];
  const cells = new Map<string, { axes: Record<string, number>; byPreset: Map<string, string> }>();
  for (const v of variants) {
    if (v.group === undefined || !v.axes) continue;
    const c = cells.get(v.group) ?? cells.set(v.group, { axes: v.axes, byPreset: new Map() }).get(v.group)!;
    c.byPreset.set(v.preset, v.name);
  }
  const out: RegimeCell[] = [];
  for (const [cell, { axes, byPreset }] of cells) {
    const basic = byPreset.get('basic');
    if (!basic || !stats.has(basic, 'zeroImage') || !stats.has(basic, 'emptyText')) continue;
    const rep = (input: 'full' | 'zeroImage' | 'emptyText') => stats.replicates(basic, input, 'all', metric);
    const full = rep('full');
    const ratio = (input: 'zeroImage' | 'emptyText'): Estimate => {
      const r = rep(input);
      const [lo, hi] = stats.intervalOf(r.map((x, i) => x / full[i]));
      return { estimate: stats.interval(basic, input, 'all', metric).estimate / stats.interval(basic, 'full', 'all', metric).estimate, lo, hi };
    };
    const neglect = stats.difference(basic, basic, 'all', metric, { a: 'zeroImage', b: 'emptyText' });
    const fixes = REGIME_FIXES.filter((f) => byPreset.has(f));
    const tests = stats.differences(fixes.map((f) => ({ a: byPreset.get(f)!, b: basic })), 'all', metric);
    out.push({
      cell,
      axes,
      metric,
      basic: { full: stats.interval(basic, 'full', 'all', metric), textAlone: stats.interval(basic, 'zeroImage', 'all', metric), imageAlone: stats.interval(basic, 'emptyText', 'all', metric) },
      neglectIndex: { imageAlone: ratio('emptyText'), textAlone: ratio('zeroImage') },
      neglect: { ...neglect, verdict: verdictOf(neglect) },
      gains: Object.fromEntries(fixes.map((f, j) => [f, { ...tests[j], verdict: verdictOf(tests[j]) }])),
    });
  }
  return out;
}

const pts = (x: number) => `${x >= 0 ? '+' : '−'}${Math.abs(100 * x).toFixed(1)}`;
const ci = (e: { lo: number; hi: number }) => `[${pts(e.lo)}, ${pts(e.hi)}]`;

/**
 * What the map shows, in words, from its numbers alone: for each cell whether basic neglects
 * the image (text alone − image alone above 0) and whether each fix's gain over basic is above
 * 0, below 0 or inconclusive.
 */
export function describeRegimes(cells: readonly RegimeCell[]): string[] {
  if (cells.length === 0) return ['The run holds no regime cell with basic and its probes.'];
  const lines = cells.map((c) => {
    const where = `LM pretraining ×${c.axes.lm}, vision pretraining ×${c.axes.vision}`;
    const neglect = c.neglect.verdict === 'supported'
      ? `basic neglects the image (text alone − image alone ${pts(c.neglect.estimate)} points ${ci(c.neglect)})`
      : c.neglect.verdict === 'contradicted'
        ? `basic leans on the image rather than the text (text alone − image alone ${pts(c.neglect.estimate)} ${ci(c.neglect)})`
        : `no image neglect shown (text alone − image alone ${pts(c.neglect.estimate)} ${ci(c.neglect)}, includes 0)`;
    const fixes = Object.entries(c.gains).map(([f, g]) => {
      const word = g.verdict === 'supported' ? 'helps' : g.verdict === 'contradicted' ? 'hurts' : 'no clear effect';
      return `${f} ${word} (${pts(g.estimate)} ${ci(g)})`;
    });
    return `${c.cell} (${where}), ${c.metric}: ${neglect}; ${fixes.join(', ')}.`;
  });
  const neglected = cells.filter((c) => c.neglect.verdict === 'supported').map((c) => c.cell);
  lines.push(neglected.length ? `Image neglect appears in: ${neglected.join(', ')}.` : 'Image neglect appears in no cell of this run.');
  return lines;
}
