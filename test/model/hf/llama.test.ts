/**
 * Importing Llama / Qwen2 folders: what config.json maps to, what is refused (and that the
 * refusal names the field, the value and what is supported), weight-key and shape checks,
 * the [out, in] → [in, out] transposition, heads (untied, tied, none), and tensor hygiene.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { initBackend, tf } from '../../../src/backend';
import { writeSafetensors, type TensorRecord } from '../../../src/model/checkpoint';
import { lmLayout } from '../../../src/model/lm';
import { ParamStore } from '../../../src/model/params';
import { importHfLM, parseHfLMConfig } from '../../../src/model/hf/llama';
import { loadHfTensors } from '../../../src/model/hf/weights';

const FIXTURES = resolve(__dirname, '..', '..', 'fixtures', 'hf');
const configOf = (name: string) => JSON.parse(readFileSync(join(FIXTURES, name, 'config.json'), 'utf8')) as Record<string, unknown>;

let dir: string;
before(async () => {
  await initBackend();
  dir = mkdtempSync(join(tmpdir(), 'notellm2-hfl-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

let copies = 0;
/** A fixture copied to a temp folder, with its config and tensors edited. */
async function variant(name: string, edit: { config?: (c: Record<string, unknown>) => void; tensors?: (t: TensorRecord) => void } = {}): Promise<string> {
  const d = join(dir, `${name}-${copies++}`);
  cpSync(join(FIXTURES, name), d, { recursive: true });
  if (edit.config) {
    const c = configOf(name);
    edit.config(c);
    writeFileSync(join(d, 'config.json'), JSON.stringify(c));
  }
  if (edit.tensors) {
    const t: TensorRecord = await loadHfTensors(join(FIXTURES, name));
    edit.tensors(t);
    await writeSafetensors(join(d, 'model.safetensors'), t, { format: 'pt' });
  }
  return d;
}

test('config.json → LMConfig for each family and writer (GQA, MQA, head_dim, rope_parameters, biases, tied head)', () => {
  const gqa = parseHfLMConfig(configOf('llama_gqa'), 'llama_gqa/config.json');
  assert.equal(gqa.architecture, 'LlamaForCausalLM');
  assert.equal(gqa.family, 'llama');
  assert.equal(gqa.storedHead, true);
  assert.deepEqual(
    { ...gqa.lm, ...lmLayout(gqa.lm) },
    { vocabSize: 300, dim: 64, nLayers: 3, nHeads: 4, nKVHeads: 2, headDim: 16, mlpHidden: 128, ropeTheta: 10000, normEps: 1e-5, attnBias: false, qkvBias: false, oBias: false, mlpBias: false, head: 'untied', initStd: 0.02 },
  );
  const tied = parseHfLMConfig(configOf('llama_tied'), 'x');
  assert.deepEqual([tied.lm.nKVHeads, lmLayout(tied.lm).headDim, tied.lm.ropeTheta, tied.lm.head, tied.storedHead], [1, 16, 500000, 'tied', false]);
  // transformers 5 writes rope_theta inside rope_parameters only
  const v5 = configOf('llama_tied_v5');
  assert.equal(v5.rope_theta, undefined);
  assert.deepEqual(parseHfLMConfig(v5, 'x').lm, tied.lm);
  const qwen = parseHfLMConfig(configOf('qwen2'), 'x');
  assert.deepEqual([qwen.family, qwen.lm.qkvBias, lmLayout(qwen.lm).oBias, qwen.lm.ropeTheta, qwen.lm.normEps], ['qwen2', true, false, 1e6, 1e-6]);
  // head_dim absent → hidden / heads; num_key_value_heads absent → heads; *Model has no head
  const bare = { ...configOf('llama_gqa'), head_dim: undefined, num_key_value_heads: undefined, architectures: ['LlamaModel'] };
  const b = parseHfLMConfig(bare, 'x');
  assert.deepEqual([lmLayout(b.lm).headDim, lmLayout(b.lm).nKVHeads, b.lm.head, b.storedHead], [16, 4, 'none', false]);
  // head_dim independent of hidden / heads; Llama's attention_bias and mlp_bias
  const wide = parseHfLMConfig({ ...configOf('llama_gqa'), head_dim: 24, attention_bias: true, mlp_bias: true }, 'x');
  assert.deepEqual([wide.lm.headDim, wide.lm.attnBias, lmLayout(wide.lm).qkvBias, lmLayout(wide.lm).oBias, wide.lm.mlpBias], [24, true, true, true, true]);
});

test('unsupported configurations are refused naming the field, its value and what is supported', () => {
  const llama = configOf('llama_gqa');
  const qwen = configOf('qwen2');
  const refuse = (c: Record<string, unknown>, re: RegExp) => assert.throws(() => parseHfLMConfig(c, 'cfg.json'), (e: Error) => e.message.startsWith('cfg.json: ') && re.test(e.message), String(re));
  refuse({ ...llama, architectures: ['MistralForCausalLM'], model_type: 'mistral' },
    /architecture "MistralForCausalLM" is not supported; supported: LlamaForCausalLM, LlamaModel, Qwen2ForCausalLM, Qwen2Model/);
  refuse({ ...llama, architectures: ['Qwen2ForCausalLM'] }, /field "model_type" is "llama" but Qwen2ForCausalLM needs "qwen2" \(supported model types: llama, qwen2\)/);
  refuse({ ...llama, rope_scaling: { rope_type: 'llama3', factor: 8 } }, /field "rope_scaling\.rope_type" is "llama3"; supported: default/);
  refuse({ ...llama, rope_scaling: { type: 'linear', factor: 2 } }, /field "rope_scaling\.type" is "linear"; supported: default/);
  refuse({ ...configOf('llama_tied_v5'), rope_parameters: { rope_type: 'yarn', rope_theta: 5e5, factor: 4 } }, /field "rope_parameters\.rope_type" is "yarn"; supported: default/);
  refuse({ ...llama, rope_parameters: { rope_type: 'default', rope_theta: 20000 } }, /fields "rope_theta" \(10000\) and "rope_parameters\.rope_theta" \(20000\) disagree/);
  refuse({ ...llama, partial_rotary_factor: 0.5 }, /field "partial_rotary_factor" is 0\.5; supported: 1/);
  refuse({ ...llama, hidden_act: 'gelu' }, /field "hidden_act" is "gelu"; supported: silu, swish/);
  refuse({ ...qwen, use_sliding_window: true, sliding_window: 4, max_window_layers: 1 }, /field "use_sliding_window" is true with max_window_layers 1 < num_hidden_layers \(2\): sliding-window attention is not implemented/);
  refuse({ ...qwen, layer_types: ['full_attention', 'sliding_attention'] }, /field "layer_types\[1\]" is "sliding_attention"; supported: "full_attention"/);
  refuse({ ...llama, num_key_value_heads: 3 }, /"num_key_value_heads" \(3\) must divide num_attention_heads \(4\)/);
  refuse({ ...llama, head_dim: 15 }, /head width 15 .* must be even/);
  refuse({ ...llama, hidden_size: 0 }, /field "hidden_size" must be a positive integer, got 0/);
  refuse({ ...llama, quantization_config: { quant_method: 'gptq' } }, /field "quantization_config" is set .*not supported/);
  refuse({ ...llama, architectures: ['LlamaForCausalLM', 'LlamaModel'] }, /"architectures" must list exactly one class/);
  // a sliding window configured but not in use is fine (transformers' own default for Qwen2)
  assert.doesNotThrow(() => parseHfLMConfig({ ...qwen, use_sliding_window: true, max_window_layers: 28 }, 'x'));
});

test('import: embeddings as stored, projections transposed from [out, in], biases and norms as stored; GQA head layout kept', async () => {
  const { lm, store, loadedKeys, skippedKeys } = await importHfLM(join(FIXTURES, 'qwen2'));
  try {
    const raw = await loadHfTensors(join(FIXTURES, 'qwen2'));
    assert.equal(loadedKeys.length, Object.keys(raw).length);
    assert.deepEqual(skippedKeys, []);
    const q = raw['model.layers.1.self_attn.q_proj.weight']; // [H·hd, d] = [64, 64]
    const k = raw['model.layers.1.self_attn.k_proj.weight']; // [KV·hd, d] = [32, 64]
    const mineQ = store.get('lm.layers.1.attn.q.weight');
    const mineK = store.get('lm.layers.1.attn.k.weight');
    assert.deepEqual(mineK.shape, [64, 32]);
    const mq = mineQ.dataSync(), mk = mineK.dataSync();
    for (const [o, i] of [[0, 0], [5, 17], [63, 2], [40, 63]]) assert.equal(mq[i * 64 + o], q.data[o * 64 + i], `q[${o}, ${i}]`);
    for (const [o, i] of [[0, 1], [31, 60]]) assert.equal(mk[i * 32 + o], k.data[o * 64 + i], `k[${o}, ${i}]`);
    assert.deepEqual(Array.from(store.get('lm.layers.0.attn.v.bias').dataSync()), Array.from(raw['model.layers.0.self_attn.v_proj.bias'].data));
    assert.ok(!store.has('lm.layers.0.attn.o.bias'), 'Qwen2 has no o bias');
    assert.deepEqual(Array.from(store.get('lm.embed.weight').dataSync()), Array.from(raw['model.embed_tokens.weight'].data));
    assert.deepEqual(Array.from(store.get('lm.layers.1.mlp_norm.weight').dataSync()), Array.from(raw['model.layers.1.post_attention_layernorm.weight'].data));
    assert.deepEqual(store.get('lm.head.weight').shape, [64, 300]);
    assert.equal(lm.layout.nKVHeads, 2);
  } finally {
    store.dispose();
  }
});

test('heads: tied logits are h·Eᵀ with no head parameter; head "none" builds none and skips lm_head; a …Model view of a …ForCausalLM checkpoint', async () => {
  const tied = await importHfLM(join(FIXTURES, 'llama_tied'));
  const gqa = await importHfLM(join(FIXTURES, 'llama_gqa'), { head: 'none' });
  const base = await importHfLM(join(FIXTURES, 'llama_gqa'), { architecture: 'LlamaModel', store: new ParamStore(3), prefix: 'text' });
  const full = await importHfLM(join(FIXTURES, 'llama_gqa'));
  try {
    assert.ok(!tied.store.has('lm.head.weight'));
    assert.equal(tied.lm.layout.head, 'tied');
    tf.tidy(() => {
      const h = tied.lm.forward(tied.lm.embed(tf.tensor2d([[1, 2, 3]], [1, 3], 'int32'))).last;
      // plain JS: logit[t][v] = Σ_d h[t][d] · E[v][d]
      const hs = h.dataSync(), e = tied.lm.embedding.dataSync(), got = tied.lm.logits(h).dataSync();
      assert.equal(got.length, 3 * 260);
      for (let t = 0; t < 3; t++) {
        for (let v = 0; v < 260; v++) {
          let want = 0;
          for (let d = 0; d < 48; d++) want += hs[t * 48 + d] * e[v * 48 + d];
          assert.ok(Math.abs(got[t * 260 + v] - want) < 1e-5, `logit[${t}][${v}] ${got[t * 260 + v]} vs ${want}`);
        }
      }
    });
    assert.ok(!gqa.store.has('lm.head.weight'));
    assert.deepEqual(gqa.skippedKeys, ['lm_head.weight']);
    assert.throws(() => tf.tidy(() => gqa.lm.logits(tf.zeros([1, 1, 64]) as tf.Tensor3D)), /no LM head \(head: 'none'\)/);
    assert.equal(base.spec.architecture, 'LlamaModel');
    assert.deepEqual(base.skippedKeys, ['lm_head.weight']);
    assert.ok(base.store.has('text.layers.2.attn.q.weight') && !base.store.has('text.head.weight'));
    tf.tidy(() => {
      const ids = tf.tensor2d([[4, 8, 15, 16, 23]], [1, 5], 'int32');
      const a = base.lm.forward(base.lm.embed(ids)).last;
      const b = full.lm.forward(full.lm.embed(ids)).last;
      assert.equal(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0], 0);
    });
  } finally {
    [tied, gqa, base, full].forEach((m) => m.store.dispose());
  }
});

test('weight keys: missing, unexpected and mis-shaped tensors are errors naming the key; rotary buffers and a tied lm_head copy are checked', async () => {
  const missing = await variant('llama_gqa', { tensors: (t) => delete t['model.layers.1.mlp.up_proj.weight'] });
  await assert.rejects(importHfLM(missing), /1 weight that LlamaForCausalLM's config\.json implies are missing: model\.layers\.1\.mlp\.up_proj\.weight/);
  const noHead = await variant('llama_gqa', { tensors: (t) => delete t['lm_head.weight'] });
  await assert.rejects(importHfLM(noHead), /missing: lm_head\.weight \(config\.json says tie_word_embeddings false/);
  const extra = await variant('llama_gqa', { tensors: (t) => (t['model.layers.0.self_attn.q_proj.bias'] = { shape: [64], data: new Float32Array(64) }) });
  await assert.rejects(importHfLM(extra), /1 weight is not part of LlamaForCausalLM as config\.json describes it: model\.layers\.0\.self_attn\.q_proj\.bias \(does config\.json match the weights\? biases: attention_bias/);
  const shape = await variant('llama_gqa', { config: (c) => (c.num_key_value_heads = 4) });
  await assert.rejects(importHfLM(shape), /model\.safetensors: tensor "model\.layers\.0\.self_attn\.k_proj\.weight" has shape \[32,64\] but config\.json implies \[64,64\] \(num_key_value_heads·head_dim × hidden_size\)/);
  const vocab = await variant('llama_tied', { config: (c) => (c.vocab_size = 261) });
  await assert.rejects(importHfLM(vocab), /tensor "model\.embed_tokens\.weight" has shape \[260,48\] but config\.json implies \[261,48\]/);

  // a stored lm_head beside tied embeddings must be the embedding itself
  const same = await variant('llama_tied', { tensors: (t) => (t['lm_head.weight'] = t['model.embed_tokens.weight']) });
  const ok = await importHfLM(same);
  assert.deepEqual(ok.skippedKeys, ['lm_head.weight']);
  ok.store.dispose();
  const differs = await variant('llama_tied', {
    tensors: (t) => {
      const e = t['model.embed_tokens.weight'];
      const d = Float32Array.from(e.data as Float32Array);
      d[7] += 1;
      t['lm_head.weight'] = { shape: e.shape, data: d };
    },
  });
  await assert.rejects(importHfLM(differs), /tensor "lm_head\.weight" differs from "model\.embed_tokens\.weight" although config\.json says tie_word_embeddings true/);

  // older Llama checkpoints carry rotary inv_freq buffers: checked against rope_theta, not loaded
  const invFreq = (theta: number) => Float32Array.from({ length: 8 }, (_, i) => Math.pow(theta, (-2 * i) / 16));
  const buf = await variant('llama_tied', { tensors: (t) => (t['model.layers.0.self_attn.rotary_emb.inv_freq'] = { shape: [8], data: invFreq(500000) }) });
  const withBuf = await importHfLM(buf);
  assert.deepEqual(withBuf.skippedKeys, ['model.layers.0.self_attn.rotary_emb.inv_freq']);
  withBuf.store.dispose();
  const wrongBuf = await variant('llama_tied', { tensors: (t) => (t['model.layers.1.self_attn.rotary_emb.inv_freq'] = { shape: [8], data: invFreq(10000) }) });
  await assert.rejects(importHfLM(wrongBuf), /tensor "model\.layers\.1\.self_attn\.rotary_emb\.inv_freq"\[1\] = .* but rope_theta 500000 gives/);
});

test('a base model saved without the "model." prefix imports to the same network; no tensor is left behind by imports that succeed or fail', async () => {
  const bare = await variant('llama_tied', {
    config: (c) => (c.architectures = ['LlamaModel']),
    tensors: (t) => {
      for (const k of Object.keys(t)) {
        t[k.replace(/^model\./, '')] = t[k];
        delete t[k];
      }
    },
  });
  const before = tf.memory().numTensors;
  const a = await importHfLM(bare);
  const b = await importHfLM(join(FIXTURES, 'llama_tied'), { head: 'none' });
  tf.tidy(() => {
    const ids = tf.tensor2d([[1, 2, 3, 4]], [1, 4], 'int32');
    assert.equal(tf.max(tf.abs(tf.sub(a.lm.forward(a.lm.embed(ids)).last, b.lm.forward(b.lm.embed(ids)).last))).dataSync()[0], 0);
  });
  a.store.dispose();
  b.store.dispose();
  const missing = await variant('llama_gqa', { tensors: (t) => delete t['model.norm.weight'] });
  await assert.rejects(importHfLM(missing), /model\.norm\.weight/);
  const shape = await variant('llama_gqa', { config: (c) => (c.intermediate_size = 100) });
  await assert.rejects(importHfLM(shape), /mlp\.gate_proj\.weight" has shape \[128,64\] but config\.json implies \[100,64\]/);
  assert.equal(tf.memory().numTensors, before, 'imports leave no tensors once their stores are disposed');
});
