/**
 * Builds the tiny ONNX graphs the native GEMM path runs: one matrix product with symbolic
 * (dynamic) dimensions, optionally with either operand transposed. The protobuf bytes are
 * written here by hand — the handful of ONNX messages involved (ModelProto, GraphProto,
 * NodeProto, AttributeProto, ValueInfoProto, TypeProto, TensorShapeProto) need only
 * varints and length-delimited fields, which is less code and less risk than a protobuf
 * dependency. Field numbers follow onnx/onnx.proto (IR version 8).
 */

/** Minimal protobuf writer: enough for the ONNX messages above. */
class ProtoWriter {
  private bytes: number[] = [];

  private varint(v: number): void {
    // Non-negative integers only (field numbers, lengths, small int64 values).
    if (!Number.isInteger(v) || v < 0) throw new Error(`onnx.ts: varint must be a non-negative integer, got ${v}`);
    while (v > 0x7f) {
      this.bytes.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.bytes.push(v);
  }

  private key(field: number, wire: 0 | 2 | 5): void {
    this.varint(field * 8 + wire);
  }

  int(field: number, v: number): this {
    this.key(field, 0);
    this.varint(v);
    return this;
  }

  float(field: number, v: number): this {
    this.key(field, 5);
    const b = new Uint8Array(new Float32Array([v]).buffer);
    for (const x of b) this.bytes.push(x);
    return this;
  }

  string(field: number, s: string): this {
    return this.raw(field, new TextEncoder().encode(s));
  }

  message(field: number, m: ProtoWriter): this {
    return this.raw(field, m.finish());
  }

  private raw(field: number, b: Uint8Array): this {
    this.key(field, 2);
    this.varint(b.length);
    for (const x of b) this.bytes.push(x);
    return this;
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.bytes);
  }
}

const ONNX_FLOAT = 1; // TensorProto.DataType.FLOAT
const ATTR_FLOAT = 1; // AttributeProto.AttributeType.FLOAT
const ATTR_INT = 2; // AttributeProto.AttributeType.INT

/** A float32 tensor ValueInfoProto whose dimensions are all symbolic (named). */
function floatInput(name: string, dimNames: string[]): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of dimNames) shape.message(1, new ProtoWriter().string(2, d)); // Dimension.dim_param
  const tensorType = new ProtoWriter().int(1, ONNX_FLOAT).message(2, shape);
  const type = new ProtoWriter().message(1, tensorType); // TypeProto.tensor_type
  return new ProtoWriter().string(1, name).message(2, type);
}

function intAttr(name: string, v: number): ProtoWriter {
  return new ProtoWriter().string(1, name).int(3, v).int(20, ATTR_INT);
}

function floatAttr(name: string, v: number): ProtoWriter {
  return new ProtoWriter().string(1, name).float(2, v).int(20, ATTR_FLOAT);
}

export interface MatMulGraphSpec {
  /** Rank of A and B (2 = matrix; 3 = batch of matrices, batch may broadcast when 1). */
  rankA: 2 | 3;
  rankB: 2 | 3;
  transposeA: boolean;
  transposeB: boolean;
}

/**
 * Y = op(A) · op(B) with op = transpose of the last two axes where asked, all dimensions
 * symbolic so one session serves every size. Transposed variants use ONNX Runtime's
 * `com.microsoft.FusedMatMul` (transA/transB attributes), which hands the transposition to
 * the GEMM's packing instead of materialising it; the plain variant is standard `MatMul`.
 * Inputs are named "A" and "B", the output "Y".
 */
export function matMulModel(spec: MatMulGraphSpec): Uint8Array {
  const { rankA, rankB, transposeA, transposeB } = spec;
  const dimsA = rankA === 3 ? ['ba', 'a0', 'a1'] : ['a0', 'a1'];
  const dimsB = rankB === 3 ? ['bb', 'b0', 'b1'] : ['b0', 'b1'];
  const plain = !transposeA && !transposeB;
  const node = new ProtoWriter().string(1, 'A').string(1, 'B').string(2, 'Y').string(3, 'product');
  if (plain) {
    node.string(4, 'MatMul');
  } else {
    node
      .string(4, 'FusedMatMul')
      .message(5, floatAttr('alpha', 1))
      .message(5, intAttr('transA', transposeA ? 1 : 0))
      .message(5, intAttr('transB', transposeB ? 1 : 0))
      .string(7, 'com.microsoft');
  }
  // No shape on the output: ONNX Runtime infers it (an empty TensorShapeProto would mean a scalar).
  const outType = new ProtoWriter().message(1, new ProtoWriter().int(1, ONNX_FLOAT));
  const graph = new ProtoWriter()
    .message(1, node)
    .string(2, 'matmul')
    .message(11, floatInput('A', dimsA))
    .message(11, floatInput('B', dimsB))
    .message(12, new ProtoWriter().string(1, 'Y').message(2, outType));
  const model = new ProtoWriter()
    .int(1, 8) // ir_version
    .string(2, 'notellm2')
    .message(7, graph)
    .message(8, new ProtoWriter().string(1, '').int(2, 17)); // opset ai.onnx 17
  if (!plain) model.message(8, new ProtoWriter().string(1, 'com.microsoft').int(2, 1));
  return model.finish();
}

/**
 * Y = A·B + C for 2-D A [m, k], B [k, n], C [m, n] (ONNX Gemm, alpha = beta = 1), all
 * dimensions symbolic. Inputs "A", "B", "C", output "Y".
 */
export function gemmAddModel(): Uint8Array {
  const node = new ProtoWriter().string(1, 'A').string(1, 'B').string(1, 'C').string(2, 'Y').string(3, 'gemm').string(4, 'Gemm');
  const outType = new ProtoWriter().message(1, new ProtoWriter().int(1, ONNX_FLOAT));
  const graph = new ProtoWriter()
    .message(1, node)
    .string(2, 'gemm_add')
    .message(11, floatInput('A', ['m', 'k']))
    .message(11, floatInput('B', ['k', 'n']))
    .message(11, floatInput('C', ['m', 'n']))
    .message(12, new ProtoWriter().string(1, 'Y').message(2, outType));
  return new ProtoWriter()
    .int(1, 8)
    .string(2, 'notellm2')
    .message(7, graph)
    .message(8, new ProtoWriter().string(1, '').int(2, 17))
    .finish();
}
