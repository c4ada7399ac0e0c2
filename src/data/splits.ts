/**
 * Train / validation / test split by notes, and the evaluation subsets of docs/method.md
 * "Evaluation protocol" (short vs long text on the query side and on the target side).
 *
 * Splitting by notes, not by pairs, is what makes the test measure unseen notes: every note
 * belongs to exactly one split, a pair is kept only when both of its notes are in the same
 * split, and pairs that cross splits are dropped (and counted). So no test note ever appears
 * in a training pair. The reference layout has two notes files; validation notes are written
 * to `notes_train.csv` beside the training notes but appear in no training pair either.
 */
import { Rng } from '../backend/rng';
import type { Note, Pair, SplitName } from './schema';

export interface SplitConfig {
  /** Share of notes held out for test pairs. Defaults to 0.2. */
  testFraction?: number;
  /** Share of notes held out for validation pairs. Defaults to 0.1. */
  valFraction?: number;
  /** Seed of the note shuffle (and of the pair order within each split). Defaults to 0. */
  seed?: number;
  /** Shuffle pairs within each split (the recall protocol walks them in order). Defaults to true. */
  shufflePairs?: boolean;
  /**
   * Keeps notes of one group in one split (e.g. the skin-tone variants of one emoji), so no
   * near-duplicate of a test note is trained on. Groups are dealt in shuffled order to test,
   * then val, until each has its share of notes; the last group dealt may overshoot.
   * Defaults to every note its own group.
   */
  groupOf?: (noteId: string) => string;
}

export interface SplitResult {
  /** Note ids per split, in the input order. */
  notes: Record<SplitName, string[]>;
  pairs: Record<SplitName, Pair[]>;
  dropped: {
    /** Pairs whose two notes fell into different splits. */
    crossing: number;
    /** Pairs naming a note that is not in the note list. */
    unknownNote: number;
    /** Pairs of a note with itself, and repeats of a pair already kept (either direction). */
    duplicate: number;
  };
}

export function resolveSplitConfig(cfg: SplitConfig = {}): Required<SplitConfig> {
  const out: Required<SplitConfig> = {
    testFraction: cfg.testFraction ?? 0.2,
    valFraction: cfg.valFraction ?? 0.1,
    seed: cfg.seed ?? 0,
    shufflePairs: cfg.shufflePairs ?? true,
    groupOf: cfg.groupOf ?? ((id) => id),
  };
  for (const k of ['testFraction', 'valFraction'] as const) {
    if (!(out[k] >= 0 && out[k] < 1)) throw new Error(`split: ${k} must be in [0, 1), got ${out[k]}`);
  }
  if (out.testFraction + out.valFraction >= 1) {
    throw new Error(`split: testFraction + valFraction must be < 1, got ${out.testFraction} + ${out.valFraction}`);
  }
  return out;
}

/**
 * Assigns each note to train, val or test (exact counts without groups: round(n·testFraction)
 * test notes, round(n·valFraction) val notes, chosen by a seeded shuffle), then keeps each
 * pair in the split holding both its notes.
 */
export function splitByNotes(noteIds: readonly string[], pairs: readonly Pair[], config: SplitConfig = {}): SplitResult {
  const cfg = resolveSplitConfig(config);
  const rng = new Rng(cfg.seed);
  const groups = new Map<string, string[]>(); // in order of first appearance
  const listed = new Set<string>();
  for (const id of noteIds) {
    if (listed.has(id)) throw new Error(`split: note id "${id}" is listed twice`);
    listed.add(id);
    const g = cfg.groupOf(id);
    const members = groups.get(g);
    if (members) members.push(id);
    else groups.set(g, [id]);
  }
  const order = rng.fork('notes').shuffle([...groups.values()]);
  const nTest = Math.round(noteIds.length * cfg.testFraction);
  const nVal = Math.round(noteIds.length * cfg.valFraction);
  const splitOf = new Map<string, SplitName>();
  let inTest = 0;
  let inVal = 0;
  for (const members of order) {
    const s: SplitName = inTest < nTest ? 'test' : inVal < nVal ? 'val' : 'train';
    if (s === 'test') inTest += members.length;
    if (s === 'val') inVal += members.length;
    for (const id of members) splitOf.set(id, s);
  }

  const notes: Record<SplitName, string[]> = { train: [], val: [], test: [] };
  for (const id of noteIds) notes[splitOf.get(id)!].push(id);

  const out: Record<SplitName, Pair[]> = { train: [], val: [], test: [] };
  const dropped = { crossing: 0, unknownNote: 0, duplicate: 0 };
  const seen = new Set<string>();
  for (const p of pairs) {
    const sa = splitOf.get(p.a);
    const sb = splitOf.get(p.b);
    if (sa === undefined || sb === undefined) { dropped.unknownNote++; continue; }
    if (sa !== sb) { dropped.crossing++; continue; }
    const key = p.a < p.b ? `${p.a}\u0000${p.b}` : `${p.b}\u0000${p.a}`;
    if (p.a === p.b || seen.has(key)) { dropped.duplicate++; continue; }
    seen.add(key);
    out[sa].push(p);
  }
  if (cfg.shufflePairs) {
    for (const s of ['train', 'val', 'test'] as const) rng.fork(`pairs-${s}`).shuffle(out[s]);
  }
  return { notes, pairs: out, dropped };
}

// ---------------------------------------------------------------------------------------
// Evaluation subsets

/** A subset of test pairs, as a predicate on a kept (query, target) pair. */
export type PairPredicate = (pair: Pair) => boolean;

export const LENGTH_SUBSETS = ['short_query', 'long_query', 'short_target', 'long_target'] as const;
export type LengthSubset = (typeof LENGTH_SUBSETS)[number];

/** Text length of a note: code points of title + content (hashtags excluded). */
export function noteTextLength(note: Note): number {
  let n = 0;
  for (const _ of note.title) n++;
  for (const _ of note.content) n++;
  return n;
}

export interface SubsetConfig {
  /**
   * A note is short when its text length is ≤ this many characters. Defaults to the median
   * text length of the notes in the pairs given (so the two halves are about equal).
   */
  threshold?: number;
  /** Text length of a note. Defaults to noteTextLength (title + content, in code points). */
  lengthOf?: (note: Note) => number;
}

export interface EvaluationSubsets {
  /** The short/long threshold used (characters, inclusive on the short side). */
  threshold: number;
  /** Predicates by subset name: short_query, long_query, short_target, long_target, and one per pair label. */
  predicates: Record<string, PairPredicate>;
}

/**
 * Builds the evaluation subsets of a set of test pairs: short/long query (the pair's first
 * note) and short/long target (its second note), plus one subset per distinct `label`
 * (synth: visual | text | both). The recall protocol applies them to the pairs it keeps.
 */
export function evaluationSubsets(
  notes: ReadonlyMap<string, Note>,
  pairs: readonly Pair[],
  config: SubsetConfig = {},
): EvaluationSubsets {
  const lengthOf = config.lengthOf ?? noteTextLength;
  const lengthCache = new Map<string, number>();
  const len = (id: string): number => {
    let v = lengthCache.get(id);
    if (v === undefined) {
      const note = notes.get(id);
      if (!note) throw new Error(`subsets: pair names note "${id}", which is not among the notes`);
      lengthCache.set(id, (v = lengthOf(note)));
    }
    return v;
  };
  let threshold = config.threshold;
  if (threshold === undefined) {
    const ids = new Set<string>();
    for (const p of pairs) { ids.add(p.a); ids.add(p.b); }
    const lens = [...ids].map(len).sort((x, y) => x - y);
    threshold = lens.length ? lens[Math.floor((lens.length - 1) / 2)] : 0; // lower median
  }
  const t = threshold;
  const predicates: Record<string, PairPredicate> = {
    short_query: (p) => len(p.a) <= t,
    long_query: (p) => len(p.a) > t,
    short_target: (p) => len(p.b) <= t,
    long_target: (p) => len(p.b) > t,
  };
  const labels = [...new Set(pairs.map((p) => p.label).filter((l): l is string => !!l))].sort();
  for (const label of labels) {
    if (label in predicates) throw new Error(`subsets: pair label "${label}" clashes with a length subset name`);
    predicates[label] = (p) => p.label === label;
  }
  return { threshold: t, predicates };
}

/** Names of the subsets one pair belongs to (for tables and per-pair labels). */
export function pairSubsetNames(pair: Pair, subsets: EvaluationSubsets): string[] {
  return Object.entries(subsets.predicates).filter(([, f]) => f(pair)).map(([name]) => name);
}

/** How many pairs fall into each subset. */
export function subsetCounts(pairs: readonly Pair[], subsets: EvaluationSubsets): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, f] of Object.entries(subsets.predicates)) out[name] = pairs.filter(f).length;
  return out;
}
