/**
 * A dataset just built by a generator (`synth`, `openmoji`), in memory, and the summary
 * `notellm2 data synth|openmoji` prints: sizes, subsets, text lengths, the baselines' recall
 * (filled in by the CLI, which may run the recall protocol) and build times.
 */
import { join } from 'node:path';
import type { Note, Pair } from './schema';
import { evaluationSubsets, noteTextLength, subsetCounts, type EvaluationSubsets, type SplitResult } from './splits';
import type { WriteSummary } from './write';

export interface TextLengthStats {
  /** Title + content length in code points. */
  mean: number;
  median: number;
  p10: number;
  p90: number;
  /** Share of notes with no body text. */
  emptyBody: number;
}

export function textLengthStats(notes: readonly Note[], lengthOf: (n: Note) => number): TextLengthStats {
  const lens = notes.map(lengthOf).sort((a, b) => a - b);
  const at = (q: number) => (lens.length ? lens[Math.min(lens.length - 1, Math.floor(q * lens.length))] : NaN);
  return {
    mean: lens.reduce((s, x) => s + x, 0) / Math.max(1, lens.length),
    median: at(0.5),
    p10: at(0.1),
    p90: at(0.9),
    emptyBody: notes.filter((n) => n.content === '').length / Math.max(1, notes.length),
  };
}

/** Recall of one embedding under the reference protocol, overall and per subset. */
export interface BaselineRecall {
  /** Kept pairs (= queries). */
  queries: number;
  /** Candidate pool size (test notes minus queries). */
  pool: number;
  /** "R@K" → share of queries whose partner ranks below K. */
  recall: Record<string, number>;
  subsets: Record<string, { queries: number; recall: Record<string, number> }>;
}

export interface DatasetSummary {
  name: string;
  dir: string;
  notes: { train: number; val: number; test: number };
  pairs: { train: number; val: number; test: number };
  /** Pairs dropped by the split (crossing splits, unknown notes, duplicates). */
  dropped: Record<string, number>;
  /** Short/long threshold (characters) and test pairs per subset. */
  subsetThreshold: number;
  subsetPairs: Record<string, number>;
  text: TextLengthStats;
  /** Baseline name → recall under the reference protocol, overall and per subset. */
  baselines: Record<string, BaselineRecall>;
  seconds: { build: number; images: number; baselines: number };
  /** Anything else worth printing (e.g. pair-builder statistics). */
  extra: Record<string, unknown>;
}

/**
 * A built dataset, in memory: what the summary and the baselines need without re-reading
 * the folder.
 */
export interface BuiltDataset {
  summary: DatasetSummary;
  notes: ReadonlyMap<string, Note>;
  testNoteIds: readonly string[];
  testPairs: readonly Pair[];
  subsets: EvaluationSubsets;
  /** Path of a note's image file in the written folder. */
  imageFile: (note: Note) => string;
}

export interface GeneratedSummaryFields {
  name: string;
  /** performance.now() when the build began. */
  t0: number;
  /** Short/long text threshold of the subsets (characters). Defaults to the median. */
  lengthThreshold?: number;
  dropped: Record<string, number>;
  extra: Record<string, unknown>;
}

/**
 * A generated dataset (synth, openmoji) just written to its folder, as a BuiltDataset: the
 * summary the CLI prints (baselines left empty: scoring them is the recall protocol's job,
 * see cli/data.ts) and the test notes, pairs and subsets.
 */
export function generatedDataset<D extends { notes: Note[] }>(data: D, split: SplitResult, written: WriteSummary, f: GeneratedSummaryFields): BuiltDataset & { data: D } {
  const buildSeconds = (performance.now() - f.t0) / 1000;
  const byId = new Map(data.notes.map((n) => [n.id, n]));
  const subsets = evaluationSubsets(byId, split.pairs.test, { threshold: f.lengthThreshold });
  const summary: DatasetSummary = {
    name: f.name,
    dir: written.dir,
    notes: { train: split.notes.train.length, val: split.notes.val.length, test: split.notes.test.length },
    pairs: { train: split.pairs.train.length, val: split.pairs.val.length, test: split.pairs.test.length },
    dropped: f.dropped,
    subsetThreshold: subsets.threshold,
    subsetPairs: subsetCounts(split.pairs.test, subsets),
    text: textLengthStats(data.notes, noteTextLength),
    baselines: {},
    seconds: { build: buildSeconds, images: written.imageSeconds, baselines: 0 },
    extra: f.extra,
  };
  return {
    data,
    summary,
    notes: byId,
    testNoteIds: split.notes.test,
    testPairs: split.pairs.test,
    subsets,
    imageFile: (n) => join(written.dir, 'images_test', `${n.imageId}.png`),
  };
}

const pct = (x: number) => (Number.isFinite(x) ? (100 * x).toFixed(1).padStart(5) : '    -');

/** Human-readable summary: sizes, subsets, text lengths, baseline recall table, times. */
export function formatDatasetSummary(s: DatasetSummary): string {
  const out: string[] = [];
  out.push(`dataset ${s.name} → ${s.dir}`);
  out.push(`notes:  train ${s.notes.train}, val ${s.notes.val}, test ${s.notes.test} (val notes are written to notes_train.csv)`);
  out.push(`pairs:  train ${s.pairs.train}, val ${s.pairs.val}, test ${s.pairs.test}; dropped ${Object.entries(s.dropped).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  for (const [k, v] of Object.entries(s.extra)) out.push(`${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  out.push(
    `text:   title+content chars mean ${s.text.mean.toFixed(1)}, median ${s.text.median}, p10 ${s.text.p10}, p90 ${s.text.p90}; ` +
      `empty body ${(100 * s.text.emptyBody).toFixed(1)}%`,
  );
  out.push(`test subsets (short ≤ ${s.subsetThreshold} chars): ${Object.entries(s.subsetPairs).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  for (const [name, r] of Object.entries(s.baselines)) {
    const ks = Object.keys(r.recall);
    out.push(`baseline ${name}: ${r.queries} queries, pool ${r.pool}; recall % (chance R@K ≈ K/pool)`);
    out.push(`  ${'subset'.padEnd(14)} ${'n'.padStart(5)} ${ks.map((k) => k.padStart(6)).join(' ')}`);
    const row = (label: string, n: number, rec: Record<string, number>) =>
      out.push(`  ${label.padEnd(14)} ${String(n).padStart(5)} ${ks.map((k) => ' ' + pct(rec[k])).join(' ')}`);
    row('all', r.queries, r.recall);
    for (const [sub, v] of Object.entries(r.subsets)) row(sub, v.queries, v.recall);
  }
  out.push(`time:   build ${s.seconds.build.toFixed(1)} s (images ${s.seconds.images.toFixed(1)} s)` + (Object.keys(s.baselines).length ? `, baselines ${s.seconds.baselines.toFixed(1)} s` : ''));
  return out.join('\n');
}
