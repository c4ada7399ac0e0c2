/**
 * The statistics of a run on hand-made per-query ranks (no training): intervals around every
 * mean, paired comparisons with the pairs a run compares, the paper's claims with verdicts
 * that follow from constructed effects, the regime map, and the tables and files that show them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analyseRun, reanalyser } from '../../src/experiments/analysis';
import { claimMetric, verdictOf } from '../../src/experiments/claims';
import { describeRegimes } from '../../src/experiments/regimes';
import { RunStatistics, comparisonPairs, statisticsEntities } from '../../src/experiments/statistics';
import { aggregate, formatClaimsTable, formatResultsTable, resultRows, writeResults, type AblationResults, type QueryOutcomes, type VariantResult } from '../../src/experiments/results';
import type { BaselineRun } from '../../src/experiments/baselines';
import { Rng } from '../../src/backend/rng';

const Q = 120;
const KS = [10, 100];
// Queries 0..59 are short, 60..119 long; labels alternate text / visual.
const SUBSETS = {
  short_query: [...Array(60).keys()],
  long_query: [...Array(60).keys()].map((i) => i + 60),
  text: [...Array(Q).keys()].filter((i) => i % 2 === 0),
  visual: [...Array(Q).keys()].filter((i) => i % 2 === 1),
};

/** Ranks with a hit rate `p(q)` at R@100 (rank 0 or 500) and ~p/2 at R@10 (rank 0 or 50). */
function ranks(seed: number, p: (q: number) => number): { higher: number[]; ties: number[] } {
  const rng = new Rng(seed);
  const higher = Array.from({ length: Q }, (_, q) => (rng.next() < p(q) ? (rng.next() < 0.5 ? 0 : 50) : 500));
  return { higher, ties: new Array(Q).fill(0) };
}

function outcomes(seed: number, full: (q: number) => number, zeroImage?: (q: number) => number, emptyText?: (q: number) => number): QueryOutcomes {
  return {
    protocol: 'reference',
    tieMode: 'expected',
    ks: KS,
    poolSize: 1000,
    pairing: 'same-queries',
    subsets: SUBSETS,
    ranks: {
      full: ranks(seed, full),
      ...(zeroImage && { zeroImage: ranks(seed + 1000, zeroImage) }),
      ...(emptyText && { emptyText: ranks(seed + 2000, emptyText) }),
    },
  };
}

/** A variant's run per seed; its recall maps computed from the ranks as the protocol would. */
function run(name: string, preset: string, seed: number, q: QueryOutcomes, extra: Partial<VariantResult> = {}): VariantResult {
  const recall = (which: readonly number[], r = q.ranks.full!) =>
    Object.fromEntries(KS.map((k) => [`R@${k}`, which.filter((i) => r.higher[i] < k).length / which.length]));
  const all = [...Array(Q).keys()];
  const probe = (r?: { higher: number[]; ties: number[] }) => r && { metrics: recall(all, r), subsets: Object.fromEntries(Object.entries(SUBSETS).map(([s, idx]) => [s, recall(idx, r)])) };
  return {
    name, preset, seed,
    config: { train: {} } as unknown as VariantResult['config'],
    metrics: recall(all),
    subsets: Object.fromEntries(Object.entries(SUBSETS).map(([s, idx]) => [s, recall(idx)])),
    probes: q.ranks.zeroImage ? { zeroImage: probe(q.ranks.zeroImage)!, emptyText: probe(q.ranks.emptyText)! } : undefined,
    nQueries: Q, poolSize: 1000, trainSeconds: 1, evalSeconds: 1, steps: 1, bestEpoch: 0, valLoss: [], curve: [], backend: 'cpu',
    queries: q,
    ...extra,
  };
}

/**
 * Three seeds of five presets with built-in effects: basic reads text much better than the
 * image (text alone 0.8, image alone 0.2); micl = basic + 0.3 on every query (short and long
 * alike); late+early = basic; notellm2 = basic + 0.45 on short queries only.
 */
function fixture(): { runs: VariantResult[]; baselines: BaselineRun[] } {
  const runs: VariantResult[] = [];
  for (const seed of [0, 1, 2]) {
    const base = 0.4;
    runs.push(run('text-only', 'text-only', seed, outcomes(10 + seed, () => 0.35, () => 0.35, () => 0.02)));
    runs.push(run('basic', 'basic', seed, outcomes(20 + seed, () => base, () => 0.8, () => 0.2)));
    runs.push(run('late+early', 'late+early', seed, outcomes(20 + seed, () => base, () => 0.8, () => 0.2)));
    runs.push(run('micl', 'micl', seed, outcomes(40 + seed, () => base + 0.3, () => 0.7, () => 0.5)));
    runs.push(run('notellm2', 'notellm2', seed, outcomes(50 + seed, (q) => (q < 60 ? base + 0.45 : base), () => 0.7, () => 0.6)));
  }
  const baseline = (name: string, modality: 'text' | 'image', p: number): BaselineRun => {
    const q = outcomes(90 + p * 10, () => p);
    const probe = modality === 'text' ? 'zeroImage' : 'emptyText';
    q.ranks[probe] = q.ranks.full;
    const r = run(name, name, 0, q);
    return { name, modality, metrics: r.metrics, subsets: r.subsets, probes: { [probe]: r.metrics }, probeSubsets: { [probe]: r.subsets }, nQueries: Q, poolSize: 1000, queries: q, seconds: 0 };
  };
  return { runs, baselines: [baseline('tfidf-text', 'text', 0.5), baseline('colour-histogram-image', 'image', 0.3)] };
}

function analysed(runs: VariantResult[], baselines: BaselineRun[]): AblationResults {
  const names = [...new Set(runs.map((r) => r.name))];
  const results: AblationResults = {
    dataset: 'synthetic', backend: 'cpu', seed: 0, seedList: [0, 1, 2], pretrain: {},
    variants: names.map((n) => aggregate(runs.filter((r) => r.name === n))), wallSeconds: 0,
  };
  return analyseRun(results, runs, baselines, { replicates: 400, permutations: 400 });
}

test('intervals surround every mean; a baseline has intervals for its own probe only', () => {
  const { runs, baselines } = fixture();
  const r = analysed(runs, baselines);
  for (const v of r.variants) {
    for (const k of ['R@10', 'R@100']) {
      const [lo, hi] = v.intervals!.metrics[k];
      assert.ok(lo <= v.metrics[k] && v.metrics[k] <= hi && hi > lo, `${v.name} ${k}: ${v.metrics[k]} in [${lo}, ${hi}]`);
      for (const s of Object.keys(SUBSETS)) {
        const [sl, sh] = v.intervals!.subsets[s][k];
        assert.ok(sl <= v.subsets[s][k] && v.subsets[s][k] <= sh, `${v.name} ${s} ${k}`);
      }
    }
    assert.deepEqual(Object.keys(v.intervals!.probes).sort(), ['emptyText', 'zeroImage']);
  }
  const tfidf = r.baselines!.find((b) => b.name === 'tfidf-text')!;
  assert.deepEqual(Object.keys(tfidf.intervals!.probes), ['zeroImage']);
  assert.deepEqual(tfidf.probes.zeroImage, tfidf.metrics);
  assert.equal('queries' in tfidf, false, 'per-query ranks stay out of results.json');
  // A subset of 60 queries has a wider interval than all 120.
  const basic = r.variants.find((v) => v.name === 'basic')!;
  const width = ([lo, hi]: [number, number]) => hi - lo;
  assert.ok(width(basic.intervals!.subsets.short_query['R@100']) > width(basic.intervals!.metrics['R@100']));
  assert.equal(r.statistics!.replicates, 400);
});

test('comparisons: every variant pair (later − earlier), every variant against each baseline, baseline against baseline; all subsets and metrics', () => {
  const { runs, baselines } = fixture();
  const r = analysed(runs, baselines);
  const pairs = new Set(r.comparisons!.map((c) => `${c.a}|${c.b}`));
  assert.equal(pairs.size, 10 + 5 * 2 + 1);
  assert.ok(pairs.has('notellm2|basic') && pairs.has('text-only|tfidf-text') && pairs.has('colour-histogram-image|tfidf-text'));
  assert.equal(r.comparisons!.length, pairs.size * 5 * 2, 'five subsets (all + four) × two metrics');
  const c = r.comparisons!.find((x) => x.a === 'micl' && x.b === 'basic' && x.subset === 'all' && x.metric === 'R@100')!;
  assert.ok(Math.abs(c.diff - (r.variants[3].metrics['R@100'] - r.variants[1].metrics['R@100'])) < 1e-12, 'diff = difference of the means');
  assert.ok(c.lo > 0 && c.p < 0.01, `micl − basic is clearly positive: [${c.lo}, ${c.hi}], p ${c.p}`);
  // Within-cell comparisons only, once variants belong to sweep cells.
  const grouped = statisticsEntities(runs.map((x) => ({ ...x, group: x.name === 'basic' || x.name === 'micl' ? 'A' : 'B' })), baselines);
  const gp = comparisonPairs(grouped).map((p) => p.join('|'));
  assert.ok(gp.includes('micl|basic') && gp.includes('notellm2|late+early') && !gp.includes('notellm2|basic'));
});

test("claims: verdicts follow the constructed effects, and presets missing from the run are 'not run'", () => {
  const { runs, baselines } = fixture();
  const r = analysed(runs, baselines);
  const verdict = Object.fromEntries(r.claims!.map((c) => [c.id, c.verdict]));
  // (a) basic: text alone 0.8 vs image alone 0.2 → neglect supported.
  // (b) micl = basic + 0.3 → supported. (c) late+early = basic, same ranks → inconclusive.
  // (d) notellm2 − micl: +0.45 on half the queries vs +0.3 on all → about −0.075 overall, with
  //     text-only far below → not supported; (e) notellm2's gain is on short queries only → supported.
  assert.deepEqual(verdict, { a: 'supported', b: 'supported', c: 'inconclusive', d: verdict.d, e: 'supported' });
  assert.notEqual(verdict.d, 'supported');
  const a = r.claims!.find((c) => c.id === 'a')!;
  assert.equal(a.metric, 'R@100');
  assert.deepEqual(a.measured.map((m) => m.label), ['basic', 'basic, text alone', 'basic, image alone']);
  assert.ok(a.comparisons[0].diff > 0.4 && a.comparisons[0].lo > 0);
  const c = r.claims!.find((x) => x.id === 'c')!;
  assert.equal(c.comparisons[0].diff, 0);
  assert.equal(c.comparisons[0].p, 1, 'identical ranks: every sign pattern ties');
  const d = r.claims!.find((x) => x.id === 'd')!;
  assert.deepEqual(d.comparisons.map((x) => x.b), ['text-only', 'basic', 'late+early', 'micl']);
  // Without micl and notellm2: (b), (d), (e) are not run and say why.
  const partial = analysed(runs.filter((x) => x.name === 'basic' || x.name === 'late+early'), baselines);
  const pv = Object.fromEntries(partial.claims!.map((x) => [x.id, x.verdict]));
  assert.deepEqual(pv, { a: 'supported', b: 'not run', c: 'inconclusive', d: 'not run', e: 'not run' });
  assert.match(partial.claims!.find((x) => x.id === 'b')!.note, /not in the run: micl/);
  assert.match(formatClaimsTable(r.claims!), /\(b\) mICL beats basic .* supported/);
  // A basic evaluated without the probes (`eval --no-probes`) cannot show (a).
  const noProbes = runs.map((x) => (x.name === 'basic' ? { ...x, probes: undefined, queries: { ...x.queries!, ranks: { full: x.queries!.ranks.full } } } : x));
  const np = analysed(noProbes, baselines).claims!.find((x) => x.id === 'a')!;
  assert.deepEqual([np.verdict, np.note], ['not run', 'basic was evaluated without the probes']);
});

test('claimMetric and verdictOf', () => {
  assert.equal(claimMetric(['R@10', 'R@20', 'R@50', 'R@100', 'R@1000']), 'R@100');
  assert.equal(claimMetric(['R@10', 'R@20', 'R@50']), 'R@50');
  assert.equal(claimMetric([]), undefined);
  assert.equal(verdictOf({ lo: 0.01, hi: 0.2 }), 'supported');
  assert.equal(verdictOf({ lo: -0.2, hi: -0.01 }), 'contradicted');
  assert.equal(verdictOf({ lo: -0.01, hi: 0.2 }), 'inconclusive');
  assert.equal(verdictOf({ lo: 0, hi: 0.2 }), 'inconclusive', 'an interval touching 0 includes it');
  assert.equal(verdictOf({ lo: NaN, hi: NaN }), 'inconclusive');
});

test('regime map: neglect index, neglect verdict and the fixes’ gains per cell; described in words', () => {
  const { runs, baselines } = fixture();
  // Two cells: in A basic neglects the image and micl helps; in B nothing differs.
  const cellRuns = [
    ...runs.filter((x) => ['basic', 'micl'].includes(x.name)).map((x) => ({ ...x, name: `${x.name}@A`, group: 'A', axes: { lm: 4, vision: 0 } })),
    ...runs.filter((x) => x.name === 'basic').map((x) => ({ ...x, name: 'basic@B', group: 'B', axes: { lm: 0, vision: 1 }, queries: { ...x.queries!, ranks: { full: x.queries!.ranks.full, zeroImage: x.queries!.ranks.full, emptyText: x.queries!.ranks.full } } })),
    ...runs.filter((x) => x.name === 'basic').map((x) => ({ ...x, preset: 'notellm2', name: 'notellm2@B', group: 'B', axes: { lm: 0, vision: 1 } })),
  ];
  const r = analysed(cellRuns, baselines);
  assert.equal(r.regimes!.length, 2);
  const [a, b] = r.regimes!;
  assert.equal(a.cell, 'A');
  assert.deepEqual(a.axes, { lm: 4, vision: 0 });
  assert.equal(a.neglect.verdict, 'supported');
  const basicA = r.variants.find((v) => v.name === 'basic@A')!;
  assert.ok(Math.abs(a.neglectIndex.imageAlone.estimate - basicA.probes.emptyText['R@100'] / basicA.metrics['R@100']) < 1e-12);
  assert.ok(a.neglectIndex.imageAlone.lo <= a.neglectIndex.imageAlone.estimate && a.neglectIndex.imageAlone.estimate <= a.neglectIndex.imageAlone.hi);
  assert.deepEqual(Object.keys(a.gains), ['micl']);
  assert.equal(a.gains.micl.verdict, 'supported');
  assert.equal(b.neglect.verdict, 'inconclusive');
  assert.equal(b.neglectIndex.imageAlone.estimate, 1);
  assert.equal(b.gains.notellm2.verdict, 'inconclusive');
  assert.equal(b.gains.notellm2.estimate, 0);
  const words = describeRegimes(r.regimes!);
  assert.match(words[0], /^A \(LM pretraining ×4, vision pretraining ×0\), R@100: basic neglects the image .* micl helps/);
  assert.match(words[1], /^B .* no image neglect shown .* notellm2 no clear effect/);
  assert.equal(words[2], 'Image neglect appears in: A.');
  assert.ok(r.claims!.every((c) => c.verdict === 'not run'), 'sweep variants are not the presets the claims name');
});

test('statistics refuse variants evaluated on different queries', () => {
  const { runs } = fixture();
  const other = { ...runs[1], name: 'other', queries: { ...runs[1].queries!, pairing: 'another-split' } };
  assert.throws(() => new RunStatistics(statisticsEntities([runs[0], other])), /other was evaluated on other queries than text-only/);
  assert.throws(() => statisticsEntities([{ ...runs[0], queries: undefined }]), /carries no per-query ranks/);
});

test('tables and files: baselines as rows, `mean [lo, hi]` cells, interval columns in results.csv, comparisons.csv', async () => {
  const { runs, baselines } = fixture();
  const r = analysed(runs, baselines);
  const rows = resultRows(r);
  assert.deepEqual([...new Set(rows.map((x) => x.variant))], ['text-only', 'basic', 'late+early', 'micl', 'notellm2', 'tfidf-text', 'colour-histogram-image']);
  const tf = rows.filter((x) => x.variant === 'tfidf-text');
  assert.deepEqual(tf.map((x) => x.subset), ['all', 'short_query', 'long_query', 'text', 'visual', 'probe: zero image (text alone)']);
  assert.ok(tf.every((x) => x.kind === 'baseline'));
  const basicAll = rows.find((x) => x.variant === 'basic' && x.subset === 'all')!;
  assert.deepEqual([basicAll['R@100 lo'], basicAll['R@100 hi']], r.variants[1].intervals!.metrics['R@100']);
  const table = formatResultsTable(r);
  assert.match(table, /basic\s+all\s+\d+\.\d \[\d+\.\d, \d+\.\d\]/);
  assert.match(table, /tfidf-text\s+all/);
  const dir = mkdtempSync(join(tmpdir(), 'analysis-'));
  try {
    const files = await writeResults(dir, r, runs);
    const csv = readFileSync(files.csv, 'utf8').split('\n');
    const header = csv[0].split(',');
    for (const col of ['variant', 'subset', 'seeds', 'kind', 'R@10', 'R@10 std', 'R@10 lo', 'R@10 hi']) assert.ok(header.includes(col), col);
    assert.ok(csv.some((l) => l.startsWith('colour-histogram-image,all,')));
    const comp = readFileSync(files.comparisons!, 'utf8').split('\n');
    assert.deepEqual(comp[0].split(','), ['a', 'b', 'input', 'subset', 'metric', 'nQueries', 'diff', 'lo', 'hi', 'p']);
    const json = JSON.parse(readFileSync(files.json, 'utf8'));
    assert.equal(json.claims.length, 5);
    assert.equal(json.baselines.length, 2);
    assert.ok(Array.isArray(json.variants[0].intervals.metrics['R@10']));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('seeds written into one folder in two runs get the statistics of all seeds together (per-query ranks kept in queries/)', async () => {
  const { runs, baselines } = fixture();
  const dir = mkdtempSync(join(tmpdir(), 'analysis-merge-'));
  const opts = { replicates: 400, permutations: 400 };
  const part = (seeds: number[]) => {
    const rs = runs.filter((x) => seeds.includes(x.seed));
    const names = [...new Set(rs.map((x) => x.name))];
    const r: AblationResults = { dataset: 'synthetic', backend: 'cpu', seed: seeds[0], seedList: seeds, pretrain: {}, variants: names.map((n) => aggregate(rs.filter((x) => x.name === n))), wallSeconds: 0 };
    return { r: analyseRun(r, rs, baselines, opts), rs };
  };
  try {
    const first = part([0]);
    await writeResults(dir, first.r, first.rs, { analyse: reanalyser(dir, first.rs, baselines, opts) });
    assert.ok(existsSync(join(dir, 'queries', 'basic-s0.json')));
    const second = part([1, 2]);
    const logs: string[] = [];
    const w = await writeResults(dir, second.r, second.rs, { analyse: reanalyser(dir, second.rs, baselines, { ...opts, log: (m) => logs.push(m) }), log: (m) => logs.push(m) });
    const together = analysed(runs, baselines);
    assert.deepEqual(w.results.variants.map((v) => v.intervals), together.variants.map((v) => v.intervals));
    assert.deepEqual(w.results.claims, together.claims);
    assert.deepEqual(w.results.comparisons, together.comparisons);
    // Without an analyse step a merge drops the statistics rather than keep ones of other seeds.
    const third = part([2]);
    const plain = await writeResults(dir, third.r, third.rs, { log: (m) => logs.push(m) });
    assert.equal(plain.results.claims, undefined);
    assert.ok(plain.results.variants.every((v) => v.intervals === undefined));
    assert.ok(logs.some((l) => l.startsWith('statistics left out of the merged results')));
    // A missing per-query file (a folder written before they were kept) also leaves them out.
    rmSync(join(dir, 'queries', 'micl-s0.json'));
    const fourth = part([1]);
    const lost = await writeResults(dir, fourth.r, fourth.rs, { analyse: reanalyser(dir, fourth.rs, baselines, { ...opts, log: (m) => logs.push(m) }) });
    assert.equal(lost.results.claims, undefined);
    assert.ok(logs.some((l) => l.includes('no per-query ranks kept for micl seed 0')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
