import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { findInvalidUtf8Lines, readCsv } from '../../src/data/csv';
import { DatasetError, formatProblem, type Problem, type ValidationReport } from '../../src/data/problems';
import { loadDataset, parseCategory, parseTopics } from '../../src/data/loaders';
import { initBackend } from '../../src/backend';

before(async () => {
  await initBackend();
});

const GOOD = resolve(__dirname, '../fixtures/good');
const PNG = readFileSync(join(GOOD, 'images/n1.png'));

/** A temporary dataset folder: `files` maps relative paths to contents; the five tables default to empty. */
function tempDataset(files: Record<string, string | Buffer>): string {
  const dir = mkdtempSync(join(tmpdir(), 'notellm2-data-'));
  const all: Record<string, string | Buffer> = {
    'notes_train.csv': '',
    'notes_test.csv': '',
    'note_pairs_train.csv': '',
    'note_pairs_val.csv': '',
    'note_pairs_test.csv': '',
    ...files,
  };
  for (const [rel, data] of Object.entries(all)) {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), data);
  }
  return dir;
}

/**
 * The problems of a temporary dataset, as `file:line:kind`. These folders hold only the rows a
 * test is about, so their pair files are often empty: empty-split is left out here (it has its
 * own test in validate.test.ts).
 */
async function problemsOf(dir: string, images: 'exists' | 'header' | 'decode' = 'exists'): Promise<string[]> {
  const { report } = await loadDataset(dir, { skipBad: true, images });
  return rowProblems(report).map((p) => `${p.file}:${p.line}:${p.kind}`);
}

function rowProblems(report: ValidationReport): Problem[] {
  return report.problems.filter((p) => p.kind !== 'empty-split');
}

test('parseTopics: bracketed and plain hashtags leave the body, in order, deduplicated', () => {
  assert.deepEqual(parseTopics('今天去了海边 #旅行[话题]# #夏天[话题]#\n好开心 #海边 #旅行'), {
    content: '今天去了海边\n好开心',
    topics: ['旅行', '夏天', '海边'],
  });
  // Bracketed names may hold spaces; other bracket kinds ([地点]) are tags too.
  assert.deepEqual(parseTopics('at #Central Park[地点]# today'), { content: 'at today', topics: ['Central Park'] });
  // Not tags: C#, an HTML entity, a lone '#', '# ' headings.
  assert.deepEqual(parseTopics('I write C# &#39;ok&#39; # no'), { content: 'I write C# &#39;ok&#39; # no', topics: [] });
  assert.deepEqual(parseTopics('#only'), { content: '', topics: ['only'] });
  assert.deepEqual(parseTopics('mid#tag stays, (#paren) goes'), { content: 'mid#tag stays, () goes', topics: ['paren'] });
});

test('parseCategory splits on @ and drops empty levels', () => {
  assert.deepEqual(parseCategory('美食@甜品@'), ['美食', '甜品']);
  assert.deepEqual(parseCategory('@a@@ b @'), ['a', 'b']);
  assert.deepEqual(parseCategory(''), []);
});

test('findInvalidUtf8Lines finds the line and byte of each bad sequence', () => {
  const buf = Buffer.concat([Buffer.from('ok\n中文\nab'), Buffer.from([0xc3]), Buffer.from('\n\n'), Buffer.from([0x80])]);
  assert.deepEqual(findInvalidUtf8Lines(buf), [{ line: 3, offset: 2 }, { line: 5, offset: 0 }]);
  assert.deepEqual(findInvalidUtf8Lines(Buffer.from('fine 🌞\n')), []);
});

test('readCsv: records carry their first line across quoted newlines, blank lines and CRLF', async () => {
  const dir = tempDataset({ 't.csv': 'a,"x\r\ny\r\nz",1\r\n\r\nb,plain,2\r\nc,"say ""hi""",3' });
  const { rows, problems } = await readCsv(join(dir, 't.csv'), 't.csv');
  assert.deepEqual(problems, []);
  assert.deepEqual(rows, [
    { fields: ['a', 'x\ny\nz', '1'], line: 1 },
    { fields: ['b', 'plain', '2'], line: 5 },
    { fields: ['c', 'say "hi"', '3'], line: 6 },
  ]);
  rmSync(dir, { recursive: true });
});

test('the good fixture loads: notes, topics, categories, JSONL, pairs, labels, images', async () => {
  const { dataset, report } = await loadDataset(GOOD, { images: 'decode' });
  assert.equal(report.ok, true, report.problems.map(formatProblem).join('\n'));
  assert.deepEqual(dataset.noteIds, { train: ['n1', 'n2', 'n3', 'n4'], test: ['t1', 't2', 't3'] });
  assert.deepEqual(dataset.notes.get('n1'), {
    id: 'n1',
    title: '红色与蓝色',
    content: '今天拍了一张图\n分成两半',
    topics: ['摄影', '色彩'],
    imageId: 'n1',
    category: ['生活', '摄影'],
  });
  const n2 = dataset.notes.get('n2')!;
  assert.equal(n2.title, 'Green, plain');
  assert.equal(n2.content, 'A "green" square');
  assert.deepEqual(n2.topics, ['green', 'colour']);
  assert.equal(dataset.notes.get('n3')!.title, 'Sun 🌞');
  // JSONL: category as an array, extra topics appended after the hashtags.
  assert.deepEqual(dataset.notes.get('t2')!.category, ['art', 'colour']);
  assert.deepEqual(dataset.notes.get('t3')!.topics, ['flag']);
  assert.deepEqual(dataset.notes.get('t1')!.topics, ['colour']);
  assert.deepEqual(dataset.pairs, {
    train: [{ a: 'n1', b: 'n2' }, { a: 'n3', b: 'n4' }, { a: 'n2', b: 'n3' }],
    val: [{ a: 'n1', b: 'n3' }],
    // The header row of note_pairs_test.csv is recognised and skipped.
    test: [{ a: 't1', b: 't2', label: 'visual' }, { a: 't2', b: 't3', label: 'text' }],
  });
  assert.equal(dataset.imagePath('n2'), join(GOOD, 'images/n2'));
  assert.equal(dataset.imagePath('n3'), join(GOOD, 'images/n3.svg'));
  assert.equal(dataset.imagePath('n4'), join(GOOD, 'images/n4.webp'));
  assert.equal(dataset.imagePath('t2'), join(GOOD, 'images_test/t2.jpeg'));
  assert.throws(() => dataset.imagePath('nope'), /no image for note 'nope' \(no such note\)/);
  assert.deepEqual(report.notes, { train: 4, test: 3 });
  assert.deepEqual(report.pairs, { train: 3, val: 1, test: 2 });
  assert.equal(report.labelledPairs, 2);
  assert.equal(report.images.found, 7);
  assert.equal(dataset.name, 'good');
});

test('a missing folder is an error naming it', async () => {
  await assert.rejects(loadDataset('/nonexistent/dataset'), /\/nonexistent\/dataset is not a dataset folder/);
});

test('line numbers stay right after a multi-line field (duplicate reported on its own line)', async () => {
  const dir = tempDataset({
    'notes_train.csv': 'a,T,"one\ntwo\nthree",a,c@\nb,T,x,a,c@\na,T,dup,a,c@\n',
    'images/a.png': PNG,
  });
  assert.deepEqual(await problemsOf(dir), ['notes_train.csv:5:duplicate-id']);
  rmSync(dir, { recursive: true });
});

test('JSONL notes: lines that are not JSON and fields of the wrong type are reported with their line', async () => {
  const dir = tempDataset({
    'notes_test.jsonl': [
      '{"note_id":"j1","title":"ok","content":"","image_id":"j1","category":"a@b@"}',
      '',
      '{"note_id":"j2","title":"ok"',
      '{"note_id":7,"title":"numeric id is fine","image_id":"j1"}',
      '{"note_id":"j4","title":["not","a","string"],"image_id":"j1"}',
      '[1,2]',
    ].join('\n'),
    'images_test/j1.png': PNG,
  });
  const { dataset, report } = await loadDataset(dir, { skipBad: true, images: 'exists' });
  assert.deepEqual(
    rowProblems(report).map((p) => `${p.line}:${p.kind}`),
    ['3:syntax', '5:bad-field', '6:bad-field'],
  );
  assert.match(rowProblems(report)[1].message, /^title: expected a string, got an array/);
  assert.deepEqual(dataset.noteIds.test, ['j1', '7']);
  rmSync(dir, { recursive: true });
});

test('image escapes: ../, absolute paths and symlinks out are caught; symlinks inside are fine', async () => {
  const outside = mkdtempSync(join(tmpdir(), 'notellm2-outside-'));
  writeFileSync(join(outside, 'secret.png'), PNG);
  const dir = tempDataset({
    'notes_train.csv': [
      'up,T,x,../../x.png,c@',
      `abs,T,x,${join(outside, 'secret.png')},c@`,
      'link,T,x,link,c@',
      'inner,T,x,inner,c@',
      'sub,T,x,sub/deep,c@',
    ].join('\n'),
    'images/real.png': PNG,
    'images/sub/deep.png': PNG,
  });
  symlinkSync(join(outside, 'secret.png'), join(dir, 'images/link.png'));
  symlinkSync(join(dir, 'images/real.png'), join(dir, 'images/inner.png'));
  const { dataset, report } = await loadDataset(dir, { skipBad: true, images: 'header' });
  const problems = rowProblems(report);
  assert.deepEqual(
    problems.map((p) => `${p.line}:${p.kind}`),
    ['1:image-escape', '2:image-escape', '3:image-escape'],
  );
  assert.match(problems[1].message, /is an absolute path/);
  assert.match(problems[2].message, /images\/link\.png is a link to .*secret\.png, outside the dataset folder/);
  assert.deepEqual(dataset.noteIds.train, ['inner', 'sub']);
  assert.equal(dataset.imagePath('sub'), join(dir, 'images/sub/deep.png'));
  rmSync(dir, { recursive: true });
  rmSync(outside, { recursive: true });
});

test('an image is looked up in the other split folder too; a missing one names where it looked', async () => {
  const dir = tempDataset({
    'notes_test.csv': 'x,T,c,shared,c@\ny,T,c,absent,c@\n',
    'images/shared.png': PNG,
  });
  const { dataset, report } = await loadDataset(dir, { skipBad: true });
  assert.equal(dataset.imagePath('x'), join(dir, 'images/shared.png'));
  assert.equal(rowProblems(report).length, 1);
  assert.equal(
    formatProblem(rowProblems(report)[0]),
    'notes_test.csv:2: missing-image: no image file for image_id "absent"; expected "absent" bare or with .jpg .jpeg .png .webp .svg .svgz in images_test/ or images/',
  );
  rmSync(dir, { recursive: true });
});

test('strict load throws a DatasetError listing every problem; skipBad keeps the good rows and drops pairs of bad notes', async () => {
  const dir = tempDataset({
    'notes_train.csv': 'a,A,x,a,c@\nb,,,a,c@\nc,C,x,a,c@\n',
    'note_pairs_train.csv': 'a,c\na,b\nc,q\nc,c\n',
    'note_pairs_val.csv': 'c,a\n',
    'note_pairs_test.csv': 'a,c\n',
    'images/a.png': PNG,
  });
  await assert.rejects(loadDataset(dir), (e: unknown) => {
    assert.ok(e instanceof DatasetError);
    assert.equal(e.report.problems.length, 3);
    assert.match(e.message, /has 3 problem\(s\)/);
    assert.match(e.message, /notes_train\.csv:2: empty-note: note 'b'/);
    assert.match(e.message, /note_pairs_train\.csv:3: unknown-note: 'q' is in no notes file/);
    assert.match(e.message, /note_pairs_train\.csv:4: bad-field: note 'c' is paired with itself/);
    return true;
  });
  const { dataset, report } = await loadDataset(dir, { skipBad: true });
  assert.deepEqual(dataset.noteIds.train, ['a', 'c']);
  assert.deepEqual(dataset.pairs.train, [{ a: 'a', b: 'c' }]);
  assert.equal(report.droppedPairs, 1); // a,b: b was left out
  assert.deepEqual(report.badRows, { 'bad-field': 1, 'empty-note': 1, 'unknown-note': 1 });
  assert.equal(report.ok, false);
  rmSync(dir, { recursive: true });
});

test('an unknown image check mode lists the valid ones', async () => {
  await assert.rejects(loadDataset(GOOD, { images: 'pixels' as never }), /images must be one of decode, header, exists, got 'pixels'/);
});

test('an image file copied in with an extension is found before the other folder', async () => {
  const dir = tempDataset({ 'notes_train.csv': 'x,T,c,pic,c@\n' });
  mkdirSync(join(dir, 'images'), { recursive: true });
  copyFileSync(join(GOOD, 'images/n3.svg'), join(dir, 'images/pic.svg'));
  mkdirSync(join(dir, 'images_test'), { recursive: true });
  copyFileSync(join(GOOD, 'images/n1.png'), join(dir, 'images_test/pic.png'));
  const { dataset } = await loadDataset(dir, { skipBad: true });
  assert.equal(dataset.imagePath('x'), join(dir, 'images/pic.svg'));
  rmSync(dir, { recursive: true });
});
