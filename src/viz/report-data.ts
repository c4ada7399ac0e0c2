/**
 * The report's pictures of one trained variant, as data files in the run folder
 * (schemas in src/viz/files.ts):
 *
 *   embeddings.json  test-note embeddings n_m with category and title (the report projects
 *                    them to 2-D with PCA, coloured by category)
 *   neighbours.json  a few query notes with their images, and their top-k neighbours among
 *                    the test notes: score, image, title, and whether each is a related note
 *
 * Both read what the run already saved (the variant's EmbeddingCatalogue) and the dataset;
 * nothing is re-embedded.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { writeFileAtomic } from '../model/checkpoint';
import { Rng } from '../backend';
import { DEFAULT_CHECK_SIZE, ImageStore } from '../data/images';
import type { Dataset, Note } from '../data/schema';
import { keepPairs } from '../eval/recall';
import { EmbeddingCatalogue } from '../eval/catalogue';
import { imageDataUri } from './images';
import type { EmbeddingSet, NeighbourQuery, NoteView } from './types';
import type { VariantResult } from '../experiments/results';
import { runFile, variantEmbeddingsDir } from '../experiments/run-folder';
import { loadRunDataset } from '../experiments/datasets';

/**
 * The category level that colours a projection best: the deepest level with between 2 and
 * `maxGroups` distinct values among the notes (e.g. openmoji's group rather than its many
 * subgroups), else the shallowest level with at least 2 (synth's topic under its constant
 * "synth" root).
 */
export function categoryLevel(notes: readonly Note[], maxGroups = 12): number {
  const depth = Math.max(0, ...notes.map((n) => n.category.length));
  const distinct = Array.from({ length: depth }, (_, l) => new Set(notes.map((n) => n.category[l] ?? '')).size);
  for (let l = depth - 1; l >= 0; l--) if (distinct[l] >= 2 && distinct[l] <= maxGroups) return l;
  const first = distinct.findIndex((d) => d >= 2);
  return first >= 0 ? first : 0;
}

const categoryAt = (n: Note, level: number) => n.category[level] || n.category.filter(Boolean).join(' / ') || 'uncategorised';

export interface EmbeddingPointsOptions {
  /** Most notes kept (a seeded sample when there are more). Defaults to 600. */
  maxPoints?: number;
  seed?: number;
  /** Category level (see categoryLevel). Defaults to the automatic choice. */
  level?: number;
  preset?: string;
  /** Decimals kept per vector entry. Defaults to 4 (the file stays small; PCA does not notice). */
  decimals?: number;
}

/** embeddings.json content: up to `maxPoints` notes of the catalogue, in catalogue order. */
export function embeddingPoints(catalogue: EmbeddingCatalogue, notes: ReadonlyMap<string, Note>, opts: EmbeddingPointsOptions = {}): EmbeddingSet {
  const max = opts.maxPoints ?? 600;
  let rows = catalogue.ids.map((_, i) => i);
  if (rows.length > max) rows = new Rng(opts.seed ?? 0).shuffle(rows).slice(0, max).sort((a, b) => a - b);
  const chosen = rows.map((i) => {
    const n = notes.get(catalogue.ids[i]);
    if (!n) throw new Error(`embeddings: catalogue note "${catalogue.ids[i]}" is not in the dataset`);
    return n;
  });
  const level = opts.level ?? categoryLevel(chosen);
  const scale = 10 ** (opts.decimals ?? 4);
  return {
    ...(opts.preset !== undefined && { preset: opts.preset }),
    points: rows.map((i, j) => ({
      id: catalogue.ids[i],
      category: categoryAt(chosen[j], level),
      title: chosen[j].title,
      vector: Array.from(catalogue.vectors.subarray(i * catalogue.dim, (i + 1) * catalogue.dim), (x) => Math.round(x * scale) / scale),
    })),
  };
}

export interface NeighbourOptions {
  /** Query notes shown. Defaults to 6. */
  queries?: number;
  /** Neighbours per query. Defaults to 8. */
  k?: number;
  seed?: number;
  /** Image side in pixels. Defaults to 64 (the synth images' own size; the report shows them at 96). */
  imageSize?: number;
}

/**
 * neighbours.json content: queries drawn (seeded) from the test pairs the recall protocol
 * keeps, taking pair labels in turn (synth: visual, text, both) and preferring queries of
 * categories not shown yet; each with its top-k cosine neighbours among the test notes.
 * `relevant` marks neighbours related to the query by any test pair.
 */
export async function neighbourQueries(catalogue: EmbeddingCatalogue, dataset: Dataset, opts: NeighbourOptions = {}): Promise<NeighbourQuery[]> {
  const n = opts.queries ?? 6;
  const k = opts.k ?? 8;
  const related = new Map<string, Set<string>>();
  const link = (x: string, y: string) => (related.get(x) ?? related.set(x, new Set()).get(x)!).add(y);
  for (const p of dataset.pairs.test) {
    link(p.a, p.b);
    link(p.b, p.a);
  }
  const kept = new Rng(opts.seed ?? 0).shuffle(keepPairs(dataset.pairs.test).filter((p) => catalogue.has(p.query)));
  const labels = [...new Set(kept.map((p) => p.pair.label ?? ''))].sort();
  const byLabel = new Map(labels.map((l) => [l, kept.filter((p) => (p.pair.label ?? '') === l)]));
  const level = categoryLevel(catalogue.ids.map((id) => dataset.notes.get(id)!).filter(Boolean));
  const note = (id: string) => dataset.notes.get(id)!;
  const chosen: { id: string; label: string }[] = [];
  const usedCats = new Set<string>();
  for (let round = 0; chosen.length < Math.min(n, kept.length) && round < kept.length; round++) {
    for (const label of labels) {
      if (chosen.length >= n) break;
      const list = byLabel.get(label)!;
      if (!list.length) continue;
      const i = Math.max(0, list.findIndex((p) => !usedCats.has(categoryAt(note(p.query), level))));
      const [p] = list.splice(i, 1);
      usedCats.add(categoryAt(note(p.query), level));
      chosen.push({ id: p.query, label });
    }
  }
  const hits = await catalogue.nearestMany(chosen.map((c) => c.id), k);
  const store = new ImageStore(dataset, { size: opts.imageSize ?? 64 });
  await store.load([...new Set([...chosen.map((c) => c.id), ...hits.flat().map((h) => h.id)])]);
  const view = (id: string): NoteView => {
    const nt = note(id);
    const size = store.size;
    return { id, title: nt.title, category: categoryAt(nt, level), image: imageDataUri({ data: store.pixels(id), width: size, height: size, channels: 3 }) };
  };
  return chosen.map((c, qi) => {
    const q = view(c.id);
    if (c.label) q.category = `${q.category} · ${c.label} pair`;
    return {
      query: q,
      neighbours: hits[qi].map((h) => ({ ...view(h.id), score: Math.round(h.score * 1e4) / 1e4, relevant: related.get(c.id)?.has(h.id) ?? false })),
    };
  });
}

export interface RunExtrasOptions extends NeighbourOptions {
  /** The run folder (results.json's folder). */
  out: string;
  /** Folder of the dataset the run evaluated on. */
  datasetDir: string;
  /** The run's variants (runAblation's `runs`). */
  runs: readonly Pick<VariantResult, 'name' | 'preset' | 'seed'>[];
  /** Variant pictured. Defaults to the `notellm2` preset when it ran, else the first variant. */
  variant?: string;
  maxPoints?: number;
  /** Read the dataset as the run did: bad rows left out (--skip-bad) … */
  skipBad?: boolean;
  /** … by the image check at the run's vision input side(s). Defaults to [DEFAULT_CHECK_SIZE]. */
  imageSizes?: number[];
}

/** Writes embeddings.json and neighbours.json for one variant (its first seed) of a run. */
export async function writeRunExtras(opts: RunExtrasOptions): Promise<{ embeddings: string; neighbours: string; variant: string; seed: number }> {
  if (!opts.runs.length) throw new Error('writeRunExtras: the run has no variants');
  const pick =
    opts.variant !== undefined
      ? opts.runs.find((r) => r.name === opts.variant)
      : opts.runs.find((r) => r.preset === 'notellm2') ?? opts.runs[0];
  if (!pick) throw new Error(`writeRunExtras: variant "${opts.variant}" is not one of ${[...new Set(opts.runs.map((r) => r.name))].join(', ')}`);
  const seed = Math.min(...opts.runs.filter((r) => r.name === pick.name).map((r) => r.seed));
  const dir = variantEmbeddingsDir(opts.out, pick.name, seed);
  if (!existsSync(dir)) throw new Error(`writeRunExtras: ${dir} does not exist (the run saves each variant's test-note embeddings there)`);
  const catalogue = await EmbeddingCatalogue.load(dir);
  const { dataset } = await loadRunDataset(opts.datasetDir, { skipBad: opts.skipBad, imageSizes: opts.imageSizes ?? [DEFAULT_CHECK_SIZE] });
  mkdirSync(opts.out, { recursive: true });
  const embeddings = runFile(opts.out, 'embeddings');
  const neighbours = runFile(opts.out, 'neighbours');
  await writeFileAtomic(embeddings, JSON.stringify(embeddingPoints(catalogue, dataset.notes, { maxPoints: opts.maxPoints, seed: opts.seed, preset: pick.name })));
  await writeFileAtomic(neighbours, JSON.stringify({ queries: await neighbourQueries(catalogue, dataset, opts) }));
  return { embeddings, neighbours, variant: pick.name, seed };
}
