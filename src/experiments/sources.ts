/**
 * Existing models a run brings (docs/method.md "Overview"): a Hugging Face LLM folder
 * (`--lm`) and a vision encoder folder (`--vision`), in the layout `save_pretrained` writes.
 * They replace the built-in pretrained towers: no pretraining runs, the tokenizer is the LLM's
 * own, and the connector and gate widths follow the imported models.
 *
 * A run records each folder with the SHA-256 of every file the import reads
 * (`SourceRecord`), so its checkpoints need to hold only the tensors training changed: the
 * rest is read from the folder again, and a folder whose files changed since is refused.
 *
 *   tokenizer: <lm>/tokenizer.json, with <lm>/tokenizer_config.json's bos/eos/pad tokens;
 *              <IMG>, <IMG_EMB> (and a pad token when there is none) are added as special
 *              tokens; the token embedding grows by as many rows, each the mean of the
 *              existing rows (so a new token starts as an "average" word, not as noise)
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadTokenizer, stringifyTokenizerJson, type SpecialRole, type TextTokenizer } from '../data/tokenizer';
import type { ImagePreprocessing } from '../data/images';
import type { ParamStore } from '../model/params';
import type { ModelConfig, ResolvedModelConfig } from '../model/config';
import { HF_CONFIG_FILE, importHfLM, readHfLMConfig } from '../model/hf/llama';
import { HF_PREPROCESSOR_FILE, importHfVision, readHfVisionSpec } from '../model/hf/vision';
import { HF_WEIGHTS_FILE, HF_WEIGHTS_INDEX } from '../model/hf/weights';
import { lmLayout, type DecoderLM } from '../model/lm';
import { growLMVocab } from '../model/lm-train';

export const HF_TOKENIZER_FILE = 'tokenizer.json';
export const HF_TOKENIZER_CONFIG_FILE = 'tokenizer_config.json';

/** A model folder as a run read it: every file the import reads, with its SHA-256. */
export interface SourceRecord {
  /** Absolute path of the folder. */
  folder: string;
  /** File name → hex SHA-256. */
  files: Record<string, string>;
}

/** The folders a run imports its towers from (absent: the built-in pretrained tower). */
export interface TowerSources {
  lm?: SourceRecord;
  vision?: SourceRecord & { preprocessing: ImagePreprocessing };
}

async function sha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** The files of a folder the importers read: config, weights (single or sharded), tokenizer and preprocessing files. */
function sourceFiles(folder: string): string[] {
  const names = readdirSync(folder);
  const wanted = (n: string) =>
    n === HF_CONFIG_FILE ||
    n === HF_WEIGHTS_INDEX ||
    n === HF_TOKENIZER_FILE ||
    n === HF_TOKENIZER_CONFIG_FILE ||
    n === HF_PREPROCESSOR_FILE ||
    n.endsWith('.safetensors');
  return names.filter(wanted).sort();
}

/** Hashes the files of a model folder (see sourceFiles). */
export async function recordSource(folderPath: string, what: '--lm' | '--vision'): Promise<SourceRecord> {
  const folder = resolve(folderPath);
  if (!existsSync(join(folder, HF_CONFIG_FILE))) {
    throw new Error(`${what} ${folderPath}: no ${HF_CONFIG_FILE} in ${folder} (expected a folder written by save_pretrained)`);
  }
  if (!existsSync(join(folder, HF_WEIGHTS_FILE)) && !existsSync(join(folder, HF_WEIGHTS_INDEX))) {
    throw new Error(`${what} ${folderPath}: neither ${HF_WEIGHTS_FILE} nor ${HF_WEIGHTS_INDEX} in ${folder} (only safetensors checkpoints are read)`);
  }
  const files: Record<string, string> = {};
  for (const name of sourceFiles(folder)) files[name] = await sha256(join(folder, name));
  return { folder, files };
}

/** Refuses a source folder whose files differ from what the run recorded. */
export async function verifySource(rec: SourceRecord, where: string): Promise<void> {
  if (!existsSync(rec.folder)) throw new Error(`${where}: the model folder ${rec.folder} it was trained from no longer exists`);
  const now = sourceFiles(rec.folder);
  const changed: string[] = [];
  for (const name of new Set([...Object.keys(rec.files), ...now])) {
    if (!(name in rec.files)) changed.push(`${name} (new)`);
    else if (!now.includes(name)) changed.push(`${name} (gone)`);
    else if ((await sha256(join(rec.folder, name))) !== rec.files[name]) changed.push(`${name} (changed)`);
  }
  if (changed.length) {
    throw new Error(`${where}: the model folder ${rec.folder} is not the one the run was trained from: ${changed.join(', ')}`);
  }
}

/** A token's content in tokenizer_config.json: a string, or an AddedToken object `{content, …}`. */
function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string' && v !== '') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

/**
 * The special-token roles an LLM folder's tokenizer_config.json gives: its bos, eos and pad
 * tokens (bos falls back to eos where the model has none, as Qwen2's); `<IMG>`, `<IMG_EMB>`,
 * and `<pad>` where there is no pad token, are the project's and are added at load.
 */
export function tokenizerRoles(folder: string): Partial<Record<SpecialRole, string>> {
  const path = join(folder, HF_TOKENIZER_CONFIG_FILE);
  if (!existsSync(path)) return {};
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
  const eos = tokenContent(raw.eos_token);
  const bos = tokenContent(raw.bos_token) ?? eos;
  const pad = tokenContent(raw.pad_token);
  return { ...(bos && { bos }), ...(eos && { eos }), ...(pad && { pad }) };
}

/**
 * A run's tokenizer file, read with the special-token roles it was written with: an imported
 * LLM's bos/eos/pad (tokenizer.json does not say which token plays which role), else the
 * defaults of the project's own tokenizers.
 */
export function loadRunTokenizer(path: string, sources?: TowerSources): TextTokenizer {
  const own = sources?.lm && sources.lm.files[HF_TOKENIZER_FILE] !== undefined;
  return loadTokenizer(path, { specialTokens: own ? tokenizerRoles(sources!.lm!.folder) : undefined });
}

/**
 * The LLM folder's tokenizer with the project's special tokens added, written to `dir` as
 * tokenizer.json (the ids a run uses, which survive a reload) and returned with its path.
 */
export function importTokenizer(folder: string, dir: string): { tokenizer: TextTokenizer; path: string } {
  const source = join(folder, HF_TOKENIZER_FILE);
  if (!existsSync(source)) throw new Error(`--lm ${folder}: no ${HF_TOKENIZER_FILE} (the LLM's own tokenizer is needed)`);
  const tokenizer = loadTokenizer(source, { specialTokens: tokenizerRoles(folder) });
  const text = stringifyTokenizerJson(tokenizer.toJSON());
  const path = join(dir, `tokenizer-${createHash('sha256').update(text).digest('hex').slice(0, 16)}.json`);
  if (!existsSync(path)) writeFileSync(path, text);
  return { tokenizer, path };
}

/**
 * The model configuration the imported towers dictate: the LLM's layout (no LM head: the
 * representation step never uses one) at the tokenizer's vocabulary, and the vision encoder's
 * architecture. Connector and gate widths follow from these when the config is resolved.
 */
export async function importedModelConfig(sources: TowerSources, vocabSize: number): Promise<ModelConfig> {
  const out: ModelConfig = {};
  if (sources.lm) {
    const spec = await readHfLMConfig(sources.lm.folder);
    if (vocabSize < spec.lm.vocabSize) {
      throw new Error(`--lm ${sources.lm.folder}: the tokenizer needs ${vocabSize} ids, fewer than the model's vocab_size ${spec.lm.vocabSize}`);
    }
    out.lm = { ...spec.lm, ...lmLayout(spec.lm), head: 'none', vocabSize };
  }
  if (sources.vision) out.vision = (await readHfVisionSpec(sources.vision.folder)).config;
  return out;
}

/**
 * Reads the imported towers' weights into `store` (under `lm` and `vit`, where NoteLLM2Model
 * looks), before the model is built on the store: the model then finds them and creates only
 * what is new (connector, gate, output head). The token embedding grows to the model's
 * vocabulary with mean rows. Folders are checked against their records first. Returns the
 * LLM as laid out for `lmTrain` (pass it to NoteLLM2Model: its frozen weights are not in the store).
 */
export async function loadImportedTowers(store: ParamStore, cfg: ResolvedModelConfig, sources: TowerSources, lmTrain = 'full'): Promise<{ lm?: DecoderLM }> {
  let lm: DecoderLM | undefined;
  if (sources.lm) {
    await verifySource(sources.lm, '--lm');
    // Laid out for the training mode: the weights it freezes go to native memory, never the heap.
    const imported = await importHfLM(sources.lm.folder, { store, prefix: 'lm', head: 'none', train: lmTrain });
    lm = growLMVocab(store, imported.lm, cfg.lm.vocabSize);
  }
  if (sources.vision && (cfg.earlyFusion || cfg.lateFusion)) {
    await verifySource(sources.vision, '--vision');
    await importHfVision(sources.vision.folder, store, { prefix: 'vit' });
  }
  return { lm };
}
