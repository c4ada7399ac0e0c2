/**
 * Every copied fixture — language models and vision towers — checked through checkHfFolder,
 * the code path of `notellm2 hf check`: each output transformers wrote must be produced and lie within 1e-4,
 * at real-token positions. Also: what makes the report fail (a corrupted reference value, an
 * output that cannot be produced), refused classes, and no tensor left behind.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { initBackend, tf } from '../../../src/backend';
import { checkHfFolder } from '../../../src/model/hf/check';
import { formatReport } from '../../../src/model/hf/reference';

const FIXTURES = resolve(__dirname, '..', '..', 'fixtures', 'hf');
const LM_FIXTURES = ['llama_gqa', 'llama_gqa_bf16', 'llama_tied', 'llama_tied_sharded', 'llama_tied_v5', 'qwen2'];

let dir: string;
before(async () => {
  await initBackend();
  dir = mkdtempSync(join(tmpdir(), 'notellm2-hfc-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** base64 little-endian float32 → values (a copy: small Buffers share a pool). */
function floats(b64: string): Float32Array {
  const buf = Buffer.from(b64, 'base64');
  const a = new Float32Array(buf.length / 4);
  new Uint8Array(a.buffer).set(buf);
  return a;
}

/** A fixture copied to a temp folder with its reference.json edited. */
function withReference(name: string, edit: (ref: Record<string, any>) => void): string {
  const d = join(dir, `${name}-${Math.random().toString(36).slice(2, 8)}`);
  cpSync(join(FIXTURES, name), d, { recursive: true });
  const ref = JSON.parse(readFileSync(join(d, 'reference.json'), 'utf8'));
  edit(ref);
  writeFileSync(join(d, 'reference.json'), JSON.stringify(ref));
  return d;
}

const VISION_FIXTURES = ['clip_vision', 'clip_vision_v5', 'clip_vision_proj', 'siglip_vision', 'siglip_vision_v5'];

for (const name of VISION_FIXTURES) {
  test(`${name}: hf check compares every listed vision output within 1e-4`, async () => {
    const ref = JSON.parse(readFileSync(join(FIXTURES, name, 'reference.json'), 'utf8'));
    const before = tf.memory().numTensors;
    const r = await checkHfFolder(join(FIXTURES, name));
    assert.equal(tf.memory().numTensors, before, 'the check leaves no tensor behind');
    assert.equal(r.ok, true, formatReport(r));
    const listed = Object.entries(ref.outputs as Record<string, unknown>).flatMap(([k, v]) => (Array.isArray(v) ? v.map((_, i) => `${k}[${i}]`) : [k]));
    assert.deepEqual([...r.outputs.map((o) => o.name)].sort(), listed.sort());
    for (const o of r.outputs) assert.ok(o.maxAbsDiff <= 1e-4, `${o.name}: ${o.maxAbsDiff}`);
  });
}

for (const name of LM_FIXTURES) {
  test(`${name}: every reference output reproduced within 1e-4 at real-token positions`, async () => {
    const ref = JSON.parse(readFileSync(join(FIXTURES, name, 'reference.json'), 'utf8'));
    const before = tf.memory().numTensors;
    const r = await checkHfFolder(join(FIXTURES, name), { tolerance: 1e-4 });
    assert.equal(tf.memory().numTensors, before, 'the check leaves no tensor behind');
    assert.equal(r.modelClass, ref.model_class);
    // one line per listed output (hidden_states per entry), none missing
    const L = ref.outputs.hidden_states.length - 1;
    const want = [...Array.from({ length: L + 1 }, (_, i) => `hidden_states[${i}]`), ...Object.keys(ref.outputs).filter((k) => k !== 'hidden_states')];
    assert.deepEqual(r.outputs.map((o) => o.name), want);
    const [b, t] = [ref.inputs.input_ids.length, ref.inputs.input_ids[0].length];
    const real = (ref.inputs.attention_mask as number[][]).flat().reduce((a, x) => a + x, 0);
    assert.ok(real < b * t, 'the fixture has a padded row');
    for (const o of r.outputs) {
      assert.ok(Number.isFinite(o.maxAbsDiff) && o.maxAbsDiff <= 1e-4, `${o.name}: max |diff| ${o.maxAbsDiff}`);
      const width = o.name.startsWith('logits') ? ref.outputs.logits.shape[2] : ref.outputs.last_hidden_state.shape[2];
      const expected = o.name === 'logits_last_token' ? b * width : o.name === 'logits_last_position' ? width /* the padded row is skipped */ : real * width;
      assert.equal(o.compared, expected, `${o.name} compares ${o.compared} values`);
    }
    assert.ok(r.ok, formatReport(r));
    assert.match(r.outputs[0].note ?? '', /real tokens only: 13 of 16 positions/);
    assert.match(r.outputs[L].note ?? '', /final-normed/);
    assert.match(r.outputs.find((o) => o.name === 'logits_last_position')!.note ?? '', /row 1 skipped: a pad position/);
  });
}

test('a corrupted reference value, a wrong tolerance, an unknown output and a missing head make the report fail; the failure is printed', async () => {
  // one logit of the real tokens moved by 1e-3: above 1e-4, so the check must fail on it
  const nudged = withReference('llama_tied', (ref) => {
    const e = ref.outputs.logits_last_token;
    const a = floats(e.b64);
    a[3] += 1e-3;
    e.b64 = Buffer.from(a.buffer).toString('base64');
  });
  const r = await checkHfFolder(nudged);
  assert.equal(r.ok, false);
  const bad = r.outputs.filter((o) => !(o.maxAbsDiff <= 1e-4));
  assert.deepEqual(bad.map((o) => o.name), ['logits_last_token']);
  assert.ok(bad[0].maxAbsDiff > 9e-4 && bad[0].maxAbsDiff < 1.1e-3);
  assert.match(formatReport(r), /FAIL logits_last_token .*\nFAILED: LlamaForCausalLM/s);
  // the same folder passes at a tolerance above the nudge
  assert.equal((await checkHfFolder(nudged, { tolerance: 2e-3 })).ok, true);

  // a change at a pad position is not compared (HF's pad outputs depend on its key-padding mask)
  const padOnly = withReference('llama_tied', (ref) => {
    const e = ref.outputs.last_hidden_state; // [2, 8, 48]; row 1 is padded after 5 tokens
    const a = floats(e.b64);
    a[(1 * 8 + 6) * 48 + 2] += 5;
    e.b64 = Buffer.from(a.buffer).toString('base64');
  });
  assert.equal((await checkHfFolder(padOnly)).ok, true);

  const unknown = withReference('qwen2', (ref) => (ref.outputs.attentions = ref.outputs.logits_last_token));
  const ru = await checkHfFolder(unknown);
  assert.equal(ru.ok, false);
  assert.match(ru.outputs.find((o) => o.name === 'attentions')!.note ?? '', /not an output hf check produces for Qwen2ForCausalLM; known: hidden_states, /);

  // read as its …Model, a causal checkpoint has no head: listed logits cannot be produced
  const asBase = withReference('llama_gqa', (ref) => (ref.model_class = 'LlamaModel'));
  const rb = await checkHfFolder(asBase);
  assert.equal(rb.ok, false);
  assert.deepEqual(rb.outputs.filter((o) => Number.isNaN(o.maxAbsDiff)).map((o) => o.note), Array(3).fill('LlamaModel has no LM head'));
  assert.ok(rb.outputs.filter((o) => !o.name.startsWith('logits')).every((o) => o.maxAbsDiff <= 1e-4), 'the body still matches');

  const wrongLayers = withReference('llama_gqa', (ref) => ref.outputs.hidden_states.pop());
  const rl = await checkHfFolder(wrongLayers);
  assert.equal(rl.ok, false);
  assert.match(rl.outputs[0].note ?? '', /lists 3 entries, the model has 3 layers/);
});

test('refused inputs and classes: left padding, ids outside the vocabulary, a vision class on an LLM folder, unknown classes', async () => {
  const left = withReference('llama_tied', (ref) => (ref.inputs.attention_mask[1] = [0, 0, 0, 1, 1, 1, 1, 1]));
  await assert.rejects(checkHfFolder(left), /attention_mask row 1 is \[0,0,0,1,1,1,1,1\]; hf check needs right-padded rows/);
  const oov = withReference('llama_tied', (ref) => (ref.inputs.input_ids[0][2] = 260));
  await assert.rejects(checkHfFolder(oov), /inputs\.input_ids\[0\]\[2\] = 260 is outside the vocabulary 0 … 259/);
  // A vision class goes to the vision importer, which refuses a language model's config by name.
  const vision = withReference('llama_tied', (ref) => (ref.model_class = 'SiglipVisionModel'));
  await assert.rejects(checkHfFolder(vision), /config\.json: model_type "llama" is not supported; supported: clip_vision_model, siglip_vision_model, clip, siglip/);
  const other = withReference('llama_tied', (ref) => (ref.model_class = 'GPT2LMHeadModel'));
  await assert.rejects(checkHfFolder(other), /model_class "GPT2LMHeadModel" is not supported; supported: LlamaForCausalLM, LlamaModel, Qwen2ForCausalLM, Qwen2Model, CLIPVisionModel, CLIPVisionModelWithProjection, CLIPModel, SiglipVisionModel, SiglipModel/);
  await assert.rejects(checkHfFolder(join(dir, 'nowhere')), /nowhere\/reference\.json: cannot read the reference outputs/);
  await assert.rejects(checkHfFolder(join(FIXTURES, 'qwen2'), { tolerance: -1 }), /tolerance must be a finite number ≥ 0/);
});
