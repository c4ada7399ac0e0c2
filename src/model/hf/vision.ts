/**
 * Existing vision encoders from Hugging Face folders (docs/method.md "Overview": the vision
 * tower is an encoder trained elsewhere): CLIP (`CLIPVisionModel`,
 * `CLIPVisionModelWithProjection`, the vision half of `CLIPModel`) and SigLIP
 * (`SiglipVisionModel`, the vision half of `SiglipModel`), as `save_pretrained` writes them,
 * become this project's ViT (src/model/vit.ts) with its architecture fields set, plus the
 * image preprocessing the encoder was trained with (`preprocessor_config.json`).
 *
 * How the checkpoints map onto the ViT (D width, C channels, P patch side, N patches,
 * F MLP width, L layers; transformers' Linear weights are [out, in], ours [in, out]):
 *
 *   embeddings.patch_embedding.weight [D, C, P, P] → patch_embed.weight [P·P·C, D]: the
 *       stride-P convolution is a product with patches flattened (py, px, c) (patchify), so
 *       row (py·P + px)·C + c, column d holds conv[d, c, py, px].
 *   embeddings.patch_embedding.bias [D] (SigLIP)  → patch_embed.bias
 *   embeddings.class_embedding [D] (CLIP)         → cls
 *   embeddings.position_embedding.weight [N (+1), D] → pos (CLIP: row 0 is the CLS position)
 *   pre_layrnorm (CLIP)                           → norm_pre
 *   encoder.layers.<i>.{layer_norm1, self_attn.{q,k,v,out}_proj, layer_norm2, mlp.fc1, mlp.fc2}
 *                                                 → blocks.<i>.{norm1, attn.{q,k,v,o}, norm2, mlp.fc1, mlp.fc2}
 *   post_layernorm                                → norm (CLIP: on the pooled CLS only; SigLIP: on every token)
 *   head.probe [1, 1, D] (SigLIP)                 → head.probe [D]
 *   head.attention.in_proj_{weight [3D, D], bias [3D]} → head.attn.{q,k,v}: rows 0…D−1 are q, then k, then v
 *   head.attention.out_proj, head.layernorm, head.mlp → head.attn.o, head.norm, head.mlp
 *   visual_projection.weight [Pd, D] (CLIP)       → proj.weight [D, Pd]
 *
 * A leading `vision_model.` is optional (transformers 4 writes it, 5 does not for a vision
 * model built on its own). Anything the importer cannot reproduce exactly is refused with a
 * message naming the field or key and what is supported.
 */
import { existsSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { tf } from '../../backend';
import { CLIP_MEAN, CLIP_STD, preprocessingSize, type ImagePreprocessing, type ResampleFilter } from '../../data/images';
import { ParamStore, type ParamRecord } from '../params';
import { ViT, type ViTActivation, type ViTConfig } from '../vit';
import { decodeRefTensor, finishReport, maxAbsDiff, type HfReference, type OutputComparison, type RefTensor, type ReferenceReport } from './reference';
import { loadHfTensors } from './weights';

const HF_CONFIG_FILE = 'config.json';
export const HF_PREPROCESSOR_FILE = 'preprocessor_config.json';

/** The encoder families this importer reads. */
export type HfVisionFamily = 'clip' | 'siglip';

/** transformers classes whose vision tower can be imported, with their family and whether they carry visual_projection. */
export const HF_VISION_CLASSES = {
  CLIPVisionModel: { family: 'clip', projection: false, full: false },
  CLIPVisionModelWithProjection: { family: 'clip', projection: true, full: false },
  CLIPModel: { family: 'clip', projection: true, full: true },
  SiglipVisionModel: { family: 'siglip', projection: false, full: false },
  SiglipModel: { family: 'siglip', projection: false, full: true },
} as const satisfies Record<string, { family: HfVisionFamily; projection: boolean; full: boolean }>;
export type HfVisionClass = keyof typeof HF_VISION_CLASSES;
const CLASS_NAMES = Object.keys(HF_VISION_CLASSES) as HfVisionClass[];

/** `model_type` values: a vision config, or a full (image + text) config with `vision_config` nested. */
const MODEL_TYPES: Record<string, { family: HfVisionFamily; full: boolean; defaultClass: HfVisionClass }> = {
  clip_vision_model: { family: 'clip', full: false, defaultClass: 'CLIPVisionModel' },
  siglip_vision_model: { family: 'siglip', full: false, defaultClass: 'SiglipVisionModel' },
  clip: { family: 'clip', full: true, defaultClass: 'CLIPModel' },
  siglip: { family: 'siglip', full: true, defaultClass: 'SiglipModel' },
};

/** `hidden_act` values and the GELU they name (`gelu_new` is the same tanh formula as `gelu_pytorch_tanh`). */
export const HF_VISION_ACTIVATIONS: Readonly<Record<string, ViTActivation>> = {
  gelu: 'gelu',
  gelu_pytorch_tanh: 'gelu_tanh',
  gelu_new: 'gelu_tanh',
  quick_gelu: 'quick_gelu',
};

/**
 * transformers' defaults for fields a config may leave out (CLIPVisionConfig and
 * SiglipVisionConfig): what `from_pretrained` would use.
 */
const VISION_CONFIG_DEFAULTS: Record<HfVisionFamily, Record<string, number | string | boolean>> = {
  clip: {
    hidden_size: 768,
    intermediate_size: 3072,
    projection_dim: 512,
    num_hidden_layers: 12,
    num_attention_heads: 12,
    num_channels: 3,
    image_size: 224,
    patch_size: 32,
    hidden_act: 'quick_gelu',
    layer_norm_eps: 1e-5,
  },
  siglip: {
    hidden_size: 768,
    intermediate_size: 3072,
    num_hidden_layers: 12,
    num_attention_heads: 12,
    num_channels: 3,
    image_size: 224,
    patch_size: 16,
    hidden_act: 'gelu_pytorch_tanh',
    layer_norm_eps: 1e-6,
    vision_use_head: true,
  },
};

/** What a folder's config says about its vision tower. */
export interface HfVisionSpec {
  folder: string;
  /** The class the tower is read as (the folder's own unless another was asked for). */
  modelClass: HfVisionClass;
  /** The class the folder's config names (or implies). */
  savedClass: HfVisionClass;
  family: HfVisionFamily;
  /** The ViT to build, every field set. */
  config: ViTConfig;
  /** How images must be prepared for it (from preprocessor_config.json, or the family's defaults). */
  preprocessing: ImagePreprocessing;
  /** Whether `preprocessing` came from preprocessor_config.json. */
  preprocessingFromFile: boolean;
}

/** The spec plus the weights, keyed by ParamStore path under the chosen prefix. */
export interface HfVisionImport extends HfVisionSpec {
  prefix: string;
  weights: ParamRecord;
}

export interface HfVisionReadOptions {
  /** ParamStore prefix of the ViT. Defaults to 'vit' (where NoteLLM2Model puts it). */
  prefix?: string;
  /**
   * Read the tower as this class instead of the folder's own: a vision model out of a full
   * CLIP/SigLIP checkpoint, or CLIPVisionModel (no projection) out of a checkpoint with one.
   * Must be the folder's class or a part of it. Defaults to the folder's class.
   */
  asClass?: string;
}

function fail(where: string, msg: string): never {
  throw new Error(`${where}: ${msg}`);
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  let raw: unknown;
  try {
    raw = JSON.parse(await fsp.readFile(path, 'utf8'));
  } catch (e) {
    fail(path, `cannot read: ${(e as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(path, 'must hold a JSON object');
  return raw as Record<string, unknown>;
}

function positiveInt(v: unknown, where: string, field: string): number {
  if (!Number.isInteger(v) || (v as number) <= 0) fail(where, `field "${field}" must be a positive integer, got ${JSON.stringify(v)}`);
  return v as number;
}

/** What config.json says, before the preprocessing is read. */
export interface HfVisionParsedConfig {
  savedClass: HfVisionClass;
  modelClass: HfVisionClass;
  family: HfVisionFamily;
  config: ViTConfig;
}

/**
 * Reads a config.json object (a vision config, or a full one with `vision_config`) into the
 * ViTConfig that reproduces it; `where` names the file in errors.
 */
export function parseHfVisionConfig(raw: Record<string, unknown>, where: string, asClass?: string): HfVisionParsedConfig {
  const modelType = raw.model_type;
  if (typeof modelType !== 'string' || !(modelType in MODEL_TYPES)) {
    fail(where, `model_type ${JSON.stringify(modelType)} is not supported; supported: ${Object.keys(MODEL_TYPES).join(', ')}`);
  }
  const type = MODEL_TYPES[modelType];
  let savedClass: HfVisionClass = type.defaultClass;
  if (raw.architectures !== undefined && raw.architectures !== null) {
    const archs = raw.architectures;
    if (!Array.isArray(archs) || archs.length !== 1 || typeof archs[0] !== 'string') {
      fail(where, `field "architectures" must name one class, got ${JSON.stringify(archs)}`);
    }
    const name = archs[0] as string;
    if (!(CLASS_NAMES as string[]).includes(name)) fail(where, `architecture "${name}" is not supported; supported: ${CLASS_NAMES.join(', ')}`);
    savedClass = name as HfVisionClass;
  }
  const saved = HF_VISION_CLASSES[savedClass];
  if (saved.family !== type.family || saved.full !== type.full) {
    fail(where, `architecture "${savedClass}" does not go with model_type "${modelType}"`);
  }
  let modelClass = savedClass;
  if (asClass !== undefined && asClass !== savedClass) {
    if (!(CLASS_NAMES as string[]).includes(asClass)) fail(where, `cannot read as "${asClass}"; supported: ${CLASS_NAMES.join(', ')}`);
    const target = HF_VISION_CLASSES[asClass as HfVisionClass];
    // A part can be read out of a whole (vision tower of a full model, a tower without its
    // projection), never the reverse.
    if (target.family !== saved.family || (target.full && !saved.full) || (target.projection && !saved.projection)) {
      fail(where, `a ${savedClass} checkpoint cannot be read as ${asClass}; readable as: ${CLASS_NAMES.filter((c) => {
        const t = HF_VISION_CLASSES[c];
        return t.family === saved.family && (!t.full || saved.full) && (!t.projection || saved.projection);
      }).join(', ')}`);
    }
    modelClass = asClass as HfVisionClass;
  }

  let vc: Record<string, unknown> = raw;
  let vwhere = where;
  if (type.full) {
    const nested = raw.vision_config;
    if (typeof nested !== 'object' || nested === null) fail(where, `model_type "${modelType}" needs a "vision_config" object`);
    vc = nested as Record<string, unknown>;
    vwhere = `${where} (vision_config)`;
  }
  const family = type.family;
  const d = VISION_CONFIG_DEFAULTS[family];
  const get = (k: string): unknown => (vc[k] === undefined || vc[k] === null ? d[k] : vc[k]);

  const dim = positiveInt(get('hidden_size'), vwhere, 'hidden_size');
  const heads = positiveInt(get('num_attention_heads'), vwhere, 'num_attention_heads');
  const depth = positiveInt(get('num_hidden_layers'), vwhere, 'num_hidden_layers');
  const mlpDim = positiveInt(get('intermediate_size'), vwhere, 'intermediate_size');
  const channels = positiveInt(get('num_channels'), vwhere, 'num_channels');
  const imageSize = positiveInt(get('image_size'), vwhere, 'image_size (one side of a square image)');
  const patchSize = positiveInt(get('patch_size'), vwhere, 'patch_size');
  if (dim % heads !== 0) fail(vwhere, `num_attention_heads (${heads}) must divide hidden_size (${dim})`);
  if (imageSize % patchSize !== 0) {
    fail(vwhere, `patch_size (${patchSize}) must divide image_size (${imageSize}); the convolution would drop the edge pixels`);
  }
  const act = get('hidden_act');
  if (typeof act !== 'string' || !(act in HF_VISION_ACTIVATIONS)) {
    fail(vwhere, `hidden_act ${JSON.stringify(act)} is not supported; supported: ${Object.keys(HF_VISION_ACTIVATIONS).join(', ')}`);
  }
  const eps = get('layer_norm_eps');
  if (typeof eps !== 'number' || !(eps > 0)) fail(vwhere, `field "layer_norm_eps" must be a positive number, got ${JSON.stringify(eps)}`);

  const config: ViTConfig = { imageSize, patchSize, channels, dim, depth, heads, mlpDim, normEps: eps, activation: HF_VISION_ACTIVATIONS[act] };
  switch (family) {
    case 'clip': {
      Object.assign(config, { patchBias: false, classToken: true, preNorm: true, finalNorm: 'pooled', pooling: 'cls' });
      if (HF_VISION_CLASSES[modelClass].projection) {
        // CLIPModel's projection width is a top-level field; the vision model's its own.
        const pd = type.full ? (raw.projection_dim ?? 512) : get('projection_dim');
        config.projectionDim = positiveInt(pd, type.full ? where : vwhere, 'projection_dim');
      } else {
        config.projectionDim = 0;
      }
      break;
    }
    case 'siglip': {
      const useHead = get('vision_use_head');
      if (useHead !== true) {
        fail(vwhere, `vision_use_head ${JSON.stringify(useHead)} is not supported (supported: true): without the attention-pooling head a SigLIP tower has no global feature for late fusion`);
      }
      Object.assign(config, { patchBias: true, classToken: false, preNorm: false, finalNorm: 'all', pooling: 'attention', projectionDim: 0 });
      break;
    }
    default: {
      const never: never = family;
      fail(where, `unknown family ${JSON.stringify(never)}`);
    }
  }
  return { savedClass, modelClass, family, config };
}

// ---------------------------------------------------------------------------------------------
// Preprocessing

/** PIL resampling codes as preprocessor_config.json writes them; 4 (box) and 5 (hamming) have no equivalent here. */
const PIL_RESAMPLE: Readonly<Record<number, ResampleFilter>> = { 0: 'nearest', 1: 'lanczos', 2: 'bilinear', 3: 'bicubic' };

/** Image processor classes whose preprocessor_config.json fields this reader knows. */
export const HF_IMAGE_PROCESSORS = [
  'CLIPImageProcessor',
  'CLIPImageProcessorFast',
  'CLIPFeatureExtractor',
  'SiglipImageProcessor',
  'SiglipImageProcessorFast',
] as const;

/** What transformers' CLIP and SigLIP image processors do when their config is absent, at the encoder's image size. */
export function defaultHfPreprocessing(family: HfVisionFamily, imageSize: number): ImagePreprocessing {
  switch (family) {
    case 'clip':
      return { resize: { shortestEdge: imageSize }, crop: { height: imageSize, width: imageSize }, resample: 'bicubic', mean: [...CLIP_MEAN], std: [...CLIP_STD] };
    case 'siglip':
      return { resize: { height: imageSize, width: imageSize }, crop: null, resample: 'bicubic', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };
    default: {
      const never: never = family;
      throw new Error(`defaultHfPreprocessing: unknown family ${JSON.stringify(never)}; valid are clip, siglip`);
    }
  }
}

/**
 * Reads a preprocessor_config.json object: `size` ({shortest_edge}, {height, width}, or a bare
 * number — the short side for CLIP, both sides for SigLIP), `do_center_crop` with `crop_size`,
 * `resample`, `image_mean`/`image_std` (3 numbers or one for all channels), `do_normalize`,
 * `do_rescale`/`rescale_factor` (only 1/255). Missing fields take the family's defaults; the
 * output must be imageSize × imageSize.
 */
export function parseHfPreprocessing(raw: Record<string, unknown>, family: HfVisionFamily, imageSize: number, where: string): ImagePreprocessing {
  const base = defaultHfPreprocessing(family, imageSize);
  const kind = raw.image_processor_type ?? raw.feature_extractor_type;
  if (kind !== undefined && !(HF_IMAGE_PROCESSORS as readonly unknown[]).includes(kind)) {
    fail(where, `image processor ${JSON.stringify(kind)} is not supported; supported: ${HF_IMAGE_PROCESSORS.join(', ')}`);
  }
  if (raw.do_resize === false) fail(where, 'do_resize false is not supported (supported: true): every image is resized to the encoder\'s size here');
  if (raw.do_rescale === false) fail(where, 'do_rescale false is not supported (supported: true, rescale_factor 1/255)');
  if (raw.rescale_factor !== undefined && !(typeof raw.rescale_factor === 'number' && Math.abs(raw.rescale_factor - 1 / 255) <= 1e-12)) {
    fail(where, `rescale_factor ${JSON.stringify(raw.rescale_factor)} is not supported (supported: 1/255 = ${1 / 255})`);
  }
  const side = (v: unknown, field: string): number => positiveInt(v, where, field);
  const hw = (v: Record<string, unknown>, field: string) => ({ height: side(v.height, `${field}.height`), width: side(v.width, `${field}.width`) });

  let resize = base.resize;
  const size = raw.size;
  if (size !== undefined && size !== null) {
    if (typeof size === 'number') {
      resize = family === 'clip' ? { shortestEdge: side(size, 'size') } : { height: side(size, 'size'), width: size };
    } else if (typeof size === 'object' && !Array.isArray(size)) {
      const s = size as Record<string, unknown>;
      const keys = Object.keys(s).sort().join(',');
      if (keys === 'shortest_edge') resize = { shortestEdge: side(s.shortest_edge, 'size.shortest_edge') };
      else if (keys === 'height,width') resize = hw(s, 'size');
      else fail(where, `size ${JSON.stringify(size)} is not supported; supported: {"shortest_edge": n}, {"height": h, "width": w} or a number`);
    } else {
      fail(where, `size ${JSON.stringify(size)} is not supported; supported: {"shortest_edge": n}, {"height": h, "width": w} or a number`);
    }
  }

  const doCrop = raw.do_center_crop === undefined ? base.crop !== null : raw.do_center_crop;
  if (typeof doCrop !== 'boolean') fail(where, `do_center_crop must be true or false, got ${JSON.stringify(doCrop)}`);
  let crop: ImagePreprocessing['crop'] = null;
  if (doCrop) {
    const cs = raw.crop_size ?? (base.crop ? { height: base.crop.height, width: base.crop.width } : { height: imageSize, width: imageSize });
    if (typeof cs === 'number') crop = { height: side(cs, 'crop_size'), width: cs };
    else if (typeof cs === 'object' && cs !== null && !Array.isArray(cs) && Object.keys(cs).sort().join(',') === 'height,width') crop = hw(cs as Record<string, unknown>, 'crop_size');
    else fail(where, `crop_size ${JSON.stringify(cs)} is not supported; supported: {"height": h, "width": w} or a number`);
  }

  let resample = base.resample;
  if (raw.resample !== undefined && raw.resample !== null) {
    const r = raw.resample as number;
    if (!(r in PIL_RESAMPLE)) {
      fail(where, `resample ${JSON.stringify(raw.resample)} is not supported; supported: ${Object.entries(PIL_RESAMPLE).map(([k, v]) => `${k} (${v})`).join(', ')}`);
    }
    resample = PIL_RESAMPLE[r];
  }

  const channels = (v: unknown, field: string): number[] => {
    const arr = typeof v === 'number' ? [v, v, v] : v;
    if (!Array.isArray(arr) || arr.length !== 3 || !arr.every((x) => typeof x === 'number' && Number.isFinite(x))) {
      fail(where, `${field} ${JSON.stringify(v)} is not supported; supported: 3 numbers (R, G, B) or one number`);
    }
    return arr as number[];
  };
  let mean = raw.image_mean === undefined || raw.image_mean === null ? base.mean : channels(raw.image_mean, 'image_mean');
  let std = raw.image_std === undefined || raw.image_std === null ? base.std : channels(raw.image_std, 'image_std');
  if (raw.do_normalize === false) {
    mean = [0, 0, 0];
    std = [1, 1, 1];
  }
  const pre: ImagePreprocessing = { resize, crop, resample, mean: [...mean], std: [...std] };
  let out: number;
  try {
    out = preprocessingSize(pre);
  } catch (e) {
    fail(where, (e as Error).message);
  }
  if (out !== imageSize) fail(where, `the preprocessing gives ${out}×${out} images but the encoder's image_size is ${imageSize}`);
  return pre;
}

// ---------------------------------------------------------------------------------------------
// Weights

/** One expected checkpoint tensor: its key (without `vision_model.`), shape, and where its values go. */
interface WeightSlot {
  key: string;
  shape: number[];
  put(data: Float32Array, out: ParamRecord): void;
}

/** [r, c] → [c, r]. */
function transpose2d(data: Float32Array, r: number, c: number): Float32Array {
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = data[i * c + j];
  return out;
}

/** Conv weight [D, C, P, P] (d, c, py, px) → [P·P·C, D] with rows (py, px, c), patchify's feature order. */
function convToLinear(w: Float32Array, D: number, C: number, P: number): Float32Array {
  const out = new Float32Array(P * P * C * D);
  for (let d = 0; d < D; d++) {
    for (let c = 0; c < C; c++) {
      for (let py = 0; py < P; py++) {
        for (let px = 0; px < P; px++) out[((py * P + px) * C + c) * D + d] = w[((d * C + c) * P + py) * P + px];
      }
    }
  }
  return out;
}

/** The slots of a tower described by `cfg` (every field set), its ParamStore paths under `prefix`. */
function weightSlots(cfg: ViTConfig, family: HfVisionFamily, projection: boolean, prefix: string): WeightSlot[] {
  const D = cfg.dim!, C = cfg.channels!, P = cfg.patchSize!, F = cfg.mlpDim!;
  const N = (cfg.imageSize! / P) ** 2;
  const T = N + (cfg.classToken ? 1 : 0);
  const slots: WeightSlot[] = [];
  const copy = (key: string, shape: number[], path: string, storeShape = shape) =>
    slots.push({ key, shape, put: (data, out) => (out[path] = { shape: storeShape, data }) });
  const linear = (key: string, path: string, inDim: number, outDim: number, bias: boolean) => {
    slots.push({ key: `${key}.weight`, shape: [outDim, inDim], put: (data, out) => (out[`${path}.weight`] = { shape: [inDim, outDim], data: transpose2d(data, outDim, inDim) }) });
    if (bias) copy(`${key}.bias`, [outDim], `${path}.bias`);
  };
  const norm = (key: string, path: string) => {
    copy(`${key}.weight`, [D], `${path}.weight`);
    copy(`${key}.bias`, [D], `${path}.bias`);
  };
  const mlp = (key: string, path: string) => {
    linear(`${key}.fc1`, `${path}.fc1`, D, F, true);
    linear(`${key}.fc2`, `${path}.fc2`, F, D, true);
  };
  const v = prefix;
  slots.push({
    key: 'embeddings.patch_embedding.weight',
    shape: [D, C, P, P],
    put: (data, out) => (out[`${v}.patch_embed.weight`] = { shape: [P * P * C, D], data: convToLinear(data, D, C, P) }),
  });
  if (cfg.patchBias) copy('embeddings.patch_embedding.bias', [D], `${v}.patch_embed.bias`);
  if (cfg.classToken) copy('embeddings.class_embedding', [D], `${v}.cls`);
  copy('embeddings.position_embedding.weight', [T, D], `${v}.pos`);
  if (cfg.preNorm) norm('pre_layrnorm', `${v}.norm_pre`);
  for (let i = 0; i < cfg.depth!; i++) {
    const k = `encoder.layers.${i}`, p = `${v}.blocks.${i}`;
    norm(`${k}.layer_norm1`, `${p}.norm1`);
    for (const [hf, ours] of [['q_proj', 'q'], ['k_proj', 'k'], ['v_proj', 'v'], ['out_proj', 'o']]) linear(`${k}.self_attn.${hf}`, `${p}.attn.${ours}`, D, D, true);
    norm(`${k}.layer_norm2`, `${p}.norm2`);
    mlp(`${k}.mlp`, `${p}.mlp`);
  }
  norm('post_layernorm', `${v}.norm`);
  if (family === 'siglip') {
    copy('head.probe', [1, 1, D], `${v}.head.probe`, [D]);
    slots.push({
      key: 'head.attention.in_proj_weight',
      shape: [3 * D, D],
      put: (data, out) =>
        ['q', 'k', 'v'].forEach((name, j) => {
          out[`${v}.head.attn.${name}.weight`] = { shape: [D, D], data: transpose2d(data.subarray(j * D * D, (j + 1) * D * D), D, D) };
        }),
    });
    slots.push({
      key: 'head.attention.in_proj_bias',
      shape: [3 * D],
      put: (data, out) =>
        ['q', 'k', 'v'].forEach((name, j) => {
          out[`${v}.head.attn.${name}.bias`] = { shape: [D], data: data.slice(j * D, (j + 1) * D) };
        }),
    });
    linear('head.attention.out_proj', `${v}.head.attn.o`, D, D, true);
    norm('head.layernorm', `${v}.head.norm`);
    mlp('head.mlp', `${v}.head.mlp`);
  }
  if (projection) linear('visual_projection', `${v}.proj`, D, cfg.projectionDim!, false);
  return slots;
}

/** Keys of a checkpoint that belong to parts other than the tower being read (skipped, not refused). */
function isOtherPart(key: string, saved: HfVisionClass, target: HfVisionClass): boolean {
  if (HF_VISION_CLASSES[saved].full) {
    if (key.startsWith('text_model.') || key === 'text_projection.weight' || key === 'logit_scale' || key === 'logit_bias') return true;
  }
  return key === 'visual_projection.weight' && HF_VISION_CLASSES[saved].projection && !HF_VISION_CLASSES[target].projection;
}

const VISION_PREFIX = 'vision_model.';

/**
 * Maps a checkpoint's tensors onto ParamStore paths; every expected key must be there once
 * with its shape, and every other key must belong to another part of the saved class.
 */
export function mapHfVisionWeights(
  tensors: Record<string, { shape: number[]; data: Float32Array }>,
  parsed: HfVisionParsedConfig,
  prefix: string,
  where: string,
): ParamRecord {
  const slots = weightSlots(parsed.config, parsed.family, HF_VISION_CLASSES[parsed.modelClass].projection, prefix);
  const byKey = new Map(slots.map((s) => [s.key, s]));
  const seen = new Map<string, string>(); // stripped key → key in the file
  const out: ParamRecord = {};
  const unexpected: string[] = [];
  const T = (parsed.config.imageSize! / parsed.config.patchSize!) ** 2 + (parsed.config.classToken ? 1 : 0);
  for (const fileKey of Object.keys(tensors).sort()) {
    const key = fileKey.startsWith(VISION_PREFIX) ? fileKey.slice(VISION_PREFIX.length) : fileKey;
    const t = tensors[fileKey];
    if (key === 'embeddings.position_ids') {
      // A buffer older checkpoints saved: the positions 0 … T−1, which the table's row order already is.
      if (t.data.length !== T || t.data.some((x, i) => x !== i)) fail(where, `key "${fileKey}" must hold the positions 0 … ${T - 1}`);
      continue;
    }
    if (isOtherPart(key, parsed.savedClass, parsed.modelClass)) continue;
    const slot = byKey.get(key);
    if (!slot) {
      unexpected.push(fileKey);
      continue;
    }
    if (seen.has(key)) fail(where, `key "${fileKey}" is given twice (also as "${seen.get(key)}")`);
    seen.set(key, fileKey);
    if (t.shape.length !== slot.shape.length || t.shape.some((dd, i) => dd !== slot.shape[i])) {
      fail(where, `key "${fileKey}" has shape [${t.shape}], the config implies [${slot.shape}]`);
    }
    slot.put(t.data, out);
  }
  if (unexpected.length) {
    fail(where, `unexpected key${unexpected.length > 1 ? 's' : ''} for ${parsed.modelClass}: ${unexpected.slice(0, 8).map((k) => `"${k}"`).join(', ')}${unexpected.length > 8 ? `, … (${unexpected.length} in all)` : ''}`);
  }
  const missing = slots.filter((s) => !seen.has(s.key)).map((s) => s.key);
  if (missing.length) {
    fail(where, `missing key${missing.length > 1 ? 's' : ''} for ${parsed.modelClass} (with or without "${VISION_PREFIX}"): ${missing.slice(0, 8).map((k) => `"${k}"`).join(', ')}${missing.length > 8 ? `, … (${missing.length} in all)` : ''}`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Folders

/** Reads config.json and preprocessor_config.json (when there) of a folder: the ViT config and the preprocessing. */
export async function readHfVisionSpec(folder: string, opts: HfVisionReadOptions = {}): Promise<HfVisionSpec & { parsed: HfVisionParsedConfig }> {
  const cfgPath = join(folder, HF_CONFIG_FILE);
  if (!existsSync(cfgPath)) fail(folder, `no ${HF_CONFIG_FILE}: not a Hugging Face checkpoint folder`);
  const parsed = parseHfVisionConfig(await readJson(cfgPath), cfgPath, opts.asClass);
  const prePath = join(folder, HF_PREPROCESSOR_FILE);
  const fromFile = existsSync(prePath);
  const preprocessing = fromFile
    ? parseHfPreprocessing(await readJson(prePath), parsed.family, parsed.config.imageSize!, prePath)
    : defaultHfPreprocessing(parsed.family, parsed.config.imageSize!);
  return {
    folder,
    modelClass: parsed.modelClass,
    savedClass: parsed.savedClass,
    family: parsed.family,
    config: parsed.config,
    preprocessing,
    preprocessingFromFile: fromFile,
    parsed,
  };
}

/** Reads a folder's vision tower: config, preprocessing and weights (as ParamStore paths under opts.prefix). */
export async function readHfVision(folder: string, opts: HfVisionReadOptions = {}): Promise<HfVisionImport> {
  const prefix = opts.prefix ?? 'vit';
  const { parsed, ...spec } = await readHfVisionSpec(folder, opts);
  const weights = mapHfVisionWeights(await loadHfTensors(folder), parsed, prefix, folder);
  return { ...spec, prefix, weights };
}

/**
 * Builds the folder's vision tower in `store` under opts.prefix (default 'vit') and loads its
 * weights; the store must not already hold parameters there.
 */
export async function importHfVision(folder: string, store: ParamStore, opts: HfVisionReadOptions = {}): Promise<HfVisionImport & { vit: ViT }> {
  const imp = await readHfVision(folder, opts);
  if (store.list(imp.prefix).length) fail(folder, `the store already holds parameters under "${imp.prefix}"`);
  const vit = new ViT(imp.config, store, imp.prefix);
  const report = store.load(imp.weights, { strict: false });
  const missing = report.missing.filter((p) => store.list(imp.prefix).includes(p));
  if (missing.length || report.unexpected.length) {
    // Both sides derive from one config; a difference is a bug in the mapping, never the user's.
    throw new Error(`importHfVision: the mapping and the ViT disagree: missing [${missing.join(', ')}], unexpected [${report.unexpected.join(', ')}]`);
  }
  return { ...imp, vit };
}

// ---------------------------------------------------------------------------------------------
// Reference comparison

/** NCHW float32 [b, c, h, w] → NHWC [b, h, w, c]. */
function nchwToNhwc(t: RefTensor): Float32Array {
  const [b, c, h, w] = t.shape;
  const out = new Float32Array(t.data.length);
  for (let i = 0; i < b; i++) {
    for (let ch = 0; ch < c; ch++) {
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) out[((i * h + y) * w + x) * c + ch] = t.data[((i * c + ch) * h + y) * w + x];
      }
    }
  }
  return out;
}

const asRef = (t: tf.Tensor): RefTensor => ({ shape: [...t.shape], data: Float32Array.from(t.dataSync() as Float32Array) });

/**
 * Runs the folder's tower (read as the reference's class) on the reference's pixel_values and
 * compares every listed output: `embeddings_output`, each `hidden_states` entry,
 * `last_hidden_state`, `pooler_output`, `cls_last_hidden_state`, `image_embeds`. An output the
 * ViT cannot produce is reported as not produced (the report is then not ok).
 */
export async function compareVisionReference(folder: string, ref: HfReference, tolerance: number): Promise<ReferenceReport> {
  if (!(tolerance >= 0) || !Number.isFinite(tolerance)) throw new Error(`compareVisionReference: tolerance must be a finite number ≥ 0, got ${tolerance}`);
  const asClass = (CLASS_NAMES as string[]).includes(ref.modelClass) ? ref.modelClass : undefined;
  if (!asClass) fail(ref.path, `model_class "${ref.modelClass}" is not a vision class this importer reads; supported: ${CLASS_NAMES.join(', ')}`);
  const imp = await readHfVision(folder, { asClass, prefix: 'vit' });
  const pv = decodeRefTensor(ref.inputs.pixel_values, `${ref.path}: inputs.pixel_values`);
  const { imageSize, channels } = imp.config;
  if (pv.shape.length !== 4 || pv.shape[1] !== channels || pv.shape[2] !== imageSize || pv.shape[3] !== imageSize) {
    fail(ref.path, `inputs.pixel_values has shape [${pv.shape}], the encoder takes [b, ${channels}, ${imageSize}, ${imageSize}] (NCHW)`);
  }
  const store = new ParamStore(0);
  let got: Record<string, RefTensor | RefTensor[]>;
  try {
    const vit = new ViT(imp.config, store, imp.prefix);
    store.load(imp.weights);
    got = tf.tidy(() => {
      const [b, c, h, w] = pv.shape;
      const images = tf.tensor4d(nchwToNhwc(pv), [b, h, w, c]);
      const tr = vit.trace(images);
      const out: Record<string, RefTensor | RefTensor[]> = {
        embeddings_output: asRef(tr.embeddings),
        hidden_states: tr.hiddenStates.map(asRef),
        last_hidden_state: asRef(tr.lastHiddenState),
        pooler_output: asRef(tr.pooled),
      };
      // CLIP's last_hidden_state[:, 0]: the CLS row of the un-normed (finalNorm 'pooled') last layer.
      if (vit.cls) out.cls_last_hidden_state = asRef(tf.reshape(tf.slice(tr.lastHiddenState, [0, 0, 0], [b, 1, -1]), [b, -1]));
      if (tr.projected) out.image_embeds = asRef(tr.projected);
      return out as unknown as tf.TensorContainer;
    }) as unknown as Record<string, RefTensor | RefTensor[]>;
  } finally {
    store.dispose();
  }

  const rows: OutputComparison[] = [];
  const compare = (name: string, mine: RefTensor | undefined, theirs: RefTensor) => {
    if (!mine) {
      rows.push({ name, maxAbsDiff: NaN, compared: 0, note: `${imp.modelClass} as imported has no such output` });
      return;
    }
    try {
      const { max, compared } = maxAbsDiff(mine, theirs);
      rows.push({ name, maxAbsDiff: max, compared });
    } catch (e) {
      rows.push({ name, maxAbsDiff: NaN, compared: 0, note: (e as Error).message });
    }
  };
  for (const [name, refOut] of Object.entries(ref.outputs)) {
    const mine = got[name];
    if (Array.isArray(refOut)) {
      if (mine !== undefined && !Array.isArray(mine)) {
        rows.push({ name, maxAbsDiff: NaN, compared: 0, note: 'the reference lists tensors, the ViT gives one' });
        continue;
      }
      refOut.forEach((r, i) => {
        const m = mine?.[i];
        if (mine && !m) rows.push({ name: `${name}[${i}]`, maxAbsDiff: NaN, compared: 0, note: `the ViT gives ${mine.length} entries` });
        else compare(`${name}[${i}]`, m, r);
      });
    } else {
      if (Array.isArray(mine)) {
        rows.push({ name, maxAbsDiff: NaN, compared: 0, note: 'the reference holds one tensor, the ViT gives a list' });
        continue;
      }
      compare(name, mine, refOut);
    }
  }
  return finishReport(folder, ref.modelClass, tolerance, rows);
}
