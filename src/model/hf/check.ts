/**
 * `checkHfFolder`: imports a Hugging Face checkpoint folder, runs it on the inputs of its
 * `reference.json` and compares every output listed there with what transformers computed
 * (what `notellm2 hf check` prints; format in reference.ts).
 *
 * Language models (Llama, Qwen2): the reference rows are right-padded (docs/method.md
 * "Prompts"). This port masks nothing but the future, so pad positions see the pads before
 * them where transformers' key-padding mask hides them; real-token positions never see a pad
 * and are the ones compared. Output names and what they are compared with:
 *
 *   hidden_states[i], i < L        → DecoderLM hiddenStates[i] (embeddings, then layer outputs)
 *   hidden_states[L]               → the final-normed state (transformers replaces the raw last entry)
 *   last_layer_output_before_norm  → hiddenStates[L]
 *   last_hidden_state              → the final-normed state
 *   logits                         → logits at every real position
 *   logits_last_token              → logits at each row's last real token (attention_mask.sum − 1)
 *   logits_last_position           → logits at position t − 1, rows where it is a real token
 */
import { tf } from '../../backend';
import { finishReport, maxAbsDiff, readHfReference, DEFAULT_REFERENCE_TOLERANCE, type HfReference, type OutputComparison, type RefTensor, type ReferenceReport } from './reference';
import { HF_LM_ARCHITECTURES, importHfLM, isHfLMArchitecture, type HfLMArchitecture } from './llama';
import { compareVisionReference, HF_VISION_CLASSES } from './vision';

/** The language-model outputs `hf check` can produce. */
export const HF_LM_OUTPUTS = [
  'hidden_states',
  'last_layer_output_before_norm',
  'last_hidden_state',
  'logits',
  'logits_last_token',
  'logits_last_position',
] as const;

export interface HfCheckOptions {
  /** Largest |got − ref| accepted. Defaults to DEFAULT_REFERENCE_TOLERANCE (1e-4). */
  tolerance?: number;
}

/** Compares a checkpoint folder with its reference.json; dispatches on `model_class`. */
export async function checkHfFolder(folder: string, opts: HfCheckOptions = {}): Promise<ReferenceReport> {
  const tolerance = opts.tolerance ?? DEFAULT_REFERENCE_TOLERANCE;
  if (!(typeof tolerance === 'number' && tolerance >= 0 && Number.isFinite(tolerance))) {
    throw new Error(`checkHfFolder: tolerance must be a finite number ≥ 0, got ${tolerance}`);
  }
  const ref = await readHfReference(folder);
  const cls = ref.modelClass;
  switch (cls) {
    case 'LlamaForCausalLM':
    case 'LlamaModel':
    case 'Qwen2ForCausalLM':
    case 'Qwen2Model':
      return compareLMReference(folder, ref, cls, tolerance);
    default:
      if (cls in HF_VISION_CLASSES) return compareVisionReference(folder, ref, tolerance);
      throw new Error(`${ref.path}: model_class "${cls}" is not supported; supported: ${[...HF_LM_ARCHITECTURES, ...Object.keys(HF_VISION_CLASSES)].join(', ')}`);
  }
}

/** Integer rows of reference.json (`input_ids`, `attention_mask`): rectangular, integers. */
function intRows(v: unknown, name: string, where: string): number[][] {
  if (!Array.isArray(v) || v.length === 0 || !v.every((r) => Array.isArray(r) && r.length > 0 && r.length === (v[0] as unknown[]).length)) {
    throw new Error(`${where}: inputs.${name} must be a non-empty rectangular array of rows`);
  }
  for (const r of v as unknown[][]) {
    for (const x of r) if (!Number.isInteger(x)) throw new Error(`${where}: inputs.${name} holds ${JSON.stringify(x)}, expected integers`);
  }
  return v as number[][];
}

/** Runs an imported LM on the reference's inputs and compares every listed output. */
export async function compareLMReference(folder: string, ref: HfReference, cls: HfLMArchitecture, tolerance: number): Promise<ReferenceReport> {
  if (!isHfLMArchitecture(cls)) throw new Error(`compareLMReference: ${cls} is not a language model class`);
  const ids = intRows(ref.inputs.input_ids, 'input_ids', ref.path);
  const [b, t] = [ids.length, ids[0].length];
  const mask = ref.inputs.attention_mask === undefined ? ids.map((r) => r.map(() => 1)) : intRows(ref.inputs.attention_mask, 'attention_mask', ref.path);
  if (mask.length !== b || mask[0].length !== t) throw new Error(`${ref.path}: inputs.attention_mask is [${mask.length}, ${mask[0].length}] but input_ids is [${b}, ${t}]`);
  // Right padding only: a row is 1 … 1 0 … 0 with at least one 1.
  const lengths = mask.map((row, i) => {
    const n = row.filter((x) => x === 1).length;
    if (row.some((x) => x !== 0 && x !== 1) || n === 0 || row.slice(0, n).some((x) => x !== 1)) {
      throw new Error(`${ref.path}: inputs.attention_mask row ${i} is ${JSON.stringify(row)}; hf check needs right-padded rows (1 … 1 then 0 … 0, at least one 1)`);
    }
    return n;
  });

  const { lm, store, spec } = await importHfLM(folder, { architecture: cls });
  try {
    const vocab = spec.lm.vocabSize;
    ids.forEach((row, i) => row.forEach((x, j) => {
      if (x < 0 || x >= vocab) throw new Error(`${ref.path}: inputs.input_ids[${i}][${j}] = ${x} is outside the vocabulary 0 … ${vocab - 1}`);
    }));
    const L = spec.lm.nLayers;
    // One forward pass; everything read back as plain arrays, no tensor outlives the tidy.
    const kept = tf.tidy(() => {
      const out = lm.forward(lm.embed(tf.tensor2d(ids, [b, t], 'int32')));
      return { hidden: out.hiddenStates, last: out.last, logits: lm.layout.head === 'none' ? [] : [lm.logits(out.last)] };
    });
    const arr = (x: tf.Tensor): RefTensor => ({ shape: [...x.shape], data: Float32Array.from(x.dataSync() as Float32Array) });
    const got = { hidden: kept.hidden.map(arr), last: arr(kept.last), logits: kept.logits.length ? arr(kept.logits[0]) : null };
    tf.dispose([...kept.hidden, kept.last, ...kept.logits]);

    const realPositions = lengths.reduce((a, n) => a + n, 0);
    const realNote = `real tokens only: ${realPositions} of ${b * t} positions have attention_mask 1; pad positions are not compared`;
    /** keep(flat index) for a [b, t, …] tensor of `inner` values per position. */
    const realOnly = (inner: number) => (i: number) => {
      const pos = Math.floor(i / inner);
      return pos % t < lengths[Math.floor(pos / t)];
    };
    const outputs: OutputComparison[] = [];
    const compare = (name: string, mine: RefTensor | null, theirs: RefTensor, keep?: (i: number) => boolean, note?: string, missing?: string) => {
      if (!mine) {
        outputs.push({ name, maxAbsDiff: NaN, compared: 0, note: missing });
        return;
      }
      try {
        const r = maxAbsDiff(mine, theirs, keep);
        outputs.push({ name, maxAbsDiff: r.max, compared: r.compared, note });
      } catch (e) {
        outputs.push({ name, maxAbsDiff: NaN, compared: 0, note: (e as Error).message });
      }
    };
    const single = (name: string): RefTensor | null => {
      const v = ref.outputs[name];
      if (Array.isArray(v)) {
        outputs.push({ name, maxAbsDiff: NaN, compared: 0, note: 'expected one tensor, reference.json holds a list' });
        return null;
      }
      return v;
    };
    const noHead = `${cls} has no LM head`;
    /** Rows of [b, t, v] logits at one position per row → [rows, v]. */
    const pick = (x: RefTensor, pos: number[]): RefTensor => {
      const v = x.shape[2];
      const data = new Float32Array(b * v);
      pos.forEach((p, r) => data.set(x.data.subarray((r * t + p) * v, (r * t + p + 1) * v), r * v));
      return { shape: [b, v], data };
    };

    for (const name of Object.keys(ref.outputs)) {
      switch (name) {
        case 'hidden_states': {
          const list = ref.outputs[name];
          if (!Array.isArray(list)) {
            outputs.push({ name, maxAbsDiff: NaN, compared: 0, note: 'expected a list of L + 1 tensors' });
            break;
          }
          if (list.length !== L + 1) {
            outputs.push({ name, maxAbsDiff: NaN, compared: 0, note: `reference.json lists ${list.length} entries, the model has ${L} layers (L + 1 = ${L + 1} expected)` });
            break;
          }
          list.forEach((r, i) => {
            // transformers' last entry is the final-normed state, not the raw layer output.
            const mine = i < L ? got.hidden[i] : got.last;
            const d = r.shape[2] ?? 1;
            compare(`hidden_states[${i}]`, mine, r, realOnly(d), i === L ? `final-normed, as transformers returns it; ${realNote}` : realNote);
          });
          break;
        }
        case 'last_layer_output_before_norm': {
          const r = single(name);
          if (r) compare(name, got.hidden[L], r, realOnly(spec.lm.dim), realNote);
          break;
        }
        case 'last_hidden_state': {
          const r = single(name);
          if (r) compare(name, got.last, r, realOnly(spec.lm.dim), realNote);
          break;
        }
        case 'logits': {
          const r = single(name);
          if (r) compare(name, got.logits, r, realOnly(spec.lm.vocabSize), realNote, noHead);
          break;
        }
        case 'logits_last_token': {
          const r = single(name);
          if (r) compare(name, got.logits && pick(got.logits, lengths.map((n) => n - 1)), r, undefined, 'at attention_mask.sum − 1 of each row (always a real token)', noHead);
          break;
        }
        case 'logits_last_position': {
          const r = single(name);
          if (!r) break;
          const padded = lengths.map((n, i) => (n < t ? i : -1)).filter((i) => i >= 0);
          const v = spec.lm.vocabSize;
          const note = padded.length
            ? `position ${t - 1}; row${padded.length > 1 ? 's' : ''} ${padded.join(', ')} skipped: a pad position there`
            : `position ${t - 1} (a real token in every row)`;
          compare(name, got.logits && pick(got.logits, ids.map(() => t - 1)), r, (i) => lengths[Math.floor(i / v)] === t, note, noHead);
          break;
        }
        default:
          outputs.push({ name, maxAbsDiff: NaN, compared: 0, note: `not an output hf check produces for ${cls}; known: ${HF_LM_OUTPUTS.join(', ')}` });
      }
    }
    return finishReport(folder, cls, tolerance, outputs);
  } finally {
    store.dispose();
  }
}
