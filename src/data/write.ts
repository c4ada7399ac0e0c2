/**
 * Writing a dataset in the reference layout (docs/method.md "Data and pairs"), the layout
 * loaders.ts reads:
 *
 *     notes_train.csv  notes_test.csv      note_id, title, content, image_id, category (no header)
 *     note_pairs_{train,val,test}.csv      note_id, related_note_id (no header)
 *     note_pairs_test_labels.csv           note_id, related_note_id, label (when pairs carry labels)
 *     images/<image_id><ext>               images of the train (and val) notes
 *     images_test/<image_id><ext>          images of the test notes
 *     dataset.json                         how the dataset was made (builder, config, counts)
 *
 * Content carries the note's topics as inline hashtags `#tag[话题]#`, categories are written
 * `level1@level2@`. The folder is written beside the target under a temporary name and renamed
 * into place at the end, so a failed build never leaves a half-written dataset.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { stringify } from 'csv-stringify/sync';
import { mapPool } from '../backend/pool';
import type { Note, Pair, SplitName } from './schema';

export interface ReferenceLayout {
  /** Every note of the dataset. */
  notes: readonly Note[];
  /** Note ids by split; val notes are written to notes_train.csv (the layout has two notes files). */
  noteSplit: Record<SplitName, readonly string[]>;
  pairs: Record<SplitName, readonly Pair[]>;
  /** Encoded image of a note and the extension of its file (e.g. '.png'). */
  image: (note: Note) => Promise<{ data: Buffer; ext: string }>;
  /** Written as dataset.json. */
  meta?: Record<string, unknown>;
}

export interface WriteOptions {
  /** Images encoded at once. Defaults to 8. */
  concurrency?: number;
}

export interface WriteSummary {
  dir: string;
  images: number;
  /** Seconds spent producing and writing images. */
  imageSeconds: number;
}

/** The datasets folder, under the working directory: built-in datasets and caches (datasets/README.md). */
export const DATASETS_DIR = 'datasets';
/** The caches inside it: tokenizers, pretrained towers, decoded images (git-ignored). */
export const CACHE_DIR = join(DATASETS_DIR, 'cache');

/**
 * Folder of a built-in dataset (`synth`, `openmoji`): `datasets/<name>` under the working
 * directory, where `ablate`, `train` and the caches (`datasets/cache`) look too; the smoke
 * size (NOTELLM2_SMOKE=1) gets its own `<name>-smoke` folder so the two never mix.
 */
export function builtinDatasetDir(name: string, smoke = process.env.NOTELLM2_SMOKE === '1'): string {
  return resolve(DATASETS_DIR, smoke ? `${name}-smoke` : name);
}

/** dataset.json of a folder, or null when absent or unreadable. */
export function readDatasetMeta(dir: string): Record<string, unknown> | null {
  try {
    return JSON.parse(readFileSync(join(dir, 'dataset.json'), 'utf8')) as Record<string, unknown>;
  } catch {
    return null;
  }
}

/** `#tag[话题]#` markup of one topic (brackets and '#' inside a tag would break the markup). */
export function hashtag(topic: string): string {
  const clean = topic.replace(/[#[\]\n]/g, ' ').trim();
  return clean === '' ? '' : `#${clean}[话题]#`;
}

/** One notes-CSV row: topics go back into the content as inline hashtags. */
export function noteRow(note: Note): [string, string, string, string, string] {
  const tags = note.topics.map(hashtag).filter((t) => t !== '').join(' ');
  const content = note.content === '' ? tags : tags === '' ? note.content : `${note.content} ${tags}`;
  const category = note.category.length ? note.category.map((c) => c.replace(/@/g, ' ')).join('@') + '@' : '';
  return [note.id, note.title, content, note.imageId, category];
}

/** True when a folder looks like a dataset this module (or the reference) wrote. */
function isDatasetFolder(dir: string): boolean {
  const names = new Set(readdirSync(dir));
  return names.size === 0 || names.has('dataset.json') || names.has('notes_train.csv');
}

/**
 * Writes the dataset to `dir` (replacing an existing dataset there; refusing to replace a
 * folder that holds anything else).
 */
export async function writeReferenceDataset(dirIn: string, ds: ReferenceLayout, opts: WriteOptions = {}): Promise<WriteSummary> {
  const dir = resolve(dirIn);
  if (existsSync(dir) && !isDatasetFolder(dir)) {
    throw new Error(`write: ${dir} exists and is not a dataset folder (no dataset.json or notes_train.csv); not replacing it`);
  }
  const byId = new Map(ds.notes.map((n) => [n.id, n]));
  const notesOf = (ids: readonly string[], split: string) =>
    ids.map((id) => {
      const n = byId.get(id);
      if (!n) throw new Error(`write: ${split} split names note "${id}", which is not among the notes`);
      return n;
    });
  const trainNotes = [...notesOf(ds.noteSplit.train, 'train'), ...notesOf(ds.noteSplit.val, 'val')];
  const testNotes = notesOf(ds.noteSplit.test, 'test');

  mkdirSync(dirname(dir), { recursive: true });
  const tmp = join(dirname(dir), `.${basename(dir)}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(join(tmp, 'images'), { recursive: true });
  mkdirSync(join(tmp, 'images_test'), { recursive: true });
  try {
    writeFileSync(join(tmp, 'notes_train.csv'), stringify(trainNotes.map(noteRow)));
    writeFileSync(join(tmp, 'notes_test.csv'), stringify(testNotes.map(noteRow)));
    for (const split of ['train', 'val', 'test'] as const) {
      writeFileSync(join(tmp, `note_pairs_${split}.csv`), stringify(ds.pairs[split].map((p) => [p.a, p.b])));
    }
    if (ds.pairs.test.some((p) => p.label !== undefined)) {
      writeFileSync(join(tmp, 'note_pairs_test_labels.csv'), stringify(ds.pairs.test.map((p) => [p.a, p.b, p.label ?? ''])));
    }
    const t0 = performance.now();
    const jobs = [
      ...trainNotes.map((n) => ({ n, folder: 'images' })),
      ...testNotes.map((n) => ({ n, folder: 'images_test' })),
    ];
    const written = new Set<string>();
    await mapPool(jobs, opts.concurrency ?? 8, async ({ n, folder }) => {
      const key = `${folder}/${n.imageId}`;
      if (written.has(key)) return; // notes may share one image
      written.add(key);
      const { data, ext } = await ds.image(n);
      await writeFile(join(tmp, folder, n.imageId + ext), data); // async: many small files write faster in parallel
    });
    const imageSeconds = (performance.now() - t0) / 1000;
    if (ds.meta) writeFileSync(join(tmp, 'dataset.json'), JSON.stringify(ds.meta, null, 2) + '\n');
    else writeFileSync(join(tmp, 'dataset.json'), '{}\n');
    // Swap: move the old folder aside, the new one in, then delete the old one.
    const old = join(dirname(dir), `.${basename(dir)}.old-${process.pid}`);
    if (existsSync(dir)) {
      await rm(old, { recursive: true, force: true });
      renameSync(dir, old);
    }
    try {
      renameSync(tmp, dir);
    } catch (e) {
      // Another process building the same dataset may have renamed its copy in between.
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
      await rm(dir, { recursive: true, force: true });
      renameSync(tmp, dir);
    }
    await rm(old, { recursive: true, force: true });
    return { dir, images: written.size, imageSeconds };
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}
