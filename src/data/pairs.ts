/**
 * Related pairs from behaviour logs (docs/method.md "Data and pairs"):
 *
 *     s(A→B) = Σ_u 1 / N_u      over users u who engaged with both A and B,
 *
 * N_u = the number of distinct notes u engaged with. Two notes co-occur for a user only when
 * the user engaged with both within a time window (default 7 days). Pairs whose score lies
 * outside configurable quantiles of the score distribution are dropped (abnormally high
 * scores come from bots and mega-popular notes, abnormally low ones are noise), and each note
 * keeps its top-k partners as positives.
 *
 * Everything here is deterministic: users are summed in id order, scores are rounded to 12
 * significant digits so that equal sums in a different order tie exactly, and ties in the
 * top-k are broken by partner id.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parse } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import type { Pair } from './schema';

/** One engagement: user `userId` engaged with note `noteId` at `time` (seconds since the epoch). */
export interface EngagementEvent {
  userId: string;
  noteId: string;
  time: number;
}

/** A related pair with its co-occurrence score s(a→b). */
export interface ScoredPair extends Pair {
  score: number;
}

export interface PairBuilderConfig {
  /** Two engagements of one user co-occur when at most this many days apart. Defaults to 7. */
  windowDays?: number;
  /** Partners kept per note (highest score first). Defaults to 10. */
  topK?: number;
  /** Pairs scoring below this quantile of all pair scores are dropped. Defaults to 0 (keep all). */
  qLow?: number;
  /** Pairs scoring above this quantile of all pair scores are dropped. Defaults to 0.99. */
  qHigh?: number;
  /**
   * When B is among A's top-k and A among B's, write both (A,B) and (B,A). Defaults to false:
   * the mirrored row is skipped, so one batch never holds a pair and its mirror.
   */
  keepMirrored?: boolean;
}

export interface PairBuildStats {
  events: number;
  users: number;
  notes: number;
  /** Unordered note pairs that co-occurred for at least one user. */
  candidatePairs: number;
  /** Score thresholds [low, high] from qLow / qHigh (inclusive). */
  thresholds: [number, number];
  droppedLow: number;
  droppedHigh: number;
  /** Rows written (directed pairs). */
  pairs: number;
}

export interface PairBuildResult {
  pairs: ScoredPair[];
  stats: PairBuildStats;
}

const DAY_SECONDS = 86400;

/** Applies defaults and checks ranges; errors name the field and the valid range. */
export function resolvePairBuilderConfig(cfg: PairBuilderConfig = {}): Required<PairBuilderConfig> {
  const out: Required<PairBuilderConfig> = {
    windowDays: cfg.windowDays ?? 7,
    topK: cfg.topK ?? 10,
    qLow: cfg.qLow ?? 0,
    qHigh: cfg.qHigh ?? 0.99,
    keepMirrored: cfg.keepMirrored ?? false,
  };
  if (!(out.windowDays > 0)) throw new Error(`pairs: windowDays must be > 0, got ${out.windowDays}`);
  if (!Number.isInteger(out.topK) || out.topK < 1) throw new Error(`pairs: topK must be an integer >= 1, got ${out.topK}`);
  if (!(out.qLow >= 0 && out.qLow <= 1)) throw new Error(`pairs: qLow must be in [0, 1], got ${out.qLow}`);
  if (!(out.qHigh >= 0 && out.qHigh <= 1)) throw new Error(`pairs: qHigh must be in [0, 1], got ${out.qHigh}`);
  if (out.qLow > out.qHigh) throw new Error(`pairs: qLow (${out.qLow}) must not exceed qHigh (${out.qHigh})`);
  return out;
}

/**
 * Parses a timestamp: a number is seconds since the epoch (fractions allowed); anything else
 * must be an ISO-8601 date(-time). Returns NaN when it is neither.
 */
export function parseTimestamp(raw: string): number {
  const s = raw.trim();
  if (s === '') return NaN;
  if (/^[+-]?\d+(\.\d+)?$/.test(s)) return Number(s);
  // Only ISO-8601 shapes; Date.parse alone would accept "March 7" and friends.
  if (!/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(s)) return NaN;
  const ms = Date.parse(s.replace(' ', 'T'));
  return Number.isFinite(ms) ? ms / 1000 : NaN;
}

const EVENT_COLUMNS = ['user_id', 'note_id', 'timestamp'] as const;

/**
 * Parses an events CSV with a header naming `user_id`, `note_id`, `timestamp` (any order,
 * extra columns ignored). Errors name the file, the line and what was expected.
 */
export function parseEventsCsv(text: string, file = 'events.csv'): EngagementEvent[] {
  let rows: { record: string[]; info: { lines: number } }[];
  try {
    rows = parse(text.replace(/^\uFEFF/, ''), {
      info: true,
      relax_column_count: true,
      skip_empty_lines: true,
    }) as unknown as { record: string[]; info: { lines: number } }[];
  } catch (e) {
    const err = e as Error & { lines?: number };
    throw new Error(`${file}:${err.lines ?? '?'}: not valid CSV: ${err.message}`);
  }
  if (rows.length === 0) throw new Error(`${file}: empty; expected a header line "user_id,note_id,timestamp"`);
  const header = rows[0].record.map((h) => h.trim().toLowerCase());
  const col: Record<(typeof EVENT_COLUMNS)[number], number> = { user_id: -1, note_id: -1, timestamp: -1 };
  for (const name of EVENT_COLUMNS) {
    col[name] = header.indexOf(name);
    if (col[name] < 0) {
      throw new Error(
        `${file}:${rows[0].info.lines}: header must name the columns user_id, note_id, timestamp; ` +
          `missing "${name}" in [${header.join(', ')}]`,
      );
    }
  }
  const width = header.length;
  const events: EngagementEvent[] = [];
  for (let r = 1; r < rows.length; r++) {
    const { record, info } = rows[r];
    const at = `${file}:${info.lines}`;
    if (record.length !== width) throw new Error(`${at}: expected ${width} columns like the header, got ${record.length}`);
    const userId = record[col.user_id].trim();
    const noteId = record[col.note_id].trim();
    const rawTime = record[col.timestamp];
    if (userId === '') throw new Error(`${at}: user_id is empty`);
    if (noteId === '') throw new Error(`${at}: note_id is empty`);
    const time = parseTimestamp(rawTime);
    if (!Number.isFinite(time)) {
      throw new Error(`${at}: timestamp "${rawTime}" is neither epoch seconds nor an ISO-8601 date (e.g. 2024-05-01T12:00:00Z)`);
    }
    events.push({ userId, noteId, time });
  }
  return events;
}

/** Reads and parses an events CSV file (see parseEventsCsv). */
export function readEventsCsv(path: string): EngagementEvent[] {
  return parseEventsCsv(readFileSync(path, 'utf8'), path);
}

/** Code-point order: deterministic and locale-independent. */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Linear-interpolation quantile (numpy's default) of an ascending array. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const pos = q * (n - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, n - 1);
  return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
}

const round12 = (x: number): number => Number(x.toPrecision(12));

/**
 * Co-occurrence scores of every unordered pair of notes (symmetric, so s(A→B) = s(B→A)).
 * Returns the note ids (sorted) and, per unordered pair of indices (i < j), its score.
 */
export function cooccurrenceScores(
  events: readonly EngagementEvent[],
  windowDays = 7,
): { noteIds: string[]; scores: Map<number, number>; users: number; key: (i: number, j: number) => number } {
  const noteIds = [...new Set(events.map((e) => e.noteId))].sort(compareIds);
  const index = new Map(noteIds.map((id, i) => [id, i]));
  const n = noteIds.length;
  const key = (i: number, j: number): number => (i < j ? i * n + j : j * n + i);

  const byUser = new Map<string, { note: number; time: number }[]>();
  for (const e of events) {
    let list = byUser.get(e.userId);
    if (!list) byUser.set(e.userId, (list = []));
    list.push({ note: index.get(e.noteId)!, time: e.time });
  }
  const window = windowDays * DAY_SECONDS;
  const scores = new Map<number, number>();
  for (const user of [...byUser.keys()].sort(compareIds)) {
    const list = byUser.get(user)!;
    list.sort((x, y) => x.time - y.time || x.note - y.note);
    const nU = new Set(list.map((x) => x.note)).size; // N_u: distinct notes, not events
    const seen = new Set<number>(); // each user adds 1/N_u to a pair once
    for (let i = 0; i < list.length; i++) {
      for (let j = i + 1; j < list.length && list[j].time - list[i].time <= window; j++) {
        if (list[i].note === list[j].note) continue;
        const k = key(list[i].note, list[j].note);
        if (seen.has(k)) continue;
        seen.add(k);
        scores.set(k, (scores.get(k) ?? 0) + 1 / nU);
      }
    }
  }
  for (const [k, s] of scores) scores.set(k, round12(s));
  return { noteIds, scores, users: byUser.size, key };
}

/**
 * Builds related pairs: co-occurrence scores → drop pairs outside the [qLow, qHigh] score
 * quantiles (bounds inclusive) → each note's top-k partners by score, ties broken by partner
 * id → rows (note, partner) with notes in id order and partners best first.
 */
export function buildPairs(events: readonly EngagementEvent[], config: PairBuilderConfig = {}): PairBuildResult {
  const cfg = resolvePairBuilderConfig(config);
  const { noteIds, scores, users } = cooccurrenceScores(events, cfg.windowDays);
  const n = noteIds.length;
  const all = Float64Array.from(scores.values()).sort();
  const lo = quantile(all, cfg.qLow);
  const hi = quantile(all, cfg.qHigh);

  const partners: { j: number; s: number }[][] = Array.from({ length: n }, () => []);
  let droppedLow = 0;
  let droppedHigh = 0;
  for (const [k, s] of scores) {
    if (s < lo) { droppedLow++; continue; }
    if (s > hi) { droppedHigh++; continue; }
    const i = Math.floor(k / n);
    const j = k % n;
    partners[i].push({ j, s });
    partners[j].push({ j: i, s });
  }
  const chosen: Set<number>[] = partners.map((list) => {
    // note ids are sorted, so comparing indices is comparing ids
    list.sort((x, y) => y.s - x.s || x.j - y.j);
    return new Set(list.slice(0, cfg.topK).map((x) => x.j));
  });

  const pairs: ScoredPair[] = [];
  for (let i = 0; i < n; i++) {
    const list = partners[i].filter((x) => chosen[i].has(x.j));
    for (const { j, s } of list) {
      // (j, i) was written already when j < i chose i too
      if (!cfg.keepMirrored && j < i && chosen[j].has(i)) continue;
      pairs.push({ a: noteIds[i], b: noteIds[j], score: s });
    }
  }
  return {
    pairs,
    stats: {
      events: events.length,
      users,
      notes: n,
      candidatePairs: scores.size,
      thresholds: [lo, hi],
      droppedLow,
      droppedHigh,
      pairs: pairs.length,
    },
  };
}

/** Pairs CSV in the reference layout: `note_id, related_note_id`, no header. */
export function pairsToCsv(pairs: readonly Pair[]): string {
  return stringify(pairs.map((p) => [p.a, p.b]));
}

export function writePairsCsv(path: string, pairs: readonly Pair[]): void {
  writeFileSync(path, pairsToCsv(pairs));
}
