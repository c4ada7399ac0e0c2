/**
 * The representation model's configuration: which parts exist and how they are wired.
 * Every ablation switch of docs/method.md's variant table is a field here, never a code edit.
 * The towers keep their own config types (ViTConfig, ConnectorConfig, LMConfig) and their own
 * resolve functions; `resolveModelConfig` composes them, so each default lives in one place.
 *
 * Sizes default to a laptop-CPU scale (the paper uses a 7B LLM and CLIP ViT-B/16); the
 * wiring — frozen vision encoder, Q-Former + mlp2x_gelu connector, causal LM, 64-d
 * L2-normalised head — is the paper's.
 */
import { resolveViTConfig, type ResolvedViTConfig, type ViTConfig } from './vit';
import { resolveConnectorConfig, type ConnectorConfig, type ResolvedConnectorConfig } from './connector';
import { resolveLMConfig, type LMConfig, type ResolvedLMConfig } from './lm';

/** Text truncation of docs/method.md "Prompts": title 20 chars, content 80, ≤ 10 hashtags of ≤ 16 chars, 140 tokens. */
export interface TextLimits {
  /** Defaults to 20. */
  titleChars?: number;
  /** Defaults to 80. */
  contentChars?: number;
  /** Defaults to 10. */
  maxTopics?: number;
  /** Defaults to 16. */
  topicChars?: number;
  /** Tokens of the rendered prompt before the image slots are expanded. Defaults to 140. */
  maxTokens?: number;
}

export interface ModelConfig {
  /** Image tokens spliced into the LM prompt at `<IMG>` (early fusion). Defaults to true. */
  earlyFusion?: boolean;
  /** Late-fusion gate after the LM (docs/method.md "Late fusion gate"). Defaults to false. */
  lateFusion?: boolean;
  /** Multimodal in-context learning prompt with n_v and n_m (docs/method.md "Prompts"). Defaults to false. */
  micl?: boolean;
  /** Output embedding size (paper: 64). Defaults to 64. */
  outDim?: number;
  /** Vision encoder. Defaults: see ViTConfig, with dim 128 and depth 4 here. */
  vision?: ViTConfig;
  /** Connector. Defaults to a 2-layer Q-Former with 16 queries (paper: 6 layers, 16 queries). */
  connector?: Partial<ConnectorConfig>;
  /** Decoder LM; vocabSize comes from the tokenizer. Defaults: see LMConfig (d 128, 4 layers, 4 heads). */
  lm?: Partial<LMConfig>;
  text?: TextLimits;
}

export interface ResolvedModelConfig {
  earlyFusion: boolean;
  lateFusion: boolean;
  micl: boolean;
  outDim: number;
  vision: ResolvedViTConfig;
  connector: ResolvedConnectorConfig;
  lm: ResolvedLMConfig;
  text: Required<TextLimits>;
}

/** Applies every default and checks the values. `vocabSize` is required unless cfg.lm carries it. */
export function resolveModelConfig(cfg: ModelConfig = {}, vocabSize?: number): ResolvedModelConfig {
  const t = cfg.text ?? {};
  const vision = resolveViTConfig({ dim: 128, depth: 4, ...cfg.vision });
  const vocab = cfg.lm?.vocabSize ?? vocabSize ?? 2048;
  const out: ResolvedModelConfig = {
    earlyFusion: cfg.earlyFusion ?? true,
    lateFusion: cfg.lateFusion ?? false,
    micl: cfg.micl ?? false,
    outDim: cfg.outDim ?? 64,
    vision,
    connector: resolveConnectorConfig({ kind: 'qformer', ...cfg.connector }, vision.dim),
    lm: resolveLMConfig({ ...cfg.lm, vocabSize: vocab }),
    text: {
      titleChars: t.titleChars ?? 20,
      contentChars: t.contentChars ?? 80,
      maxTopics: t.maxTopics ?? 10,
      topicChars: t.topicChars ?? 16,
      maxTokens: t.maxTokens ?? 140,
    },
  };
  for (const [k, val] of Object.entries(out.text)) {
    if (!Number.isInteger(val) || val <= 0) throw new Error(`model config: text.${k} must be a positive integer, got ${JSON.stringify(val)}`);
  }
  if (!Number.isInteger(out.outDim) || out.outDim <= 0) throw new Error(`model config: outDim must be a positive integer, got ${out.outDim}`);
  if (out.micl && !out.earlyFusion) {
    // mICL compresses the image into its own token inside the LM: it needs the image tokens there.
    throw new Error('model config: micl requires earlyFusion (the image part of the mICL prompt holds the image tokens)');
  }
  return out;
}
