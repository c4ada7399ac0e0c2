/**
 * The evaluation of a variant (docs/method.md "Evaluation protocol"): the recall protocol
 * (reference by default, or all-pairs) on the dataset's test pairs, overall and per subset,
 * with the two probes (every image zeroed: text alone; every text blanked: image alone), the
 * per-query ranks the statistics resample, and the mean late-fusion gate.
 *
 * One function serves a variant just trained (variant.ts) and one restored from its checkpoint
 * (restore.ts), so evaluating a saved model reproduces its run's figures by construction: the
 * same notes in the same order, the same embedding chunks, the same subsets.
 */
import { createHash } from 'node:crypto';
import { tf } from '../backend';
import type { Dataset, Note } from '../data/schema';
import { evaluationSubsets } from '../data/splits';
import type { NoteLLM2Model } from '../model/notellm2';
import type { PromptEncoder } from '../model/batch';
import { buildInputs, embedNotes, type EmbedOptions, type VisionSource } from '../train/representation';
import { evaluateRecall, type RecallProtocol, type RecallResult } from '../eval/recall';
import { EmbeddingCatalogue } from '../eval/catalogue';
import type { InputKind, ProbeOutcomes, QueryOutcomes, RecallMap, RecallOutcome, VariantResult } from './results';

/** A model ready to embed notes of a dataset. */
export interface EvaluationTarget {
  model: NoteLLM2Model;
  encoder: PromptEncoder;
  vision: VisionSource;
  dataset: Dataset;
}

export interface VariantEvaluation extends RecallOutcome {
  /** Text alone (zero image) and image alone (empty text); absent when `probes: false`. */
  probes?: ProbeOutcomes;
  nQueries: number;
  poolSize: number;
  /** The n_m embeddings of the test notes, in the dataset's test order. */
  catalogue: EmbeddingCatalogue;
  /** Mean gate value z over the first GATE_NOTES test notes (1 = all LM side), when the model has the gate. */
  meanGate?: number;
  /** Per-query ranks of the full input and the probes. */
  queries: QueryOutcomes;
  seconds: number;
}

export interface EvaluateOptions {
  /** Run the two probes. Defaults to true. */
  probes?: boolean;
  /** Defaults to 'reference'. */
  protocol?: RecallProtocol;
}

/** Test notes the mean gate value is taken over. */
export const GATE_NOTES = 256;

/** Recall per subset, as plain metric maps. */
export function subsetMetrics(r: RecallResult): Record<string, RecallMap> {
  return Object.fromEntries(Object.entries(r.subsets).map(([k, v]) => [k, v.recall]));
}

/** Mean gate value z over some notes: how much of the embedding the LM side supplies. */
export function meanGate(t: Omit<EvaluationTarget, 'dataset'>, notes: readonly Note[]): number | undefined {
  if (!t.model.gate) return undefined;
  const batch = buildInputs(t.model, t.encoder, t.vision, notes);
  try {
    return tf.tidy(() => tf.mean(t.model.forward(batch.inputs).gate!).dataSync()[0]);
  } finally {
    tf.dispose(batch.owned);
  }
}

/** The part of a VariantResult an evaluation supplies. */
export function evaluationFields(e: VariantEvaluation): Pick<VariantResult, 'metrics' | 'subsets' | 'probes' | 'nQueries' | 'poolSize' | 'evalSeconds' | 'meanGate' | 'queries'> {
  return { metrics: e.metrics, subsets: e.subsets, probes: e.probes, nQueries: e.nQueries, poolSize: e.poolSize, evalSeconds: e.seconds, meanGate: e.meanGate, queries: e.queries };
}

/**
 * The per-query ranks of recall results over the same queries (the full input first, then
 * probes), for the statistics. Throws when the results were not computed on the same queries.
 */
export function queryOutcomes(inputs: Partial<Record<InputKind, RecallResult>>): QueryOutcomes {
  const results = Object.values(inputs);
  const r = results[0];
  if (!r) throw new Error('queryOutcomes: no recall result given');
  const hash = createHash('sha256').update(r.protocol);
  for (const k of r.kept) hash.update(`\n${k.query}\t${k.target}`);
  for (const x of results) {
    if (x.kept.length !== r.kept.length || x.kept.some((k, i) => k.query !== r.kept[i].query || k.target !== r.kept[i].target)) {
      throw new Error('queryOutcomes: the inputs were evaluated on different queries');
    }
  }
  const ranks: QueryOutcomes['ranks'] = {};
  for (const [input, x] of Object.entries(inputs) as Array<[InputKind, RecallResult]>) ranks[input] = { higher: Array.from(x.ranks), ties: Array.from(x.ties) };
  return {
    protocol: r.protocol,
    tieMode: r.tieMode,
    ks: r.k,
    poolSize: r.poolSize,
    pairing: hash.digest('hex').slice(0, 16),
    subsets: r.subsetQueries,
    ...(r.clusters && { clusters: Array.from(r.clusters) }),
    ranks,
  };
}

/**
 * The image-alone probe of a model that reads no image: every note's input is the same blank
 * prompt, so every note gets the one embedding of that prompt (computed once, not once per note).
 */
function blankEmbeddings(t: Omit<EvaluationTarget, 'dataset'>, notes: readonly Note[]): { nm: Float32Array; dim: number } {
  const one = embedNotes(t.model, t.encoder, t.vision, notes.slice(0, 1), { emptyText: true });
  const nm = new Float32Array(notes.length * one.dim);
  for (let i = 0; i < notes.length; i++) nm.set(one.nm, i * one.dim);
  return { nm, dim: one.dim };
}

/** Evaluates a model on its dataset's test pairs (see the module comment). */
export async function evaluateVariant(t: EvaluationTarget, opts: EvaluateOptions = {}): Promise<VariantEvaluation> {
  const t0 = performance.now();
  const { dataset } = t;
  const testIds = dataset.noteIds.test;
  const notes: Note[] = testIds.map((id) => dataset.notes.get(id)!);
  const subsets = evaluationSubsets(dataset.notes, dataset.pairs.test);
  const recallOf = async (e: EmbedOptions) => {
    const out = e.emptyText && !t.model.vit ? blankEmbeddings(t, notes) : embedNotes(t.model, t.encoder, t.vision, notes, e);
    const catalogue = new EmbeddingCatalogue(testIds, out.nm, out.dim);
    const r = await evaluateRecall(dataset.pairs.test, catalogue, { notes: testIds, subsets: subsets.predicates, protocol: opts.protocol });
    return { r, catalogue };
  };
  const outcome = (r: RecallResult): RecallOutcome => ({ metrics: r.recall, subsets: subsetMetrics(r) });
  const main = await recallOf({});
  // A model that reads no image gets the same input with the image zeroed: its text-alone probe is its full pass.
  const probed = (opts.probes ?? true) ? { zeroImage: t.model.vit ? (await recallOf({ zeroImage: true })).r : main.r, emptyText: (await recallOf({ emptyText: true })).r } : undefined;
  return {
    ...outcome(main.r),
    probes: probed && { zeroImage: outcome(probed.zeroImage), emptyText: outcome(probed.emptyText) },
    nQueries: main.r.nQueries,
    poolSize: main.r.poolSize,
    catalogue: main.catalogue,
    meanGate: meanGate(t, notes.slice(0, GATE_NOTES)),
    queries: queryOutcomes({ full: main.r, ...probed }),
    seconds: (performance.now() - t0) / 1000,
  };
}
