/**
 * One variant of an ablation: a preset (plus overrides) and a seed, trained and evaluated on
 * a prepared dataset. Runs in the runner's process or in a worker process; everything it
 * needs travels as plain JSON (`VariantSpec`), everything it returns too (`VariantResult`).
 */
import { join } from 'node:path';
import { initBackend, tf } from '../backend';
import { loadDataset } from '../data/loaders';
import { loadTokenizer } from '../data/tokenizer';
import { ImageStore } from '../data/images';
import { evaluationSubsets } from '../data/splits';
import type { Note } from '../data/schema';
import { ParamStore } from '../model/params';
import { resolveModelConfig, type ModelConfig, type ResolvedModelConfig } from '../model/config';
import { NoteLLM2Model } from '../model/notellm2';
import { PromptEncoder } from '../model/batch';
import { loadCheckpoint } from '../model/checkpoint';
import { resolveTrainConfig, type ResolvedTrainConfig, type TrainConfig } from '../train/config';
import { train } from '../train/trainer';
import { RepresentationTask, TAU_PATH, VisionFeatureCache, buildInputs, embedNotes, type EmbedOptions, type VisionSource } from '../train/representation';
import { evaluateRecall } from '../eval/recall';
import { EmbeddingCatalogue } from '../eval/catalogue';
import { presetConfig } from './presets';

export interface VariantSpec {
  /** Display name (the preset, or preset plus a sweep suffix). */
  name: string;
  preset: string;
  seed: number;
  /** Merged over the preset (sweeps: connector, query tokens, …). */
  model?: ModelConfig;
  train?: TrainConfig;
  datasetDir: string;
  tokenizerPath: string;
  /** Cache folders of the pretrained towers (checkpoints under `<dir>/model`). */
  pretrained: { lm?: string; vit?: string };
  /** Where checkpoints go (resumable); none: no checkpoints. */
  checkpointDir?: string;
  /** Save the test-note embeddings of n_m here (an EmbeddingCatalogue folder). */
  embeddingsDir?: string;
  /** Short/long text threshold of the subsets (characters); default: the median. */
  lengthThreshold?: number;
  progress?: 'auto' | 'bar' | 'lines' | 'silent';
  /** Skip bad dataset rows (the runner's preparation has reported them). */
  skipBad?: boolean;
}

export type RecallMap = Record<string, number>;

export interface VariantResult {
  name: string;
  preset: string;
  seed: number;
  config: { model: ResolvedModelConfig; train: ResolvedTrainConfig; preset: string };
  metrics: RecallMap;
  subsets: Record<string, RecallMap>;
  /** Recall with every image zeroed (text alone) and with every text blanked (image alone). */
  probes: { zeroImage: { metrics: RecallMap; subsets: Record<string, RecallMap> }; emptyText: { metrics: RecallMap; subsets: Record<string, RecallMap> } };
  nQueries: number;
  poolSize: number;
  trainSeconds: number;
  evalSeconds: number;
  steps: number;
  bestEpoch: number;
  valLoss: number[];
  curve: { step: number; loss: number; tau?: number; lr?: number }[];
  /** Mean late-fusion gate value z over the test notes (1 = all LM side), when the model has the gate. */
  meanGate?: number;
  backend: string;
}

/** Recall per subset, as plain metric maps. */
function subsetMetrics(r: Awaited<ReturnType<typeof evaluateRecall>>): Record<string, RecallMap> {
  return Object.fromEntries(Object.entries(r.subsets).map(([k, v]) => [k, v.recall]));
}

export async function runVariant(spec: VariantSpec): Promise<VariantResult> {
  const backend = await initBackend();
  const { dataset } = await loadDataset(spec.datasetDir, { images: 'exists', skipBad: spec.skipBad });
  const tokenizer = loadTokenizer(spec.tokenizerPath);
  const modelCfg = resolveModelConfig({ ...presetConfig(spec.preset), ...spec.model }, tokenizer.vocabSize);
  const trainCfg = resolveTrainConfig(spec.train);
  const store = new ParamStore(spec.seed);
  try {
    const model = new NoteLLM2Model(modelCfg, store);
    // The existing towers (PAPER.md premise): pretrained LM and vision encoder.
    if (spec.pretrained.lm) store.load((await loadCheckpoint(join(spec.pretrained.lm, 'model'))).weights, { strict: false });
    if (spec.pretrained.vit && model.vit) store.load((await loadCheckpoint(join(spec.pretrained.vit, 'model'))).weights, { strict: false });
    if (trainCfg.freezeVision) store.setTrainable('vit', false);
    for (const prefix of trainCfg.freeze) store.setTrainable(prefix, false);

    const encoder = new PromptEncoder(tokenizer, modelCfg, model.imageTokens);
    const trainIds = new Set<string>();
    for (const split of ['train', 'val'] as const) for (const p of dataset.pairs[split]) trainIds.add(p.a).add(p.b);
    const testIds = dataset.noteIds.test;
    let vision: VisionSource = { kind: 'none' };
    if (model.vit) {
      const images = ImageStore.shared(dataset, { size: modelCfg.vision.imageSize });
      await images.load([...trainIds, ...testIds]);
      vision = trainCfg.freezeVision
        ? { kind: 'cache', cache: VisionFeatureCache.build(model, images, [...new Set([...trainIds, ...testIds])], { flips: trainCfg.flip }) }
        : { kind: 'images', images };
    }

    const task = new RepresentationTask(model, encoder, vision, dataset.notes, dataset.pairs.train, dataset.pairs.val, trainCfg);
    const result = await train(task, store, trainCfg, {
      checkpointDir: spec.checkpointDir,
      config: { model: modelCfg, train: trainCfg, preset: spec.preset, name: spec.name, datasetDir: spec.datasetDir, tokenizerPath: spec.tokenizerPath, pretrained: spec.pretrained },
      tauPath: TAU_PATH,
      progress: { label: `${spec.name} s${spec.seed}`, mode: spec.progress ?? 'auto' },
    });

    // Evaluation (PAPER.md "Evaluation protocol") on the test notes, with the probes.
    const t0 = performance.now();
    const notes: Note[] = testIds.map((id) => dataset.notes.get(id)!);
    const subsets = evaluationSubsets(dataset.notes, dataset.pairs.test, { threshold: spec.lengthThreshold });
    const recallOf = async (opts: EmbedOptions) => {
      const e = embedNotes(model, encoder, vision, notes, opts);
      const table = { ids: testIds, vectors: e.nm, dim: e.dim };
      return { r: await evaluateRecall(dataset.pairs.test, table, { notes: testIds, subsets: subsets.predicates }), table };
    };
    const main = await recallOf({});
    if (spec.embeddingsDir) await new EmbeddingCatalogue(main.table.ids, main.table.vectors, main.table.dim).save(spec.embeddingsDir, { preset: spec.preset, seed: String(spec.seed) });
    const zeroImage = (await recallOf({ zeroImage: true })).r;
    const emptyText = (await recallOf({ emptyText: true })).r;
    let meanGate: number | undefined;
    if (model.gate) meanGate = gateMean(model, encoder, vision, notes.slice(0, 256));
    return {
      name: spec.name,
      preset: spec.preset,
      seed: spec.seed,
      config: { model: modelCfg, train: trainCfg, preset: spec.preset },
      metrics: main.r.recall,
      subsets: subsetMetrics(main.r),
      probes: {
        zeroImage: { metrics: zeroImage.recall, subsets: subsetMetrics(zeroImage) },
        emptyText: { metrics: emptyText.recall, subsets: subsetMetrics(emptyText) },
      },
      nQueries: main.r.nQueries,
      poolSize: main.r.poolSize,
      trainSeconds: result.seconds,
      evalSeconds: (performance.now() - t0) / 1000,
      steps: result.steps,
      bestEpoch: result.bestEpoch,
      valLoss: result.valLoss,
      curve: result.history.map((h) => ({ step: h.step, loss: h.loss, tau: h.tau, lr: h.lr })),
      meanGate,
      backend: backend.name,
    };
  } finally {
    store.dispose();
  }
}

/** Mean gate value z over some notes: how much of the embedding the LM side supplies. */
function gateMean(model: NoteLLM2Model, encoder: PromptEncoder, vision: VisionSource, notes: Note[]): number {
  const batch = buildInputs(model, encoder, vision, notes);
  try {
    return tf.tidy(() => tf.mean(model.forward(batch.inputs).gate!).dataSync()[0]);
  } finally {
    tf.dispose(batch.owned);
  }
}
