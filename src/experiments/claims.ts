/**
 * The paper's claims (docs/method.md "Reported outcomes"), checked on a run: each one is
 * a paired difference on the same queries with its 95 % interval (statistics.ts), and the
 * verdict reads the interval — `supported` when it lies on the claim's side of 0,
 * `contradicted` when it lies on the other side, `inconclusive` when it includes 0, and
 * `not run` when a preset the claim needs is not in the run.
 *
 *   (a) naive end-to-end training neglects the image: in `basic`, text alone (zero image)
 *       minus image alone (empty text) is above 0;
 *   (b) `micl` − `basic` above 0;
 *   (c) late fusion helps: `late+early` − `basic` above 0;
 *   (d) `notellm2` is at least as good as every other variant: supported when notellm2 − v is
 *       above 0 for every other preset v, contradicted when it is below 0 for any;
 *   (e) the gains are largest on short-text queries: (notellm2 − basic on short_query) −
 *       (notellm2 − basic on long_query) above 0.
 *
 * The metric is R@100 (the neglect index's), or the largest K the pool allows below it.
 */
import type { TestedEstimate } from '../eval/stats';
import { PRESET_NAMES } from './presets';
import type { Claim, Comparison, InputKind, Verdict } from './results';
import type { RunStatistics } from './statistics';

/** The claims' metric: R@100 when reported, else the largest K below it. */
export function claimMetric(metrics: readonly string[]): string | undefined {
  if (metrics.includes('R@100')) return 'R@100';
  const below = metrics.filter((m) => Number(m.slice(2)) < 100).sort((a, b) => Number(a.slice(2)) - Number(b.slice(2)));
  return below[below.length - 1];
}

/** The verdict of a difference claimed to be above 0. */
export function verdictOf(t: Pick<TestedEstimate, 'lo' | 'hi'>): Verdict {
  if (!(Number.isFinite(t.lo) && Number.isFinite(t.hi))) return 'inconclusive';
  if (t.lo > 0) return 'supported';
  if (t.hi < 0) return 'contradicted';
  return 'inconclusive';
}

const STATEMENTS: Record<string, string> = {
  a: 'naive end-to-end training neglects the image (basic: image alone far below text alone)',
  b: 'mICL beats basic',
  c: 'late fusion beats basic (late+early vs basic)',
  d: 'notellm2 is at least as good as every other variant',
  e: 'the gains (notellm2 − basic) are largest on short-text queries',
};

/**
 * Checks the claims on a run's statistics. `variants` are the run's variant names (only
 * presets by their own name count: a sweep variant `basic@q8` is not `basic`).
 */
export function checkClaims(stats: RunStatistics, variants: readonly string[]): Claim[] {
  const metric = claimMetric(stats.metrics);
  const has = (name: string) => variants.includes(name);
  const claim = (id: string, need: string[], body: (metric: string) => Omit<Claim, 'id' | 'statement' | 'metric'>): Claim => {
    const missing = need.filter((n) => !has(n));
    if (!metric || missing.length) {
      const note = !metric ? 'no recall metric below the pool size' : `not in the run: ${missing.join(', ')}`;
      return { id, statement: STATEMENTS[id], metric: metric ?? '', measured: [], comparisons: [], verdict: 'not run', note };
    }
    return { id, statement: STATEMENTS[id], metric, ...body(metric) };
  };
  const measured = (label: string, entity: string, input: InputKind, subset: string, m: string) => ({ label, ...stats.interval(entity, input, subset, m) });
  const comparison = (a: string, b: string, subset: string, m: string, t: TestedEstimate, input: InputKind = 'full'): Comparison => ({
    a, b, input, subset, metric: m, nQueries: stats.size(subset), diff: t.estimate, lo: t.lo, hi: t.hi, p: t.p,
  });
  const pairClaim = (id: string, a: string, b: string) =>
    claim(id, [a, b], (m) => {
      const t = stats.difference(a, b, 'all', m);
      return {
        measured: [measured(a, a, 'full', 'all', m), measured(b, b, 'full', 'all', m)],
        comparisons: [comparison(a, b, 'all', m, t)],
        verdict: verdictOf(t),
        note: `${a} − ${b} over all queries`,
      };
    });

  const claims: Claim[] = [];
  claims.push(
    claim('a', ['basic'], (m) => {
      if (!stats.has('basic', 'zeroImage') || !stats.has('basic', 'emptyText')) return { measured: [], comparisons: [], verdict: 'not run', note: 'basic was evaluated without the probes' };
      const t = stats.difference('basic', 'basic', 'all', m, { a: 'zeroImage', b: 'emptyText' });
      return {
        measured: [measured('basic', 'basic', 'full', 'all', m), measured('basic, text alone', 'basic', 'zeroImage', 'all', m), measured('basic, image alone', 'basic', 'emptyText', 'all', m)],
        comparisons: [comparison('basic (text alone)', 'basic (image alone)', 'all', m, t, 'zeroImage')],
        verdict: verdictOf(t),
        note: 'text alone − image alone of the same basic models',
      };
    }),
  );
  claims.push(pairClaim('b', 'micl', 'basic'));
  claims.push(pairClaim('c', 'late+early', 'basic'));
  claims.push(
    claim('d', ['notellm2'], (m) => {
      const others = PRESET_NAMES.filter((p) => p !== 'notellm2' && has(p));
      if (others.length === 0) return { measured: [], comparisons: [], verdict: 'not run', note: 'no other preset in the run' };
      const tests = stats.differences(others.map((o) => ({ a: 'notellm2', b: o })), 'all', m);
      const comparisons = others.map((o, j) => comparison('notellm2', o, 'all', m, tests[j]));
      const verdicts = tests.map(verdictOf);
      const verdict: Verdict = verdicts.includes('contradicted') ? 'contradicted' : verdicts.every((v) => v === 'supported') ? 'supported' : 'inconclusive';
      return {
        measured: [measured('notellm2', 'notellm2', 'full', 'all', m), ...others.map((o) => measured(o, o, 'full', 'all', m))],
        comparisons,
        verdict,
        note: 'supported when notellm2 − v > 0 for every other preset v, contradicted when < 0 for any',
      };
    }),
  );
  claims.push(
    claim('e', ['notellm2', 'basic'], (m) => {
      if (!stats.subsets.includes('short_query') || !stats.subsets.includes('long_query')) {
        return { measured: [], comparisons: [], verdict: 'not run', note: 'no short_query / long_query subsets' };
      }
      const gain = (s: string) => stats.difference('notellm2', 'basic', s, m);
      const short = gain('short_query');
      const long = gain('long_query');
      const t = stats.differenceBetweenSubsets('notellm2', 'basic', 'short_query', 'long_query', m);
      return {
        measured: [
          { label: 'notellm2 − basic, short_query', estimate: short.estimate, lo: short.lo, hi: short.hi },
          { label: 'notellm2 − basic, long_query', estimate: long.estimate, lo: long.lo, hi: long.hi },
        ],
        comparisons: [{
          a: 'gain on short_query', b: 'gain on long_query', input: 'full', subset: 'short_query − long_query', metric: m,
          nQueries: stats.size('short_query') + stats.size('long_query'), diff: t.estimate, lo: t.lo, hi: t.hi, p: t.p,
        }],
        verdict: verdictOf(t),
        note: 'difference of the paired gains; p from permuting the short/long labels',
      };
    }),
  );
  return claims;
}
