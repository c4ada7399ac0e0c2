/**
 * Export of a trained variant (`notellm2 export`): the LLM part as a Hugging Face folder that
 * PyTorch tools read, and the rest of the representation model beside it in this project's
 * checkpoint format.
 *
 *   <out>/config.json, model.safetensors   the LLM (LoRA merged, Hugging Face key names, the
 *                                          grown vocabulary; no LM head) — AutoModel reads it
 *   <out>/tokenizer.json                   the run's tokenizer, <IMG>/<IMG_EMB>/<pad> included
 *   <out>/tokenizer_config.json            which added tokens are bos, eos and pad
 *   <out>/notellm2/config.json             the model, training and prompt configuration; the
 *                                          LLM's source is <out> itself (with its file hashes),
 *                                          the vision encoder's its original folder
 *   <out>/notellm2/model.safetensors       connector, late-fusion gate, output head, τ (and the
 *                                          vision encoder when it is not an imported frozen one)
 *
 * `restoreVariant(<out>/notellm2)` loads an export back like any checkpoint.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringifyTokenizerJson } from '../data/tokenizer';
import { saveCheckpoint } from '../model/checkpoint';
import { pathHasPrefix, type ParamRecord } from '../model/params';
import { lmLayout, type ResolvedLMConfig } from '../model/lm';
import { HF_CONFIG_FILE, writeHfLMFolder } from '../model/hf/llama';
import { restoreVariant, type CheckpointConfig } from './restore';
import { HF_TOKENIZER_CONFIG_FILE, HF_TOKENIZER_FILE, recordSource } from './sources';
import { importedFrozen } from './variant';

/** The sub-folder of an export holding the rest of the model as a checkpoint. */
export const EXPORT_MODEL_DIR = 'notellm2';

/** A Llama config.json describing the built-in LM (an export of a run without --lm). */
function llamaConfigOf(c: ResolvedLMConfig): Record<string, unknown> {
  const l = lmLayout(c);
  return {
    architectures: ['LlamaModel'],
    model_type: 'llama',
    hidden_size: c.dim,
    intermediate_size: c.mlpHidden,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: l.nKVHeads,
    head_dim: l.headDim,
    hidden_act: 'silu',
    rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta,
    rope_scaling: null,
    vocab_size: c.vocabSize,
    tie_word_embeddings: false,
    attention_bias: l.qkvBias && l.oBias,
    mlp_bias: l.mlpBias,
  };
}

export interface ExportResult {
  out: string;
  files: string[];
}

/** Writes the export of the checkpoint at `checkpointDir` into `out` (see the module comment). */
export async function exportVariant(checkpointDir: string, out: string): Promise<ExportResult> {
  const dir = resolve(out);
  if (existsSync(dir) && readdirSync(dir).length > 0) throw new Error(`export: ${dir} exists and is not empty; choose a new --out`);
  const v = await restoreVariant(checkpointDir, { imagesOnDemand: true });
  try {
    mkdirSync(dir, { recursive: true });
    const { config, store, model, tokenizer } = v;
    const lmSource = config.sources?.lm;
    const sourceConfig = lmSource
      ? (JSON.parse(readFileSync(join(lmSource.folder, HF_CONFIG_FILE), 'utf8')) as Record<string, unknown>)
      : llamaConfigOf(config.model.lm);
    const written = await writeHfLMFolder(dir, store, model.lm, { sourceConfig });
    // The tokenizer with the added tokens, and which of them play bos, eos and pad.
    writeFileSync(join(dir, HF_TOKENIZER_FILE), stringifyTokenizerJson(tokenizer.toJSON()));
    const srcTokCfg = lmSource && existsSync(join(lmSource.folder, HF_TOKENIZER_CONFIG_FILE)) ? JSON.parse(readFileSync(join(lmSource.folder, HF_TOKENIZER_CONFIG_FILE), 'utf8')) : {};
    const roles = tokenizer.specialTokens;
    writeFileSync(join(dir, HF_TOKENIZER_CONFIG_FILE), `${JSON.stringify({ ...srcTokCfg, bos_token: roles.bos, eos_token: roles.eos, pad_token: roles.pad }, null, 2)}\n`);

    // Everything but the LLM, less an imported frozen vision tower (its folder holds it).
    const rest: ParamRecord = {};
    for (const [path, t] of Object.entries(store.export())) {
      if (pathHasPrefix(path, 'lm') || importedFrozen(store, config.sources, path)) continue;
      rest[path] = t;
    }
    const { lmTrain: _merged, ...train } = config.train;
    void _merged;
    const exported: CheckpointConfig = {
      ...config,
      // The LLM is the exported folder now, LoRA merged: read it whole and keep it frozen.
      train: { ...train, freeze: [...train.freeze, 'lm'] },
      tokenizerPath: join(dir, HF_TOKENIZER_FILE),
      pretrained: {},
      sources: { ...config.sources, lm: await recordSource(dir, '--lm') },
    };
    const modelDir = join(dir, EXPORT_MODEL_DIR);
    await saveCheckpoint(modelDir, { weights: rest, config: exported });
    return { out: dir, files: [written.configPath, written.weightsPath, join(dir, HF_TOKENIZER_FILE), join(dir, HF_TOKENIZER_CONFIG_FILE), modelDir] };
  } finally {
    v.dispose();
  }
}
