/**
 * How much of the LLM a representation run trains (`--lm-train full|last:N|lora:R`), and the
 * weight layout each mode implies (docs/architecture.md "Compute"):
 *
 *   full      every LM parameter trainable, all in the store (the default, as before)
 *   last:N    the last N decoder layers and the final norm trainable; the other layers'
 *             projections and the token embedding frozen in native memory
 *   lora:R    rank-R LoRA adapters (A [in, R] random, B [R, out] zero, scale alpha/R) on the
 *             attention projections q, k, v, o of every layer; every base weight frozen in
 *             native memory. alpha defaults to 2·R (scale 2, the usual r = 8, alpha = 16);
 *             `lora:R:ALPHA` sets it.
 *
 * Frozen matrices (projection weights, the token embedding, an untied head) are NativeMatrix
 * values (backend/native-matmul.ts): they never enter the wasm heap nor any variable list, so
 * the optimiser cannot touch them; their products run on ONNX Runtime reading them where they
 * lie. Frozen norms and biases stay in the store, untrainable (they are tiny).
 *
 * Around a mode: `buildLMForTraining` lays a model out (moving store weights out, or creating
 * frozen ones natively with the store's own init), `lmTrainedPaths` lists exactly the trained
 * tensors, `exportTrainedLM` / `loadTrainedLM` hold and restore only those, `growLMVocab` adds
 * rows for new special tokens, `lmWeights` gives every weight with LoRA merged (what the
 * Hugging Face writer in hf/llama.ts saves).
 *
 * Dimension legend: v vocabulary, d width, r LoRA rank, in/out a projection's widths.
 */
import { Rng } from '../backend';
import { NativeMatrix } from '../backend/native-matmul';
import { ParamStore, type ParamRecord } from './params';
import { loraPaths, type Linear } from './layers';
import { releaseMergedWeight } from './block-grad';
import {
  DecoderLM, DEFAULT_LORA_TARGETS, LM_PROJECTIONS, lmLayout, projectionPath, resolveLMConfig,
  type DecoderLMOptions, type LMConfig, type LMProjection, type ResolvedLMConfig,
} from './lm';

export type LMTrainMode =
  | { kind: 'full' }
  | { kind: 'last'; layers: number }
  | { kind: 'lora'; rank: number; alpha: number };

/** The spellings parseLMTrain accepts. */
export const LM_TRAIN_FORMS: readonly string[] = ['full', 'last:N', 'lora:R', 'lora:R:ALPHA'];

/** LoRA's alpha when the spec does not give one: alpha = 2·rank (scale alpha/rank = 2). */
export const DEFAULT_LORA_ALPHA_PER_RANK = 2;

/** The projections LoRA adapts in `lora:R`: attention's q, k, v, o. */
export const LORA_TARGETS: readonly LMProjection[] = DEFAULT_LORA_TARGETS;

/** Parses `full`, `last:N` (N ≥ 1), `lora:R` or `lora:R:ALPHA`; errors list the valid forms. */
export function parseLMTrain(spec: string): LMTrainMode {
  const s = String(spec).trim();
  const bad = (why: string): never => {
    throw new Error(`--lm-train "${spec}": ${why}; valid forms: ${LM_TRAIN_FORMS.join(', ')} (e.g. full, last:4, lora:8)`);
  };
  const posInt = (x: string, what: string): number => {
    if (!/^[0-9]+$/.test(x) || Number(x) < 1) bad(`${what} must be a positive integer, got "${x}"`);
    return Number(x);
  };
  const parts = s.split(':');
  switch (parts[0]) {
    case 'full':
      if (parts.length !== 1) bad('"full" takes no argument');
      return { kind: 'full' };
    case 'last':
      if (parts.length !== 2) bad('"last" takes one argument, the number of layers');
      return { kind: 'last', layers: posInt(parts[1], 'the number of layers N') };
    case 'lora': {
      if (parts.length !== 2 && parts.length !== 3) bad('"lora" takes the rank and optionally alpha');
      const rank = posInt(parts[1], 'the rank R');
      let alpha = DEFAULT_LORA_ALPHA_PER_RANK * rank;
      if (parts.length === 3) {
        alpha = Number(parts[2]);
        if (!/^[0-9.eE+-]+$/.test(parts[2]) || !Number.isFinite(alpha) || alpha <= 0) bad(`alpha must be a positive number, got "${parts[2]}"`);
      }
      return { kind: 'lora', rank, alpha };
    }
    default:
      return bad(`unknown mode "${parts[0]}"`);
  }
}

/** The canonical spelling of a mode (what parseLMTrain reads back to the same mode). */
export function formatLMTrain(mode: LMTrainMode): string {
  switch (mode.kind) {
    case 'full':
      return 'full';
    case 'last':
      return `last:${mode.layers}`;
    case 'lora':
      return mode.alpha === DEFAULT_LORA_ALPHA_PER_RANK * mode.rank ? `lora:${mode.rank}` : `lora:${mode.rank}:${mode.alpha}`;
    default: {
      const never: never = mode;
      throw new Error(`formatLMTrain: unknown mode ${JSON.stringify(never)}`);
    }
  }
}

function asMode(mode: LMTrainMode | string): LMTrainMode {
  return typeof mode === 'string' ? parseLMTrain(mode) : mode;
}

/** Checks a mode against a model (last:N needs N ≤ layers). */
export function checkLMTrain(mode: LMTrainMode, cfg: Pick<ResolvedLMConfig, 'nLayers'>): void {
  if (mode.kind === 'last' && mode.layers > cfg.nLayers) {
    throw new Error(`--lm-train last:${mode.layers}: the LLM has only ${cfg.nLayers} layers`);
  }
}

/** How many leading layers have frozen (native) projections: all under LoRA, nLayers − N under last:N, none under full. */
function frozenLayers(mode: LMTrainMode, nLayers: number): number {
  switch (mode.kind) {
    case 'full':
      return 0;
    case 'last':
      return nLayers - mode.layers;
    case 'lora':
      return nLayers;
    default: {
      const never: never = mode;
      throw new Error(`lm-train: unknown mode ${JSON.stringify(never)}`);
    }
  }
}

/**
 * Whether the weight at `path` is frozen and held outside the backend under `mode`: the
 * token embedding, an untied head and the projection weights of every frozen layer (all
 * layers under LoRA). Nothing under full. Norms and biases are never native.
 */
export function isNativePath(mode: LMTrainMode, cfg: Pick<ResolvedLMConfig, 'nLayers'>, prefix: string, path: string): boolean {
  if (mode.kind === 'full') return false;
  if (path === `${prefix}.embed.weight` || path === `${prefix}.head.weight`) return true;
  if (!path.startsWith(`${prefix}.layers.`)) return false;
  const m = /^(\d+)\.(attn\.(q|k|v|o)|mlp\.(gate|up|down))\.weight$/.exec(path.slice(prefix.length + '.layers.'.length));
  if (!m) return false;
  return Number(m[1]) < frozenLayers(mode, cfg.nLayers);
}

/** Every path whose weight isNativePath, in a fixed order (embedding, layers, head). */
export function lmNativePaths(mode: LMTrainMode, cfg: ResolvedLMConfig, prefix = 'lm'): string[] {
  if (mode.kind === 'full') return [];
  const out = [`${prefix}.embed.weight`];
  for (let i = 0; i < frozenLayers(mode, cfg.nLayers); i++) for (const p of LM_PROJECTIONS) out.push(`${projectionPath(prefix, i, p)}.weight`);
  if (lmLayout(cfg).head === 'untied') out.push(`${prefix}.head.weight`);
  return out;
}

/** The DecoderLM options of a mode, given its native weights (layers with hand-written backward passes: block-grad.ts). */
export function lmOptionsFor(mode: LMTrainMode, native: ReadonlyMap<string, NativeMatrix>): DecoderLMOptions {
  return mode.kind === 'lora'
    ? { native, lora: { rank: mode.rank, alpha: mode.alpha, targets: LORA_TARGETS }, blockGrad: 'fused' }
    : { native, blockGrad: 'fused' };
}

/**
 * Exactly the store paths a mode trains, sorted (the trained tensors of a checkpoint that
 * holds only those): full — every LM parameter; last:N — everything under the last N layers
 * and the final norm; lora:R — the A and B factors of q, k, v, o in every layer.
 */
export function lmTrainedPaths(mode: LMTrainMode | string, cfg: LMConfig, prefix = 'lm'): string[] {
  const m = asMode(mode);
  const c = resolveLMConfig(cfg);
  checkLMTrain(m, c);
  const { qkvBias, oBias, mlpBias, head } = lmLayout(c);
  const out: string[] = [];
  const layer = (i: number) => {
    const p = `${prefix}.layers.${i}`;
    out.push(`${p}.attn_norm.weight`, `${p}.mlp_norm.weight`);
    for (const proj of LM_PROJECTIONS) {
      const lp = projectionPath(prefix, i, proj);
      out.push(`${lp}.weight`);
      const bias = proj === 'o' ? oBias : proj === 'q' || proj === 'k' || proj === 'v' ? qkvBias : mlpBias;
      if (bias) out.push(`${lp}.bias`);
    }
  };
  switch (m.kind) {
    case 'full':
      out.push(`${prefix}.embed.weight`, `${prefix}.norm.weight`);
      for (let i = 0; i < c.nLayers; i++) layer(i);
      if (head === 'untied') out.push(`${prefix}.head.weight`);
      break;
    case 'last':
      out.push(`${prefix}.norm.weight`);
      for (let i = c.nLayers - m.layers; i < c.nLayers; i++) layer(i);
      break;
    case 'lora':
      for (let i = 0; i < c.nLayers; i++) {
        for (const proj of LORA_TARGETS) {
          const lp = loraPaths(projectionPath(prefix, i, proj));
          out.push(lp.a, lp.b);
        }
      }
      break;
    default: {
      const never: never = m;
      throw new Error(`lmTrainedPaths: unknown mode ${JSON.stringify(never)}`);
    }
  }
  return out.sort();
}

/**
 * Sets the store's trainable flags under `prefix` to the mode's (rules by prefix, so they
 * also hold for parameters created later under the same paths).
 */
export function applyLMTrainFlags(store: ParamStore, mode: LMTrainMode, cfg: ResolvedLMConfig, prefix = 'lm'): void {
  switch (mode.kind) {
    case 'full':
      store.setTrainable(prefix, true);
      return;
    case 'last':
      store.setTrainable(prefix, false);
      store.setTrainable(`${prefix}.norm`, true);
      for (let i = cfg.nLayers - mode.layers; i < cfg.nLayers; i++) store.setTrainable(`${prefix}.layers.${i}`, true);
      return;
    case 'lora':
      store.setTrainable(prefix, false);
      for (let i = 0; i < cfg.nLayers; i++) {
        for (const proj of LORA_TARGETS) {
          const lp = loraPaths(projectionPath(prefix, i, proj));
          store.setTrainable(lp.a, true);
          store.setTrainable(lp.b, true);
        }
      }
      return;
    default: {
      const never: never = mode;
      throw new Error(`applyLMTrainFlags: unknown mode ${JSON.stringify(never)}`);
    }
  }
}

/** The shape of the weight at a native path (this project's [in, out] layout; [v, d] for the embedding). */
function nativeShape(cfg: ResolvedLMConfig, prefix: string, path: string): [number, number] {
  const { headDim, nKVHeads } = lmLayout(cfg);
  if (path === `${prefix}.embed.weight`) return [cfg.vocabSize, cfg.dim];
  if (path === `${prefix}.head.weight`) return [cfg.dim, cfg.vocabSize];
  const proj = /\.(q|k|v|o|gate|up|down)\.weight$/.exec(path)?.[1] as LMProjection | undefined;
  const q = cfg.nHeads * headDim, kv = nKVHeads * headDim;
  switch (proj) {
    case 'q': return [cfg.dim, q];
    case 'k':
    case 'v': return [cfg.dim, kv];
    case 'o': return [q, cfg.dim];
    case 'gate':
    case 'up': return [cfg.dim, cfg.mlpHidden];
    case 'down': return [cfg.mlpHidden, cfg.dim];
    default: throw new Error(`lm-train: "${path}" is not a weight that can be held natively`);
  }
}

/**
 * Every parameter of a DecoderLM of this config with its shape, in this project's layout
 * (embedding [v, d], projections [in, out], norms and biases [n], head [d, v]); no LoRA factors.
 */
export function lmParamShapes(cfg: LMConfig, prefix = 'lm'): Map<string, number[]> {
  const c = resolveLMConfig(cfg);
  const { qkvBias, oBias, mlpBias, head } = lmLayout(c);
  const out = new Map<string, number[]>();
  out.set(`${prefix}.embed.weight`, [c.vocabSize, c.dim]);
  for (let i = 0; i < c.nLayers; i++) {
    out.set(`${prefix}.layers.${i}.attn_norm.weight`, [c.dim]);
    out.set(`${prefix}.layers.${i}.mlp_norm.weight`, [c.dim]);
    for (const proj of LM_PROJECTIONS) {
      const path = projectionPath(prefix, i, proj);
      const shape = nativeShape(c, prefix, `${path}.weight`);
      out.set(`${path}.weight`, shape);
      const bias = proj === 'o' ? oBias : proj === 'q' || proj === 'k' || proj === 'v' ? qkvBias : mlpBias;
      if (bias) out.set(`${path}.bias`, [shape[1]]);
    }
  }
  out.set(`${prefix}.norm.weight`, [c.dim]);
  if (head === 'untied') out.set(`${prefix}.head.weight`, [c.dim, c.vocabSize]);
  return out;
}

export interface BuildLMOptions {
  /** Parameter path prefix. Defaults to 'lm'. */
  prefix?: string;
  /** Frozen weights already outside the backend (an importer's), by path. */
  native?: ReadonlyMap<string, NativeMatrix>;
}

/**
 * Lays out a DecoderLM for training in `mode` on `store`. Every weight the mode freezes into
 * native memory comes from `opts.native` when given there, else is moved out of the store when
 * the store holds it (a pretrained LM), else is created natively with exactly the values the
 * store would have initialised it with (Rng(store.seed).fork(path)) — so a 1B model is never
 * whole in the heap. Everything else is created in (or read from) the store as usual, LoRA
 * factors included, and the trainable flags are set to the mode's.
 */
export function buildLMForTraining(cfg: LMConfig, store: ParamStore, mode: LMTrainMode | string, opts: BuildLMOptions = {}): DecoderLM {
  const m = asMode(mode);
  const c = resolveLMConfig(cfg);
  checkLMTrain(m, c);
  const prefix = opts.prefix ?? 'lm';
  const given = opts.native ?? new Map<string, NativeMatrix>();
  const wanted = lmNativePaths(m, c, prefix);
  const extra = [...given.keys()].filter((k) => !wanted.includes(k));
  if (extra.length) throw new Error(`buildLMForTraining: native weights ${extra.slice(0, 4).join(', ')} are trainable under --lm-train ${formatLMTrain(m)}`);
  const native = new Map<string, NativeMatrix>();
  for (const path of wanted) {
    const [rows, cols] = nativeShape(c, prefix, path);
    const have = given.get(path);
    if (have) {
      if (have.rows !== rows || have.cols !== cols) throw new Error(`buildLMForTraining: native "${path}" is [${have.shape}], expected [${rows}, ${cols}]`);
      native.set(path, have);
      continue;
    }
    const moved = store.remove(path);
    if (moved) {
      if (moved.shape[0] !== rows || moved.shape[1] !== cols) throw new Error(`buildLMForTraining: store "${path}" is [${moved.shape}], expected [${rows}, ${cols}]`);
      native.set(path, new NativeMatrix(moved.data, rows, cols, path));
    } else {
      // The same values ParamStore.param would give this path ('normal', std initStd).
      native.set(path, new NativeMatrix(new Rng(store.seed).fork(path).normalArray(rows * cols, c.initStd), rows, cols, path));
    }
  }
  const lm = new DecoderLM(c, store, prefix, lmOptionsFor(m, native));
  applyLMTrainFlags(store, m, c, prefix);
  return lm;
}

/** The trained tensors of `lm` under `mode` (values copied out of the store), by path. */
export function exportTrainedLM(store: ParamStore, lm: DecoderLM, mode: LMTrainMode | string): ParamRecord {
  const out: ParamRecord = {};
  for (const path of lmTrainedPaths(mode, lm.cfg, lm.prefix)) {
    const v = store.get(path);
    out[path] = { shape: [...v.shape], data: Float32Array.from(v.dataSync() as Float32Array) };
  }
  return out;
}

/**
 * Loads a record of trained tensors (exportTrainedLM's) into a model laid out for the same
 * mode: the record must hold exactly the mode's trained paths (missing and unexpected ones
 * are errors naming them), with matching shapes. Frozen weights come from wherever the model
 * was built from (its base folder).
 */
export function loadTrainedLM(store: ParamStore, lm: DecoderLM, mode: LMTrainMode | string, record: ParamRecord): void {
  const want = lmTrainedPaths(mode, lm.cfg, lm.prefix);
  const have = Object.keys(record).filter((k) => k === lm.prefix || k.startsWith(`${lm.prefix}.`));
  const missing = want.filter((p) => !(p in record));
  const unexpected = have.filter((p) => !want.includes(p)).sort();
  if (missing.length || unexpected.length) {
    throw new Error(
      `loadTrainedLM (--lm-train ${formatLMTrain(asMode(mode))}): the record does not hold the trained tensors of this mode; ` +
        `missing ${missing.length} [${missing.slice(0, 4).join(', ')}${missing.length > 4 ? ', …' : ''}], ` +
        `unexpected ${unexpected.length} [${unexpected.slice(0, 4).join(', ')}${unexpected.length > 4 ? ', …' : ''}]`,
    );
  }
  store.load(Object.fromEntries(want.map((p) => [p, record[p]])), { strict: false });
}

/** Every Linear of the model with the path its weight has. */
function linears(lm: DecoderLM): Linear[] {
  const out: Linear[] = [];
  for (const layer of lm.layers) {
    out.push(layer.attn.q, layer.attn.k, layer.attn.v, layer.attn.o, layer.mlp.gate, layer.mlp.up, layer.mlp.down);
  }
  if (lm.head) out.push(lm.head);
  return out;
}

/**
 * W + (alpha/r)·A·B for one adapted Linear, in [in, out] layout (a new array; W is not
 * changed). Accumulated in float64 per output row.
 */
export function mergedLoraWeight(lin: Linear): Float32Array {
  const base = lin.native ? lin.native.data : (lin.weight.dataSync() as Float32Array);
  const out = Float32Array.from(base);
  if (!lin.lora) return out;
  const { rank, scale } = lin.lora;
  const a = lin.lora.a.dataSync() as Float32Array; // [in, r]
  const b = lin.lora.b.dataSync() as Float32Array; // [r, out]
  const n = lin.outDim;
  const row = new Float64Array(n);
  for (let i = 0; i < lin.inDim; i++) {
    row.fill(0);
    for (let k = 0; k < rank; k++) {
      const aik = a[i * rank + k] * scale;
      if (aik === 0) continue;
      const bo = k * n;
      for (let j = 0; j < n; j++) row[j] += aik * b[bo + j];
    }
    const o = i * n;
    for (let j = 0; j < n; j++) out[o + j] += row[j];
  }
  return out;
}

/** One weight of the model in this project's layout, produced on demand (large models: one at a time). */
export interface LMWeight {
  shape: number[];
  /** The values; native weights without an adapter are handed out as they are (not copied): do not write to them. */
  values: () => Float32Array;
}

/**
 * Every parameter of the LM (store and native) under its path in this project's layout, with
 * LoRA merged into the weights it adapts and the factors left out: what a Hugging Face export
 * writes (after renaming and transposing, hf/llama.ts).
 */
export function lmWeights(store: ParamStore, lm: DecoderLM): Map<string, LMWeight> {
  const out = new Map<string, LMWeight>();
  const adapted = new Map<string, Linear>();
  for (const lin of linears(lm)) if (lin.lora) adapted.set(`${lin.path}.weight`, lin);
  for (const [path, v] of store.entries(lm.prefix)) {
    if (/\.lora_[ab]$/.test(path)) continue;
    const lin = adapted.get(path);
    out.set(path, { shape: [...v.shape], values: lin ? () => mergedLoraWeight(lin) : () => Float32Array.from(v.dataSync() as Float32Array) });
  }
  if (lm.nativeEmbedding) {
    const e = lm.nativeEmbedding;
    out.set(`${lm.prefix}.embed.weight`, { shape: [e.rows, e.cols], values: () => e.data });
  }
  for (const lin of linears(lm)) {
    if (!lin.native) continue;
    const w = lin.native;
    out.set(`${lin.path}.weight`, { shape: [w.rows, w.cols], values: lin.lora ? () => mergedLoraWeight(lin) : () => w.data });
  }
  return new Map([...out].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Bytes of frozen weights the model holds outside the backend. */
export function lmNativeBytes(lm: DecoderLM): number {
  let n = lm.nativeEmbedding?.bytes ?? 0;
  for (const lin of linears(lm)) n += lin.native?.bytes ?? 0;
  return n;
}

/** Frees the model's native weights, merged adapter weights included (their memory goes with the last reference). */
export function releaseLMNative(lm: DecoderLM): void {
  lm.nativeEmbedding?.release();
  for (const lin of linears(lm)) {
    lin.native?.release();
    releaseMergedWeight(lin);
  }
}

/** [n, d] rows → their mean [d] (float64 accumulation). */
function meanRow(data: Float32Array, n: number, d: number): Float32Array {
  const acc = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) acc[j] += data[i * d + j];
  return Float32Array.from(acc, (x) => x / n);
}

/**
 * Grows the vocabulary to `newVocab` (special tokens added by the tokenizer): the token
 * embedding [v, d] gets newVocab − v rows, each the mean of the existing rows, and so does an
 * untied head [d, v] (new columns, the mean of the existing ones). Works whether the tables
 * are in the store or native. Returns a new DecoderLM over the same store and weights (the
 * old object must not be used any more); the trainable flags are unchanged (rules by path).
 * newVocab = v returns a rebuilt model with nothing changed; shrinking is an error.
 */
export function growLMVocab(store: ParamStore, lm: DecoderLM, newVocab: number): DecoderLM {
  const v = lm.cfg.vocabSize, d = lm.cfg.dim;
  if (!Number.isInteger(newVocab) || newVocab < v) throw new Error(`growLMVocab: the new vocabulary (${newVocab}) must be an integer ≥ the current ${v}`);
  const native = new Map(lm.options.native ?? []);
  const embPath = `${lm.prefix}.embed.weight`;
  const growRows = (data: Float32Array): Float32Array => {
    const out = new Float32Array(newVocab * d);
    out.set(data.subarray(0, v * d));
    const mean = meanRow(data, v, d);
    for (let i = v; i < newVocab; i++) out.set(mean, i * d);
    return out;
  };
  // [d, v] → [d, newVocab]: each row of the head gets its own mean in the new columns.
  const growCols = (data: Float32Array): Float32Array => {
    const out = new Float32Array(d * newVocab);
    for (let i = 0; i < d; i++) {
      const row = data.subarray(i * v, (i + 1) * v);
      let s = 0;
      for (let j = 0; j < v; j++) s += row[j];
      out.set(row, i * newVocab);
      out.fill(s / v, i * newVocab + v, (i + 1) * newVocab);
    }
    return out;
  };
  if (newVocab > v) {
    if (lm.nativeEmbedding) {
      native.set(embPath, new NativeMatrix(growRows(lm.nativeEmbedding.data), newVocab, d, embPath));
      lm.nativeEmbedding.release();
    } else {
      store.set(embPath, { shape: [newVocab, d], data: growRows(lm.embedding.dataSync() as Float32Array) });
    }
    if (lm.head) {
      const headPath = `${lm.prefix}.head.weight`;
      if (lm.head.native) {
        native.set(headPath, new NativeMatrix(growCols(lm.head.native.data), d, newVocab, headPath));
        lm.head.native.release();
      } else {
        store.set(headPath, { shape: [d, newVocab], data: growCols(lm.head.weight.dataSync() as Float32Array) });
      }
    }
  }
  return new DecoderLM({ ...lm.cfg, vocabSize: newVocab }, store, lm.prefix, { ...lm.options, native });
}
