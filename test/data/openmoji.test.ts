import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { initBackend, Rng } from '../../src/backend';
import { scoreBaselines } from '../../src/cli/data';
import { loadDataset } from '../../src/data/loaders';
import {
  buildOpenmoji,
  familyOf,
  generateOpenmoji,
  openmojiImage,
  openmojiNote,
  openmojiPairs,
  readOpenmojiRows,
  resolveOpenmojiConfig,
  type OpenmojiRow,
} from '../../src/data/openmoji';

const PKG = dirname(require.resolve('openmoji/package.json'));

before(async () => {
  await initBackend();
});

test('rows → notes: annotation, tags, openmoji_tags, group@subgroup', () => {
  const rows = readOpenmojiRows(PKG);
  assert.equal(rows.length, 4495);
  const wave = rows.find((r) => r.hexcode === '1F44B')!;
  const n = openmojiNote(wave);
  assert.equal(n.title, 'waving hand');
  assert.equal(n.content, 'hello, goodbye, waving hand sign, wave');
  assert.deepEqual(n.topics.slice(0, 3), ['bye', 'cya', 'g2g']);
  assert.deepEqual(n.category, ['people-body', 'hand-fingers-open']);
  const dark = rows.find((r) => r.hexcode === '1F44B-1F3FF')!;
  assert.equal(familyOf(dark), '1F44B');
  assert.equal(openmojiNote(dark).content, ''); // variants carry no extra text: real short text
  assert.equal(familyOf(rows.find((r) => r.hexcode === '1F600')!), '1F600');
});

const row = (hexcode: string, subgroup: string, base = ''): OpenmojiRow => ({
  hexcode, group: 'g', subgroup, annotation: hexcode, tags: [], openmojiTags: '', skintoneBase: base,
});

test('pairs: skin-tone siblings and same-subgroup notes of other families, each unordered pair once', () => {
  // Family A (A, A1, A2) and single B in subgroup s; C alone in subgroup t.
  const rows = [row('A', 's', 'A'), row('A1', 's', 'A'), row('A2', 's', 'A'), row('B', 's'), row('C', 't')];
  const all = openmojiPairs(rows, { skintonePartners: 5, subgroupPartners: 5 }, new Rng(1));
  const key = (p: { a: string; b: string }) => [p.a, p.b].sort().join('-');
  // skintone: A–A1, A–A2, A1–A2; subgroup: each of A, A1, A2 with B; C has no partner.
  assert.deepEqual(all.filter((p) => p.label === 'skintone').map(key).sort(), ['A-A1', 'A-A2', 'A1-A2']);
  assert.deepEqual(all.filter((p) => p.label === 'subgroup').map(key).sort(), ['A-B', 'A1-B', 'A2-B']);
  assert.equal(new Set(all.map(key)).size, all.length);
  // One partner of each kind per note: A picks 1 sibling + B; A1 at most 1 new sibling pair...
  const few = openmojiPairs(rows, { skintonePartners: 1, subgroupPartners: 1 }, new Rng(2));
  for (const p of few) {
    const [ra, rb] = [rows.find((r) => r.hexcode === p.a)!, rows.find((r) => r.hexcode === p.b)!];
    if (p.label === 'skintone') assert.equal(familyOf(ra), familyOf(rb));
    else { assert.equal(ra.subgroup, rb.subgroup); assert.notEqual(familyOf(ra), familyOf(rb)); }
  }
  // each note starts ≤ 1 skintone and ≤ 1 subgroup pair: at most 2 pairs per note as first note
  for (const id of ['A', 'A1', 'A2', 'B']) assert.ok(few.filter((p) => p.a === id).length <= 2);
  assert.equal(few.filter((p) => p.label === 'subgroup' && (p.a === 'B' || p.b === 'B')).length >= 1, true);
});

test('split by family; pairs within splits; labels hold; smoke limit keeps whole subgroups', () => {
  const d = generateOpenmoji({ seed: 5 });
  const splitOf = new Map<string, string>();
  for (const s of ['train', 'val', 'test'] as const) for (const id of d.split.notes[s]) splitOf.set(id, s);
  const rowById = new Map(d.rows.map((r) => [r.hexcode, r]));
  const familySplit = new Map<string, string>();
  for (const r of d.rows) {
    const f = familyOf(r);
    const s = splitOf.get(r.hexcode)!;
    assert.equal(familySplit.get(f) ?? s, s, `family ${f} spans splits`);
    familySplit.set(f, s);
  }
  assert.ok(Math.abs(d.split.notes.test.length / d.rows.length - 0.2) < 0.01);
  for (const s of ['train', 'val', 'test'] as const) {
    for (const p of d.split.pairs[s]) {
      assert.equal(splitOf.get(p.a), s);
      assert.equal(splitOf.get(p.b), s);
      const [ra, rb] = [rowById.get(p.a)!, rowById.get(p.b)!];
      assert.equal(`${ra.group}@${ra.subgroup}`, `${rb.group}@${rb.subgroup}`);
      assert.equal(p.label, familyOf(ra) === familyOf(rb) ? 'skintone' : 'subgroup');
    }
  }
  assert.ok(d.split.pairs.test.filter((p) => p.label === 'skintone').length > 100);

  const smoke = resolveOpenmojiConfig({}, { NOTELLM2_SMOKE: '1' });
  assert.equal(smoke.limit, 800);
  const small = generateOpenmoji({ limit: 300, seed: 2 });
  const subs = new Set(small.rows.map((r) => `${r.group}@${r.subgroup}`));
  const full = readOpenmojiRows(PKG);
  assert.equal(small.rows.length, full.filter((r) => subs.has(`${r.group}@${r.subgroup}`)).length); // whole subgroups
  assert.ok(small.rows.length >= 300 && small.rows.length < 300 + 500);
  assert.throws(() => resolveOpenmojiConfig({ skintonePartners: 0, subgroupPartners: 0 }), /must be > 0/);
});

test('image: the SVG rendered to an opaque PNG of the requested size', async () => {
  const png = await openmojiImage(PKG, '1F600', 32);
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  assert.equal(info.width, 32);
  assert.equal(info.height, 32);
  assert.equal(info.channels, 3);
  // corner is the white background, centre is the yellow face (#FCEA2B)
  assert.deepEqual([...data.subarray(0, 3)], [255, 255, 255]);
  const c = (16 * 32 + 10) * 3;
  assert.ok(data[c] > 200 && data[c + 1] > 180 && data[c + 2] < 120, `centre ${[...data.subarray(c, c + 3)]}`);
  await assert.rejects(openmojiImage(PKG, 'NOPE', 32), /no SVG for NOPE/);
});

test('buildOpenmoji writes a clean reference-layout folder with the licence; baselines find skin-tone pairs', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'openmoji-')), 'openmoji');
  try {
    const built = await buildOpenmoji(dir, { limit: 400, imageSize: 32 });
    const { data } = built;
    const { dataset, report } = await loadDataset(dir, { images: 'decode' });
    assert.ok(report.ok, JSON.stringify(report.problems.slice(0, 5)));
    assert.equal(dataset.notes.size, data.notes.length);
    for (const n of data.notes) assert.deepEqual(dataset.notes.get(n.id), n);
    assert.deepEqual(dataset.pairs.test, data.split.pairs.test);
    const meta = JSON.parse(readFileSync(join(dir, 'dataset.json'), 'utf8'));
    assert.equal(meta.license, 'CC-BY-SA-4.0');
    assert.match(meta.attribution, /OpenMoji/);
    // Skin-tone variants share their annotation's base words: TF-IDF ranks them near the top.
    const tfidf = (await scoreBaselines(built))['tfidf-text'];
    // (Measured at this size: 12 skin-tone queries, pool 70, R@10 0.79 against chance 0.14.)
    assert.ok(tfidf.subsets.skintone.queries >= 5, JSON.stringify(tfidf.subsets.skintone));
    assert.ok(tfidf.subsets.skintone.recall['R@10'] > 0.6, JSON.stringify(tfidf.subsets.skintone));
  } finally {
    rmSync(dirname(dir), { recursive: true, force: true });
  }
});
