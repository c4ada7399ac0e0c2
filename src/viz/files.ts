/**
 * The files of a run folder that the report reads, their schemas, and loading with errors that
 * name the file and the field.
 *
 *   runs/<name>/results.json     required  Results (docs/architecture.md "Contracts", multi-seed extension in types.ts)
 *   runs/<name>/curves.json      optional  { "curves": [{ "preset", "seed"?, "points": [{ "step", "loss", "tau"?, "lr"? }] }] }
 *   runs/<name>/saliency.json    optional  { "presets": [{ "preset", "layers": [{ "sv", "st", "so", "attnImage"?, "attnText"? }] }] }
 *   runs/<name>/embeddings.json  optional  { "preset"?, "points": [{ "id"?, "category", "title"?, "vector": number[] }] }
 *   runs/<name>/neighbours.json  optional  { "queries": [{ "query": Note, "neighbours": [Note & { "score"?, "relevant"? }] }] }
 *                                          Note = { "id", "title", "category"?, "image"? (a data: URI) }
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { EmbeddingSet, NeighbourQuery, Results, SaliencySeries, TrainingCurve } from './types';
import { RUN_FILES } from '../experiments/run-folder';

const metricMap = z.record(z.string(), z.number());

const seedRun = z.looseObject({
  seed: z.number(),
  metrics: metricMap,
  subsets: z.record(z.string(), metricMap).optional(),
  trainSeconds: z.number().optional(),
});

export const resultsSchema = z.looseObject({
  dataset: z.string(),
  backend: z.string(),
  seed: z.number(),
  variants: z
    .array(
      z.looseObject({
        name: z.string(),
        config: z.unknown().optional(),
        metrics: metricMap,
        subsets: z.record(z.string(), metricMap).optional(),
        probes: z.record(z.string(), z.unknown()).optional(),
        trainSeconds: z.number().optional(),
        metricsStd: metricMap.optional(),
        subsetsStd: z.record(z.string(), metricMap).optional(),
        seeds: z.array(seedRun).optional(),
      }),
    )
    .min(1),
});

export const curvesSchema = z.object({
  curves: z.array(
    z.object({
      preset: z.string(),
      seed: z.number().optional(),
      points: z.array(z.object({ step: z.number(), loss: z.number(), tau: z.number().optional(), lr: z.number().optional() })),
    }),
  ),
});

export const saliencySchema = z.object({
  presets: z.array(
    z.object({
      preset: z.string(),
      layers: z.array(
        z.object({
          sv: z.number(),
          st: z.number(),
          so: z.number(),
          attnImage: z.number().optional(),
          attnText: z.number().optional(),
        }),
      ).min(1),
    }),
  ).min(1),
});

export const embeddingsSchema = z.object({
  preset: z.string().optional(),
  points: z.array(
    z.object({ id: z.string().optional(), category: z.string(), title: z.string().optional(), vector: z.array(z.number()) }),
  ).min(2),
});

const note = z.object({ id: z.string(), title: z.string(), category: z.string().optional(), image: z.string().optional() });
export const neighboursSchema = z.object({
  queries: z.array(
    z.object({
      query: note,
      neighbours: z.array(note.extend({ score: z.number().optional(), relevant: z.boolean().optional() })),
    }),
  ),
});

/** Parses `text` from `file` against `schema`; errors list every bad field with its path. */
export function parseJsonFile<T>(file: string, text: string, schema: z.ZodType<T>): T {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${(err as Error).message})`);
  }
  const r = schema.safeParse(raw);
  if (!r.success) {
    const lines = r.error.issues.slice(0, 8).map((i) => `  ${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`);
    const more = r.error.issues.length > 8 ? `\n  … and ${r.error.issues.length - 8} more` : '';
    throw new Error(`${file}: does not match the expected schema:\n${lines.join('\n')}${more}`);
  }
  return r.data;
}

function readOptional<T>(dir: string, name: string, schema: z.ZodType<T>): T | undefined {
  const file = join(dir, name);
  if (!existsSync(file)) return undefined;
  return parseJsonFile(file, readFileSync(file, 'utf8'), schema);
}

/** Everything a report can show about one run. */
export interface RunData {
  dir: string;
  results: Results;
  curves?: TrainingCurve[];
  saliency?: SaliencySeries[];
  embeddings?: EmbeddingSet;
  neighbours?: NeighbourQuery[];
}

/** Reads a run folder: results.json (required) and the optional files listed above. */
export function loadRun(dir: string): RunData {
  const resultsFile = join(dir, RUN_FILES.results);
  if (!existsSync(resultsFile)) throw new Error(`${resultsFile}: not found (a run folder holds results.json, written by \`notellm2 ablate\`)`);
  return {
    dir,
    results: parseJsonFile(resultsFile, readFileSync(resultsFile, 'utf8'), resultsSchema) as Results,
    curves: readOptional(dir, RUN_FILES.curves, curvesSchema)?.curves,
    saliency: readOptional(dir, RUN_FILES.saliency, saliencySchema)?.presets,
    embeddings: readOptional(dir, RUN_FILES.embeddings, embeddingsSchema),
    neighbours: readOptional(dir, RUN_FILES.neighbours, neighboursSchema)?.queries,
  };
}
