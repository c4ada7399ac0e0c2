/**
 * Unimodal LM pretraining: next-token prediction on a text corpus (docs/method.md "Architecture":
 * the LLM arrives already trained on text before it is glued to the vision encoder).
 *
 * Every document becomes `<bos> text <eos>`. Two layouts:
 * - 'pack' (default): the training documents are concatenated into one token stream and cut
 *   into windows of seqLen + 1 tokens at stride seqLen (inputs = window[0 … T−1], targets =
 *   window[1 … T]); the usual GPT layout, no compute spent on padding. A document may start
 *   mid-window: `<bos>` marks where it does, and the model learns to start afresh after it.
 * - 'pad': one document per row, truncated to seqLen + 1 tokens, right-padded to the longest
 *   row of the batch; targets on pads are IGNORE_INDEX.
 *
 * Legend: b sequences per batch, t = seqLen tokens, d width, v vocabulary.
 */
import { Rng, tf } from '../backend';
import type { TextTokenizer } from '../data/tokenizer';
import type { DecoderLM } from '../model/lm';
import { IGNORE_INDEX, tokenCrossEntropy } from './loss';
import type { TrainTask } from './trainer';

export type LMPacking = 'pack' | 'pad';
export const LM_PACKINGS: readonly LMPacking[] = ['pack', 'pad'];

/** Token rows: `inputs[i]` and `targets[i]` have the same length (targets shifted by one). */
export interface LMWindows {
  inputs: number[][];
  targets: number[][];
  /** Non-ignored target tokens over all rows. */
  tokens: number;
}

/** `<bos> text <eos>` token ids of each document. */
export function encodeDocuments(docs: readonly string[], tokenizer: TextTokenizer): number[][] {
  return docs.map((d) => [tokenizer.bosId, ...tokenizer.encode(d), tokenizer.eosId]);
}

/**
 * Cuts encoded documents into training rows (see the file comment for the two layouts).
 * 'pack': the tail shorter than a full window is kept, its missing targets IGNORE_INDEX, its
 * inputs padded with `padId`. 'pad': rows keep their own length; batches pad them.
 */
export function makeWindows(encoded: readonly number[][], seqLen: number, packing: LMPacking, padId: number): LMWindows {
  if (!Number.isInteger(seqLen) || seqLen < 2) throw new Error(`pretrainLM: seqLen must be an integer ≥ 2, got ${seqLen}`);
  const inputs: number[][] = [];
  const targets: number[][] = [];
  let tokens = 0;
  if (packing === 'pack') {
    const stream = encoded.flat();
    for (let start = 0; start + 1 < stream.length; start += seqLen) {
      const win = stream.slice(start, start + seqLen + 1);
      const inp = win.slice(0, -1);
      const tgt = win.slice(1);
      tokens += tgt.length;
      while (inp.length < seqLen) inp.push(padId);
      while (tgt.length < seqLen) tgt.push(IGNORE_INDEX);
      inputs.push(inp);
      targets.push(tgt);
    }
  } else if (packing === 'pad') {
    for (const doc of encoded) {
      const win = doc.slice(0, seqLen + 1);
      if (win.length < 2) continue;
      inputs.push(win.slice(0, -1));
      targets.push(win.slice(1));
      tokens += win.length - 1;
    }
  } else {
    throw new Error(`pretrainLM: packing must be one of ${LM_PACKINGS.join(', ')}, got ${JSON.stringify(packing)}`);
  }
  return { inputs, targets, tokens };
}

/** Splits document indices into train / held-out (seeded; at least one of each when n ≥ 2 and frac > 0). */
export function splitHeldOut(n: number, frac: number, rng: Rng): { train: number[]; val: number[] } {
  if (!(frac >= 0 && frac < 1)) throw new Error(`pretrain: valFraction must be in [0, 1), got ${frac}`);
  const order = rng.shuffle(Array.from({ length: n }, (_, i) => i));
  const nVal = frac > 0 && n >= 2 ? Math.min(n - 1, Math.max(1, Math.round(frac * n))) : 0;
  const val = order.slice(0, nVal).sort((a, b) => a - b);
  const train = order.slice(nVal).sort((a, b) => a - b);
  return { train, val };
}

export interface LMBatch {
  ids: tf.Tensor2D; // int32 [b, t]
  targets: number[]; // flat [b·t]
}

/** Right-pads rows to the longest one: ids with padId, targets with IGNORE_INDEX. */
function padRows(rows: number[][], tgts: number[][], padId: number): LMBatch {
  const t = Math.max(...rows.map((r) => r.length));
  const ids = new Int32Array(rows.length * t).fill(padId);
  const targets = new Array<number>(rows.length * t).fill(IGNORE_INDEX);
  rows.forEach((r, i) => {
    ids.set(r, i * t);
    tgts[i].forEach((v, j) => (targets[i * t + j] = v));
  });
  return { ids: tf.tensor2d(ids, [rows.length, t], 'int32'), targets };
}

/** Mean next-token cross-entropy of a batch: embed → decoder → head → CE (pads ignored). */
export function lmLoss(lm: DecoderLM, b: LMBatch): tf.Scalar {
  return tf.tidy(() => {
    const h = lm.forward(lm.embed(b.ids)).last; // [b, t, d]
    return tokenCrossEntropy(lm.logits(h), b.targets); // logits [b, t, v]
  });
}

/** The trainer's view of next-token prediction: one example = one row. */
export function lmTask(lm: DecoderLM, train: LMWindows, val: LMWindows, padId: number): TrainTask<LMBatch> {
  return {
    trainSize: train.inputs.length,
    valSize: val.inputs.length,
    notesPerExample: 1,
    batch(split, idx) {
      const w = split === 'train' ? train : val;
      return padRows(idx.map((i) => w.inputs[i]), idx.map((i) => w.targets[i]), padId);
    },
    loss: (b) => lmLoss(lm, b),
    disposeBatch: (b) => b.ids.dispose(),
  };
}

/**
 * Token-weighted mean cross-entropy (nats/token) over rows, in batches of `batchSize`; its
 * exp is the perplexity. NaN when the rows hold no target token.
 */
export function evaluateLM(lm: DecoderLM, w: LMWindows, rows: readonly number[], padId: number, batchSize: number): number {
  let nll = 0;
  let count = 0;
  for (let i = 0; i < rows.length; i += batchSize) {
    const sel = rows.slice(i, i + batchSize);
    const b = padRows(sel.map((r) => w.inputs[r]), sel.map((r) => w.targets[r]), padId);
    const n = b.targets.filter((v) => v !== IGNORE_INDEX).length;
    const l = lmLoss(lm, b);
    nll += l.dataSync()[0] * n;
    count += n;
    l.dispose();
    b.ids.dispose();
  }
  return count > 0 ? nll / count : NaN;
}

/**
 * Held-out perplexity of an add-one-smoothed unigram model fitted on the training targets: the
 * bar a next-token model must clear to show it uses context at all. NaN without val tokens.
 */
export function unigramPerplexity(train: LMWindows, val: LMWindows, vocabSize: number): number {
  const counts = new Float64Array(vocabSize).fill(1);
  let total = vocabSize;
  for (const row of train.targets) for (const t of row) if (t !== IGNORE_INDEX) { counts[t]++; total++; }
  let nll = 0;
  let n = 0;
  for (const row of val.targets) for (const t of row) if (t !== IGNORE_INDEX) { nll -= Math.log(counts[t] / total); n++; }
  return n > 0 ? Math.exp(nll / n) : NaN;
}
