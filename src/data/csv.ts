/**
 * Reading the dataset's text tables (CSV through csv-parse, and JSONL) with the line numbers
 * the validation report needs. Problems found here — invalid UTF-8, unparseable CSV, lines that
 * are not JSON — are returned, never thrown, so one pass reports every fault of a file.
 */
import { readFile } from 'node:fs/promises';
import { parse } from 'csv-parse/sync';
import type { Problem } from './problems';

/** One CSV record with the 1-based line it starts on. */
export interface CsvRow {
  fields: string[];
  line: number;
}

/** One non-blank JSONL line, parsed. */
export interface JsonlRow {
  value: unknown;
  line: number;
}

export interface TableRead<R> {
  rows: R[];
  problems: Problem[];
}

const LF = 0x0a;

/**
 * 1-based numbers of the lines holding bytes that are not valid UTF-8, each with the byte
 * offset of the first bad byte within its line. LF (0x0A) never occurs inside a multi-byte
 * UTF-8 sequence, so splitting the bytes on it is safe.
 */
export function findInvalidUtf8Lines(buf: Uint8Array): { line: number; offset: number }[] {
  const fatal = new TextDecoder('utf-8', { fatal: true });
  try {
    fatal.decode(buf);
    return [];
  } catch {
    // Fall through to the line-by-line scan (only for files that do have a bad byte).
  }
  const bad: { line: number; offset: number }[] = [];
  let start = 0;
  let line = 1;
  for (let i = 0; i <= buf.length; i++) {
    if (i === buf.length || buf[i] === LF) {
      const bytes = buf.subarray(start, i);
      try {
        fatal.decode(bytes);
      } catch {
        bad.push({ line, offset: firstInvalidOffset(bytes) });
      }
      start = i + 1;
      line++;
    }
  }
  return bad;
}

/** Byte offset of the first byte of the first ill-formed UTF-8 sequence in `bytes` (Unicode §3.9, table 3-7). */
function firstInvalidOffset(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    if (b < 0x80) {
      i++;
      continue;
    }
    const need = b >= 0xc2 && b <= 0xdf ? 1 : b >= 0xe0 && b <= 0xef ? 2 : b >= 0xf0 && b <= 0xf4 ? 3 : 0;
    if (need === 0) return i;
    for (let k = 1; k <= need; k++) {
      if (i + k >= bytes.length) return i;
      const c = bytes[i + k];
      // The second byte's range is narrower after E0, ED, F0, F4 (no overlongs, surrogates, > U+10FFFF).
      const lo = k === 1 && b === 0xe0 ? 0xa0 : k === 1 && b === 0xf0 ? 0x90 : 0x80;
      const hi = k === 1 && b === 0xed ? 0x9f : k === 1 && b === 0xf4 ? 0x8f : 0xbf;
      if (c < lo || c > hi) return i;
    }
    i += need + 1;
  }
  return bytes.length;
}

/**
 * Whether bytes look like UTF-16 text: a UTF-16 byte-order mark, or NUL bytes in every other
 * position of the first kilobytes (ASCII text saved as UTF-16 without a BOM is valid UTF-8 full
 * of NULs, so the UTF-8 check alone lets it through). Returns the byte order seen, or null.
 */
export function looksLikeUtf16(buf: Uint8Array): 'LE' | 'BE' | null {
  if (buf.length >= 2 && buf[0] === 0xff && buf[1] === 0xfe) return 'LE';
  if (buf.length >= 2 && buf[0] === 0xfe && buf[1] === 0xff) return 'BE';
  const n = Math.min(buf.length, 4096) & ~1;
  if (n < 4) return null;
  let evenNul = 0;
  let oddNul = 0;
  for (let i = 0; i < n; i += 2) {
    if (buf[i] === 0) evenNul++;
    if (buf[i + 1] === 0) oddNul++;
  }
  const pairs = n / 2;
  if (oddNul >= 0.4 * pairs && evenNul < 0.05 * pairs) return 'LE';
  if (evenNul >= 0.4 * pairs && oddNul < 0.05 * pairs) return 'BE';
  return null;
}

/**
 * Reads a file as text: drops a BOM, turns CRLF into LF, and reports every line with invalid
 * UTF-8 (those bytes become U+FFFD in the text). Returns the lines to leave out. A file that
 * looks like UTF-16 is reported once, with how to convert it, and yields no text.
 */
async function readText(
  path: string,
  file: string,
): Promise<{ text: string; badLines: Set<number>; problems: Problem[] }> {
  const buf = await readFile(path);
  const problems: Problem[] = [];
  const utf16 = looksLikeUtf16(buf);
  if (utf16) {
    problems.push({
      kind: 'bad-encoding',
      file,
      line: 0,
      message:
        `the file looks like UTF-16${utf16 === 'LE' ? ' (little-endian' : ' (big-endian'}, as Excel's "Unicode text" and Windows tools save it); ` +
        `expected UTF-8: re-save it as UTF-8, e.g. iconv -f UTF-16 -t UTF-8 ${file} > ${file}.utf8`,
    });
    return { text: '', badLines: new Set(), problems };
  }
  const badLines = new Set<number>();
  for (const { line, offset } of findInvalidUtf8Lines(buf)) {
    badLines.add(line);
    problems.push({
      kind: 'bad-encoding',
      file,
      line,
      message: `invalid UTF-8 at byte ${offset} of the line; expected UTF-8 text (re-save the file as UTF-8)`,
    });
  }
  // The non-fatal decoder strips a leading BOM and replaces bad bytes with U+FFFD.
  const text = new TextDecoder('utf-8').decode(buf).replace(/\r\n/g, '\n');
  return { text, badLines, problems };
}

interface CsvErrorLike {
  code?: string;
  message: string;
  lines?: number;
}

/**
 * Parses a CSV file (no header; quotes, embedded newlines and a BOM handled by csv-parse).
 * Column counts are not checked here (the caller knows what it expects). A row with a bad
 * UTF-8 line is left out (reported as bad-encoding). After a syntax error the parse resumes
 * on the line after the error, so one stray quote does not hide the rest of the file.
 */
export async function readCsv(path: string, file: string): Promise<TableRead<CsvRow>> {
  const { text, badLines, problems } = await readText(path, file);
  const lineStarts = [0];
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === LF) lineStarts.push(i + 1);
  const nLines = lineStarts.length;
  const rows: CsvRow[] = [];

  // `from` is the 1-based line a parse starts on; `prevEnd` the last line of the last record.
  let from = 1;
  while (from <= nLines) {
    const chunk = text.slice(lineStarts[from - 1]);
    let prevEnd = from - 1;
    let prevEmpty = 0;
    try {
      parse(chunk, {
        relax_column_count: true,
        // Quotes are strict (RFC 4180, as pandas writes them): a stray quote is reported rather
        // than guessed at, since a wrong guess silently merges or splits fields.
        skip_empty_lines: true,
        on_record: (record: string[], info) => {
          const end = from - 1 + info.lines;
          const start = prevEnd + 1 + (info.empty_lines - prevEmpty);
          prevEnd = end;
          prevEmpty = info.empty_lines;
          let clean = true;
          for (let l = start; l <= end; l++) if (badLines.has(l)) clean = false;
          if (clean) rows.push({ fields: record, line: start });
          return null;
        },
      });
      break;
    } catch (e) {
      const err = e as CsvErrorLike;
      if (typeof err.lines !== 'number') throw e;
      // The failing record starts on the first non-blank line after the last good record.
      let start = prevEnd + 1;
      while (start < nLines && text.slice(lineStarts[start - 1], lineStarts[start] - 1).trim() === '') start++;
      const at = from - 1 + err.lines;
      problems.push({
        kind: 'syntax',
        file,
        line: start,
        message: `${csvErrorText(err)}${at !== start ? ` (detected on line ${at})` : ''}; expected comma-separated fields, double quotes doubled inside quoted fields`,
      });
      from = Math.max(at, start) + 1;
    }
  }
  return { rows, problems };
}

/** csv-parse messages carry their own (chunk-relative) line numbers; keep the reason only. */
function csvErrorText(err: CsvErrorLike): string {
  switch (err.code) {
    case 'CSV_QUOTE_NOT_CLOSED':
      return 'a quoted field is never closed';
    case 'CSV_INVALID_CLOSING_QUOTE':
      return 'text follows a closing quote';
    default:
      return err.message.replace(/ at line \d+/, '');
  }
}

/** Reads a JSONL file: one JSON value per non-blank line; lines that are not JSON are reported. */
export async function readJsonl(path: string, file: string): Promise<TableRead<JsonlRow>> {
  const { text, badLines, problems } = await readText(path, file);
  const rows: JsonlRow[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = i + 1;
    if (lines[i].trim() === '' || badLines.has(line)) continue;
    try {
      rows.push({ value: JSON.parse(lines[i]), line });
    } catch (e) {
      problems.push({
        kind: 'syntax',
        file,
        line,
        message: `not valid JSON (${(e as Error).message}); expected one JSON object per line`,
      });
    }
  }
  return { rows, problems };
}
