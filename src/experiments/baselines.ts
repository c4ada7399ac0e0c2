/**
 * The two single-modality baselines (data/baselines.ts: TF-IDF over the text, a colour
 * histogram of the cover) scored under the same recall protocol, queries, pool and subsets
 * as the variants (docs/method.md "Baselines"), so every figure of a run reads against what a
 * bag of words and a colour histogram get. Also what `notellm2 data synth|openmoji` prints.
 */
import type { Dataset, Note, Pair } from '../data/schema';
import { baselineEmbeddings, BASELINES, type BaselineName } from '../data/baselines';
import { evaluationSubsets, type PairPredicate } from '../data/splits';
import { evaluateRecall, type RecallProtocol, type RecallResult } from '../eval/recall';
import { queryOutcomes, subsetMetrics } from './evaluate';
import type { BaselineResult, QueryOutcomes } from './results';

/** Which input a baseline reads, and so which probe leaves it unchanged. */
export const BASELINE_MODALITY: Record<BaselineName, 'text' | 'image'> = {
  'tfidf-text': 'text',
  'colour-histogram-image': 'image',
};

export interface BaselineInputs {
  /** The test notes, in the dataset's test order. */
  notes: readonly Note[];
  pairs: readonly Pair[];
  subsets: Record<string, PairPredicate>;
  /** A note's cover: a path or the encoded bytes. */
  image: (note: Note) => string | Buffer | Promise<string | Buffer>;
  protocol?: RecallProtocol;
}

/** Recall of each baseline on the test pairs (the recall protocol's full result). */
export async function baselineRecall(inputs: BaselineInputs): Promise<Record<BaselineName, RecallResult>> {
  const embeddings = await baselineEmbeddings(inputs.notes, inputs.image);
  const ids = inputs.notes.map((n) => n.id);
  const out = {} as Record<BaselineName, RecallResult>;
  for (const name of BASELINES) {
    const v = embeddings[name];
    out[name] = await evaluateRecall(inputs.pairs, new Map(v.ids.map((id, i) => [id, v.rows[i]])), { notes: ids, subsets: inputs.subsets, protocol: inputs.protocol });
  }
  return out;
}

/** A baseline scored on a run's dataset, with the per-query ranks the statistics resample. */
export interface BaselineRun extends Omit<BaselineResult, 'intervals'> {
  queries: QueryOutcomes;
  seconds: number;
}

/**
 * Both baselines on a loaded dataset's test pairs, with the subsets the variants get
 * (evaluate.ts). The probe that leaves a baseline unchanged (TF-IDF: zero image; colour
 * histogram: empty text) is recorded with the same ranks; the other one does not apply.
 */
export async function scoreBaselines(dataset: Dataset, opts: { protocol?: RecallProtocol } = {}): Promise<BaselineRun[]> {
  const t0 = performance.now();
  const notes = dataset.noteIds.test.map((id) => dataset.notes.get(id)!);
  const subsets = evaluationSubsets(dataset.notes, dataset.pairs.test);
  const recall = await baselineRecall({ notes, pairs: dataset.pairs.test, subsets: subsets.predicates, image: (n) => dataset.imagePath(n.id), protocol: opts.protocol });
  const seconds = (performance.now() - t0) / 1000;
  return BASELINES.map((name) => {
    const r = recall[name];
    const probe = BASELINE_MODALITY[name] === 'text' ? 'zeroImage' : 'emptyText';
    return {
      name,
      modality: BASELINE_MODALITY[name],
      metrics: r.recall,
      subsets: subsetMetrics(r),
      probes: { [probe]: r.recall },
      probeSubsets: { [probe]: subsetMetrics(r) },
      nQueries: r.nQueries,
      poolSize: r.poolSize,
      queries: queryOutcomes({ full: r, [probe]: r }),
      seconds,
    };
  });
}
