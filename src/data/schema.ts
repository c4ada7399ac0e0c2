/**
 * In-memory shapes of the data every layer above `data` consumes. The on-disk layout is the
 * reference implementation's (docs/method.md "Data and pairs"): notes CSV without header
 * `note_id, title, content, image_id, category`, pairs CSV `note_id, related_note_id`.
 */

/** One note (item). */
export interface Note {
  id: string;
  title: string;
  /** Body text with the hashtags taken out (they live in `topics`). */
  content: string;
  /** Hashtags parsed from the content (`#tag[话题]#` or plain `#tag`), in order, deduplicated. */
  topics: string[];
  /** Identifier of the cover image; resolved to a file by the dataset's image folder. */
  imageId: string;
  /** Category levels, from `level1@level2@`. */
  category: string[];
}

/** A related pair; `label` says what the two notes share where the dataset knows it (synth: visual | text | both). */
export interface Pair {
  a: string;
  b: string;
  label?: string;
}

export type SplitName = 'train' | 'val' | 'test';

/** A loaded dataset: notes by split, pairs by split, and where each note's image lives. */
export interface Dataset {
  name: string;
  /** Folder the dataset was read from (absolute). */
  dir: string;
  /** Every note, train and test alike, by id. */
  notes: Map<string, Note>;
  /** Note ids of each split's notes file (val pairs draw on the train notes in the reference layout). */
  noteIds: { train: string[]; test: string[] };
  pairs: Record<SplitName, Pair[]>;
  /** Absolute path of a note's image file (checked to stay inside `dir`). */
  imagePath(noteId: string): string;
}
