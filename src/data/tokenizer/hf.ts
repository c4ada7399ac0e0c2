/**
 * The `hf` tokenizer engine: `@huggingface/tokenizers` (pure JavaScript, reads tokenizer.json
 * as the Hugging Face `tokenizers` library writes it). Used for files the native byte-level
 * engine does not reproduce (SentencePiece-style BPE with byte fallback, WordPiece, Unigram,
 * other normalisers), and in tests as an independent check of the native engine.
 */
import { Tokenizer as LibraryTokenizer } from '@huggingface/tokenizers';
import type { HfAddedToken, HfTokenizerJson } from './json';
import { TokenizerBase, type DecodeOptions, type SpecialIds, type SpecialRole, type TextTokenizer } from './base';

export class HfLibraryTokenizer extends TokenizerBase implements TextTokenizer {
  readonly engine = 'hf' as const;
  readonly vocabSize: number;
  private readonly json: HfTokenizerJson;
  private readonly lib: LibraryTokenizer;
  private readonly addedByContent: Map<string, HfAddedToken>;

  constructor(json: HfTokenizerJson, roles: Record<SpecialRole, string>, ids: SpecialIds) {
    super(roles, ids);
    this.json = json;
    // The second argument is tokenizer_config.json; nothing in it is needed here.
    this.lib = new LibraryTokenizer(structuredClone(json), {});
    this.addedByContent = new Map(json.added_tokens.map((t) => [t.content, t]));
    let max = -1;
    for (const id of this.lib.get_vocab(true).values()) max = Math.max(max, id);
    this.vocabSize = max + 1;
  }

  encode(text: string): number[] {
    // No post-processor tokens (bos/eos): the prompt builder places special tokens itself.
    return this.lib.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    if (ids.length === 0) return ''; // the library rejects an empty list
    ids.forEach((id, i) => {
      if (this.lib.id_to_token(id) === undefined) throw new RangeError(`decode: ids[${i}] = ${id} is not a token id (vocabSize ${this.vocabSize})`);
    });
    return this.lib.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? false, clean_up_tokenization_spaces: false });
  }

  tokenToId(token: string): number | undefined {
    return this.addedByContent.get(token)?.id ?? this.lib.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.lib.id_to_token(id);
  }

  toJSON(): HfTokenizerJson {
    return structuredClone(this.json);
  }
}
