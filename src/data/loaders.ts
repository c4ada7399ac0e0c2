/**
 * Loading a dataset folder in the reference layout (docs/method.md "Data and pairs"):
 *
 *     notes_train.csv   notes_test.csv        note_id, title, content, image_id, category (no header)
 *     (or notes_train.jsonl / notes_test.jsonl: {note_id, title, content, image_id, category})
 *     note_pairs_train.csv  note_pairs_val.csv  note_pairs_test.csv    note_id, related_note_id
 *     note_pairs_test_labels.csv (optional)                            note_id, related_note_id, label
 *     images/        train notes' images, named by image_id (.jpg .jpeg .png .webp .svg .svgz or bare)
 *     images_test/   test notes' images
 *
 * Every problem is collected in one pass (see problems.ts for the kinds). Strict by default:
 * any problem throws a DatasetError listing all of them; `skipBad` leaves the bad rows out.
 */
import { readdir, realpath, stat } from 'node:fs/promises';
import { basename, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { mapPool } from '../backend/pool';
import { readCsv, readJsonl, type CsvRow } from './csv';
import { checkImages, DEFAULT_CHECK_SIZE, probeImage } from './images';
import type { Dataset, Note, Pair, SplitName } from './schema';
import {
  countByKind,
  DatasetError,
  IMAGE_CHECKS,
  sortProblems,
  type ImageCheck,
  type Problem,
  type ValidationReport,
} from './problems';

export const NOTE_COLUMNS = ['note_id', 'title', 'content', 'image_id', 'category'] as const;
export const PAIR_COLUMNS = ['note_id', 'related_note_id'] as const;
export const LABEL_COLUMNS = ['note_id', 'related_note_id', 'label'] as const;
/** Extensions tried after the bare image_id, in this order. */
export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp', '.svg', '.svgz'] as const;
export type NoteSplit = 'train' | 'test';
/** Image folder of each notes split; a note's image is looked up in its own folder first, then the other. */
export const IMAGE_DIRS: Record<NoteSplit, string> = { train: 'images', test: 'images_test' };
export const LABELS_FILE = 'note_pairs_test_labels.csv';

export interface LoadOptions {
  /** Leave bad rows out and return their counts instead of throwing. Defaults to false. */
  skipBad?: boolean;
  /** How deeply images are checked: 'decode' | 'header' | 'exists'. Defaults to 'header'. */
  images?: ImageCheck;
  /**
   * Side the 'decode' check decodes at: the vision tower's input side, so what the check accepts
   * is exactly what training decodes. Defaults to DEFAULT_CHECK_SIZE.
   */
  imageSize?: number | readonly number[];
  /** Folder remembering 'decode' outcomes per image file (e.g. CACHE_DIR); none: decode every time. */
  cacheDir?: string;
  /** Image checks in flight at once. Defaults to 4. */
  concurrency?: number;
}

export interface LoadResult {
  dataset: Dataset;
  report: ValidationReport;
}

// ---------------------------------------------------------------------------------------------
// Note fields

/** `#tag[话题]#` (any bracketed kind, e.g. [地点]) — the reference data's hashtag markup. */
const BRACKET_TAG = /#([^#[\]\n]+?)\[[^\]\n]*\]#/gu;
/** Plain `#tag`: `#` not preceded by a letter/digit/&/# (so `C#`, `&#39;`, `##` are not tags). */
const PLAIN_TAG = /(?<![\p{L}\p{N}_&#])#([\p{L}\p{N}\p{M}_][\p{L}\p{N}\p{M}_-]*)/gu;
// Stands in for a removed tag until the spaces around it are settled (a NUL never occurs in note text).
const MARK = '\u0000';

/**
 * Splits hashtags out of a note's body: returns the body without the tag markup (tags removed,
 * the spaces around them collapsed) and the tags in order of appearance, deduplicated.
 */
export function parseTopics(text: string): { content: string; topics: string[] } {
  const topics: string[] = [];
  const add = (t: string) => {
    const tag = t.trim();
    if (tag !== '' && !topics.includes(tag)) topics.push(tag);
  };
  // Bracketed tags first: their names may hold spaces, which the plain pattern would cut.
  let body = text.replace(BRACKET_TAG, (_m, tag: string) => (add(tag), MARK));
  body = body.replace(PLAIN_TAG, (_m, tag: string) => (add(tag), MARK));
  const content = body
    // A removed tag leaves one space only where it stood between two spaces ("a #t b" → "a b",
    // "(#t)" → "()", "end #t\n" → "end\n").
    .replace(/([ \t]*)\u0000(?:[ \t]*\u0000)*([ \t]*)/g, (_m, before: string, after: string) =>
      before !== '' && after !== '' ? ' ' : '',
    )
    .trim();
  return { content, topics };
}

/** `level1@level2@` → ['level1', 'level2'] (empty levels dropped, each trimmed). */
export function parseCategory(category: string): string[] {
  return category
    .split('@')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** Builds a Note from raw fields; `extraTopics` (JSONL `topics`) are appended after the hashtags. */
export function makeNote(raw: {
  id: string;
  title: string;
  content: string;
  imageId: string;
  category: string | string[];
  extraTopics?: string[];
}): Note {
  const { content, topics } = parseTopics(raw.content);
  for (const t of raw.extraTopics ?? []) if (t.trim() !== '' && !topics.includes(t.trim())) topics.push(t.trim());
  const category = Array.isArray(raw.category)
    ? raw.category.map((s) => s.trim()).filter((s) => s !== '')
    : parseCategory(raw.category);
  return { id: raw.id, title: raw.title.trim(), content, topics, imageId: raw.imageId.trim(), category };
}

/** True when a note carries no text at all: no title, no content, no topics. */
export function isEmptyNote(n: Note): boolean {
  return n.title === '' && n.content === '' && n.topics.length === 0;
}

// ---------------------------------------------------------------------------------------------
// Files

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

function isHeader(fields: string[], columns: readonly string[]): boolean {
  return fields.length === columns.length && fields.every((f, i) => f.trim().toLowerCase() === columns[i]);
}

function columnCount(file: string, row: CsvRow, columns: readonly string[]): Problem | null {
  if (row.fields.length === columns.length) return null;
  return {
    kind: 'column-count',
    file,
    line: row.line,
    message: `expected ${columns.length} columns (${columns.join(', ')}), got ${row.fields.length}`,
  };
}

/** Control characters in an id: none at all (C0, DEL, C1). */
const ID_CONTROL = /[\u0000-\u001f\u007f-\u009f]/u;
/** Control characters in text: C0 and DEL, except tab and line breaks. */
const TEXT_CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/u;

/** 'U+0000 at character 3' for the first control character of `value`. */
function controlAt(value: string, re: RegExp): string | null {
  const m = re.exec(value);
  return m ? `U+${m[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')} at character ${m.index + 1}` : null;
}

/**
 * The first control character among a note's raw fields, as a bad-field message, or null.
 * A NUL in an id makes it a different id from what every tool prints, so pairs naming it
 * would only fail later as unknown notes.
 */
function controlProblem(fields: Record<string, string | string[]>, ids: readonly string[]): string | null {
  for (const [name, raw] of Object.entries(fields)) {
    const isId = ids.includes(name);
    for (const value of Array.isArray(raw) ? raw : [raw]) {
      const at = controlAt(value, isId ? ID_CONTROL : TEXT_CONTROL);
      if (at) return `${name} holds a control character (${at}); expected ${isId ? 'printable characters only' : 'text without control characters (tabs and line breaks are fine)'}`;
    }
  }
  return null;
}

/** A notes row before checks: where it came from and the note it makes. */
interface NoteRow {
  note: Note;
  split: NoteSplit;
  file: string;
  line: number;
}

/** Reads notes_<split>.csv and/or notes_<split>.jsonl (both are read when both exist). */
async function readNotes(dir: string, split: NoteSplit, problems: Problem[]): Promise<NoteRow[]> {
  const csvFile = `notes_${split}.csv`;
  const jsonlFile = `notes_${split}.jsonl`;
  const hasCsv = await exists(join(dir, csvFile));
  const hasJsonl = await exists(join(dir, jsonlFile));
  if (!hasCsv && !hasJsonl) {
    problems.push({
      kind: 'missing-file',
      file: csvFile,
      line: 0,
      message: `no ${split} notes: expected ${csvFile} (${NOTE_COLUMNS.join(', ')}; no header) or ${jsonlFile}`,
    });
    return [];
  }
  const out: NoteRow[] = [];
  if (hasCsv) {
    const read = await readCsv(join(dir, csvFile), csvFile);
    problems.push(...read.problems);
    read.rows.forEach((row, i) => {
      if (i === 0 && isHeader(row.fields, NOTE_COLUMNS)) return;
      const bad = columnCount(csvFile, row, NOTE_COLUMNS);
      if (bad) return void problems.push(bad);
      const [id, title, content, imageId, category] = row.fields;
      const control = controlProblem({ note_id: id, title, content, image_id: imageId, category }, ['note_id', 'image_id', 'category']);
      if (control) return void problems.push({ kind: 'bad-field', file: csvFile, line: row.line, message: control });
      out.push({ note: makeNote({ id: id.trim(), title, content, imageId, category }), split, file: csvFile, line: row.line });
    });
  }
  if (hasJsonl) {
    const read = await readJsonl(join(dir, jsonlFile), jsonlFile);
    problems.push(...read.problems);
    for (const row of read.rows) {
      const note = jsonNote(row.value, jsonlFile, row.line, problems);
      if (note) out.push({ note, split, file: jsonlFile, line: row.line });
    }
  }
  return out;
}

/** A JSONL object → Note, or a bad-field problem naming the field and the type expected. */
function jsonNote(v: unknown, file: string, line: number, problems: Problem[]): Note | null {
  const bad = (message: string) => (problems.push({ kind: 'bad-field', file, line, message }), null);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    return bad(`expected a JSON object {${NOTE_COLUMNS.join(', ')}}, got ${Array.isArray(v) ? 'an array' : typeof v}`);
  }
  const o = v as Record<string, unknown>;
  const id = o.note_id;
  if (typeof id !== 'string' && typeof id !== 'number') return bad(`note_id: expected a string or number, got ${typeName(id)}`);
  // JSON numbers beyond 2^53 are rounded when parsed: 12345678901234567891 would silently
  // become the id "12345678901234567000".
  if (typeof id === 'number' && !Number.isSafeInteger(id)) {
    return bad(`note_id: ${id} is not an integer JSON can hold exactly; expected an integer within ±${Number.MAX_SAFE_INTEGER}, or the id as a string`);
  }
  const str = (k: string): string | null => {
    const x = o[k];
    if (x === undefined || x === null) return '';
    return typeof x === 'string' ? x : null;
  };
  for (const k of ['title', 'content', 'image_id']) {
    if (str(k) === null) return bad(`${k}: expected a string, got ${typeName(o[k])}`);
  }
  const cat = o.category;
  const isStrArray = (x: unknown): x is string[] => Array.isArray(x) && x.every((s) => typeof s === 'string');
  if (cat !== undefined && cat !== null && typeof cat !== 'string' && !isStrArray(cat)) {
    return bad(`category: expected a string 'level1@level2@' or an array of strings, got ${typeName(cat)}`);
  }
  if (o.topics !== undefined && !isStrArray(o.topics)) return bad(`topics: expected an array of strings, got ${typeName(o.topics)}`);
  const control = controlProblem(
    { note_id: String(id), title: str('title')!, content: str('content')!, image_id: str('image_id')!, category: (cat as string | string[] | undefined | null) ?? '', topics: (o.topics as string[] | undefined) ?? [] },
    ['note_id', 'image_id', 'category', 'topics'],
  );
  if (control) return bad(control);
  return makeNote({
    id: String(id).trim(),
    title: str('title')!,
    content: str('content')!,
    imageId: str('image_id')!,
    category: (cat as string | string[] | undefined | null) ?? '',
    extraTopics: o.topics as string[] | undefined,
  });
}

function typeName(x: unknown): string {
  return x === null ? 'null' : Array.isArray(x) ? 'an array' : typeof x;
}

interface PairRow {
  pair: Pair;
  file: string;
  line: number;
}

async function readPairs(dir: string, split: SplitName, problems: Problem[]): Promise<PairRow[]> {
  const file = `note_pairs_${split}.csv`;
  if (!(await exists(join(dir, file)))) {
    problems.push({ kind: 'missing-file', file, line: 0, message: `no ${split} pairs: expected ${file} (${PAIR_COLUMNS.join(', ')}; no header)` });
    return [];
  }
  const read = await readCsv(join(dir, file), file);
  problems.push(...read.problems);
  const out: PairRow[] = [];
  read.rows.forEach((row, i) => {
    if (i === 0 && isHeader(row.fields, PAIR_COLUMNS)) return;
    const bad = columnCount(file, row, PAIR_COLUMNS);
    if (bad) return void problems.push(bad);
    const pair = pairFields(row, file, problems);
    if (pair) out.push({ pair, file, line: row.line });
  });
  return out;
}

function pairFields(row: CsvRow, file: string, problems: Problem[]): Pair | null {
  const a = row.fields[0].trim();
  const b = row.fields[1].trim();
  const control = controlProblem({ note_id: a, related_note_id: b }, ['note_id', 'related_note_id']);
  if (control) {
    problems.push({ kind: 'bad-field', file, line: row.line, message: control });
    return null;
  }
  if (a === '' || b === '') {
    problems.push({ kind: 'bad-field', file, line: row.line, message: `empty ${a === '' ? 'note_id' : 'related_note_id'}; expected a note id` });
    return null;
  }
  if (a === b) {
    problems.push({ kind: 'bad-field', file, line: row.line, message: `note '${a}' is paired with itself; expected two different notes` });
    return null;
  }
  return { a, b };
}

// ---------------------------------------------------------------------------------------------
// Images

/** True when `p` lies strictly inside folder `dir` (both absolute). */
function inside(dir: string, p: string): boolean {
  const rel = relative(dir, p);
  return rel !== '' && !rel.startsWith('..' + sep) && rel !== '..' && !isAbsolute(rel);
}

type Resolved = { path: string } | { kind: 'missing-image' | 'image-escape'; message: string };

/**
 * Finds the file of `imageId`: in each folder of `folders` (the note's own image folder
 * first), the bare name then each of IMAGE_EXTENSIONS. The path must stay inside the dataset
 * folder both as written (`../`, absolute paths) and after following symlinks (realpath).
 */
async function resolveImage(
  dir: string,
  realDir: string,
  folders: string[],
  imageId: string,
  listings: Map<string, Set<string> | null>,
): Promise<Resolved> {
  const shown = JSON.stringify(imageId);
  if (imageId === '') return { kind: 'missing-image', message: `image_id is empty; expected the name of a file in ${folders[0]}/` };
  if (isAbsolute(imageId)) {
    return { kind: 'image-escape', message: `image_id ${shown} is an absolute path; expected a file name inside ${folders[0]}/` };
  }
  for (const folder of folders) {
    const base = resolve(dir, folder, imageId);
    if (!inside(dir, base)) {
      return { kind: 'image-escape', message: `image_id ${shown} resolves to ${base}, outside the dataset folder; expected a file name inside ${folder}/` };
    }
    const simple = !/[\\/]/.test(imageId);
    for (const ext of ['', ...IMAGE_EXTENSIONS]) {
      const candidate = base + ext;
      const rel = relative(dir, candidate);
      // A plain file name is looked up in the folder's listing (one readdir per folder);
      // names with sub-folders fall back to a stat.
      const listing = listings.get(folder);
      if (simple ? !listing?.has(imageId + ext) : !(await exists(candidate))) continue;
      let real: string;
      try {
        real = await realpath(candidate);
      } catch {
        continue; // a dangling symlink: as good as absent
      }
      if (!inside(realDir, real)) {
        return { kind: 'image-escape', message: `${rel} is a link to ${real}, outside the dataset folder; expected images inside it` };
      }
      if (!(await stat(real)).isFile()) continue;
      return { path: candidate };
    }
  }
  return {
    kind: 'missing-image',
    message: `no image file for image_id ${shown}; expected ${shown} bare or with ${IMAGE_EXTENSIONS.join(' ')} in ${folders.map((f) => f + '/').join(' or ')}`,
  };
}

async function listFolder(path: string): Promise<Set<string> | null> {
  try {
    return new Set(await readdir(path));
  } catch {
    return null;
  }
}

/** The 'decode' check at every requested size: a file fails when it fails at any of them. */
async function decodeCheck(dir: string, paths: string[], opts: LoadOptions, concurrency: number): Promise<Map<string, string | null>> {
  const sizes = opts.imageSize === undefined ? [DEFAULT_CHECK_SIZE] : typeof opts.imageSize === 'number' ? [opts.imageSize] : [...new Set(opts.imageSize)];
  const out = new Map<string, string | null>(paths.map((p) => [p, null]));
  for (const size of sizes) {
    for (const [p, err] of await checkImages(dir, paths, size, { cacheDir: opts.cacheDir, concurrency })) {
      if (err && !out.get(p)) out.set(p, sizes.length > 1 ? `at ${size} px: ${err}` : err);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The dataset

/**
 * Loads and validates a dataset folder in the reference layout. Strict by default: throws a
 * DatasetError listing every problem (file:line: kind: message). With `skipBad`, bad rows
 * are left out (a bad note also drops its pairs, counted in `report.droppedPairs`) and the
 * report counts them by kind. A missing folder is always an error.
 */
export async function loadDataset(dirIn: string, opts: LoadOptions = {}): Promise<LoadResult> {
  const skipBad = opts.skipBad ?? false;
  const imageCheck = opts.images ?? 'header';
  if (!IMAGE_CHECKS.includes(imageCheck)) {
    throw new Error(`loadDataset: images must be one of ${IMAGE_CHECKS.join(', ')}, got '${String(imageCheck)}'`);
  }
  const dir = resolve(dirIn);
  let realDir: string;
  try {
    realDir = await realpath(dir);
    if (!(await stat(realDir)).isDirectory()) throw new Error('not a folder');
  } catch {
    throw new Error(`loadDataset: ${dir} is not a dataset folder (expected a folder holding notes_train.csv, note_pairs_train.csv, …)`);
  }

  const problems: Problem[] = [];
  // Rows with any problem are left out; a Set of `file:line` keys marks them.
  const badRow = new Set<string>();
  const flag = (p: Problem) => {
    problems.push(p);
    badRow.add(`${p.file}:${p.line}`);
  };

  // Notes: ids must be non-empty and unique across both splits; the first occurrence wins.
  const noteRows = [...(await readNotes(dir, 'train', problems)), ...(await readNotes(dir, 'test', problems))];
  const firstSeen = new Map<string, NoteRow>();
  const unique: NoteRow[] = [];
  for (const r of noteRows) {
    if (r.note.id === '') {
      flag({ kind: 'bad-field', file: r.file, line: r.line, message: 'empty note_id; expected a non-empty id' });
      continue;
    }
    const prev = firstSeen.get(r.note.id);
    if (prev) {
      flag({ kind: 'duplicate-id', file: r.file, line: r.line, message: `note_id '${r.note.id}' already used at ${prev.file}:${prev.line}; expected unique note ids` });
      continue;
    }
    firstSeen.set(r.note.id, r);
    unique.push(r);
    if (isEmptyNote(r.note)) {
      flag({ kind: 'empty-note', file: r.file, line: r.line, message: `note '${r.note.id}' has no title, no content and no topics; expected some text` });
    }
  }

  // Images of every note with a usable id.
  const listings = new Map<string, Set<string> | null>();
  for (const folder of Object.values(IMAGE_DIRS)) listings.set(folder, await listFolder(join(dir, folder)));
  const imagePaths = new Map<string, string>();
  const concurrency = opts.concurrency ?? 4;
  const resolved = await mapPool(unique, concurrency, async (r) => {
    const own = IMAGE_DIRS[r.split];
    const other = IMAGE_DIRS[r.split === 'train' ? 'test' : 'train'];
    const res = await resolveImage(dir, realDir, [own, other], r.note.imageId, listings);
    if ('kind' in res) return void flag({ kind: res.kind, file: r.file, line: r.line, message: res.message });
    return { row: r, path: res.path };
  });
  const found = resolved.filter((f): f is { row: NoteRow; path: string } => f !== undefined);
  // 'decode' runs the pipeline's own decoder at the pipeline's size (one outcome per file,
  // remembered in cacheDir); 'header' reads headers only.
  const failures =
    imageCheck === 'decode'
      ? await decodeCheck(dir, [...new Set(found.map((f) => f.path))], opts, concurrency)
      : imageCheck === 'header'
        ? new Map(await mapPool([...new Set(found.map((f) => f.path))], concurrency, async (p) => [p, await probeImage(p, 'header')] as const))
        : new Map<string, string | null>();
  for (const { row: r, path } of found) {
    const err = failures.get(path);
    if (err) {
      flag({
        kind: 'undecodable-image',
        file: r.file,
        line: r.line,
        message: `${relative(dir, path)} cannot be decoded (${err}); expected a ${IMAGE_EXTENSIONS.join(' ')} image`,
      });
    } else imagePaths.set(r.note.id, path);
  }

  const kept = unique.filter((r) => !badRow.has(`${r.file}:${r.line}`));
  const notes = new Map<string, Note>(kept.map((r) => [r.note.id, r.note]));
  for (const id of [...imagePaths.keys()]) if (!notes.has(id)) imagePaths.delete(id);
  const noteIds = {
    train: kept.filter((r) => r.split === 'train').map((r) => r.note.id),
    test: kept.filter((r) => r.split === 'test').map((r) => r.note.id),
  };

  // Pairs: both notes must exist; pairs of a left-out note are dropped (counted apart).
  const pairs: Record<SplitName, Pair[]> = { train: [], val: [], test: [] };
  let droppedPairs = 0;
  const droppedIn: Record<SplitName, number> = { train: 0, val: 0, test: 0 };
  for (const split of ['train', 'val', 'test'] as const) {
    for (const r of await readPairs(dir, split, problems)) {
      const unknown = [r.pair.a, r.pair.b].filter((id) => !firstSeen.has(id));
      if (unknown.length > 0) {
        flag({
          kind: 'unknown-note',
          file: r.file,
          line: r.line,
          message: `${unknown.map((id) => `'${id}'`).join(' and ')} ${unknown.length > 1 ? 'are' : 'is'} in no notes file; expected ids from notes_train/notes_test`,
        });
      } else if (!notes.has(r.pair.a) || !notes.has(r.pair.b)) {
        droppedPairs++;
        droppedIn[split]++;
      } else {
        pairs[split].push(r.pair);
      }
    }
  }

  // A split with no usable pair cannot be trained, validated or evaluated on. (A missing file
  // is already reported as such.)
  for (const split of ['train', 'val', 'test'] as const) {
    const file = `note_pairs_${split}.csv`;
    if (pairs[split].length === 0 && (await exists(join(dir, file)))) {
      problems.push({
        kind: 'empty-split',
        file,
        line: 0,
        message: `no usable ${split} pair${droppedIn[split] ? ` (its ${droppedIn[split]} pair(s) name notes left out for their own problems)` : ''}; expected at least one pair of two notes of the dataset`,
      });
    }
  }

  // Optional labels of the test pairs.
  let labelledPairs = 0;
  if (await exists(join(dir, LABELS_FILE))) {
    const read = await readCsv(join(dir, LABELS_FILE), LABELS_FILE);
    problems.push(...read.problems);
    const byPair = new Map<string, Pair[]>();
    for (const p of pairs.test) {
      const key = `${p.a}\t${p.b}`;
      byPair.set(key, [...(byPair.get(key) ?? []), p]);
    }
    read.rows.forEach((row, i) => {
      if (i === 0 && isHeader(row.fields, LABEL_COLUMNS)) return;
      const bad = columnCount(LABELS_FILE, row, LABEL_COLUMNS);
      if (bad) return void problems.push(bad);
      const pair = pairFields(row, LABELS_FILE, problems);
      if (!pair) return;
      const targets = byPair.get(`${pair.a}\t${pair.b}`);
      if (!targets) {
        // A label for a pair dropped with a left-out note is not a fault of this row.
        if (firstSeen.has(pair.a) && firstSeen.has(pair.b) && (!notes.has(pair.a) || !notes.has(pair.b))) return;
        problems.push({
          kind: 'unknown-pair',
          file: LABELS_FILE,
          line: row.line,
          message: `pair '${pair.a}', '${pair.b}' is not in note_pairs_test.csv; expected labels for test pairs only`,
        });
        return;
      }
      for (const t of targets) {
        if (t.label === undefined) labelledPairs++;
        t.label = row.fields[2].trim();
      }
    });
  }

  sortProblems(problems);
  const report: ValidationReport = {
    dir,
    notes: { train: noteIds.train.length, test: noteIds.test.length },
    pairs: { train: pairs.train.length, val: pairs.val.length, test: pairs.test.length },
    labelledPairs,
    images: { found: imagePaths.size, check: imageCheck },
    badRows: countByKind(problems),
    droppedPairs,
    problems,
    ok: problems.length === 0,
  };
  if (!report.ok && !skipBad) throw new DatasetError(report);

  const dataset: Dataset = {
    name: basename(dir),
    dir,
    notes,
    noteIds,
    pairs,
    imagePath(noteId: string): string {
      const p = imagePaths.get(noteId);
      if (p === undefined) {
        throw new Error(`dataset ${basename(dir)}: no image for note '${noteId}' (${notes.has(noteId) ? 'its image was left out' : 'no such note'})`);
      }
      return p;
    },
  };
  return { dataset, report };
}
