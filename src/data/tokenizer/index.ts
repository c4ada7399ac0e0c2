/**
 * Tokenizer for the prompts of docs/method.md ("Prompts"): byte-level BPE with the prompt's special
 * tokens `<IMG>`, `<IMG_EMB>`, `<pad>`, `<bos>`, `<eos>`, stored as a Hugging Face
 * `tokenizer.json`.
 *
 *   trainTokenizer(corpus, { vocabSize })   learn a BPE deterministically (tokenizer-train.ts)
 *   loadTokenizer(pathOrJson)               read ours, or an existing GPT-2 / Qwen style file
 *   saveTokenizer(tok, path)                write tokenizer.json (byte-identical for equal input)
 *
 * Two engines behind one interface ({@link TextTokenizer}):
 * - `native` (this file): byte-level BPE — `ByteLevel` or `Sequence[Split…, ByteLevel]`
 *   pre-tokenizer, `ByteLevel` decoder, normaliser none or NFC. Covers what this project trains
 *   and the GPT-2 / Qwen / Llama-3 family; caches pre-token → ids (notes repeat words a lot).
 * - `hf`: `@huggingface/tokenizers` (tokenizer-hf.ts), for any other file the library reads
 *   (SentencePiece-style BPE with byte fallback, WordPiece, Unigram …).
 * `loadTokenizer` picks `native` when it can reproduce the file and `hf` otherwise; tests check
 * both engines give identical ids on the same file.
 *
 * Special tokens are "added tokens": matched literally in the input before anything else (the
 * prompt contains the literal text `<IMG>`), never split, never produced by merges, and
 * decoded back to their literal text. Nothing is added implicitly by `encode` (no automatic
 * `<bos>`): the prompt builder places every special token itself.
 */
import { writeFileSync } from 'node:fs';
import { BYTE_TO_UNICODE, decodeUtf8, pushByteLevelBytes, toByteLevel } from './bytes';
import {
  checkTokenizerJson,
  isBpeModel,
  mergePairs,
  readTokenizerJson,
  stringifyTokenizerJson,
  type HfAddedToken,
  type HfBpeModel,
  type HfComponent,
  type HfTokenizerJson,
} from './json';
import { learnMerges, MAX_TRAINED_VOCAB, type WordCount } from './train';
import { HfLibraryTokenizer } from './hf';
import {
  DEFAULT_SPECIAL_TOKENS,
  SPECIAL_ROLES,
  TokenizerBase,
  type DecodeOptions,
  type SpecialIds,
  type SpecialRole,
  type TextTokenizer,
} from './base';

export { DEFAULT_SPECIAL_TOKENS, TokenizerBase } from './base';
export type { DecodeOptions, SpecialIds, SpecialRole, TextTokenizer } from './base';

export type { HfTokenizerJson, HfAddedToken, HfBpeModel } from './json';
export { readTokenizerJson, stringifyTokenizerJson } from './json';
export { BYTE_TO_UNICODE, toByteLevel } from './bytes';
export { HfLibraryTokenizer } from './hf';

/**
 * Pre-tokenisation regex of trained tokenizers (written into tokenizer.json as a `Split` with
 * Oniguruma syntax, which this pattern shares with JavaScript `u` regexes). GPT-2's pattern
 * with letters carrying their combining marks:
 * - a run of letters (`\p{L}` then letters/marks) is one pre-token, so Chinese — written
 *   without spaces — stays whole and BPE learns its multi-character words (`话题`, `今天`);
 * - emoji are neither letters, digits nor spaces, so a ZWJ sequence (👨‍👩‍👧), a skin-tone
 *   modifier (👍🏽), a variation selector (❤️) or a flag (🇨🇳) stays inside one symbol run and
 *   is never cut from its parts; runs are cut from letters and digits (`好😀` → `好`, `😀`);
 * - one optional leading space joins the following word, number or symbol run (`Ġword`);
 *   the last space of a whitespace run goes with the next word;
 * - English contractions split off as in GPT-2.
 * Byte-level BPE round-trips every string exactly whatever the split; the split only decides
 * which merges can be learned.
 */
export const PRETOKENIZE_PATTERN =
  "'(?:[sdmt]|ll|ve|re)| ?\\p{L}[\\p{L}\\p{M}]*| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/** GPT-2's own pattern, used by a `ByteLevel` pre-tokenizer with `use_regex: true`. */
const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

// ---------------------------------------------------------------------------------------------
// Native engine

/** Thrown (and caught by `loadTokenizer` in `auto` mode) when a file needs the `hf` engine. */
export class NativeUnsupportedError extends Error {}

type PreStep = { kind: 'split'; re: RegExp } | { kind: 'byteLevel'; addPrefixSpace: boolean; useRegex: boolean };

/**
 * Oniguruma → JavaScript for the patterns real byte-level tokenizers use (the reference
 * implementation compiles them with Oniguruma):
 * - `\s` / `\S` become `\p{White_Space}` / `\P{White_Space}`: JavaScript's `\s` also takes
 *   U+FEFF and misses U+0085, Oniguruma's does neither (checked against libonig 6.9.8 on
 *   random strings of CJK, emoji, marks, digits and whitespace: identical splits);
 * - the inline case-insensitive group of the contraction alternatives (`(?i:'s|'t|…)`, Qwen2
 *   and Llama-3), which Node 20 lacks, is rewritten letter by letter (`'[sS]`).
 * Anything else that does not compile is left to the `hf` engine.
 */
export function onigurumaToJs(pattern: string): RegExp {
  let rewritten = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c !== '\\' || i + 1 === pattern.length) {
      rewritten += c;
      continue;
    }
    const next = pattern[++i];
    rewritten += next === 's' ? '\\p{White_Space}' : next === 'S' ? '\\P{White_Space}' : c + next;
  }
  rewritten = rewritten.replace(/\(\?i:([^()[\]\\]*)\)/g, (_m, body: string) =>
    '(?:' + body.replace(/[A-Za-z]/g, (ch) => `[${ch.toLowerCase()}${ch.toUpperCase()}]`) + ')',
  );
  try {
    return new RegExp(rewritten, 'gu');
  } catch (err) {
    throw new NativeUnsupportedError(`pre_tokenizer pattern ${JSON.stringify(pattern)} is not a JavaScript regex (${(err as Error).message})`);
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function compilePreTokenizer(config: HfComponent | null): PreStep[] {
  const one = (c: HfComponent, i: number): PreStep => {
    switch (c.type) {
      case 'ByteLevel':
        return { kind: 'byteLevel', addPrefixSpace: c.add_prefix_space === true, useRegex: c.use_regex !== false };
      case 'Split': {
        const pattern = c.pattern as { Regex?: string; String?: string } | undefined;
        if (c.behavior !== 'Isolated' || c.invert === true) {
          throw new NativeUnsupportedError(`pre_tokenizer Split with behavior ${JSON.stringify(c.behavior)}, invert ${JSON.stringify(c.invert)} (native supports "Isolated", invert false)`);
        }
        if (typeof pattern?.Regex === 'string') return { kind: 'split', re: onigurumaToJs(pattern.Regex) };
        if (typeof pattern?.String === 'string') return { kind: 'split', re: new RegExp(escapeRegExp(pattern.String), 'gu') };
        throw new NativeUnsupportedError(`pre_tokenizer Split #${i} has no "pattern": {"Regex"|"String"}`);
      }
      default:
        throw new NativeUnsupportedError(`pre_tokenizer ${JSON.stringify(c.type)} (native supports ByteLevel, Split, Sequence of them)`);
    }
  };
  if (config === null) throw new NativeUnsupportedError('pre_tokenizer null (native needs ByteLevel)');
  const list = config.type === 'Sequence' ? ((config.pretokenizers as HfComponent[] | undefined) ?? []) : [config];
  const steps = list.map(one);
  const last = steps[steps.length - 1];
  if (!last || last.kind !== 'byteLevel' || steps.slice(0, -1).some((s) => s.kind !== 'split')) {
    throw new NativeUnsupportedError('pre_tokenizer must be ByteLevel, or Split steps followed by one ByteLevel');
  }
  return steps;
}

function regexSplit(text: string, re: RegExp): string[] {
  // "Isolated": each match is a piece, and so is each stretch between matches.
  const out: string[] = [];
  let prev = 0;
  for (const m of text.matchAll(re)) {
    const at = m.index ?? 0;
    if (at > prev) out.push(text.slice(prev, at));
    if (m[0].length > 0) out.push(m[0]);
    prev = at + m[0].length;
  }
  if (prev < text.length) out.push(text.slice(prev));
  return out;
}

interface AddedMatcher {
  re: RegExp | null;
  byContent: Map<string, HfAddedToken>;
}

function addedMatcher(tokens: readonly HfAddedToken[]): AddedMatcher {
  // Longest content first, so at each position the longest added token wins (as in the
  // reference implementation's leftmost-longest matching: `<IMG_EMB>` before `<IMG>`).
  const sorted = [...tokens].sort((a, b) => b.content.length - a.content.length || (a.content < b.content ? -1 : 1));
  return {
    re: sorted.length ? new RegExp(sorted.map((t) => escapeRegExp(t.content)).join('|'), 'gu') : null,
    byContent: new Map(tokens.map((t) => [t.content, t])),
  };
}

/** Splits text into plain stretches and added tokens, honouring `lstrip` / `rstrip`. */
function splitAdded(text: string, m: AddedMatcher): Array<string | HfAddedToken> {
  if (!m.re) return text ? [text] : [];
  const parts: Array<string | HfAddedToken> = [];
  let prev = 0;
  for (const hit of text.matchAll(m.re)) {
    const at = hit.index ?? 0;
    parts.push(text.slice(prev, at), m.byContent.get(hit[0])!);
    prev = at + hit[0].length;
  }
  parts.push(text.slice(prev));
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    if (typeof p === 'string') continue;
    if (p.lstrip && typeof parts[i - 1] === 'string') parts[i - 1] = (parts[i - 1] as string).trimEnd();
    if (p.rstrip && typeof parts[i + 1] === 'string') parts[i + 1] = (parts[i + 1] as string).trimStart();
  }
  return parts.filter((p) => p !== '');
}

const PAIR_SCALE = 2 ** 21;
const GPT2_REGEX = onigurumaToJs(GPT2_PATTERN);
const CACHE_LIMIT = 100_000;

/**
 * Byte-level BPE, implemented here. Construct with {@link BpeTokenizer.fromJSON},
 * {@link trainTokenizer} or {@link loadTokenizer}.
 */
export class BpeTokenizer extends TokenizerBase implements TextTokenizer {
  readonly engine = 'native' as const;
  readonly vocabSize: number;
  private readonly json: HfTokenizerJson;
  private readonly vocab: Map<string, number>;
  private readonly idToTok: Array<string | undefined>;
  private readonly addedById: Map<number, HfAddedToken>;
  private readonly addedByContent: Map<string, HfAddedToken>;
  private readonly rawAdded: AddedMatcher;
  private readonly normalizedAdded: AddedMatcher;
  private readonly nfc: boolean;
  private readonly steps: PreStep[];
  private readonly ranks: Map<number, { rank: number; id: number }>;
  private readonly ignoreMerges: boolean;
  private readonly unkId: number | undefined;
  private readonly cache = new Map<string, number[]>();

  private constructor(json: HfTokenizerJson, roles: Record<SpecialRole, string>, ids: SpecialIds) {
    super(roles, ids);
    this.json = json;
    const model = json.model;
    if (!isBpeModel(model)) throw new NativeUnsupportedError(`model type ${JSON.stringify(model.type)} (native supports "BPE")`);
    if (model.byte_fallback) throw new NativeUnsupportedError('model.byte_fallback true (SentencePiece-style BPE)');
    if (model.continuing_subword_prefix || model.end_of_word_suffix) {
      throw new NativeUnsupportedError('model.continuing_subword_prefix / end_of_word_suffix set');
    }
    if (model.dropout) throw new NativeUnsupportedError('model.dropout set (native BPE is deterministic)');
    const normalizer = json.normalizer;
    if (normalizer !== null && normalizer.type !== 'NFC') {
      throw new NativeUnsupportedError(`normalizer ${JSON.stringify(normalizer.type)} (native supports none or NFC)`);
    }
    this.nfc = normalizer?.type === 'NFC';
    if (json.decoder?.type !== 'ByteLevel') {
      throw new NativeUnsupportedError(`decoder ${JSON.stringify(json.decoder?.type ?? null)} (native supports ByteLevel)`);
    }
    this.steps = compilePreTokenizer(json.pre_tokenizer);

    this.vocab = new Map(Object.entries(model.vocab));
    this.idToTok = [];
    for (const [tok, id] of this.vocab) {
      if (!Number.isInteger(id) || id < 0 || id >= PAIR_SCALE) {
        throw new Error(`tokenizer.json: model.vocab[${JSON.stringify(tok)}] = ${id}; expected an integer id in [0, ${PAIR_SCALE})`);
      }
      this.idToTok[id] = tok;
    }
    this.addedById = new Map();
    this.addedByContent = new Map();
    for (const t of json.added_tokens) {
      if (t.id >= PAIR_SCALE) throw new Error(`tokenizer.json: added token ${JSON.stringify(t.content)} has id ${t.id} >= ${PAIR_SCALE}`);
      this.addedById.set(t.id, t);
      this.addedByContent.set(t.content, t);
      this.idToTok[t.id] = t.content;
    }
    this.vocabSize = this.idToTok.length;
    // Added tokens marked `normalized` are matched after normalisation (only differs with NFC).
    const afterNorm = (t: HfAddedToken) => this.nfc && (t.normalized ?? !t.special);
    this.rawAdded = addedMatcher(json.added_tokens.filter((t) => !afterNorm(t)));
    this.normalizedAdded = addedMatcher(json.added_tokens.filter(afterNorm).map((t) => ({ ...t, content: t.content.normalize('NFC') })));

    this.ranks = new Map();
    mergePairs(model).forEach(([a, b], rank) => {
      const ia = this.vocab.get(a);
      const ib = this.vocab.get(b);
      const im = this.vocab.get(a + b);
      if (ia === undefined || ib === undefined || im === undefined) {
        throw new NativeUnsupportedError(`merge #${rank} ${JSON.stringify([a, b])} names a token missing from model.vocab`);
      }
      const key = ia * PAIR_SCALE + ib;
      if (!this.ranks.has(key)) this.ranks.set(key, { rank, id: im });
    });
    this.ignoreMerges = model.ignore_merges === true;
    this.unkId = model.unk_token != null ? this.vocab.get(model.unk_token) : undefined;
  }

  /**
   * Native engine for a tokenizer.json; throws {@link NativeUnsupportedError} naming the field
   * when the file needs the `hf` engine.
   */
  static fromJSON(json: HfTokenizerJson, specialTokens: Partial<Record<SpecialRole, string>> = {}): BpeTokenizer {
    const { json: withSpecials, roles, ids } = ensureSpecialTokens(checkTokenizerJson(json), specialTokens);
    return new BpeTokenizer(withSpecials, roles, ids);
  }

  encode(text: string): number[] {
    const ids: number[] = [];
    for (const part of this.splitSpecials(text)) {
      if (typeof part !== 'string') {
        ids.push(part.id);
        continue;
      }
      for (const word of this.byteLevelWords(part)) {
        let wordIds = this.cache.get(word);
        if (wordIds === undefined) {
          wordIds = this.bpe(word);
          if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
          this.cache.set(word, wordIds);
        }
        for (const id of wordIds) ids.push(id);
      }
    }
    return ids;
  }

  /**
   * The pre-tokens BPE sees, in byte-level form (`' 话题'` → `'Ġè¯Ŀé¢ĺ'`); added tokens are
   * left out. Training counts these.
   */
  preTokenize(text: string): string[] {
    return this.splitSpecials(text).flatMap((p) => (typeof p === 'string' ? this.byteLevelWords(p) : []));
  }

  /** Added tokens and normalised plain stretches, in order. */
  private splitSpecials(text: string): Array<string | HfAddedToken> {
    const out: Array<string | HfAddedToken> = [];
    for (const part of splitAdded(text, this.rawAdded)) {
      if (typeof part !== 'string') out.push(part);
      else out.push(...splitAdded(this.nfc ? part.normalize('NFC') : part, this.normalizedAdded));
    }
    return out;
  }

  /** Pre-tokenises a stretch holding no added token. */
  private byteLevelWords(text: string): string[] {
    let pieces = [text];
    for (const step of this.steps) {
      if (step.kind === 'split') {
        pieces = pieces.flatMap((p) => regexSplit(p, step.re));
        continue;
      }
      const words: string[] = [];
      for (let piece of pieces) {
        if (step.addPrefixSpace && !piece.startsWith(' ')) piece = ' ' + piece;
        for (const w of step.useRegex ? (piece.match(GPT2_REGEX) ?? []) : [piece]) words.push(toByteLevel(w));
      }
      return words;
    }
    return pieces; // unreachable: compilePreTokenizer ends every pipeline with ByteLevel
  }

  /** BPE of one byte-level pre-token: apply the lowest-ranked merge (leftmost on ties) until none applies. */
  private bpe(word: string): number[] {
    if (this.ignoreMerges) {
      const whole = this.vocab.get(word);
      if (whole !== undefined) return [whole];
    }
    // -1 marks a character missing from the vocabulary; it takes part in no merge.
    const syms = Array.from(word, (ch) => this.vocab.get(ch) ?? -1);
    for (;;) {
      let best = -1;
      let bestRank = Infinity;
      let bestId = -1;
      for (let i = 0; i + 1 < syms.length; i++) {
        if (syms[i] < 0 || syms[i + 1] < 0) continue;
        const r = this.ranks.get(syms[i] * PAIR_SCALE + syms[i + 1]);
        if (r !== undefined && r.rank < bestRank) {
          bestRank = r.rank;
          best = i;
          bestId = r.id;
        }
      }
      if (best < 0) break;
      syms.splice(best, 2, bestId);
    }
    const out: number[] = [];
    for (const s of syms) {
      if (s >= 0) out.push(s);
      else if (this.unkId !== undefined) out.push(this.unkId);
      // else: dropped, as the reference implementation does without an unk token
    }
    return out;
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    let out = '';
    const bytes: number[] = [];
    const flush = () => {
      if (bytes.length) out += decodeUtf8(bytes);
      bytes.length = 0;
    };
    ids.forEach((id, i) => {
      const added = this.addedById.get(id);
      if (added) {
        if (!(options.skipSpecialTokens && added.special)) {
          flush();
          out += added.content;
        }
        return;
      }
      const tok = Number.isInteger(id) ? this.idToTok[id] : undefined;
      if (tok === undefined) throw new RangeError(`decode: ids[${i}] = ${id} is not a token id (vocabSize ${this.vocabSize})`);
      if (!pushByteLevelBytes(tok, bytes)) throw new Error(`decode: token ${JSON.stringify(tok)} (id ${id}) is not a byte-level token`);
    });
    flush();
    return out;
  }

  tokenToId(token: string): number | undefined {
    return this.addedByContent.get(token)?.id ?? this.vocab.get(token);
  }

  idToToken(id: number): string | undefined {
    return this.idToTok[id];
  }

  toJSON(): HfTokenizerJson {
    return structuredClone(this.json);
  }
}

// ---------------------------------------------------------------------------------------------
// Special tokens

/**
 * Makes sure every role's token exists as a special added token. A role's content (default
 * `<pad>`, `<bos>`, `<eos>`, `<IMG>`, `<IMG_EMB>`; e.g. `{ eos: '<|endoftext|>' }` for Qwen) is
 * looked up in `added_tokens`, then in the model vocabulary (and then registered as an added
 * token with its id, so it is matched whole), and otherwise appended with the next free id —
 * an imported LLM then needs that many more embedding rows (`vocabSize` says how many).
 */
export function ensureSpecialTokens(
  json: HfTokenizerJson,
  specialTokens: Partial<Record<SpecialRole, string>> = {},
): { json: HfTokenizerJson; roles: Record<SpecialRole, string>; ids: SpecialIds } {
  const roles = { ...DEFAULT_SPECIAL_TOKENS, ...specialTokens };
  const added = json.added_tokens.map((t) => ({ ...t }));
  const vocab = (json.model as Partial<HfBpeModel>).vocab;
  let nextId = 0; // one past the largest id in use (a loop: real vocabularies exceed spread-argument limits)
  for (const t of added) nextId = Math.max(nextId, t.id + 1);
  if (vocab && typeof vocab === 'object') for (const id of Object.values(vocab)) nextId = Math.max(nextId, id + 1);
  const ids = {} as SpecialIds;
  for (const role of SPECIAL_ROLES) {
    const content = roles[role];
    if (typeof content !== 'string' || content === '') throw new Error(`special token for role "${role}" must be a non-empty string, got ${JSON.stringify(content)}`);
    let tok = added.find((t) => t.content === content);
    if (!tok) {
      const inVocab = vocab && typeof vocab === 'object' && !Array.isArray(vocab) ? vocab[content] : undefined;
      tok = { id: inVocab ?? nextId++, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
      added.push(tok);
    }
    ids[role] = tok.id;
  }
  return { json: { ...json, added_tokens: added }, roles, ids };
}

// ---------------------------------------------------------------------------------------------
// Training, loading, saving

export interface TrainTokenizerOptions {
  /**
   * Total vocabulary size: the 5 special tokens + 256 bytes + learned merges. Reached exactly
   * unless the corpus runs out of pairs occurring `minFrequency` times. At least 261.
   */
  vocabSize: number;
  /** A pair must occur at least this often to be merged. Defaults to 2. */
  minFrequency?: number;
  /** Pre-tokenisation regex (Oniguruma/JS common syntax). Defaults to {@link PRETOKENIZE_PATTERN}. */
  pattern?: string;
  /** Contents of the special tokens; ids 0..4 in the order pad, bos, eos, img, imgEmb. */
  specialTokens?: Partial<Record<SpecialRole, string>>;
}

/**
 * Trains a byte-level BPE on `corpus` (one string per note). Deterministic: the same corpus
 * (as a multiset) and options give a byte-identical tokenizer.json. Vocabulary ids: special
 * tokens 0..4, byte b at 5 + b, then merged tokens in the order learned.
 */
export function trainTokenizer(corpus: readonly string[], options: TrainTokenizerOptions): BpeTokenizer {
  const roles = { ...DEFAULT_SPECIAL_TOKENS, ...options.specialTokens };
  const specials = SPECIAL_ROLES.map((r) => roles[r]);
  const base = specials.length + 256;
  const { vocabSize } = options;
  if (!Number.isInteger(vocabSize) || vocabSize < base || vocabSize > MAX_TRAINED_VOCAB) {
    throw new Error(`trainTokenizer: vocabSize must be an integer in [${base}, ${MAX_TRAINED_VOCAB}] (${specials.length} special tokens + 256 bytes + merges), got ${vocabSize}`);
  }
  if (new Set(specials).size !== specials.length) throw new Error(`trainTokenizer: special tokens must be distinct, got ${JSON.stringify(roles)}`);
  const minFrequency = options.minFrequency ?? 2;
  if (!Number.isInteger(minFrequency) || minFrequency < 1) throw new Error(`trainTokenizer: minFrequency must be an integer >= 1, got ${minFrequency}`);
  const pattern = options.pattern ?? PRETOKENIZE_PATTERN;

  const skeleton = tokenizerJson(pattern, specials, [...BYTE_TO_UNICODE], []);
  const counter = BpeTokenizer.fromJSON(skeleton, roles);
  const counts = new Map<string, number>();
  for (const [i, text] of corpus.entries()) {
    if (typeof text !== 'string') throw new Error(`trainTokenizer: corpus[${i}] must be a string, got ${typeof text}`);
    for (const word of counter.preTokenize(text)) counts.set(word, (counts.get(word) ?? 0) + 1);
  }
  const words: WordCount[] = [...counts].map(([word, count]) => ({ word, count }));
  const learned = learnMerges(words, BYTE_TO_UNICODE, 256 + vocabSize - base, minFrequency, new Set(specials));
  return BpeTokenizer.fromJSON(tokenizerJson(pattern, specials, [...BYTE_TO_UNICODE, ...learned.tokens], learned.merges), roles);
}

/** The tokenizer.json of a trained tokenizer. Specials come first (ids 0..k-1) and are also in the vocab, as the reference trainer writes them. */
function tokenizerJson(pattern: string, specials: string[], tokens: string[], merges: Array<[string, string]>): HfTokenizerJson {
  const vocab: Record<string, number> = {};
  [...specials, ...tokens].forEach((t, id) => {
    vocab[t] = id;
  });
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [{ type: 'Split', pattern: { Regex: pattern }, behavior: 'Isolated', invert: false }, byteLevel],
    },
    post_processor: null,
    decoder: { ...byteLevel },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: merges.map(([a, b]) => [a, b] as [string, string]),
    },
  };
}

export interface LoadTokenizerOptions {
  /** `auto` (default): native when it reproduces the file, else `hf`. */
  engine?: 'auto' | 'native' | 'hf';
  /** Contents for the special-token roles (see {@link ensureSpecialTokens}). */
  specialTokens?: Partial<Record<SpecialRole, string>>;
}

/** Loads a tokenizer.json (a path to the file or to its folder, or the parsed object). */
export function loadTokenizer(source: string | HfTokenizerJson, options: LoadTokenizerOptions = {}): TextTokenizer {
  const json = typeof source === 'string' ? readTokenizerJson(source) : checkTokenizerJson(source);
  const engine = options.engine ?? 'auto';
  switch (engine) {
    case 'native':
      return BpeTokenizer.fromJSON(json, options.specialTokens);
    case 'hf': {
      const { json: withSpecials, roles, ids } = ensureSpecialTokens(json, options.specialTokens);
      return new HfLibraryTokenizer(withSpecials, roles, ids);
    }
    case 'auto':
      try {
        return BpeTokenizer.fromJSON(json, options.specialTokens);
      } catch (err) {
        if (!(err instanceof NativeUnsupportedError)) throw err;
        return loadTokenizer(json, { ...options, engine: 'hf' });
      }
    default: {
      const never: never = engine;
      throw new Error(`loadTokenizer: engine must be one of auto, native, hf; got ${JSON.stringify(never)}`);
    }
  }
}

/** Writes `tokenizer.json` text (deterministic bytes) to `path`. */
export function saveTokenizer(tokenizer: TextTokenizer, path: string): void {
  writeFileSync(path, stringifyTokenizerJson(tokenizer.toJSON()));
}
