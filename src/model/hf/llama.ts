/**
 * Imports Hugging Face Llama-family and Qwen2 checkpoints (`save_pretrained` folders:
 * config.json + safetensors) into this project's DecoderLM (docs/method.md "Overview": the
 * LLM a user brings).
 *
 * What is read from config.json, and how each maps onto LMConfig:
 *
 *   hidden_size → dim              intermediate_size → mlpHidden     num_hidden_layers → nLayers
 *   num_attention_heads → nHeads   num_key_value_heads → nKVHeads    head_dim → headDim
 *   vocab_size → vocabSize         rms_norm_eps → normEps            rope_theta → ropeTheta
 *   tie_word_embeddings → head 'tied' (…ForCausalLM) · *Model classes have no head ('none')
 *   Llama attention_bias → q, k, v, o biases · Llama mlp_bias → gate, up, down biases
 *   Qwen2 → q, k, v biases, none on o
 *
 * `rope_theta` is top-level in transformers 4.x configs and inside `rope_parameters` in 5.x.
 * Anything that would change the computation in a way this port does not implement (rotary
 * scaling, another activation, sliding-window attention in use, quantised weights, …) is an
 * error that names the field and its value and lists what is supported — never a silent
 * mismatch.
 *
 * Weights: Hugging Face stores Linear weights [out, in]; this project's Linear is [in, out],
 * so every projection is transposed on import. The rotary layout needs nothing: the stored
 * q/k rows are already arranged for `rotate_half` (dimension i pairs with i + hd/2), which is
 * what src/model/rope.ts computes. Key/value heads are grouped as transformers groups them
 * (query head h reads key/value head ⌊h / (H/KV)⌋, src/model/attention.ts).
 */
import { existsSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { tf } from '../../backend';
import { NativeMatrix } from '../../backend/native-matmul';
import { ParamStore } from '../params';
import { DecoderLM, lmLayout, resolveLMConfig, type LMConfig, type LMHead, type ResolvedLMConfig } from '../lm';
import { buildLMForTraining, growLMVocab, isNativePath, lmWeights, loadTrainedLM, parseLMTrain, type LMTrainMode } from '../lm-train';
import type { ParamRecord } from '../params';
import { writeJsonAtomic, writeSafetensorsLazy, type LazyFloat32Tensor } from '../checkpoint';
import { HfCheckpoint, HF_WEIGHTS_FILE, type HfLoadOptions } from './weights';

export const HF_CONFIG_FILE = 'config.json';

/** The transformers classes this importer builds. */
export type HfLMArchitecture = 'LlamaForCausalLM' | 'LlamaModel' | 'Qwen2ForCausalLM' | 'Qwen2Model';
export const HF_LM_ARCHITECTURES: readonly HfLMArchitecture[] = ['LlamaForCausalLM', 'LlamaModel', 'Qwen2ForCausalLM', 'Qwen2Model'];

/** config.json `model_type` of each family. */
export type HfLMFamily = 'llama' | 'qwen2';
export const HF_LM_FAMILIES: readonly HfLMFamily[] = ['llama', 'qwen2'];

const FAMILY_OF: Record<HfLMArchitecture, HfLMFamily> = {
  LlamaForCausalLM: 'llama',
  LlamaModel: 'llama',
  Qwen2ForCausalLM: 'qwen2',
  Qwen2Model: 'qwen2',
};

/** Whether the class has an LM head (…ForCausalLM) or ends at the final norm (…Model). */
function isCausal(arch: HfLMArchitecture): boolean {
  switch (arch) {
    case 'LlamaForCausalLM':
    case 'Qwen2ForCausalLM':
      return true;
    case 'LlamaModel':
    case 'Qwen2Model':
      return false;
    default: {
      const never: never = arch;
      throw new Error(`hf/llama.ts: unknown architecture ${never}`);
    }
  }
}

export function isHfLMArchitecture(name: string): name is HfLMArchitecture {
  return (HF_LM_ARCHITECTURES as readonly string[]).includes(name);
}

/** What config.json says, resolved: the class, the family and the DecoderLM config. */
export interface HfLMSpec {
  /** The class to build: config.json `architectures[0]` unless overridden. */
  architecture: HfLMArchitecture;
  family: HfLMFamily;
  /** Whether the files hold an `lm_head.weight`: saved from a …ForCausalLM without tied embeddings. */
  storedHead: boolean;
  /** `tie_word_embeddings`: the LM head is the token embedding (no `lm_head.weight` stored). */
  tiedEmbeddings: boolean;
  /** The LM config with the checkpoint's own head ('untied', 'tied', or 'none' for *Model). */
  lm: ResolvedLMConfig;
}

/** The rotary types that mean "plain RoPE with rope_theta" (transformers' names). */
const SUPPORTED_ROPE_TYPES = ['default'] as const;
/** transformers maps both names to torch.nn.SiLU. */
const SUPPORTED_ACTIVATIONS = ['silu', 'swish'] as const;

/** transformers' config-class defaults for fields a config.json may omit. */
const FAMILY_DEFAULTS: Record<HfLMFamily, { rmsNormEps: number; ropeTheta: number; tie: boolean }> = {
  llama: { rmsNormEps: 1e-6, ropeTheta: 10000, tie: false },
  qwen2: { rmsNormEps: 1e-6, ropeTheta: 10000, tie: false },
};

/**
 * Reads a parsed config.json. `source` names the file in errors; `architecture` overrides
 * `architectures[0]` (a …ForCausalLM checkpoint read as its …Model, as AutoModel does).
 */
export function parseHfLMConfig(raw: unknown, source: string, architecture?: string): HfLMSpec {
  const fail = (msg: string): never => {
    throw new Error(`${source}: ${msg}`);
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('expected a JSON object');
  const c = raw as Record<string, unknown>;
  const archs = c.architectures;
  const saved = Array.isArray(archs) && archs.length === 1 && typeof archs[0] === 'string' ? (archs[0] as string) : undefined;
  if (architecture === undefined && saved === undefined) {
    fail(`field "architectures" must list exactly one class, got ${JSON.stringify(archs)}; supported: ${HF_LM_ARCHITECTURES.join(', ')}`);
  }
  const arch = architecture ?? saved;
  if (!isHfLMArchitecture(arch as string)) {
    fail(`architecture "${arch}" is not supported; supported: ${HF_LM_ARCHITECTURES.join(', ')}`);
  }
  const architecture_ = arch as HfLMArchitecture;
  const family = FAMILY_OF[architecture_];
  if (c.model_type !== family) {
    fail(`field "model_type" is ${JSON.stringify(c.model_type)} but ${architecture_} needs "${family}" (supported model types: ${HF_LM_FAMILIES.join(', ')})`);
  }

  const int = (key: string): number => {
    const v = c[key];
    if (!Number.isInteger(v) || (v as number) <= 0) fail(`field "${key}" must be a positive integer, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const optInt = (key: string): number | undefined => (c[key] === undefined || c[key] === null ? undefined : int(key));
  const bool = (key: string, dflt: boolean): boolean => {
    const v = c[key];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') fail(`field "${key}" must be true or false, got ${JSON.stringify(v)}`);
    return v as boolean;
  };
  const positive = (key: string, v: unknown): number => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) fail(`field "${key}" must be a positive number, got ${JSON.stringify(v)}`);
    return v as number;
  };

  const dim = int('hidden_size');
  const nHeads = int('num_attention_heads');
  const nKVHeads = optInt('num_key_value_heads') ?? nHeads;
  if (nHeads % nKVHeads !== 0) fail(`field "num_key_value_heads" (${nKVHeads}) must divide num_attention_heads (${nHeads})`);
  let headDim = optInt('head_dim');
  if (headDim === undefined) {
    if (dim % nHeads !== 0) fail(`hidden_size (${dim}) is not a multiple of num_attention_heads (${nHeads}) and no "head_dim" is given`);
    headDim = dim / nHeads;
  }
  if (headDim % 2 !== 0) fail(`head width ${headDim} (field "head_dim", or hidden_size / num_attention_heads) must be even for rotary embeddings`);

  // Activation.
  const act = c.hidden_act ?? 'silu';
  if (!(SUPPORTED_ACTIVATIONS as readonly unknown[]).includes(act)) {
    fail(`field "hidden_act" is ${JSON.stringify(act)}; supported: ${SUPPORTED_ACTIVATIONS.join(', ')}`);
  }

  // Rotary embedding: theta from the top level (4.x) or rope_parameters (5.x); scaling refused.
  const dflt = FAMILY_DEFAULTS[family];
  let ropeTheta: number | undefined = c.rope_theta === undefined || c.rope_theta === null ? undefined : positive('rope_theta', c.rope_theta);
  const checkRopeType = (field: string, obj: Record<string, unknown>) => {
    const type = obj.rope_type ?? obj.type ?? 'default';
    if (!(SUPPORTED_ROPE_TYPES as readonly unknown[]).includes(type)) {
      fail(`field "${field}.${obj.rope_type !== undefined ? 'rope_type' : 'type'}" is ${JSON.stringify(type)}; supported: ${SUPPORTED_ROPE_TYPES.join(', ')} (plain RoPE, no scaling)`);
    }
    const factor = obj.partial_rotary_factor;
    if (factor !== undefined && factor !== null && factor !== 1 && factor !== 1.0) {
      fail(`field "${field}.partial_rotary_factor" is ${JSON.stringify(factor)}; supported: 1 (rotary on the whole head)`);
    }
  };
  if (c.rope_scaling !== undefined && c.rope_scaling !== null) {
    if (typeof c.rope_scaling !== 'object' || Array.isArray(c.rope_scaling)) fail(`field "rope_scaling" must be an object or null, got ${JSON.stringify(c.rope_scaling)}`);
    checkRopeType('rope_scaling', c.rope_scaling as Record<string, unknown>);
  }
  if (c.rope_parameters !== undefined && c.rope_parameters !== null) {
    const rp = c.rope_parameters;
    if (typeof rp !== 'object' || Array.isArray(rp)) fail(`field "rope_parameters" must be an object, got ${JSON.stringify(rp)}`);
    const p = rp as Record<string, unknown>;
    if (!('rope_type' in p) && !('rope_theta' in p)) {
      fail(`field "rope_parameters" has no "rope_type" or "rope_theta" (per-layer-type rotary settings, keys ${Object.keys(p).join(', ')}, are not supported); supported: {rope_type: "default", rope_theta}`);
    }
    checkRopeType('rope_parameters', p);
    if (p.rope_theta !== undefined) {
      const t = positive('rope_parameters.rope_theta', p.rope_theta);
      if (ropeTheta !== undefined && ropeTheta !== t) fail(`fields "rope_theta" (${ropeTheta}) and "rope_parameters.rope_theta" (${t}) disagree`);
      ropeTheta = t;
    }
  }
  if (c.partial_rotary_factor !== undefined && c.partial_rotary_factor !== null && c.partial_rotary_factor !== 1) {
    fail(`field "partial_rotary_factor" is ${JSON.stringify(c.partial_rotary_factor)}; supported: 1 (rotary on the whole head)`);
  }

  // Sliding-window attention (Qwen2): refused where a layer would use it.
  if (Array.isArray(c.layer_types)) {
    c.layer_types.forEach((t, i) => {
      if (t !== 'full_attention') fail(`field "layer_types[${i}]" is ${JSON.stringify(t)}; supported: "full_attention" (sliding-window attention is not implemented)`);
    });
  }
  if (c.use_sliding_window === true) {
    const nLayers = int('num_hidden_layers');
    const maxWindow = c.max_window_layers;
    // transformers: layer i uses the window when use_sliding_window and i ≥ max_window_layers.
    if (!Number.isInteger(maxWindow) || (maxWindow as number) < nLayers) {
      fail(`field "use_sliding_window" is true with max_window_layers ${JSON.stringify(maxWindow)} < num_hidden_layers (${nLayers}): sliding-window attention is not implemented; supported: use_sliding_window false`);
    }
  }

  for (const key of ['quantization_config', 'rope_interleave']) {
    if (c[key] !== undefined && c[key] !== null && c[key] !== false) fail(`field "${key}" is set (${JSON.stringify(c[key])}); not supported (plain floating-point checkpoints with rotate_half rotary only)`);
  }
  if (c.pretraining_tp !== undefined && c.pretraining_tp !== null && !Number.isInteger(c.pretraining_tp)) {
    fail(`field "pretraining_tp" must be an integer, got ${JSON.stringify(c.pretraining_tp)}`);
  }

  let attnBias = false, qkvBias = false, oBias = false, mlpBias = false;
  switch (family) {
    case 'llama':
      attnBias = bool('attention_bias', false);
      qkvBias = oBias = attnBias;
      mlpBias = bool('mlp_bias', false);
      break;
    case 'qwen2':
      // Qwen2Attention: q/k/v_proj with bias, o_proj without; its MLP has no biases.
      qkvBias = true;
      break;
    default: {
      const never: never = family;
      throw new Error(`hf/llama.ts: unknown family ${never}`);
    }
  }

  const tiedEmbeddings = bool('tie_word_embeddings', dflt.tie);
  const head: LMHead = isCausal(architecture_) ? (tiedEmbeddings ? 'tied' : 'untied') : 'none';
  const eps = c.rms_norm_eps === undefined || c.rms_norm_eps === null ? dflt.rmsNormEps : positive('rms_norm_eps', c.rms_norm_eps);
  const lm: LMConfig = {
    vocabSize: int('vocab_size'),
    dim,
    nLayers: int('num_hidden_layers'),
    nHeads,
    nKVHeads,
    headDim,
    mlpHidden: int('intermediate_size'),
    ropeTheta: ropeTheta ?? dflt.ropeTheta,
    normEps: eps,
    attnBias,
    qkvBias,
    oBias,
    mlpBias,
    head,
  };
  // The class the files were saved from decides whether they hold lm_head.weight.
  const storedHead = (saved !== undefined ? saved.endsWith('ForCausalLM') : isCausal(architecture_)) && !tiedEmbeddings;
  return { architecture: architecture_, family, storedHead, tiedEmbeddings, lm: resolveLMConfig(lm) };
}

/** Reads and parses `<folder>/config.json` (see parseHfLMConfig). */
export async function readHfLMConfig(folder: string, architecture?: string): Promise<HfLMSpec> {
  const path = join(folder, HF_CONFIG_FILE);
  if (!existsSync(path)) throw new Error(`${folder}: ${HF_CONFIG_FILE} is missing (not a save_pretrained folder?)`);
  let raw: unknown;
  try {
    raw = JSON.parse(await fsp.readFile(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
  return parseHfLMConfig(raw, path, architecture);
}

/** One stored tensor's destination: the ParamStore path and whether it is transposed. */
interface KeyTarget {
  /** Parameter path under the LM's prefix, or null for a tensor that is checked and not loaded. */
  path: string | null;
  /** Shape in the checkpoint (Hugging Face's [out, in] for Linear weights). */
  shape: number[];
  transpose: boolean;
  /** What fixes the shape, for errors. */
  why: string;
  /** Checked when present, not required (an lm_head the import leaves out). */
  optional?: boolean;
}

/**
 * Every key the checkpoint must hold, keyed by its name in the files. `base` is the prefix of
 * the transformer body (`model.` for …ForCausalLM, `model.` or none for …Model).
 */
function expectedKeys(spec: HfLMSpec, base: string, prefix: string, loadHead: boolean): Map<string, KeyTarget> {
  const c = spec.lm;
  const { headDim: hd, nKVHeads: kv, qkvBias, oBias, mlpBias } = lmLayout(c);
  const q = c.nHeads * hd, kvw = kv * hd;
  const m = new Map<string, KeyTarget>();
  const lin = (key: string, path: string, out: number, inn: number, why: string) =>
    m.set(key, { path, shape: [out, inn], transpose: true, why });
  const vec = (key: string, path: string, n: number, why: string) => m.set(key, { path, shape: [n], transpose: false, why });
  m.set(`${base}embed_tokens.weight`, { path: `${prefix}.embed.weight`, shape: [c.vocabSize, c.dim], transpose: false, why: 'vocab_size × hidden_size' });
  for (let i = 0; i < c.nLayers; i++) {
    const k = `${base}layers.${i}`;
    const p = `${prefix}.layers.${i}`;
    vec(`${k}.input_layernorm.weight`, `${p}.attn_norm.weight`, c.dim, 'hidden_size');
    vec(`${k}.post_attention_layernorm.weight`, `${p}.mlp_norm.weight`, c.dim, 'hidden_size');
    lin(`${k}.self_attn.q_proj.weight`, `${p}.attn.q.weight`, q, c.dim, 'num_attention_heads·head_dim × hidden_size');
    lin(`${k}.self_attn.k_proj.weight`, `${p}.attn.k.weight`, kvw, c.dim, 'num_key_value_heads·head_dim × hidden_size');
    lin(`${k}.self_attn.v_proj.weight`, `${p}.attn.v.weight`, kvw, c.dim, 'num_key_value_heads·head_dim × hidden_size');
    lin(`${k}.self_attn.o_proj.weight`, `${p}.attn.o.weight`, c.dim, q, 'hidden_size × num_attention_heads·head_dim');
    if (qkvBias) {
      vec(`${k}.self_attn.q_proj.bias`, `${p}.attn.q.bias`, q, 'num_attention_heads·head_dim');
      vec(`${k}.self_attn.k_proj.bias`, `${p}.attn.k.bias`, kvw, 'num_key_value_heads·head_dim');
      vec(`${k}.self_attn.v_proj.bias`, `${p}.attn.v.bias`, kvw, 'num_key_value_heads·head_dim');
    }
    if (oBias) vec(`${k}.self_attn.o_proj.bias`, `${p}.attn.o.bias`, c.dim, 'hidden_size');
    lin(`${k}.mlp.gate_proj.weight`, `${p}.mlp.gate.weight`, c.mlpHidden, c.dim, 'intermediate_size × hidden_size');
    lin(`${k}.mlp.up_proj.weight`, `${p}.mlp.up.weight`, c.mlpHidden, c.dim, 'intermediate_size × hidden_size');
    lin(`${k}.mlp.down_proj.weight`, `${p}.mlp.down.weight`, c.dim, c.mlpHidden, 'hidden_size × intermediate_size');
    if (mlpBias) {
      vec(`${k}.mlp.gate_proj.bias`, `${p}.mlp.gate.bias`, c.mlpHidden, 'intermediate_size');
      vec(`${k}.mlp.up_proj.bias`, `${p}.mlp.up.bias`, c.mlpHidden, 'intermediate_size');
      vec(`${k}.mlp.down_proj.bias`, `${p}.mlp.down.bias`, c.dim, 'hidden_size');
    }
  }
  vec(`${base}norm.weight`, `${prefix}.norm.weight`, c.dim, 'hidden_size');
  if (spec.storedHead) {
    m.set('lm_head.weight', { path: loadHead ? `${prefix}.head.weight` : null, shape: [c.vocabSize, c.dim], transpose: true, why: 'vocab_size × hidden_size', optional: !loadHead });
  }
  return m;
}

/** Rotary buffers older Llama checkpoints saved (recomputed from the config, so only checked). */
const INV_FREQ = /^(model\.)?layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/;

export interface ImportHfLMOptions extends HfLoadOptions {
  /**
   * Build the checkpoint as this class instead of config.json's `architectures[0]` (a
   * …ForCausalLM checkpoint as its …Model; its `lm_head.weight` is then checked, not loaded).
   */
  architecture?: HfLMArchitecture;
  /**
   * The head to build: 'auto' (the checkpoint's: tied, untied, or none for …Model) or 'none'
   * (no head even for a …ForCausalLM; representation training needs none). Defaults to 'auto'.
   */
  head?: 'auto' | 'none';
  /** Store to create the parameters in (existing ones at the same paths and shapes are overwritten). Defaults to a new ParamStore(0). */
  store?: ParamStore;
  /** Parameter path prefix. Defaults to 'lm' (what NoteLLM2Model uses). */
  prefix?: string;
  /**
   * Lay the model out for training in this mode (`full`, `last:N`, `lora:R`; lm-train.ts): the
   * weights the mode freezes are read straight into native memory (never into the wasm heap),
   * LoRA factors are created, and the store's trainable flags are set. Defaults to none: every
   * weight in the store, as a plain import.
   */
  train?: LMTrainMode | string;
  /**
   * Without `train`: decides per parameter path whether that weight goes to native memory
   * (frozen) instead of the store; only the embedding, projection and head weights may.
   */
  native?: (path: string) => boolean;
}

export interface ImportedHfLM {
  lm: DecoderLM;
  store: ParamStore;
  spec: HfLMSpec;
  /** Checkpoint keys loaded, and those checked but not loaded (an unused lm_head, rotary buffers). */
  loadedKeys: string[];
  skippedKeys: string[];
}

/**
 * Builds a DecoderLM from a Hugging Face Llama/Qwen2 folder. Names and shapes of every stored
 * tensor are checked against config.json before any data is read (missing or unexpected
 * keys, and shapes that disagree, are errors naming the key); tensors are then read one at a
 * time, transposed where Hugging Face stores [out, in], and written into the store.
 */
export async function importHfLM(folder: string, opts: ImportHfLMOptions = {}): Promise<ImportedHfLM> {
  const spec0 = await readHfLMConfig(folder, opts.architecture);
  const headChoice = opts.head ?? 'auto';
  if (headChoice !== 'auto' && headChoice !== 'none') throw new Error(`importHfLM: head must be "auto" or "none", got ${JSON.stringify(headChoice)}`);
  const spec: HfLMSpec = headChoice === 'none' ? { ...spec0, lm: resolveLMConfig({ ...spec0.lm, head: 'none' }) } : spec0;
  const prefix = opts.prefix ?? 'lm';
  const ownStore = !opts.store;
  const store = opts.store ?? new ParamStore(0);
  const mode = opts.train === undefined ? null : typeof opts.train === 'string' ? parseLMTrain(opts.train) : opts.train;
  if (mode && opts.native) throw new Error('importHfLM: give either train (a mode) or native (a per-path choice), not both');
  const goesNative = mode ? (path: string) => isNativePath(mode, spec.lm, prefix, path) : (opts.native ?? (() => false));
  const native = new Map<string, NativeMatrix>();
  try {
    const { loadedKeys, skippedKeys } = await withCheckpoint(folder, opts, async (ckpt) => {
      const base = detectBase(ckpt, spec, folder);
      const expected = expectedKeys(spec, base, prefix, lmLayout(spec.lm).head === 'untied');
      checkKeys(ckpt, expected, spec, folder);
      const loaded: string[] = [];
      const skipped: string[] = [];
      for (const [key, target] of expected) {
        if (target.path === null) {
          if (ckpt.has(key)) skipped.push(key);
          continue;
        }
        const t = await ckpt.read(key);
        if (goesNative(target.path)) {
          if (t.shape.length !== 2) throw new Error(`importHfLM: "${target.path}" is not a matrix and cannot be held natively`);
          // Transposed on the host: the weight never passes through the backend.
          const [r, c] = t.shape;
          const data = target.transpose ? transposeHost(t.data, r, c) : t.data;
          native.set(target.path, new NativeMatrix(data, target.transpose ? c : r, target.transpose ? r : c, target.path));
        } else {
          const shape = target.transpose ? [target.shape[1], target.shape[0]] : target.shape;
          const v = store.param(target.path, shape, { kind: 'zeros' });
          tf.tidy(() => {
            const x = tf.tensor(t.data, t.shape, 'float32');
            v.assign(target.transpose ? tf.transpose(x) : x);
          });
        }
        loaded.push(key);
      }
      await checkExtras(ckpt, spec, base, skipped);
      return { loadedKeys: loaded, skippedKeys: skipped };
    });
    // Every parameter the model reads now exists, so the constructor creates none of its own
    // (LoRA factors aside); a path it would create anyway means the mapping above and the model disagree.
    const before = new Set(store.list(prefix));
    const lm = mode ? buildLMForTraining(spec.lm, store, mode, { prefix, native }) : new DecoderLM(spec.lm, store, prefix, { native });
    const created = store.list(prefix).filter((p) => !before.has(p) && !/\.lora_[ab]$/.test(p));
    if (created.length) throw new Error(`importHfLM: ${folder} left parameters ${created.join(', ')} without a checkpoint tensor`);
    return { lm, store, spec, loadedKeys, skippedKeys };
  } catch (e) {
    for (const m of native.values()) m.release();
    if (ownStore) store.dispose();
    throw e;
  }
}

export interface RestoreHfLMOptions extends Omit<ImportHfLMOptions, 'train' | 'native'> {
  /** The vocabulary the trained model had (after special tokens were added); grown from the base folder's with growLMVocab. */
  vocabSize?: number;
}

/**
 * Restores a model trained in `mode` from its base folder and the trained tensors alone
 * (exportTrainedLM's record: LoRA factors, the last N layers, or everything under full):
 * imports the folder laid out for the mode (head 'none' unless told), grows the vocabulary
 * as it was grown for training (new rows the mean of the base rows, as then), and loads the
 * record, which must hold exactly the mode's trained tensors.
 */
export async function restoreHfLM(folder: string, mode: LMTrainMode | string, trained: ParamRecord, opts: RestoreHfLMOptions = {}): Promise<ImportedHfLM> {
  const imp = await importHfLM(folder, { ...opts, head: opts.head ?? 'none', train: mode });
  try {
    let lm = imp.lm;
    if (opts.vocabSize !== undefined && opts.vocabSize !== lm.cfg.vocabSize) lm = growLMVocab(imp.store, lm, opts.vocabSize);
    loadTrainedLM(imp.store, lm, mode, trained);
    return { ...imp, lm, spec: { ...imp.spec, lm: lm.cfg } };
  } catch (e) {
    if (!opts.store) imp.store.dispose();
    throw e;
  }
}

/** [r, c] row-major → [c, r], in tiles so both sides stay in cache. */
export function transposeHost(data: Float32Array, r: number, c: number): Float32Array {
  const out = new Float32Array(r * c);
  const T = 32;
  for (let i0 = 0; i0 < r; i0 += T) {
    const i1 = Math.min(r, i0 + T);
    for (let j0 = 0; j0 < c; j0 += T) {
      const j1 = Math.min(c, j0 + T);
      for (let i = i0; i < i1; i++) {
        const row = i * c;
        for (let j = j0; j < j1; j++) out[j * r + i] = data[row + j];
      }
    }
  }
  return out;
}

async function withCheckpoint<T>(folder: string, opts: HfLoadOptions, fn: (c: HfCheckpoint) => Promise<T>): Promise<T> {
  const ckpt = await HfCheckpoint.open(folder, { nonFinite: opts.nonFinite });
  try {
    return await fn(ckpt);
  } finally {
    await ckpt.close();
  }
}

/** `model.` when the body's keys carry it (always for …ForCausalLM), '' when they do not (…Model saved alone). */
function detectBase(ckpt: HfCheckpoint, spec: HfLMSpec, folder: string): string {
  if (ckpt.has('model.embed_tokens.weight')) return 'model.';
  if (!isCausal(spec.architecture) && ckpt.has('embed_tokens.weight')) return '';
  throw new Error(
    `${folder}: the checkpoint has no token embedding (expected "model.embed_tokens.weight"` +
      `${isCausal(spec.architecture) ? '' : ' or "embed_tokens.weight"'}); its first keys: ${ckpt.keys().slice(0, 5).join(', ')}`,
  );
}

/** Missing keys, unexpected keys and shape mismatches, all before any data is read. */
function checkKeys(ckpt: HfCheckpoint, expected: Map<string, KeyTarget>, spec: HfLMSpec, folder: string): void {
  const missing = [...expected].filter(([k, t]) => !t.optional && !ckpt.has(k)).map(([k]) => k);
  if (missing.length) {
    const tiedHint = missing.includes('lm_head.weight') ? ' (config.json says tie_word_embeddings false for a …ForCausalLM, so lm_head.weight must be stored)' : '';
    throw new Error(`${folder}: ${missing.length} weight${missing.length > 1 ? 's' : ''} that ${spec.architecture}'s config.json implies are missing: ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', …' : ''}${tiedHint}`);
  }
  const allowed = (k: string) => expected.has(k) || INV_FREQ.test(k) || (k === 'lm_head.weight' && spec.tiedEmbeddings);
  const unexpected = ckpt.keys().filter((k) => !allowed(k));
  if (unexpected.length) {
    throw new Error(
      `${folder}: ${unexpected.length} weight${unexpected.length > 1 ? 's are' : ' is'} not part of ${spec.architecture} as config.json describes it: ` +
        `${unexpected.slice(0, 8).join(', ')}${unexpected.length > 8 ? ', …' : ''} (does config.json match the weights? biases: attention_bias / mlp_bias)`,
    );
  }
  for (const [key, t] of expected) {
    const info = ckpt.info(key);
    if (!info) continue; // an optional key that is absent
    if (info.shape.length !== t.shape.length || info.shape.some((d, i) => d !== t.shape[i])) {
      throw new Error(`${info.file}: tensor "${key}" has shape [${info.shape}] but config.json implies [${t.shape}] (${t.why})`);
    }
  }
}

/** Tensors present but not loaded: a tied lm_head must equal the embedding, rotary buffers must match the config. */
async function checkExtras(ckpt: HfCheckpoint, spec: HfLMSpec, base: string, skipped: string[]): Promise<void> {
  const c = spec.lm;
  if (spec.tiedEmbeddings && ckpt.has('lm_head.weight')) {
    const head = await ckpt.read('lm_head.weight');
    const emb = await ckpt.read(`${base}embed_tokens.weight`);
    const info = ckpt.info('lm_head.weight')!;
    if (head.data.length !== emb.data.length || head.data.some((v, i) => v !== emb.data[i])) {
      throw new Error(`${info.file}: tensor "lm_head.weight" differs from "${base}embed_tokens.weight" although config.json says tie_word_embeddings true`);
    }
    skipped.push('lm_head.weight');
  }
  const hd = lmLayout(c).headDim;
  for (const key of ckpt.keys().filter((k) => INV_FREQ.test(k))) {
    const t = await ckpt.read(key);
    const info = ckpt.info(key)!;
    if (t.data.length !== hd / 2) throw new Error(`${info.file}: tensor "${key}" has ${t.data.length} values, expected head_dim / 2 = ${hd / 2}`);
    t.data.forEach((v, i) => {
      const want = Math.pow(c.ropeTheta, (-2 * i) / hd);
      if (Math.abs(v - want) > 1e-6 * Math.max(1, want)) {
        throw new Error(`${info.file}: tensor "${key}"[${i}] = ${v}, but rope_theta ${c.ropeTheta} gives ${want} (a rotary scaling the config does not declare?)`);
      }
    });
    skipped.push(key);
  }
}

// ---------------------------------------------------------------------------------------------
// Export: a DecoderLM back to a Hugging Face folder
// ---------------------------------------------------------------------------------------------

export interface WriteHfLMOptions {
  /**
   * The source folder's config.json as parsed JSON: the export's config starts from it (every
   * field kept) and must describe the same architecture as the model (vocabulary and head aside).
   */
  sourceConfig: Record<string, unknown>;
}

export interface WrittenHfLM {
  configPath: string;
  weightsPath: string;
  /** The tensor keys written, sorted. */
  keys: string[];
}

/**
 * Writes `lm` as a Hugging Face folder: config.json and model.safetensors (float32).
 *
 * config.json is the source config with `vocab_size` set to the model's (grown) vocabulary,
 * `architectures` as the source's, `torch_dtype`/`dtype` (where present) float32 as written,
 * and `tie_word_embeddings` true only for a tied head: false when the head is untied or absent
 * (representation training builds none), so no reader makes a head out of the embedding.
 * Such an export without a head loads with AutoModel (LlamaModel / Qwen2Model) and with
 * importHfLM(…, { head: 'none' }); AutoModelForCausalLM would initialise a fresh lm_head.
 *
 * model.safetensors holds every weight under its Hugging Face key (model.embed_tokens.weight,
 * model.layers.N.self_attn.{q,k,v,o}_proj.{weight,bias}, model.layers.N.mlp.{gate,up,down}_proj.weight,
 * model.layers.N.{input,post_attention}_layernorm.weight, model.norm.weight, lm_head.weight for an
 * untied head only), projections transposed back to [out, in], LoRA adapters merged into the
 * weights they adapt (W + (alpha/r)·A·B). Tensors are produced one at a time while writing.
 */
export async function writeHfLMFolder(dir: string, store: ParamStore, lm: DecoderLM, opts: WriteHfLMOptions): Promise<WrittenHfLM> {
  const src = parseHfLMConfig(opts.sourceConfig, 'writeHfLMFolder: source config.json');
  const head = lmLayout(lm.cfg).head;
  // The source must describe this model: same fields, vocabulary and head aside.
  const facts = (c: ResolvedLMConfig) => {
    const l = lmLayout(c);
    return { dim: c.dim, nLayers: c.nLayers, nHeads: c.nHeads, mlpHidden: c.mlpHidden, ropeTheta: c.ropeTheta, normEps: c.normEps,
      nKVHeads: l.nKVHeads, headDim: l.headDim, qkvBias: l.qkvBias, oBias: l.oBias, mlpBias: l.mlpBias };
  };
  const want = facts(src.lm), have = facts(lm.cfg);
  const differs = (Object.keys(want) as Array<keyof typeof want>).filter((k) => want[k] !== have[k]);
  if (differs.length) {
    throw new Error(`writeHfLMFolder: the source config.json does not describe this model (${differs.map((k) => `${k}: ${want[k]} in the config, ${have[k]} in the model`).join(', ')})`);
  }
  if (lm.cfg.vocabSize < src.lm.vocabSize) throw new Error(`writeHfLMFolder: the model's vocabulary (${lm.cfg.vocabSize}) is smaller than the source's (${src.lm.vocabSize})`);
  if (head === 'untied' && !isCausal(src.architecture)) throw new Error(`writeHfLMFolder: the model has an LM head but ${src.architecture} has none`);

  const config: Record<string, unknown> = { ...opts.sourceConfig, vocab_size: lm.cfg.vocabSize, tie_word_embeddings: head === 'tied' };
  for (const key of ['torch_dtype', 'dtype']) if (key in config) config[key] = 'float32';

  const spec: HfLMSpec = { architecture: src.architecture, family: src.family, storedHead: head === 'untied', tiedEmbeddings: head === 'tied', lm: lm.cfg };
  const expected = expectedKeys(spec, 'model.', lm.prefix, head === 'untied');
  const weights = lmWeights(store, lm);
  const tensors: Record<string, LazyFloat32Tensor> = {};
  const used = new Set<string>();
  for (const [key, t] of expected) {
    if (t.path === null) continue;
    const w = weights.get(t.path);
    if (!w) throw new Error(`writeHfLMFolder: the model has no "${t.path}" for "${key}"`);
    used.add(t.path);
    const [r, c] = w.shape;
    tensors[key] = { shape: t.shape, produce: t.transpose ? () => transposeHost(w.values(), r, c) : w.values };
  }
  const left = [...weights.keys()].filter((p) => !used.has(p));
  if (left.length) throw new Error(`writeHfLMFolder: no Hugging Face key for ${left.slice(0, 4).join(', ')}`);
  await fsp.mkdir(dir, { recursive: true });
  const weightsPath = join(dir, HF_WEIGHTS_FILE);
  await writeSafetensorsLazy(weightsPath, tensors, { format: 'pt' });
  const configPath = join(dir, HF_CONFIG_FILE);
  await writeJsonAtomic(configPath, config);
  return { configPath, weightsPath, keys: Object.keys(tensors).sort() };
}
