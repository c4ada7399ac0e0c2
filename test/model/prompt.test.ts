import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodePrompt, promptKindFor, renderPrompt, truncateFields, type PromptTokenizer } from '../../src/model/prompt';
import { resolveModelConfig } from '../../src/model/config';
import type { Note } from '../../src/data/schema';

const limits = resolveModelConfig().text;
const note: Note = {
  id: 'n1',
  title: 'A "quoted" title that is longer than twenty',
  content: 'x'.repeat(100),
  topics: Array.from({ length: 12 }, (_, i) => `tag${i}`),
  imageId: 'i1',
  category: ['a', 'b'],
};

test('fields are cut to the paper limits (title 20, content 80, 10 topics of 16 chars), by code point', () => {
  const f = truncateFields(note, limits);
  assert.equal(f.title, 'A "quoted" title tha');
  assert.equal(f.content.length, 80);
  assert.equal(f.topic.split(', ').length, 10);
  const emoji = truncateFields({ ...note, title: '😀'.repeat(25) }, limits);
  assert.equal(Array.from(emoji.title).length, 20);
  assert.equal(emoji.title, '😀'.repeat(20));
});

test('prompts render the paper templates', () => {
  const short: Note = { ...note, title: 'Cat', content: 'hello', topics: ['pets'] };
  assert.equal(
    renderPrompt('basic', short, limits),
    'Note: {"image": "<IMG>", "title": "Cat", "topic": "pets", "content": "hello"}, compress this note into one word: "',
  );
  assert.equal(
    renderPrompt('micl', short, limits),
    'Note: {"image": "<IMG>"}, compress this note into one word: "<IMG_EMB>". Note: {"title": "Cat", "topic": "pets", "content": "hello"}, compress this note into one word: "',
  );
  assert.equal(renderPrompt('text', short, limits), 'Note: {"title": "Cat", "topic": "pets", "content": "hello"}, compress this note into one word: "');
  assert.equal(promptKindFor({ earlyFusion: true, micl: true }), 'micl');
  assert.equal(promptKindFor({ earlyFusion: true, micl: false }), 'basic');
  assert.equal(promptKindFor({ earlyFusion: false, micl: false }), 'text');
});

// A character-level tokenizer with the two special tokens is enough to check index bookkeeping.
const charTok: PromptTokenizer = {
  padId: 0,
  tokenToId: (t) => ({ '<IMG>': 1, '<IMG_EMB>': 2 })[t],
  encode(text) {
    const out: number[] = [];
    for (const part of text.split(/(<IMG_EMB>|<IMG>)/)) {
      if (part === '<IMG>') out.push(1);
      else if (part === '<IMG_EMB>') out.push(2);
      else for (const ch of Array.from(part)) out.push(10 + ch.codePointAt(0)!);
    }
    return out;
  },
};

test('encodePrompt expands <IMG> to the image slots and finds n_v and n_m positions', () => {
  const p = renderPrompt('micl', { ...note, title: 'T', content: 'c', topics: [] }, limits);
  const enc = encodePrompt(charTok, p, 4, 1000);
  const prefix = 'Note: {"image": "'.length;
  assert.equal(enc.imageStart, prefix);
  assert.deepEqual(enc.ids.slice(prefix, prefix + 4), [1, 1, 1, 1]);
  assert.equal(enc.ids[enc.visualIndex + 1], 2, 'token after n_v is <IMG_EMB>');
  assert.equal(enc.ids[enc.visualIndex], 10 + '"'.charCodeAt(0));
  assert.equal(enc.lastIndex, enc.ids.length - 1);
  assert.equal(enc.ids.length, Array.from(p).length - '<IMG>'.length - '<IMG_EMB>'.length + 2 + 3);
  const txt = encodePrompt(charTok, renderPrompt('text', note, limits), 4, 1000);
  assert.equal(txt.imageStart, -1);
  assert.equal(txt.visualIndex, -1);
});

test('encodePrompt truncation keeps the template tail, so the last token is the closing quote', () => {
  const long = renderPrompt('basic', note, limits);
  const enc = encodePrompt(charTok, long, 2, 60);
  assert.equal(enc.ids.length, 60 + 1); // one <IMG> became two slots
  const tail = '"}, compress this note into one word: "';
  const decoded = enc.ids.slice(-tail.length).map((id) => String.fromCodePoint(id - 10)).join('');
  assert.equal(decoded, tail);
});
