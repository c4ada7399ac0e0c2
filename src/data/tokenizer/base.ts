/**
 * The tokenizer interface both engines implement, and the special-token roles of the prompts
 * (docs/method.md "Prompts").
 */
import type { HfTokenizerJson } from './json';

/** Roles of the special tokens the prompts use (docs/method.md "Prompts"). */
export type SpecialRole = 'pad' | 'bos' | 'eos' | 'img' | 'imgEmb';

/** Default content of each special token; also the id order of a trained tokenizer (0..4). */
export const DEFAULT_SPECIAL_TOKENS: Readonly<Record<SpecialRole, string>> = {
  pad: '<pad>',
  bos: '<bos>',
  eos: '<eos>',
  img: '<IMG>',
  imgEmb: '<IMG_EMB>',
};
export const SPECIAL_ROLES = Object.keys(DEFAULT_SPECIAL_TOKENS) as SpecialRole[];

export type SpecialIds = Record<SpecialRole, number>;

export interface DecodeOptions {
  /** Drop tokens marked `special` (e.g. `<pad>`). Defaults to false (exact round trip). */
  skipSpecialTokens?: boolean;
}

/** What the rest of the project uses; both engines implement it. */
export interface TextTokenizer {
  readonly engine: 'native' | 'hf';
  /** Number of embedding rows the ids need: largest id + 1 (added tokens included). */
  readonly vocabSize: number;
  /** Content of each special-token role (`img` → `<IMG>` by default). */
  readonly specialTokens: Readonly<Record<SpecialRole, string>>;
  readonly specialIds: Readonly<SpecialIds>;
  readonly padId: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly imgId: number;
  readonly imgEmbId: number;
  encode(text: string): number[];
  decode(ids: readonly number[], options?: DecodeOptions): string;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
  /** The tokenizer.json this tokenizer is (special tokens added at load included). */
  toJSON(): HfTokenizerJson;
}

/** Shared role bookkeeping of both engines. */
export abstract class TokenizerBase {
  abstract readonly engine: 'native' | 'hf';
  readonly specialTokens: Readonly<Record<SpecialRole, string>>;
  readonly specialIds: Readonly<SpecialIds>;
  constructor(roles: Record<SpecialRole, string>, ids: SpecialIds) {
    this.specialTokens = Object.freeze({ ...roles });
    this.specialIds = Object.freeze({ ...ids });
  }
  get padId(): number { return this.specialIds.pad; }
  get bosId(): number { return this.specialIds.bos; }
  get eosId(): number { return this.specialIds.eos; }
  get imgId(): number { return this.specialIds.img; }
  get imgEmbId(): number { return this.specialIds.imgEmb; }
}
