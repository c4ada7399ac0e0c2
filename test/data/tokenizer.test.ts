import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../../src/backend';
import {
  BYTE_TO_UNICODE,
  BpeTokenizer,
  NativeUnsupportedError,
  loadTokenizer,
  saveTokenizer,
  stringifyTokenizerJson,
  trainTokenizer,
  type HfTokenizerJson,
  type TextTokenizer,
} from '../../src/data/tokenizer';

const FIXTURES = join(__dirname, '..', 'fixtures', 'tokenizer');
const GPT2_TINY = join(FIXTURES, 'gpt2-tiny', 'tokenizer.json');
const QWEN_TINY = join(FIXTURES, 'qwen-tiny', 'tokenizer.json');

before(async () => {
  await initBackend();
});

// Notes in the style of the reference data: Chinese titles, inline `#tag[话题]#` hashtags, emoji.
const NOTES = [
  '今天天气很好，去公园散步 #春天[话题]# #散步[话题]#',
  '春天的公园真的太美了🌸 推荐大家周末去 #春天[话题]#',
  '👨‍👩‍👧 family day at the park 👍🏽 #family[话题]#',
  '新买的咖啡机☕️ 每天早上一杯拿铁 #咖啡[话题]# #好物分享[话题]#',
  '周末去爬山 ⛰️ 天气晴朗 👍🏻👍🏿 #爬山[话题]#',
  'Hello world! 今天的话题是春天 ❤️ 🇨🇳',
  '减脂餐分享：鸡胸肉 + 西兰花 🥦 #减脂[话题]# #健康饮食[话题]#',
  'OOTD 今日穿搭 👗 小个子也能穿出大长腿 #穿搭[话题]#',
  '猫咪🐱第一次洗澡 😹😹 太可爱了 #萌宠[话题]#',
  'Reading list for 2024: 3 books 📚 #reading[话题]#',
];
const CORPUS = Array.from({ length: 6 }, (_, i) => NOTES.map((n) => (i % 2 ? n : n + ' ' + i))).flat();

// Strings that must survive decode(encode(x)) exactly.
const ROUND_TRIP = [
  '',
  '今天天气很好，去公园散步',
  '#tag[话题]#',
  '#春天[话题]# #散步[话题]#',
  '👨‍👩‍👧‍👦 family', // ZWJ sequence
  '👍🏽👍🏻👍🏿 skin tones', // Fitzpatrick modifiers
  '🏳️‍🌈 ❤️ 1️⃣ 🇨🇳🇯🇵', // VS16, keycap, regional-indicator flags
  'Note: {"image": "<IMG>"}, compress this note into one word: "<IMG_EMB>". Note: {"title": "春天", "topic": "#春天[话题]#", "content": "公园"}, compress this note into one word: "',
  '<pad><bos>text<eos><IMG><IMG_EMB><IMG',
  '  leading and trailing spaces  \n\ttabs\r\nnewlines\n\n',
  'café e\u0301 naïve Ω ﬁ', // precomposed and decomposed accents are kept as given
  '\uFEFFbom first',
  'mixed日本語テキストと한국어 text 123456',
];

function assertRoundTrips(tok: TextTokenizer, texts: readonly string[]): void {
  for (const text of texts) {
    const ids = tok.encode(text);
    assert.equal(tok.decode(ids), text, `${tok.engine}: round trip of ${JSON.stringify(text)} (ids ${JSON.stringify(ids)})`);
  }
}

function mergesOf(tok: TextTokenizer): Array<[string, string]> {
  const model = tok.toJSON().model as { merges: Array<[string, string]> };
  return model.merges;
}

test('hand-worked BPE training on "aaabdaaabac"', () => {
  // One pre-token (all letters): a a a b d a a a b a c.
  // Pair counts: (a,a)=4 (two in each "aaa"), (a,b)=2, (b,d)=(d,a)=(b,a)=(a,c)=1.
  // 1. merge a+a → "aa";   sequence aa a b d aa a b a c; counts (aa,a)=2, (a,b)=2, others 1.
  // 2. tie at 2: (a,b) < (aa,a) because "a" < "aa" → "ab";   aa ab d aa ab a c; (aa,ab)=2.
  // 3. merge aa+ab → "aaab";   aaab d aaab a c; every pair now occurs once.
  //    With minFrequency 2 training stops here: 261 + 3 = 264 tokens although 270 were allowed.
  // With minFrequency 1 it goes on, smallest pair first among the ties:
  // 4. (a,c) — "a" is the smallest left string → "ac";   aaab d aaab ac
  // 5. (aaab,ac) beats (aaab,d) ("ac" < "d") and (d,aaab) → "aaabac";   aaab d aaabac
  const tok = trainTokenizer(['aaabdaaabac'], { vocabSize: 270 });
  assert.deepEqual(mergesOf(tok), [['a', 'a'], ['a', 'b'], ['aa', 'ab']]);
  assert.equal(tok.vocabSize, 264);
  // ids: specials 0..4, byte b at 5 + b ('a' = 102, 'c' = 104, 'd' = 105), merges from 261.
  assert.deepEqual(tok.encode('aaabdaaabac'), [263, 105, 263, 102, 104]);
  assert.deepEqual(['aa', 'ab', 'aaab'].map((t) => tok.tokenToId(t)), [261, 262, 263]);
  // Encoding applies merges by rank, leftmost first: a a a a → aa a a → aa aa.
  assert.deepEqual(tok.encode('aaaa'), [261, 261]);
  assert.deepEqual(tok.encode('aba'), [262, 102]);

  const longer = trainTokenizer(['aaabdaaabac'], { vocabSize: 266, minFrequency: 1 });
  assert.deepEqual(mergesOf(longer), [['a', 'a'], ['a', 'b'], ['aa', 'ab'], ['a', 'c'], ['aaab', 'ac']]);
  assert.equal(longer.vocabSize, 266);
  assert.deepEqual(longer.encode('aaabdaaabac'), [263, 105, 265]);
});

test('byte alphabet is GPT-2\'s mapping', () => {
  assert.equal(BYTE_TO_UNICODE[0x20], 'Ġ');
  assert.equal(BYTE_TO_UNICODE[0x0a], 'Ċ');
  assert.equal(BYTE_TO_UNICODE[0x21], '!');
  assert.equal(BYTE_TO_UNICODE[0xad], 'Ń');
  assert.equal(new Set(BYTE_TO_UNICODE).size, 256);
  // 话 = E8 AF 9D: two printable Latin-1 bytes kept, 0x9D shifted to U+013F.
  const tok = trainTokenizer([], { vocabSize: 261 });
  assert.deepEqual(tok.preTokenize(' 话题'), ['Ġè¯Ŀé¢ĺ']);
});

test('pre-tokenisation keeps Chinese runs, emoji sequences and hashtags sensible', () => {
  const tok = trainTokenizer([], { vocabSize: 261 });
  const pieces = (text: string) => tok.preTokenize(text).map((w) => Buffer.from(w.split('').map((c) => BYTE_TO_UNICODE.indexOf(c))).toString('utf8'));
  assert.deepEqual(pieces('今天天气很好，去公园'), ['今天天气很好', '，', '去公园']);
  assert.deepEqual(pieces('#tag[话题]#'), ['#', 'tag', '[', '话题', ']#']);
  assert.deepEqual(pieces('好👨‍👩‍👧ok'), ['好', '👨‍👩‍👧', 'ok']);
  assert.deepEqual(pieces('like 👍🏽 it'), ['like', ' 👍🏽', ' it']);
  assert.deepEqual(pieces('cafe\u0301 x'), ['cafe\u0301', ' x']);
  assert.deepEqual(pieces("it's 2024"), ['it', "'s", ' 2024']);
  assert.deepEqual(pieces('a<IMG>b'), ['a', 'b'], 'special tokens are not pre-tokens');
  // Whitespace is Oniguruma's (the reference implementation's regex engine), not JavaScript's:
  // U+FEFF is a symbol, U+0085 is whitespace.
  assert.deepEqual(pieces('!\uFEFF!\u0085'), ['!\uFEFF!', '\u0085']);
});

test('trained tokenizer: Chinese, emoji, hashtags and the prompt round-trip exactly', () => {
  const tok = trainTokenizer(CORPUS, { vocabSize: 420 });
  assert.equal(tok.engine, 'native');
  assertRoundTrips(tok, [...ROUND_TRIP, ...NOTES]);
  // The corpus's frequent words became single tokens.
  assert.deepEqual(tok.encode('话题'), [tok.tokenToId('è¯Ŀé¢ĺ')]);
  assert.ok(tok.encode(NOTES[0]).length < Buffer.byteLength(NOTES[0]) / 2, 'merges compress the notes');
});

test('training is deterministic and independent of corpus order', () => {
  const a = stringifyTokenizerJson(trainTokenizer(CORPUS, { vocabSize: 400 }).toJSON());
  const b = stringifyTokenizerJson(trainTokenizer(CORPUS, { vocabSize: 400 }).toJSON());
  const c = stringifyTokenizerJson(trainTokenizer([...CORPUS].reverse(), { vocabSize: 400 }).toJSON());
  assert.equal(a, b);
  assert.equal(a, c);
  // A smaller vocabulary is a prefix of the larger one's merges (greedy, same order).
  const small = mergesOf(trainTokenizer(CORPUS, { vocabSize: 330 }));
  assert.deepEqual(mergesOf(trainTokenizer(CORPUS, { vocabSize: 400 })).slice(0, small.length), small);
});

test('vocab size is honoured and checked', () => {
  for (const vocabSize of [261, 300, 400]) {
    const tok = trainTokenizer(CORPUS, { vocabSize });
    assert.equal(tok.vocabSize, vocabSize);
    const json = tok.toJSON();
    const ids = Object.values((json.model as { vocab: Record<string, number> }).vocab).sort((x, y) => x - y);
    assert.deepEqual(ids, Array.from({ length: vocabSize }, (_, i) => i), 'ids are 0..vocabSize-1 without gaps');
    assert.equal(tok.idToToken(vocabSize), undefined);
  }
  assert.throws(() => trainTokenizer(CORPUS, { vocabSize: 260 }), /vocabSize must be an integer in \[261, .*got 260/);
  assert.throws(() => trainTokenizer(CORPUS, { vocabSize: 300, minFrequency: 0 }), /minFrequency must be an integer >= 1/);
});

test('special tokens: single fixed ids, matched in text, never learned as merges', () => {
  // A corpus full of prompts: `<IMG>` and `<IMG_EMB>` are its most frequent strings.
  const prompts = Array.from({ length: 30 }, (_, i) => `Note: {"image": "<IMG>"}, compress: "<IMG_EMB>". <bos>${NOTES[i % NOTES.length]}<eos><pad><pad>`);
  const tok = trainTokenizer(prompts, { vocabSize: 400 });
  assert.deepEqual(tok.specialIds, { pad: 0, bos: 1, eos: 2, img: 3, imgEmb: 4 });
  assert.deepEqual([tok.padId, tok.bosId, tok.eosId, tok.imgId, tok.imgEmbId], [0, 1, 2, 3, 4]);
  assert.deepEqual(tok.encode('<IMG>'), [3]);
  assert.deepEqual(tok.encode('<IMG_EMB>'), [4], 'the longer special token wins over its prefix <IMG>');
  assert.deepEqual(tok.encode('<IMG><IMG_EMB><IMG>'), [3, 4, 3]);
  const ids = tok.encode(prompts[0]);
  assert.equal(ids.filter((id) => id === 3).length, 1);
  assert.equal(ids.filter((id) => id === 4).length, 1);
  assert.equal(ids.filter((id) => id === 0).length, 2);
  for (const [a, b] of mergesOf(tok)) {
    assert.ok(!(a + b).includes('IMG') && !(a + b).includes('pad'), `merge ${a}+${b} spells part of a special token`);
  }
  assert.equal(tok.decode(ids), prompts[0]);
  assert.equal(tok.decode(ids, { skipSpecialTokens: true }), prompts[0].replace(/<IMG>|<IMG_EMB>|<bos>|<eos>|<pad>/g, ''));
  assert.throws(() => tok.decode([0, 400]), /ids\[1\] = 400 is not a token id \(vocabSize 400\)/);
  const added = tok.toJSON().added_tokens;
  assert.deepEqual(added.map((t) => [t.id, t.content, t.special]), [
    [0, '<pad>', true], [1, '<bos>', true], [2, '<eos>', true], [3, '<IMG>', true], [4, '<IMG_EMB>', true],
  ]);
});

test('save → load round trip: identical file, identical ids in both engines', () => {
  const tok = trainTokenizer(CORPUS, { vocabSize: 400 });
  const dir = mkdtempSync(join(tmpdir(), 'tok-'));
  try {
    const path = join(dir, 'tokenizer.json');
    saveTokenizer(tok, path);
    const text = readFileSync(path, 'utf8');
    assert.equal(text, stringifyTokenizerJson(tok.toJSON()));
    const loaded = loadTokenizer(dir); // a folder resolves to its tokenizer.json
    assert.equal(loaded.engine, 'native');
    const viaLibrary = loadTokenizer(path, { engine: 'hf' });
    assert.equal(viaLibrary.engine, 'hf');
    assert.equal(viaLibrary.vocabSize, 400);
    for (const s of [...ROUND_TRIP, ...NOTES]) {
      const ids = tok.encode(s);
      assert.deepEqual(loaded.encode(s), ids, `reloaded: ${JSON.stringify(s)}`);
      assert.deepEqual(viaLibrary.encode(s), ids, `@huggingface/tokenizers: ${JSON.stringify(s)}`);
      assert.equal(viaLibrary.decode(ids), s);
    }
    saveTokenizer(loaded, join(dir, 'again.json'));
    assert.equal(readFileSync(join(dir, 'again.json'), 'utf8'), text, 'load → save reproduces the bytes');
    assert.deepEqual(loaded.specialIds, tok.specialIds);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('GPT-2-style fixture ("a b" merges, ByteLevel regex) gives the hand-derived ids', () => {
  // Fixture: ids 0..255 are the byte characters in GPT-2's order ("!" 0, "h" 71, "l" 75,
  // "Ġ" 220), merges 256..270 listed in the file, <|endoftext|> 271.
  const expected: Array<[string, number[]]> = [
    // "hello" | " world": h e l l o → he l l o → he ll o → hell o → hello; Ġ w o r l d → … → Ġworld
    ['hello world', [259, 264]],
    // h e l: (h,e) rank 0 beats (e,l) rank 9 → he l; no (he,l) merge
    ['hel', [256, 75]],
    [' hello', [220, 259]],
    // 话题 = è ¯ Ŀ é ¢ ĺ → è¯ Ŀ … → è¯Ŀ é¢ĺ → è¯Ŀé¢ĺ
    ['话题', [270]],
    ['#话题', [2, 270]],
    ['hello<|endoftext|>话', [259, 271, 267]],
  ];
  for (const engine of ['native', 'hf'] as const) {
    const tok = loadTokenizer(GPT2_TINY, { engine });
    for (const [text, ids] of expected) assert.deepEqual(tok.encode(text), ids, `${engine}: ${JSON.stringify(text)}`);
    assert.equal(tok.tokenToId('<|endoftext|>'), 271);
    assert.equal(tok.idToToken(264), 'Ġworld');
    // The prompt's special tokens are appended after the file's ids.
    assert.deepEqual(tok.specialIds, { pad: 272, bos: 273, eos: 274, img: 275, imgEmb: 276 });
    assert.equal(tok.vocabSize, 277);
    assert.deepEqual(tok.encode('<IMG>hello'), [275, 259]);
    assertRoundTrips(tok, ROUND_TRIP);
  }
  assert.equal(loadTokenizer(GPT2_TINY).engine, 'native');
});

test('ignore_merges (Llama-3 style): a pre-token that is itself in the vocab is one id', () => {
  const json = JSON.parse(readFileSync(GPT2_TINY, 'utf8')) as HfTokenizerJson & { model: { vocab: Record<string, number>; ignore_merges: boolean } };
  json.model.vocab['hel'] = 272; // no merge sequence reaches "hel": (h,e) then no (he,l)
  for (const ignore of [false, true]) {
    json.model.ignore_merges = ignore;
    for (const engine of ['native', 'hf'] as const) {
      const tok = loadTokenizer(json, { engine });
      assert.deepEqual(tok.encode('hel hello'), ignore ? [272, 220, 259] : [256, 75, 220, 259], `${engine}, ignore_merges ${ignore}`);
    }
  }
});

test('Qwen-style fixture ([a, b] merges, NFC, Split regex with (?i:…)) gives the hand-derived ids', () => {
  const expected: Array<[string, number[]]> = [
    // (?i:'s) matches "'S" before the letter run can take "'Sun" whole
    ["'Sun", [256, 257]],
    ["'sun", [6, 82, 257]],
    // single digits
    ['123', [16, 17, 18]],
    // " 话题" is one piece: è¯Ŀ+é¢ĺ (rank 8) beats Ġ+è¯Ŀ (rank 9), leaving Ġ alone
    [' 话题', [220, 264]],
    [' 话', [265]],
    // NFC turns e + U+0301 into é = C3 A9 = "Ã©"
    ['e\u0301', [259]],
    ['<|im_start|>话题<|im_end|>', [267, 264, 268]],
  ];
  for (const engine of ['native', 'hf'] as const) {
    const tok = loadTokenizer(QWEN_TINY, { engine, specialTokens: { pad: '<|endoftext|>', eos: '<|im_end|>' } });
    for (const [text, ids] of expected) assert.deepEqual(tok.encode(text), ids, `${engine}: ${JSON.stringify(text)}`);
    assert.deepEqual(tok.specialIds, { pad: 266, bos: 269, eos: 268, img: 270, imgEmb: 271 });
    assert.equal(tok.vocabSize, 272);
    assert.equal(tok.decode([259]), 'é');
    assertRoundTrips(tok, ROUND_TRIP.filter((s) => s === s.normalize('NFC')));
  }
});

test('a file the native engine cannot reproduce loads through @huggingface/tokenizers', () => {
  // SentencePiece-style BPE: Metaspace pre-tokenizer and decoder, not byte-level.
  const json = {
    added_tokens: [{ id: 0, content: '<unk>', special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    post_processor: null,
    decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    model: { type: 'BPE', unk_token: '<unk>', vocab: { '<unk>': 0, '▁': 1, h: 2, i: 3, '▁h': 4, '▁hi': 5 }, merges: ['▁ h', '▁h i'] },
  } as unknown as HfTokenizerJson;
  assert.throws(() => BpeTokenizer.fromJSON(json), (err: unknown) => err instanceof NativeUnsupportedError && /(decoder|pre_tokenizer) "Metaspace"/.test(err.message));
  const tok = loadTokenizer(json);
  assert.equal(tok.engine, 'hf');
  assert.deepEqual(tok.encode('hi hi'), [5, 5]);
  assert.deepEqual(tok.encode('<IMG>hi'), [tok.imgId, 5]);
  // Roles are appended after the file's ids 0..5: pad 6, bos 7, eos 8, img 9, imgEmb 10.
  assert.deepEqual(tok.specialIds, { pad: 6, bos: 7, eos: 8, img: 9, imgEmb: 10 });
  assert.equal(tok.decode([5, 9, 4]), 'hi<IMG> h');
});

test('encoding thousands of short notes is fast (cached pre-tokens)', (t) => {
  const tok = trainTokenizer(CORPUS, { vocabSize: 420 });
  const notes = Array.from({ length: 5000 }, (_, i) => `${NOTES[i % NOTES.length]} #${i % 97}`);
  const start = performance.now();
  let total = 0;
  for (const n of notes) total += tok.encode(n).length;
  const ms = performance.now() - start;
  t.diagnostic(`native: ${notes.length} notes, ${total} tokens in ${ms.toFixed(0)} ms (${Math.round(notes.length / (ms / 1000))} notes/s)`);
  const lib = loadTokenizer(tok.toJSON(), { engine: 'hf' });
  const s2 = performance.now();
  for (const n of notes) lib.encode(n);
  t.diagnostic(`@huggingface/tokenizers: ${Math.round(notes.length / ((performance.now() - s2) / 1000))} notes/s`);
  assert.ok(ms < 5000, `encoding 5000 notes took ${ms} ms`);
});
