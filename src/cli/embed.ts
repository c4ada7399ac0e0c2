/**
 * `notellm2 embed`: the n_m embeddings of a split's notes from a saved model, written as an
 * EmbeddingCatalogue (embeddings.safetensors + ids.json); `--neighbours <noteId>` prints that
 * note's top-k cosine neighbours among them.
 */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { EmbeddingCatalogue, type CatalogueHit } from '../eval/catalogue';
import { EMBED_SPLITS, embedRestored, restoreVariant, splitNoteIds, type EmbedSplit } from '../experiments/restore';
import type { CheckpointChoice } from '../train/trainer';
import { checkpointArg, intArg } from './args';

export interface EmbedCommandOptions {
  checkpoint: string;
  dataset?: string;
  split?: EmbedSplit;
  /** Catalogue folder to write. */
  out?: string;
  /** Print this note's nearest neighbours. */
  neighbours?: string;
  k?: number;
  which?: CheckpointChoice;
  skipBad?: boolean;
  log?: (msg: string) => void;
}

export interface EmbedCommandResult {
  catalogue: EmbeddingCatalogue;
  out?: string;
  neighbours?: Array<CatalogueHit & { title: string; related: boolean }>;
}

export async function embedCommand(o: EmbedCommandOptions): Promise<EmbedCommandResult> {
  const log = o.log ?? ((m: string) => console.log(m));
  const split = o.split ?? 'test';
  if (!EMBED_SPLITS.includes(split)) throw new Error(`--split: expected one of ${EMBED_SPLITS.join(', ')}, got "${split}"`);
  if (!o.out && !o.neighbours) throw new Error('embed: give --out <dir> (write the catalogue), --neighbours <noteId> (print top-k), or both');
  // Notes outside the pairs (e.g. unpaired training notes) need their image features too; they
  // are encoded after the paired notes, whose batches (and so the test embeddings) stay as trained.
  const loaded = await restoreVariant(o.checkpoint, {
    dataset: o.dataset,
    which: o.which,
    skipBad: o.skipBad,
    extraNotes: (ds) => [...(split === 'test' ? [] : splitNoteIds(ds, split)), ...(o.neighbours && ds.notes.has(o.neighbours) ? [o.neighbours] : [])],
  });
  try {
    if (o.neighbours && !loaded.dataset.notes.has(o.neighbours)) {
      throw new Error(`--neighbours: note "${o.neighbours}" is not in the dataset ${loaded.dataset.dir}`);
    }
    const ids = splitNoteIds(loaded.dataset, split);
    log(`embedding ${ids.length} ${split} notes with ${loaded.config.name ?? loaded.config.preset} from ${loaded.dir} …`);
    const catalogue = embedRestored(loaded, ids);
    const result: EmbedCommandResult = { catalogue };
    if (o.out) {
      const out = resolve(o.out);
      await catalogue.save(out, { preset: loaded.config.preset, seed: String(loaded.config.train.seed), split, checkpoint: loaded.dir });
      log(`wrote ${catalogue.size} × ${catalogue.dim} embeddings to ${out}`);
      result.out = out;
    }
    if (o.neighbours) {
      const q = o.neighbours;
      const k = o.k ?? 10;
      const related = new Set<string>();
      for (const s of ['train', 'val', 'test'] as const) {
        for (const p of loaded.dataset.pairs[s]) {
          if (p.a === q) related.add(p.b);
          if (p.b === q) related.add(p.a);
        }
      }
      const query = catalogue.has(q) ? q : embedRestored(loaded, [q]).vector(q);
      const hits = await catalogue.nearest(query, k, { exclude: [q] });
      const title = (id: string) => loaded.dataset.notes.get(id)?.title ?? '';
      result.neighbours = hits.map((h) => ({ ...h, title: title(h.id), related: related.has(h.id) }));
      log(`\ntop ${k} neighbours of ${q} "${title(q)}" among the ${split} notes (* = related by a pair):`);
      const idWidth = Math.max(2, ...hits.map((h) => h.id.length));
      result.neighbours.forEach((h, i) => log(`${String(i + 1).padStart(3)}  ${h.related ? '*' : ' '} ${h.id.padEnd(idWidth)}  ${h.score.toFixed(4)}  ${h.title}`));
    }
    return result;
  } finally {
    loaded.dispose();
  }
}

export function registerEmbed(program: Command): void {
  program
    .command('embed')
    .description("write the n_m embeddings of a split's notes (EmbeddingCatalogue: embeddings.safetensors + ids.json); print a note's neighbours")
    .requiredOption('--checkpoint <dir>', 'a checkpoint folder (runs/<name>/checkpoints/<preset>-s<seed>, its best/ or last/, or a one-variant run folder)')
    .option('--dataset <name|dir>', 'synth | openmoji | a reference-layout folder (default: the dataset the model was trained on)')
    .option('--split <split>', `notes to embed: ${EMBED_SPLITS.join(' | ')}`, (v: string) => {
      if (!(EMBED_SPLITS as readonly string[]).includes(v)) throw new Error(`--split: expected one of ${EMBED_SPLITS.join(', ')}, got "${v}"`);
      return v;
    }, 'test')
    .option('--out <dir>', 'catalogue folder to write')
    .option('--neighbours <noteId>', "print this note's top-k neighbours among the split's notes")
    .option('-k, --k <n>', 'neighbours printed', intArg('--k', 1), 10)
    .option('--which <best|last>', 'which checkpoint when the folder holds both', checkpointArg('--which'), 'best')
    .option('--skip-bad', 'skip bad rows of the dataset instead of failing')
    .action(async (o) => {
      await embedCommand(o);
    });
}
