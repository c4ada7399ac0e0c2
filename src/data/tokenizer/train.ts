/**
 * Learning byte-level BPE merges from pre-token counts.
 *
 * Start from the 256 byte characters; repeatedly merge the adjacent pair of symbols that occurs
 * most often in the corpus (each pre-token weighted by how often it occurs), until the
 * vocabulary is full or no pair occurs `minFrequency` times. Occurrences inside a run are
 * counted as standard BPE does: `aaa` holds the pair (a, a) twice; merging replaces
 * non-overlapping occurrences left to right (`aaa` → `aa a`).
 *
 * Determinism: counts do not depend on corpus order, and ties are broken by the pair's strings,
 * (left, right) compared lexicographically by UTF-16 code units (all byte-level characters are
 * in the BMP, so this is code-point order): the smaller pair wins.
 */
import { siftDown, siftUp } from '../heap';

/** A pre-token in byte-level form and how many times it occurs. */
export interface WordCount {
  word: string;
  count: number;
}

export interface LearnedMerges {
  /** Merged pairs in the order learned (= merge rank). */
  merges: Array<[string, string]>;
  /** The new tokens, in the order first produced (their ids follow the alphabet's). */
  tokens: string[];
}

// Pair keys pack two symbol ids into one number: left * 2^21 + right (< 2^42, exact in a double).
const KEY_SCALE = 2 ** 21;
export const MAX_TRAINED_VOCAB = KEY_SCALE;

interface HeapEntry {
  count: number;
  key: number;
}

/**
 * Learns merges until there are `maxSymbols` distinct symbols (alphabet included).
 * @param words pre-tokens (byte-level strings) with their counts
 * @param alphabet initial symbols (the 256 byte characters); every character of every word must be one
 * @param forbidden merged strings that must never be produced (the special tokens' contents)
 */
export function learnMerges(
  words: readonly WordCount[],
  alphabet: readonly string[],
  maxSymbols: number,
  minFrequency: number,
  forbidden: ReadonlySet<string> = new Set(),
): LearnedMerges {
  const symbols: string[] = [...alphabet];
  const symbolId = new Map<string, number>(alphabet.map((s, i) => [s, i]));
  const seqs: number[][] = words.map(({ word }) =>
    Array.from(word, (ch) => {
      const id = symbolId.get(ch);
      if (id === undefined) throw new Error(`learnMerges: character U+${ch.codePointAt(0)!.toString(16)} of ${JSON.stringify(word)} is not in the alphabet`);
      return id;
    }),
  );
  const freq = words.map((w) => w.count);

  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>(); // pair → words that held it (may be stale)
  const addPairs = (w: number, sign: 1 | -1, delta: Map<number, number>) => {
    const s = seqs[w];
    const f = freq[w] * sign;
    for (let i = 0; i + 1 < s.length; i++) {
      const key = s[i] * KEY_SCALE + s[i + 1];
      pairCount.set(key, (pairCount.get(key) ?? 0) + f);
      delta.set(key, (delta.get(key) ?? 0) + f);
      if (sign > 0) {
        let set = pairWords.get(key);
        if (!set) pairWords.set(key, (set = new Set()));
        set.add(w);
      }
    }
  };
  const initial = new Map<number, number>();
  for (let w = 0; w < seqs.length; w++) addPairs(w, 1, initial);

  // Max-heap by (count desc, left string asc, right string asc), with lazy deletion: an entry
  // is live only while its count equals the pair's current count.
  const before = (x: HeapEntry, y: HeapEntry): boolean => {
    if (x.count !== y.count) return x.count > y.count;
    const xl = symbols[Math.floor(x.key / KEY_SCALE)];
    const yl = symbols[Math.floor(y.key / KEY_SCALE)];
    if (xl !== yl) return xl < yl;
    return symbols[x.key % KEY_SCALE] < symbols[y.key % KEY_SCALE];
  };
  const heap: HeapEntry[] = [];
  const push = (e: HeapEntry) => {
    heap.push(e);
    siftUp(heap, heap.length - 1, before);
  };
  const pop = (): HeapEntry | undefined => {
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0 && last) {
      heap[0] = last;
      siftDown(heap, 0, before);
    }
    return top;
  };
  for (const [key, count] of pairCount) if (count > 0) push({ count, key });

  const merges: Array<[string, string]> = [];
  while (symbols.length < maxSymbols) {
    let best: HeapEntry | undefined;
    while ((best = pop()) !== undefined) {
      if (pairCount.get(best.key) !== best.count) continue; // stale entry
      const merged = symbols[Math.floor(best.key / KEY_SCALE)] + symbols[best.key % KEY_SCALE];
      if (forbidden.has(merged)) {
        pairCount.delete(best.key); // never merge this pair: its string is a special token's
        continue;
      }
      break;
    }
    if (best === undefined || best.count < minFrequency) break;
    const a = Math.floor(best.key / KEY_SCALE);
    const b = best.key % KEY_SCALE;
    const merged = symbols[a] + symbols[b];
    // Two different pairs can spell the same string ("ab"+"c", "a"+"bc"): both merges are kept
    // and share one token, as in the reference trainer.
    let id = symbolId.get(merged);
    if (id === undefined) {
      id = symbols.length;
      symbols.push(merged);
      symbolId.set(merged, id);
    }
    merges.push([symbols[a], symbols[b]]);

    const delta = new Map<number, number>();
    const holders = [...(pairWords.get(best.key) ?? [])];
    pairWords.delete(best.key);
    for (const w of holders) {
      const s = seqs[w];
      let has = false;
      for (let i = 0; i + 1 < s.length; i++) if (s[i] === a && s[i + 1] === b) { has = true; break; }
      if (!has) continue;
      addPairs(w, -1, delta);
      const out: number[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          out.push(id);
          i++;
        } else out.push(s[i]);
      }
      seqs[w] = out;
      addPairs(w, 1, delta);
    }
    pairCount.delete(best.key);
    for (const [key, d] of delta) {
      if (d === 0 || key === best.key) continue;
      const count = pairCount.get(key) ?? 0;
      if (count > 0) push({ count, key });
      else pairCount.delete(key);
    }
  }
  return { merges, tokens: symbols.slice(alphabet.length) };
}
