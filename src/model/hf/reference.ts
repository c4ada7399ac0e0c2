/**
 * Reference outputs computed by Hugging Face transformers for a checkpoint folder
 * (`<folder>/reference.json`), and the comparison `notellm2 hf check` prints.
 *
 * Format: `{ model_class, inputs: {...}, outputs: {...}, semantics?, ... }`, where every tensor
 * is `{ shape, dtype: "float32", b64 }`, `b64` being base64 of the little-endian float32 bytes
 * in row-major order. An output may also be a list of such tensors (`hidden_states`).
 * Language models give `inputs.input_ids` and `inputs.attention_mask` as nested integer
 * arrays; vision models give `inputs.pixel_values` [n, 3, H, W] (NCHW) as a tensor.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';

/** One decoded float32 tensor. */
export interface RefTensor {
  shape: number[];
  data: Float32Array;
}

export interface HfReference {
  /** The file read, for messages. */
  path: string;
  /** transformers class that produced the outputs, e.g. `LlamaForCausalLM`. */
  modelClass: string;
  /** Raw inputs as written (integer arrays or encoded tensors). */
  inputs: Record<string, unknown>;
  /** Outputs by name: one tensor, or a list (hidden_states). */
  outputs: Record<string, RefTensor | RefTensor[]>;
}

export const REFERENCE_FILE = 'reference.json';
/** Largest |got − ref| accepted by `hf check` unless told otherwise. */
export const DEFAULT_REFERENCE_TOLERANCE = 1e-4;

function isEncoded(v: unknown): v is { shape: number[]; b64: string; dtype?: string } {
  return typeof v === 'object' && v !== null && 'b64' in v && 'shape' in v;
}

/** Decodes one `{shape, dtype, b64}` entry; `where` names it in errors. */
export function decodeRefTensor(v: unknown, where: string): RefTensor {
  if (!isEncoded(v)) throw new Error(`${where}: expected {shape, dtype: "float32", b64}`);
  if (v.dtype !== undefined && v.dtype !== 'float32') throw new Error(`${where}: dtype "${v.dtype}" is not supported (float32 expected)`);
  if (!Array.isArray(v.shape) || !v.shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new Error(`${where}: shape ${JSON.stringify(v.shape)} must be non-negative integers`);
  }
  const buf = Buffer.from(v.b64, 'base64');
  const n = v.shape.reduce((a, b) => a * b, 1);
  if (buf.length !== n * 4) throw new Error(`${where}: ${buf.length} bytes of data, shape ${JSON.stringify(v.shape)} needs ${n * 4}`);
  const data = new Float32Array(n);
  new Uint8Array(data.buffer).set(buf);
  return { shape: v.shape, data };
}

/** Reads and decodes `<folder>/reference.json`. */
export async function readHfReference(folder: string): Promise<HfReference> {
  const path = join(folder, REFERENCE_FILE);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(await fsp.readFile(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${path}: cannot read the reference outputs: ${(e as Error).message}`);
  }
  const modelClass = raw.model_class;
  if (typeof modelClass !== 'string') throw new Error(`${path}: field "model_class" must name the transformers class`);
  const inputs = raw.inputs;
  const outputsRaw = raw.outputs;
  if (typeof inputs !== 'object' || inputs === null) throw new Error(`${path}: field "inputs" must be an object`);
  if (typeof outputsRaw !== 'object' || outputsRaw === null) throw new Error(`${path}: field "outputs" must be an object`);
  const outputs: HfReference['outputs'] = {};
  for (const [name, v] of Object.entries(outputsRaw as Record<string, unknown>)) {
    outputs[name] = Array.isArray(v)
      ? v.map((t, i) => decodeRefTensor(t, `${path}: outputs.${name}[${i}]`))
      : decodeRefTensor(v, `${path}: outputs.${name}`);
  }
  return { path, modelClass, inputs: inputs as Record<string, unknown>, outputs };
}

/** One compared output (or an entry of a listed output, named `hidden_states[2]`). */
export interface OutputComparison {
  name: string;
  /** Largest |got − ref| over the compared positions; NaN when it could not be produced. */
  maxAbsDiff: number;
  /** Values compared (fewer than the tensor's size when pad positions were skipped). */
  compared: number;
  /** Why it was not produced, or what was skipped. */
  note?: string;
}

export interface ReferenceReport {
  folder: string;
  modelClass: string;
  tolerance: number;
  outputs: OutputComparison[];
  /** Every listed output produced and within the tolerance. */
  ok: boolean;
}

/**
 * Largest |a − b| over the entries where `keep(i)` (every entry when omitted); shapes must
 * agree. NaN anywhere compared gives NaN (never a silent pass).
 */
export function maxAbsDiff(got: RefTensor, ref: RefTensor, keep?: (flatIndex: number) => boolean): { max: number; compared: number } {
  if (got.shape.length !== ref.shape.length || got.shape.some((d, i) => d !== ref.shape[i])) {
    throw new Error(`shape [${got.shape}] differs from the reference's [${ref.shape}]`);
  }
  let max = 0;
  let compared = 0;
  for (let i = 0; i < ref.data.length; i++) {
    if (keep && !keep(i)) continue;
    const d = Math.abs(got.data[i] - ref.data[i]);
    if (!(d <= max)) max = Number.isNaN(d) ? NaN : d;
    if (Number.isNaN(max)) return { max: NaN, compared: compared + 1 };
    compared++;
  }
  return { max, compared };
}

/** Builds the report: ok when every output was produced and is within the tolerance. */
export function finishReport(folder: string, modelClass: string, tolerance: number, outputs: OutputComparison[]): ReferenceReport {
  const ok = outputs.length > 0 && outputs.every((o) => Number.isFinite(o.maxAbsDiff) && o.maxAbsDiff <= tolerance);
  return { folder, modelClass, tolerance, outputs, ok };
}

/** Human-readable lines: one per output, then the verdict. */
export function formatReport(r: ReferenceReport): string {
  const width = Math.max(...r.outputs.map((o) => o.name.length), 6);
  const lines = r.outputs.map((o) => {
    const diff = Number.isFinite(o.maxAbsDiff) ? o.maxAbsDiff.toExponential(2) : 'not produced';
    const mark = Number.isFinite(o.maxAbsDiff) && o.maxAbsDiff <= r.tolerance ? 'ok  ' : 'FAIL';
    return `${mark} ${o.name.padEnd(width)}  max |diff| ${diff}${o.note ? `  (${o.note})` : ''}`;
  });
  lines.push(`${r.ok ? 'OK' : 'FAILED'}: ${r.modelClass} in ${r.folder}, tolerance ${r.tolerance}`);
  return lines.join('\n');
}
