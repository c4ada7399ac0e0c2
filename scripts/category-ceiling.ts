/**
 * Recall of a "category oracle" under the reference protocol: every test note embedded as the
 * one-hot of its category's second level (on `synth`, the note's topic). Ties are counted as
 * the protocol counts them (expectation over a random order), so a pair whose notes share the
 * category ranks its partner uniformly among the pool notes of that category.
 *
 * On `synth` this is the ceiling of the `text` subset: a text pair shares its topic and nothing
 * else, so no text model can rank the partner above the other notes of the topic.
 *
 *   npx tsx scripts/category-ceiling.ts [datasetDir]      (default datasets/synth)
 */
import { initBackend } from '../src/backend';
import { evaluationSubsets } from '../src/data/splits';
import { EmbeddingCatalogue } from '../src/eval/catalogue';
import { evaluateRecall } from '../src/eval/recall';
import { loadRunDataset } from '../src/experiments/datasets';

async function main(dir: string): Promise<void> {
  await initBackend();
  const { dataset } = await loadRunDataset(dir, {});
  const ids = dataset.noteIds.test;
  const categoryOf = (id: string) => dataset.notes.get(id)!.category[1] ?? '';
  const categories = [...new Set(ids.map(categoryOf))];
  const dim = categories.length;
  const vectors = new Float32Array(ids.length * dim);
  ids.forEach((id, i) => (vectors[i * dim + categories.indexOf(categoryOf(id))] = 1));
  const subsets = evaluationSubsets(dataset.notes, dataset.pairs.test);
  const r = await evaluateRecall(dataset.pairs.test, new EmbeddingCatalogue(ids, vectors, dim), { notes: ids, subsets: subsets.predicates });
  const pct = (m: Record<string, number>) => Object.entries(m).map(([k, v]) => `${k} ${(100 * v).toFixed(1)}`).join('  ');
  console.log(`${dir}: ${categories.length} categories, ${r.nQueries} queries, pool ${r.poolSize} (reference protocol)`);
  console.log(`all            ${pct(r.recall)}`);
  for (const [name, s] of Object.entries(r.subsets)) console.log(`${name.padEnd(14)} ${pct(s.recall)}`);
}

main(process.argv[2] ?? 'datasets/synth').catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
