import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, Rng } from '../../src/backend';
import type { Note, Pair } from '../../src/data/schema';
import { evaluationSubsets, noteTextLength, pairSubsetNames, splitByNotes, subsetCounts } from '../../src/data/splits';

before(async () => {
  await initBackend();
});

const ids = Array.from({ length: 200 }, (_, i) => `n${i}`);
function randomPairs(n: number, seed: number): Pair[] {
  const r = new Rng(seed);
  return Array.from({ length: n }, () => ({ a: r.pick(ids), b: r.pick(ids) }));
}

test('split by notes: exact sizes, no test (or val) note in any training pair, crossing pairs counted', () => {
  const pairs = randomPairs(3000, 1);
  const s = splitByNotes(ids, pairs, { testFraction: 0.25, valFraction: 0.1, seed: 7 });
  assert.equal(s.notes.test.length, 50);
  assert.equal(s.notes.val.length, 20);
  assert.equal(s.notes.train.length, 130);
  const splitOf = new Map<string, string>();
  for (const k of ['train', 'val', 'test'] as const) for (const id of s.notes[k]) splitOf.set(id, k);
  assert.equal(splitOf.size, 200);
  for (const k of ['train', 'val', 'test'] as const) {
    for (const p of s.pairs[k]) {
      assert.equal(splitOf.get(p.a), k);
      assert.equal(splitOf.get(p.b), k);
    }
  }
  // Recount independently: every input pair is kept, crossing, or a self/duplicate pair.
  let crossing = 0;
  const kept = new Set<string>();
  let dup = 0;
  for (const p of pairs) {
    if (splitOf.get(p.a) !== splitOf.get(p.b)) { crossing++; continue; }
    const key = [p.a, p.b].sort().join('|');
    if (p.a === p.b || kept.has(key)) { dup++; continue; }
    kept.add(key);
  }
  assert.equal(s.dropped.crossing, crossing);
  assert.equal(s.dropped.duplicate, dup);
  assert.ok(dup > 0, 'the random pairs contain self pairs or repeats, so the duplicate path is exercised');
  assert.equal(s.pairs.train.length + s.pairs.val.length + s.pairs.test.length, kept.size);
  // With random pairs about 1 − (0.65² + 0.1² + 0.25²) = 50.5 % cross splits.
  assert.ok(Math.abs(crossing / pairs.length - 0.505) < 0.05, `crossing share ${crossing / pairs.length}`);

  // Same seed → same split and pair order; another seed → another split.
  const again = splitByNotes(ids, pairs, { testFraction: 0.25, valFraction: 0.1, seed: 7 });
  assert.deepEqual(again, s);
  const other = splitByNotes(ids, pairs, { testFraction: 0.25, valFraction: 0.1, seed: 8 });
  assert.notDeepEqual(other.notes.test, s.notes.test);
});

test('unknown notes and mirrored duplicates are dropped and counted; pair order kept when not shuffling', () => {
  const pairs: Pair[] = [
    { a: 'x', b: 'y' },
    { a: 'y', b: 'x' }, // mirror of a kept pair
    { a: 'x', b: 'ghost' },
    { a: 'z', b: 'y' },
  ];
  const s = splitByNotes(['x', 'y', 'z'], pairs, { testFraction: 0, valFraction: 0, shufflePairs: false });
  assert.deepEqual(s.pairs.train, [{ a: 'x', b: 'y' }, { a: 'z', b: 'y' }]);
  assert.deepEqual(s.dropped, { crossing: 0, unknownNote: 1, duplicate: 1 });
  assert.throws(() => splitByNotes(['x', 'x'], []), /listed twice/);
  assert.throws(() => splitByNotes(ids, [], { testFraction: 0.6, valFraction: 0.4 }), /must be < 1/);
  assert.throws(() => splitByNotes(ids, [], { testFraction: -0.1 }), /testFraction must be in \[0, 1\)/);
});

function note(id: string, title: string, content: string): Note {
  return { id, title, content, topics: ['ignored-hashtag-text'], imageId: id, category: [] };
}

test('length subsets: query = first note, target = second; median threshold; label subsets', () => {
  const notes = new Map(
    [
      note('a', 'ab', ''), // 2
      note('b', 'abc', 'd'), // 4
      note('c', '猫猫', '🐱🐱🐱'), // 5 code points (not 7 UTF-16 units or 16 bytes)
      note('d', 'abcdef', 'ghij'), // 10
      note('e', 'x', 'y'), // 2
    ].map((n) => [n.id, n]),
  );
  assert.equal(noteTextLength(notes.get('c')!), 5);
  const pairs: Pair[] = [
    { a: 'a', b: 'd', label: 'visual' },
    { a: 'd', b: 'c', label: 'text' },
    { a: 'b', b: 'e', label: 'visual' },
  ];
  // lengths of the notes in pairs: a2 b4 c5 d10 e2 → sorted 2 2 4 5 10 → lower median 4
  const sub = evaluationSubsets(notes, pairs);
  assert.equal(sub.threshold, 4);
  assert.deepEqual(pairSubsetNames(pairs[0], sub), ['short_query', 'long_target', 'visual']);
  assert.deepEqual(pairSubsetNames(pairs[1], sub), ['long_query', 'long_target', 'text']);
  assert.deepEqual(pairSubsetNames(pairs[2], sub), ['short_query', 'short_target', 'visual']);
  assert.deepEqual(subsetCounts(pairs, sub), {
    short_query: 2, long_query: 1, short_target: 1, long_target: 2, text: 1, visual: 2,
  });
  // an explicit threshold of 5 makes c short
  const t5 = evaluationSubsets(notes, pairs, { threshold: 5 });
  assert.deepEqual(pairSubsetNames(pairs[1], t5), ['long_query', 'short_target', 'text']);
  // a custom length (hashtags count) changes membership
  const withTags = evaluationSubsets(notes, pairs, { threshold: 4, lengthOf: (n) => noteTextLength(n) + n.topics.join('').length });
  assert.deepEqual(pairSubsetNames(pairs[2], withTags), ['long_query', 'long_target', 'visual']);
  assert.throws(() => evaluationSubsets(notes, [{ a: 'a', b: 'zz' }]), /note "zz", which is not among the notes/);
});

test('groups stay together: every group lies in one split; shares still close to the fractions', () => {
  // 200 notes in groups of 1..6 (id n<i> belongs to group g<floor(i / 6)> for i < 120, alone after).
  const groupOf = (id: string) => { const i = Number(id.slice(1)); return i < 120 ? `g${Math.floor(i / 6)}` : id; };
  const pairs = ids.slice(0, 119).map((id, i) => ({ a: id, b: ids[i + 1] })); // chain: within- and cross-group pairs
  const s = splitByNotes(ids, pairs, { testFraction: 0.2, valFraction: 0.1, seed: 3, groupOf });
  const splitOf = new Map<string, string>();
  for (const k of ['train', 'val', 'test'] as const) for (const id of s.notes[k]) splitOf.set(id, k);
  for (let g = 0; g < 20; g++) {
    const members = ids.slice(g * 6, g * 6 + 6).map((id) => splitOf.get(id));
    assert.equal(new Set(members).size, 1, `group g${g} split across ${members}`);
    // the 5 within-group chain pairs of a group are never dropped as crossing
  }
  assert.ok(s.notes.test.length >= 40 && s.notes.test.length < 46, `test notes ${s.notes.test.length}`);
  assert.ok(s.notes.val.length >= 20 && s.notes.val.length < 26, `val notes ${s.notes.val.length}`);
  const keptWithin = [...s.pairs.train, ...s.pairs.val, ...s.pairs.test].filter((p) => groupOf(p.a) === groupOf(p.b)).length;
  assert.equal(keptWithin, 20 * 5);
});
