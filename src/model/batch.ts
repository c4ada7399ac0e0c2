/**
 * Turns notes into model inputs: render the prompt (prompt.ts), encode it, expand `<IMG>` into
 * the connector's token count, right-pad to the longest prompt of the batch.
 */
import { tf } from '../backend';
import type { Note } from '../data/schema';
import type { ResolvedModelConfig } from './config';
import { encodePrompt, promptKindFor, renderPrompt, type EncodedPrompt, type PromptTokenizer } from './prompt';
import type { ModelInputs, VisionFeatures } from './notellm2';

/** The encoded prompts of a batch, before they become tensors. */
export interface EncodedBatch {
  /** Row-major int32 ids [b, t], right-padded with the pad id. */
  ids: Int32Array;
  b: number;
  t: number;
  lastIndex: number[];
  visualIndex: number;
  imageStart: number;
}

/**
 * Caches each note's encoded prompt: encoding is pure in (note, config, tokenizer), and
 * training visits every note many times.
 */
export class PromptEncoder {
  private readonly cache = new Map<string, EncodedPrompt>();

  constructor(
    readonly tokenizer: PromptTokenizer,
    readonly cfg: ResolvedModelConfig,
    /** Image slots per prompt (NoteLLM2Model.imageTokens). */
    readonly imageTokens: number,
  ) {}

  encodeNote(note: Note, key = note.id): EncodedPrompt {
    let enc = this.cache.get(key);
    if (!enc) {
      const prompt = renderPrompt(promptKindFor(this.cfg), note, this.cfg.text);
      enc = encodePrompt(this.tokenizer, prompt, this.imageTokens, this.cfg.text.maxTokens);
      this.cache.set(key, enc);
    }
    return enc;
  }

  /** Encodes and pads a batch; the image slots and n_v position must agree across it (the image leads every prompt). */
  encode(notes: readonly Note[], keys?: readonly string[]): EncodedBatch {
    const encs = notes.map((n, i) => this.encodeNote(n, keys?.[i] ?? n.id));
    const b = encs.length;
    const t = Math.max(...encs.map((e) => e.ids.length));
    const ids = new Int32Array(b * t).fill(this.tokenizer.padId);
    encs.forEach((e, row) => ids.set(e.ids, row * t));
    const imageStart = encs[0].imageStart;
    const visualIndex = encs[0].visualIndex;
    encs.forEach((e, row) => {
      if (e.imageStart !== imageStart || e.visualIndex !== visualIndex) {
        throw new Error(
          `batch: note ${notes[row].id} has its image slots at ${e.imageStart} and n_v at ${e.visualIndex}, ` +
            `but the batch's first note has ${imageStart} and ${visualIndex} (the template must put the image first)`,
        );
      }
    });
    return { ids, b, t, lastIndex: encs.map((e) => e.lastIndex), visualIndex, imageStart };
  }
}

/** Wraps an encoded batch (and vision input) as ModelInputs; the caller disposes `ids` (and what it passed). */
export function toModelInputs(enc: EncodedBatch, vision?: VisionFeatures | { images: tf.Tensor4D }): ModelInputs {
  const base: ModelInputs = {
    ids: tf.tensor2d(enc.ids, [enc.b, enc.t], 'int32'),
    lastIndex: enc.lastIndex,
    visualIndex: enc.visualIndex,
    imageStart: enc.imageStart,
  };
  if (vision && 'images' in vision) base.images = vision.images;
  else if (vision) base.vision = vision;
  return base;
}
