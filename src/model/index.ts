/**
 * Neural building blocks of the representation model (docs/architecture.md "model" layer).
 * Reading order: params → layers → rope → attention → vit → connector → lm.
 */
export { ParamStore, pathHasPrefix } from './params';
export type { ParamInit, ParamTensor, ParamRecord, LoadReport } from './params';
export { Linear, loraPaths, LayerNorm, RMSNorm, GeluMLP, SwiGLUMLP, mlp2xGelu, gelu, geluTanh, quickGelu, applyGelu, GELU_VARIANTS, silu, swigluHidden, DEFAULT_INIT_STD } from './layers';
export type { LinearOptions, LoraOptions, NormOptions, MlpOptions, GeluMlpOptions, GeluVariant } from './layers';
export { RoPE } from './rope';
export { MultiHeadAttention, resolveAttentionConfig, causalBias, ATTENTION_KINDS } from './attention';
export type { AttentionKind, AttentionConfig, ResolvedAttentionConfig, AttentionOptions, AttentionOutput } from './attention';
export { ViT, ViTBlock, AttentionPoolingHead, patchify, resolveViTConfig, vitArchitecture, vitMlpDim, VIT_ARCHITECTURE_DEFAULTS, VIT_ACTIVATIONS, VIT_FINAL_NORMS, VIT_POOLINGS } from './vit';
export type { ViTConfig, ResolvedViTConfig, ViTForwardOptions, ViTOutput, ViTTrace, ViTArchitecture, ViTActivation, ViTFinalNorm, ViTPooling } from './vit';
export { createConnector, resolveConnectorConfig, MlpConnector, QFormerConnector, QFormerLayer, CONNECTOR_KINDS } from './connector';
export type { Connector, ConnectorKind, ConnectorConfig, ResolvedConnectorConfig } from './connector';
export { DecoderLM, DecoderBlock, resolveLMConfig, lmLayout, tokenAt, projectionPath, LM_HEADS, LM_PROJECTIONS, DEFAULT_LORA_TARGETS } from './lm';
export type { LMConfig, ResolvedLMConfig, LMLayout, LMHead, LMForwardOptions, LMOutput, DecoderLMOptions, LMLoraConfig, LMProjection } from './lm';
export * from './lm-train';
export * from './checkpoint';
export * from './config';
export * from './prompt';
export * from './fusion';
export * from './notellm2';
export * from './batch';
export * from './hf/vision';
export * from './hf/weights';
export {
  readHfReference, decodeRefTensor, maxAbsDiff, finishReport, formatReport as formatReferenceReport,
  REFERENCE_FILE, DEFAULT_REFERENCE_TOLERANCE,
} from './hf/reference';
export type { RefTensor, HfReference, OutputComparison, ReferenceReport } from './hf/reference';
export * from './hf/llama';
export * from './hf/check';
