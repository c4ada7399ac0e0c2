/**
 * The ONNX Runtime wrapper (src/backend/ort.ts) on its own: the pinned internal binding
 * loads, products are right for every transposition with inputs and output living at
 * offsets inside a larger buffer (as on the wasm heap), sessions are cached per signature.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OrtGemm, ORT_VERSION } from '../../src/backend/ort';
import { matMulModel } from '../../src/backend/onnx';
import { Rng } from '../../src/backend';
import { randomArr, refMatMul, roundingRatio, transposeLast } from './helpers';

test('loads the pinned onnxruntime-node and caches one session per signature', () => {
  const g = OrtGemm.load({ threads: 2 });
  assert.equal(g.version, ORT_VERSION);
  assert.equal(g.threads, 2);
  const rng = new Rng(4);
  const heap = new ArrayBuffer(1 << 16);
  for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]] as const) {
    for (const [m, k, n] of [[3, 5, 2], [7, 4, 9]]) {
      const a = randomArr(rng, [2, m, k]), b = randomArr(rng, [k, n]);
      const pa = ta ? transposeLast(a) : a, pb = tb ? transposeLast(b) : b;
      // Place A, B and Y at unaligned-to-zero offsets of one buffer, like tensors on the wasm heap.
      const av = new Float32Array(heap, 40, pa.data.length), bv = new Float32Array(heap, 4096, pb.data.length);
      const yv = new Float32Array(heap, 8192, 2 * m * n);
      av.set(pa.data);
      bv.set(pb.data);
      yv.fill(NaN);
      g.matMul(av, pa.shape, bv, pb.shape, ta, tb, yv, [2, m, n]);
      assert.ok(roundingRatio(yv, refMatMul(a, b)) <= 1, `ta=${ta} tb=${tb} ${m}x${k}x${n}`);
    }
  }
  // Signatures: (rank 3, rank 2) × 4 transpositions, plus the (2, 2, plain) session of the
  // self-test in load(); different sizes do not add sessions.
  assert.equal(g.sessionCount, 5);
  g.dispose();
  assert.equal(g.sessionCount, 0);
});

test('rejects operands of rank other than 2 or 3, and a wrongly sized output', () => {
  const g = OrtGemm.load({ threads: 1 });
  const x = new Float32Array(8);
  assert.throws(() => g.matMul(x, [2, 2, 1, 2], x, [2, 2], false, false, new Float32Array(4), [2, 2]), /rank-2 or rank-3/);
  assert.throws(() => g.matMul(x.subarray(0, 4), [2, 2], x.subarray(0, 4), [2, 2], false, false, new Float32Array(3), [3]));
  g.dispose();
});

test('the hand-written ONNX model starts with the expected protobuf fields', () => {
  const bytes = matMulModel({ rankA: 2, rankB: 3, transposeA: false, transposeB: true });
  // ModelProto field 1 (ir_version, varint) = 8, then field 2 (producer_name) = "notellm2".
  assert.deepEqual(Array.from(bytes.slice(0, 4)), [0x08, 8, 0x12, 8]);
  assert.equal(new TextDecoder().decode(bytes.slice(4, 12)), 'notellm2');
  const text = new TextDecoder('latin1').decode(bytes);
  assert.ok(text.includes('FusedMatMul') && text.includes('com.microsoft') && text.includes('transB'));
  const plain = new TextDecoder('latin1').decode(matMulModel({ rankA: 2, rankB: 2, transposeA: false, transposeB: false }));
  assert.ok(plain.includes('MatMul') && !plain.includes('com.microsoft'));
});
