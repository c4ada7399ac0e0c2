/**
 * The Hugging Face `tokenizer.json` layout (the `tokenizers` library's serialisation), as far as
 * this project writes and reads it, plus a deterministic writer. Field names follow the format
 * exactly (snake_case) because other tools read these files.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** One entry of `added_tokens`. `special: true` tokens are skipped by `decode(…, {skipSpecialTokens})`. */
export interface HfAddedToken {
  id: number;
  content: string;
  single_word?: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
  normalized?: boolean;
  special?: boolean;
}

/** A pipeline component (`{"type": "ByteLevel", …}`, `{"type": "Sequence", …}`, …). */
export interface HfComponent {
  type: string;
  [field: string]: unknown;
}

/** `model` of a BPE tokenizer. `merges` are `"a b"` strings (older files) or `[a, b]` pairs. */
export interface HfBpeModel {
  type: 'BPE';
  dropout?: number | null;
  unk_token?: string | null;
  continuing_subword_prefix?: string | null;
  end_of_word_suffix?: string | null;
  fuse_unk?: boolean;
  byte_fallback?: boolean;
  ignore_merges?: boolean;
  vocab: Record<string, number>;
  merges: Array<string | [string, string]>;
}

export interface HfTokenizerJson {
  version?: string;
  truncation?: unknown;
  padding?: unknown;
  added_tokens: HfAddedToken[];
  normalizer: HfComponent | null;
  pre_tokenizer: HfComponent | null;
  post_processor: HfComponent | null;
  decoder: HfComponent | null;
  /** BPE for everything this project writes; other model types load through the `hf` engine. */
  model: HfBpeModel | HfComponent;
}

export function isBpeModel(model: HfTokenizerJson['model']): model is HfBpeModel {
  return model.type === 'BPE' && typeof (model as HfBpeModel).vocab === 'object' && Array.isArray((model as HfBpeModel).merges);
}

/** Merges as `[left, right]` pairs, whichever form the file used. */
export function mergePairs(model: HfBpeModel, where = 'tokenizer.json'): Array<[string, string]> {
  return model.merges.map((m, i) => {
    if (Array.isArray(m)) {
      if (m.length !== 2 || typeof m[0] !== 'string' || typeof m[1] !== 'string') {
        throw new Error(`${where}: model.merges[${i}] must be [string, string], got ${JSON.stringify(m)}`);
      }
      return [m[0], m[1]];
    }
    if (typeof m !== 'string') throw new Error(`${where}: model.merges[${i}] must be "a b" or [a, b], got ${JSON.stringify(m)}`);
    const space = m.indexOf(' ');
    if (space <= 0 || space === m.length - 1) {
      throw new Error(`${where}: model.merges[${i}] = ${JSON.stringify(m)} is not "left right"`);
    }
    return [m.slice(0, space), m.slice(space + 1)];
  });
}

/**
 * Reads a tokenizer.json (a file, or a folder holding `tokenizer.json`) and checks the fields
 * every tokenizer needs.
 */
export function readTokenizerJson(path: string): HfTokenizerJson {
  const file = statSync(path).isDirectory() ? join(path, 'tokenizer.json') : path;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${(err as Error).message})`);
  }
  return checkTokenizerJson(parsed, file);
}

export function checkTokenizerJson(value: unknown, where = 'tokenizer.json'): HfTokenizerJson {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(`${where}: expected a JSON object with "model", "added_tokens", "pre_tokenizer", "decoder"`);
  }
  const json = value as Partial<HfTokenizerJson>;
  if (typeof json.model !== 'object' || json.model === null || typeof json.model.type !== 'string') {
    throw new Error(`${where}: field "model" must be an object with a "type" (e.g. "BPE")`);
  }
  const addedTokens = json.added_tokens ?? [];
  if (!Array.isArray(addedTokens)) throw new Error(`${where}: field "added_tokens" must be an array`);
  addedTokens.forEach((t, i) => {
    if (typeof t?.id !== 'number' || !Number.isInteger(t.id) || t.id < 0 || typeof t.content !== 'string' || t.content === '') {
      throw new Error(`${where}: added_tokens[${i}] needs an integer "id" >= 0 and a non-empty "content", got ${JSON.stringify(t)}`);
    }
  });
  return {
    ...json,
    added_tokens: addedTokens,
    normalizer: json.normalizer ?? null,
    pre_tokenizer: json.pre_tokenizer ?? null,
    post_processor: json.post_processor ?? null,
    decoder: json.decoder ?? null,
    model: json.model,
  };
}

/**
 * Serialises a tokenizer.json deterministically: fixed field order, two-space indent, BPE vocab
 * one `"token": id` per line in id order and merges one pair per line (readable diffs, and the
 * same tokenizer always gives the same bytes).
 */
export function stringifyTokenizerJson(json: HfTokenizerJson): string {
  const { model, ...rest } = json;
  const head = JSON.stringify({ ...rest, model: null }, null, 2);
  const tail = '"model": null\n}';
  if (!head.endsWith(tail)) throw new Error('stringifyTokenizerJson: "model" must be the last field');
  let modelText: string;
  if (isBpeModel(model)) {
    const { vocab, merges, ...fields } = model;
    const lines = Object.entries(fields).map(([k, v]) => `    ${JSON.stringify(k)}: ${JSON.stringify(v)}`);
    const vocabLines = Object.entries(vocab)
      .sort((a, b) => a[1] - b[1])
      .map(([token, id]) => `      ${JSON.stringify(token)}: ${id}`);
    const mergeLines = merges.map((m) => `      ${JSON.stringify(m)}`);
    const block = (open: string, close: string, items: string[]) =>
      items.length === 0 ? open + close : `${open}\n${items.join(',\n')}\n    ${close}`;
    lines.push(`    "vocab": ${block('{', '}', vocabLines)}`);
    lines.push(`    "merges": ${block('[', ']', mergeLines)}`);
    modelText = `{\n${lines.join(',\n')}\n  }`;
  } else {
    modelText = JSON.stringify(model, null, 2).replace(/\n/g, '\n  ');
  }
  return `${head.slice(0, head.length - tail.length)}"model": ${modelText}\n}\n`;
}
