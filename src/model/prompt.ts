/**
 * Prompt builders of docs/method.md "Prompts" (English rendering of the reference prompts).
 *
 *   basic : Note: {"image": "<IMG>", "title": "…", "topic": "…", "content": "…"}, compress this note into one word: "
 *   mICL  : Note: {"image": "<IMG>"}, compress this note into one word: "<IMG_EMB>". Note: {"title": …, "topic": …, "content": …}, compress this note into one word: "
 *   text  : the basic prompt without the image field (presets whose LM sees no image tokens)
 *
 * The embedding is read at the last token (n_m) and, under mICL, at the token just before
 * `<IMG_EMB>` (n_v): with causal attention n_v has seen only the image part.
 */
import type { Note } from '../data/schema';
import type { ResolvedModelConfig } from './config';

export const IMG = '<IMG>';
export const IMG_EMB = '<IMG_EMB>';
const COMPRESS = ', compress this note into one word: "';

export type PromptKind = 'basic' | 'micl' | 'text';

/** The three text fields after the paper's truncation (title 20 chars, content 80, ≤ 10 topics of ≤ 16 chars). */
export function truncateFields(note: Note, limits: ResolvedModelConfig['text']): { title: string; topic: string; content: string } {
  // Array.from splits by code point, so a cut never lands inside a surrogate pair (emoji).
  const cut = (s: string, n: number) => Array.from(s).slice(0, n).join('');
  return {
    title: cut(note.title, limits.titleChars),
    topic: note.topics.slice(0, limits.maxTopics).map((t) => cut(t, limits.topicChars)).join(', '),
    content: cut(note.content, limits.contentChars),
  };
}

/** Values are JSON-quoted so a quote inside a title cannot break the template. */
function textFields(f: { title: string; topic: string; content: string }): string {
  return `"title": ${JSON.stringify(f.title)}, "topic": ${JSON.stringify(f.topic)}, "content": ${JSON.stringify(f.content)}`;
}

/** Renders a note into the prompt string of the given kind. */
export function renderPrompt(kind: PromptKind, note: Note, limits: ResolvedModelConfig['text']): string {
  const f = truncateFields(note, limits);
  switch (kind) {
    case 'basic':
      return `Note: {"image": "${IMG}", ${textFields(f)}}${COMPRESS}`;
    case 'micl':
      return `Note: {"image": "${IMG}"}${COMPRESS}${IMG_EMB}". Note: {${textFields(f)}}${COMPRESS}`;
    case 'text':
      return `Note: {${textFields(f)}}${COMPRESS}`;
    default: {
      const never: never = kind;
      throw new Error(`unknown prompt kind "${never}"; valid: basic, micl, text`);
    }
  }
}

/** Which prompt a model configuration uses (the wiring of docs/method.md's variant table). */
export function promptKindFor(cfg: Pick<ResolvedModelConfig, 'earlyFusion' | 'micl'>): PromptKind {
  if (cfg.micl) return 'micl';
  return cfg.earlyFusion ? 'basic' : 'text';
}

/** The minimal tokenizer surface the prompt encoder needs. */
export interface PromptTokenizer {
  encode(text: string): number[];
  tokenToId(token: string): number | undefined;
  readonly padId: number;
}

/** One encoded prompt: ids with `<IMG>` expanded to `imageTokens` slots. */
export interface EncodedPrompt {
  ids: number[];
  /** First image slot, or -1 when the prompt has no image. */
  imageStart: number;
  /** Index of the token just before `<IMG_EMB>` (n_v), or -1 without mICL. */
  visualIndex: number;
  /** Index of the final token (n_m). */
  lastIndex: number;
}

/**
 * Encodes a rendered prompt and expands the single `<IMG>` token into `imageTokens` slots
 * (the connector's output count). Text beyond `maxTokens` is cut from the note's part, never
 * from the fixed template tail, so the final token is always the template's closing quote.
 */
export function encodePrompt(tok: PromptTokenizer, prompt: string, imageTokens: number, maxTokens: number): EncodedPrompt {
  const imgId = tok.tokenToId(IMG);
  const embId = tok.tokenToId(IMG_EMB);
  if (imgId === undefined || embId === undefined) {
    throw new Error(`tokenizer lacks the special tokens ${IMG} / ${IMG_EMB}`);
  }
  let ids = tok.encode(prompt);
  if (ids.length > maxTokens) {
    const tail = tok.encode(`"}${COMPRESS}`);
    ids = [...ids.slice(0, maxTokens - tail.length), ...tail];
  }
  const imgAt = ids.indexOf(imgId);
  if (imgAt >= 0 && ids.indexOf(imgId, imgAt + 1) >= 0) throw new Error('prompt holds more than one <IMG> token');
  if (imgAt >= 0) ids = [...ids.slice(0, imgAt), ...new Array<number>(imageTokens).fill(imgId), ...ids.slice(imgAt + 1)];
  const embAt = ids.indexOf(embId);
  return {
    ids,
    imageStart: imgAt,
    visualIndex: embAt > 0 ? embAt - 1 : -1,
    lastIndex: ids.length - 1,
  };
}
