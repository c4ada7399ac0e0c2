/**
 * The representation model's configuration: which parts exist and how they are wired.
 * Every ablation switch of PAPER.md's variant table is a field here, never a code edit;
 * `resolveModelConfig` applies every default in one place.
 *
 * Sizes default to a laptop-CPU scale (the paper uses a 7B LLM and CLIP ViT-B/16); the
 * wiring — frozen vision encoder, Q-Former + mlp2x_gelu connector, causal LM, 64-d
 * L2-normalised head — is the paper's.
 */

export type ConnectorKind = 'mlp' | 'qformer';
export const CONNECTOR_KINDS: readonly ConnectorKind[] = ['mlp', 'qformer'];

export interface ModelVisionConfig {
  /** Square input size in pixels. Defaults to 32. */
  imageSize?: number;
  /** Patch side in pixels. Defaults to 8. */
  patchSize?: number;
  /** Width. Defaults to 128. */
  dModel?: number;
  /** Transformer blocks. Defaults to 4. */
  layers?: number;
  /** Attention heads. Defaults to 4. */
  heads?: number;
  /** MLP hidden = mlpRatio · dModel. Defaults to 4. */
  mlpRatio?: number;
}

export interface ModelConnectorConfig {
  /** 'qformer' (BLIP-2 style, the paper's) or 'mlp' (LLaVA style on patch tokens). Defaults to 'qformer'. */
  kind?: ConnectorKind;
  /** Learnable query tokens of the Q-Former (paper default 16; ablated 8/16/32/48). Defaults to 16. */
  queries?: number;
  /** Q-Former layers (paper: 6). Defaults to 2. */
  layers?: number;
  /** Q-Former width. Defaults to 128. */
  dModel?: number;
  /** Q-Former attention heads. Defaults to 4. */
  heads?: number;
}

export interface ModelLMConfig {
  /** Vocabulary size; set from the tokenizer. Defaults to 2048. */
  vocabSize?: number;
  /** Width. Defaults to 128. */
  dModel?: number;
  /** Decoder blocks. Defaults to 4. */
  layers?: number;
  /** Attention heads. Defaults to 4. */
  heads?: number;
  /** SwiGLU hidden width. Defaults to 344 (≈ 8/3 · dModel, rounded to a multiple of 8). */
  ffHidden?: number;
  /** Longest sequence (text + image tokens). Defaults to 192. */
  maxLen?: number;
  /** RoPE base. Defaults to 10000. */
  ropeBase?: number;
}

/** Text truncation of PAPER.md "Prompts": title 20 chars, content 80, ≤ 10 hashtags of ≤ 16 chars, 140 tokens. */
export interface TextLimits {
  /** Defaults to 20. */
  titleChars?: number;
  /** Defaults to 80. */
  contentChars?: number;
  /** Defaults to 10. */
  maxTopics?: number;
  /** Defaults to 16. */
  topicChars?: number;
  /** Text tokens after the prompt is rendered (image tokens come on top). Defaults to 140. */
  maxTokens?: number;
}

export interface ModelConfig {
  /** Image tokens spliced into the LM prompt at `<IMG>` (early fusion). Defaults to true. */
  earlyFusion?: boolean;
  /** Late-fusion gate after the LM (PAPER.md "Late fusion gate"). Defaults to false. */
  lateFusion?: boolean;
  /** Multimodal in-context learning prompt with n_v and n_m (PAPER.md "Prompts"). Defaults to false. */
  micl?: boolean;
  /** Output embedding size (paper: 64). Defaults to 64. */
  outDim?: number;
  vision?: ModelVisionConfig;
  connector?: ModelConnectorConfig;
  lm?: ModelLMConfig;
  text?: TextLimits;
}

export type ResolvedModelConfig = Required<Omit<ModelConfig, 'vision' | 'connector' | 'lm' | 'text'>> & {
  vision: Required<ModelVisionConfig>;
  connector: Required<ModelConnectorConfig>;
  lm: Required<ModelLMConfig>;
  text: Required<TextLimits>;
};

function positiveInt(value: number, field: string): number {
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`model config: ${field} must be a positive integer, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Applies every default (the single place they live) and checks the values. */
export function resolveModelConfig(cfg: ModelConfig = {}): ResolvedModelConfig {
  const v = cfg.vision ?? {};
  const c = cfg.connector ?? {};
  const l = cfg.lm ?? {};
  const t = cfg.text ?? {};
  const out: ResolvedModelConfig = {
    earlyFusion: cfg.earlyFusion ?? true,
    lateFusion: cfg.lateFusion ?? false,
    micl: cfg.micl ?? false,
    outDim: cfg.outDim ?? 64,
    vision: {
      imageSize: v.imageSize ?? 32,
      patchSize: v.patchSize ?? 8,
      dModel: v.dModel ?? 128,
      layers: v.layers ?? 4,
      heads: v.heads ?? 4,
      mlpRatio: v.mlpRatio ?? 4,
    },
    connector: {
      kind: c.kind ?? 'qformer',
      queries: c.queries ?? 16,
      layers: c.layers ?? 2,
      dModel: c.dModel ?? 128,
      heads: c.heads ?? 4,
    },
    lm: {
      vocabSize: l.vocabSize ?? 2048,
      dModel: l.dModel ?? 128,
      layers: l.layers ?? 4,
      heads: l.heads ?? 4,
      ffHidden: l.ffHidden ?? 344,
      maxLen: l.maxLen ?? 192,
      ropeBase: l.ropeBase ?? 10000,
    },
    text: {
      titleChars: t.titleChars ?? 20,
      contentChars: t.contentChars ?? 80,
      maxTopics: t.maxTopics ?? 10,
      topicChars: t.topicChars ?? 16,
      maxTokens: t.maxTokens ?? 140,
    },
  };
  if (!CONNECTOR_KINDS.includes(out.connector.kind)) {
    throw new Error(`model config: connector.kind must be one of ${CONNECTOR_KINDS.join(', ')}, got "${out.connector.kind}"`);
  }
  for (const [group, obj] of [['vision', out.vision], ['connector', out.connector], ['lm', out.lm], ['text', out.text]] as const) {
    for (const [k, val] of Object.entries(obj)) if (typeof val === 'number') positiveInt(val, `${group}.${k}`);
  }
  positiveInt(out.outDim, 'outDim');
  if (out.vision.imageSize % out.vision.patchSize !== 0) {
    throw new Error(`model config: vision.imageSize (${out.vision.imageSize}) must be a multiple of vision.patchSize (${out.vision.patchSize})`);
  }
  for (const [group, d, h] of [['vision', out.vision.dModel, out.vision.heads], ['connector', out.connector.dModel, out.connector.heads], ['lm', out.lm.dModel, out.lm.heads]] as const) {
    if (d % h !== 0) throw new Error(`model config: ${group}.dModel (${d}) must be divisible by ${group}.heads (${h})`);
  }
  if (out.micl && !out.earlyFusion) {
    // mICL compresses the image into its own token inside the LM: it needs the image tokens there.
    throw new Error('model config: micl requires earlyFusion (the image part of the mICL prompt holds the image tokens)');
  }
  return out;
}
