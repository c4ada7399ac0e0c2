/**
 * A tiny WebAssembly module, assembled here byte by byte, that runs the AdamW update, the sum
 * of squares behind gradient norms, RoPE's rotation, RMSNorm and the SwiGLU gate (forward and
 * gradient) with 128-bit SIMD directly on the tfjs wasm backend's heap: it imports that
 * backend's WebAssembly.Memory, so no data is copied.
 *
 * Why: these are element-wise passes over every parameter or activation, each written with
 * tfjs as several kernels (a dispatch and a full pass over memory each). A JavaScript loop over
 * the heap runs ≈ 4–5 ns per element here (float32 ↔ float64 conversions, one lane at a
 * time); four float32 lanes per instruction in one pass run several times faster. The
 * arithmetic is float32, as in tfjs's own ops.
 *
 * Encoding follows the WebAssembly core and SIMD specifications (binary format): section
 * ids, LEB128 integers, the opcodes below. The module is validated when it is compiled; the
 * tests compare every function with a float64 reference or the op-by-op tfjs path, on lengths
 * with and without a remainder modulo 4 and on unaligned offsets.
 */

import { tf } from './tf';

// Value types and instructions used below.
const I32 = 0x7f, F32 = 0x7d, F64 = 0x7c, V128 = 0x7b;
const F64_ADD = 0xa0;
const F32_CONST = 0x43, F32_LOAD = 0x2a, F32_STORE = 0x38, F32_SQRT = 0x91, F32_ADD = 0x92, F32_DIV = 0x95, F32_CONVERT_I32_U = 0xb3;
const LOCAL_GET = 0x20, LOCAL_SET = 0x21, I32_CONST = 0x41, I32_ADD = 0x6a, I32_MUL = 0x6c, I32_SHL = 0x74, I32_GE_U = 0x4f;
const SELECT = 0x1b;
const BLOCK = 0x02, LOOP = 0x03, BR = 0x0c, BR_IF = 0x0d, END = 0x0b, VOID = 0x40;
// SIMD instructions: prefix 0xfd, then the opcode as an unsigned LEB128.
const SIMD = 0xfd;
const V128_LOAD = 0x00, V128_STORE = 0x0b, F32X4_SPLAT = 0x13;
const F32X4_SQRT = 0xe3, F32X4_ADD = 0xe4, F32X4_SUB = 0xe5, F32X4_MUL = 0xe6, F32X4_DIV = 0xe7;
const F32X4_EXTRACT_LANE = 0x1f, I8X16_SHUFFLE = 0x0d, F64X2_EXTRACT_LANE = 0x21, F64X2_PROMOTE_LOW_F32X4 = 0x5f, F64X2_ADD = 0xf0, F64X2_MUL = 0xf2;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

const name = (s: string) => [...uleb(s.length), ...new TextEncoder().encode(s)];
const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];
const simd = (op: number) => [SIMD, ...uleb(op)];
const get = (i: number) => [LOCAL_GET, ...uleb(i)];
const set = (i: number) => [LOCAL_SET, ...uleb(i)];
/** v128.load / v128.store with alignment hint 1 byte (the heap offsets are 4-byte aligned) and offset 0. */
const load = () => [...simd(V128_LOAD), 0, 0];
const store = () => [...simd(V128_STORE), 0, 0];

/** f32.const 0 splatted: a zero f32x4. */
const zero4 = () => [F32_CONST, 0, 0, 0, 0, ...simd(F32X4_SPLAT)];
/** The four lanes of an f32x4 local added into one f32 (left on the stack). */
const hsum = (v: number) => [
  ...get(v), ...simd(F32X4_EXTRACT_LANE), 0, ...get(v), ...simd(F32X4_EXTRACT_LANE), 1, F32_ADD,
  ...get(v), ...simd(F32X4_EXTRACT_LANE), 2, F32_ADD, ...get(v), ...simd(F32X4_EXTRACT_LANE), 3, F32_ADD,
];
/** Address of element `row`·4 bytes of a float32 array at pointer local `base`. */
const rowScalarAt = (base: number, row: number) => [...get(base), ...get(row), I32_CONST, ...sleb(2), I32_SHL, I32_ADD];
/** A loop over byte offsets j = 0, 16, … < end: `body` runs with j set. */
const loopBytes = (j: number, end: number, body: number[]) => [
  I32_CONST, 0, ...set(j),
  BLOCK, VOID, LOOP, VOID,
  ...get(j), ...get(end), I32_GE_U, BR_IF, 1,
  ...body,
  ...get(j), I32_CONST, ...sleb(16), I32_ADD, ...set(j),
  BR, 0,
  END, END,
];
/** A loop over rows: `body` runs with row set and xo = row·rowBytes. */
const loopRows = (row: number, rows: number, xo: number, rowBytes: number, body: number[]) => [
  BLOCK, VOID, LOOP, VOID,
  ...get(row), ...get(rows), I32_GE_U, BR_IF, 1,
  ...body,
  ...get(xo), ...get(rowBytes), I32_ADD, ...set(xo),
  ...get(row), I32_CONST, ...sleb(1), I32_ADD, ...set(row),
  BR, 0,
  END, END,
];

/** A loop over n elements (n a multiple of 4) in 16-byte steps; `body` reads the offset local. */
function elementwise(nParam: number, off: number, end: number, body: number[]): number[] {
  return [...get(nParam), I32_CONST, ...sleb(2), I32_SHL, ...set(end), ...loopBytes(off, end, body)];
}

/** A function body: its locals as [count, type] groups, then the code (ending in END). */
const funcBody = (locals: Array<[number, number]>, code: number[]) => {
  const func = [...vec(locals.map(([n, t]) => [...uleb(n), t])), ...code];
  return [...uleb(func.length), ...func];
};

/**
 * adamw(p, g, m, v, p1, m1, v1: byte offsets, n: elements (a multiple of 4),
 *       gradScale, beta1, 1 − beta1, beta2, 1 − beta2, 1/bc2, eps, lr/bc1, 1 − lr·wd: f32)
 *   g ← gradScale·g;  m1 = beta1·m + (1 − beta1)·g;  v1 = beta2·v + (1 − beta2)·g²
 *   p1 = (1 − lr·wd)·p − (lr/bc1)·m1 / (√(v1/bc2) + eps)
 */
function adamwBody(): number[] {
  // params 0–7 i32 pointers and n; 8–16 f32 scalars. locals: 17 offset, 18 end (i32);
  // 19–27 the scalars splatted to f32x4; 28 g, 29 m1, 30 v1 (v128).
  const [P, G, M, V, P1, M1, V1, N] = [0, 1, 2, 3, 4, 5, 6, 7];
  const OFF = 17, END_ = 18;
  const [GS, B1, C1, B2, C2, IB2, EPS, STEP, KEEP] = [19, 20, 21, 22, 23, 24, 25, 26, 27];
  const GI = 28, MI = 29, VI = 30;
  const at = (base: number) => [...get(base), ...get(OFF), I32_ADD];
  const splats: number[] = [];
  for (let k = 0; k < 9; k++) splats.push(...get(8 + k), ...simd(F32X4_SPLAT), ...set(GS + k));
  const code = [
    ...splats,
    ...elementwise(N, OFF, END_, [
      // g·gradScale
      ...at(G), ...load(), ...get(GS), ...simd(F32X4_MUL), ...set(GI),
      // m1 = beta1·m + (1 − beta1)·g
      ...at(M), ...load(), ...get(B1), ...simd(F32X4_MUL), ...get(GI), ...get(C1), ...simd(F32X4_MUL), ...simd(F32X4_ADD), ...set(MI),
      // v1 = beta2·v + (1 − beta2)·g²
      ...at(V), ...load(), ...get(B2), ...simd(F32X4_MUL), ...get(GI), ...get(GI), ...simd(F32X4_MUL), ...get(C2), ...simd(F32X4_MUL),
      ...simd(F32X4_ADD), ...set(VI),
      ...at(M1), ...get(MI), ...store(),
      ...at(V1), ...get(VI), ...store(),
      // p1 = keep·p − step·m1 / (√(v1·invBc2) + eps)
      ...at(P1),
      ...at(P), ...load(), ...get(KEEP), ...simd(F32X4_MUL),
      ...get(MI), ...get(STEP), ...simd(F32X4_MUL),
      ...get(VI), ...get(IB2), ...simd(F32X4_MUL), ...simd(F32X4_SQRT), ...get(EPS), ...simd(F32X4_ADD),
      ...simd(F32X4_DIV), ...simd(F32X4_SUB), ...store(),
    ]),
    END,
  ];
  return funcBody([[2, I32], [12, V128]], code);
}

/**
 * sumsq(x: byte offset, n: elements, a multiple of 4) → Σ x² in float64: each group of four
 * float32 values is widened to two float64 pairs (the high pair shuffled down first), squared
 * and added to two float64x2 accumulators.
 */
function sumsqBody(): number[] {
  const X = 0, N = 1, OFF = 2, END_ = 3, V = 4, ACC = 5, ACC2 = 6, Y = 7;
  const highToLow = [8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7];
  const code = [
    ...elementwise(N, OFF, END_, [
      ...get(X), ...get(OFF), I32_ADD, ...load(), ...set(V),
      ...get(V), ...simd(F64X2_PROMOTE_LOW_F32X4), ...set(Y),
      ...get(ACC), ...get(Y), ...get(Y), ...simd(F64X2_MUL), ...simd(F64X2_ADD), ...set(ACC),
      ...get(V), ...get(V), ...simd(I8X16_SHUFFLE), ...highToLow, ...simd(F64X2_PROMOTE_LOW_F32X4), ...set(Y),
      ...get(ACC2), ...get(Y), ...get(Y), ...simd(F64X2_MUL), ...simd(F64X2_ADD), ...set(ACC2),
    ]),
    ...get(ACC), ...get(ACC2), ...simd(F64X2_ADD), ...set(ACC),
    ...get(ACC), ...simd(F64X2_EXTRACT_LANE), 0, ...get(ACC), ...simd(F64X2_EXTRACT_LANE), 1, F64_ADD,
    END,
  ];
  return funcBody([[2, I32], [4, V128]], code);
}

/**
 * rotate(x, y, cos, sin: byte offsets, rows, T, H, half: counts) — the pair rotation of RoPE
 * on x [rows = b·T, H, 2·half] row-major, position of row r = r mod T, tables [T, half]:
 *   y[i] = x[i]·cos − x[i + half]·sin,   y[i + half] = x[i + half]·cos + x[i]·sin   (i < half)
 * With the sine negated this is the inverse rotation (the gradient). half must be a multiple
 * of 4.
 */
function rotateBody(): number[] {
  const X = 0, Y = 1, COS = 2, SIN = 3, ROWS = 4, T = 5, H = 6, HALF = 7;
  const P = 8, HI = 9, I = 10, XO = 11, TO = 12, TEND = 13, HALFB = 14, HEADB = 15;
  const A = 16, B = 17, C = 18, S = 19;
  const xAt = (extra: number[]) => [...get(X), ...get(XO), I32_ADD, ...extra, ...get(I), I32_ADD];
  const yAt = (extra: number[]) => [...get(Y), ...get(XO), I32_ADD, ...extra, ...get(I), I32_ADD];
  const tAt = (base: number) => [...get(base), ...get(TO), I32_ADD, ...get(I), I32_ADD];
  const hiHalf = [...get(HALFB), I32_ADD];
  const code = [
    ...get(HALF), I32_CONST, ...sleb(2), I32_SHL, ...set(HALFB), // half·4 bytes
    ...get(HALFB), I32_CONST, ...sleb(1), I32_SHL, ...set(HEADB), // one head row: 2·half·4 bytes
    ...get(T), ...get(HALFB), I32_MUL, ...set(TEND), // one table: T·half·4 bytes
    BLOCK, VOID, LOOP, VOID, // positions
    ...get(P), ...get(ROWS), I32_GE_U, BR_IF, 1,
    I32_CONST, 0, ...set(HI),
    ...loopRows(HI, H, XO, HEADB, [
      ...loopBytes(I, HALFB, [ // four pairs at a time
        ...xAt([]), ...load(), ...set(A),
        ...xAt(hiHalf), ...load(), ...set(B),
        ...tAt(COS), ...load(), ...set(C),
        ...tAt(SIN), ...load(), ...set(S),
        ...yAt([]), ...get(A), ...get(C), ...simd(F32X4_MUL), ...get(B), ...get(S), ...simd(F32X4_MUL), ...simd(F32X4_SUB), ...store(),
        ...yAt(hiHalf), ...get(B), ...get(C), ...simd(F32X4_MUL), ...get(A), ...get(S), ...simd(F32X4_MUL), ...simd(F32X4_ADD), ...store(),
      ]),
    ]),
    // next position: the table row advances, wrapping at T
    ...get(TO), ...get(HALFB), I32_ADD, ...set(TO),
    I32_CONST, 0, ...get(TO), ...get(TO), ...get(TEND), I32_GE_U, SELECT, ...set(TO),
    ...get(P), I32_CONST, ...sleb(1), I32_ADD, ...set(P),
    BR, 0,
    END, END,
    END,
  ];
  return funcBody([[8, I32], [4, V128]], code);
}

/**
 * rmsFwd(x, w, y, r: byte offsets, rows, d, eps) on x [rows, d] (d a multiple of 4):
 *   r[row] = 1 / √(Σ x² / d + eps),   y = (x · r[row]) · w
 */
function rmsFwdBody(): number[] {
  const X = 0, W = 1, Y = 2, R = 3, ROWS = 4, D = 5, EPS = 6;
  const ROW = 7, XO = 8, J = 9, DB = 10, ACC = 11, V = 12, RS = 13, DF = 14, RV = 15;
  const at = (base: number) => [...get(base), ...get(XO), I32_ADD, ...get(J), I32_ADD];
  const code = [
    ...get(D), I32_CONST, ...sleb(2), I32_SHL, ...set(DB),
    ...get(D), F32_CONVERT_I32_U, ...set(DF),
    ...loopRows(ROW, ROWS, XO, DB, [
      ...zero4(), ...set(ACC),
      ...loopBytes(J, DB, [...at(X), ...load(), ...set(V), ...get(ACC), ...get(V), ...get(V), ...simd(F32X4_MUL), ...simd(F32X4_ADD), ...set(ACC)]),
      F32_CONST, 0, 0, 0x80, 0x3f, // 1.0f
      ...hsum(ACC), ...get(DF), F32_DIV, ...get(EPS), F32_ADD, F32_SQRT, F32_DIV, ...set(RV),
      ...rowScalarAt(R, ROW), ...get(RV), F32_STORE, 2, 0,
      ...get(RV), ...simd(F32X4_SPLAT), ...set(RS),
      ...loopBytes(J, DB, [
        ...at(Y), ...at(X), ...load(), ...get(RS), ...simd(F32X4_MUL),
        ...get(W), ...get(J), I32_ADD, ...load(), ...simd(F32X4_MUL), ...store(),
      ]),
    ]),
    END,
  ];
  return funcBody([[4, I32], [3, V128], [2, F32]], code);
}

/**
 * rmsBwd(dy, x, w, r, dx, dw: byte offsets, rows, d): with xr = x·r[row], g = dy ⊙ w,
 *   dx = r[row] · (g − xr · mean(g ⊙ xr)),   dw = Σ_rows dy ⊙ xr   (dw is overwritten)
 */
function rmsBwdBody(): number[] {
  const DY = 0, X = 1, W = 2, R = 3, DX = 4, DW = 5, ROWS = 6, D = 7;
  const ROW = 8, XO = 9, J = 10, DB = 11;
  const ACC = 12, RS = 13, MS = 14, XR = 15, G = 16, DYV = 17;
  const DF = 18;
  const at = (base: number) => [...get(base), ...get(XO), I32_ADD, ...get(J), I32_ADD];
  const wAt = (base: number) => [...get(base), ...get(J), I32_ADD];
  // dyv, xr and g for the current four columns
  const readRow = [
    ...at(DY), ...load(), ...set(DYV),
    ...at(X), ...load(), ...get(RS), ...simd(F32X4_MUL), ...set(XR),
    ...get(DYV), ...wAt(W), ...load(), ...simd(F32X4_MUL), ...set(G),
  ];
  const code = [
    ...get(D), I32_CONST, ...sleb(2), I32_SHL, ...set(DB),
    ...get(D), F32_CONVERT_I32_U, ...set(DF),
    ...loopBytes(J, DB, [...wAt(DW), ...zero4(), ...store()]),
    ...loopRows(ROW, ROWS, XO, DB, [
      ...rowScalarAt(R, ROW), F32_LOAD, 2, 0, ...simd(F32X4_SPLAT), ...set(RS),
      ...zero4(), ...set(ACC),
      ...loopBytes(J, DB, [...readRow, ...get(ACC), ...get(G), ...get(XR), ...simd(F32X4_MUL), ...simd(F32X4_ADD), ...set(ACC)]),
      ...hsum(ACC), ...get(DF), F32_DIV, ...simd(F32X4_SPLAT), ...set(MS),
      ...loopBytes(J, DB, [
        ...readRow,
        ...at(DX), ...get(RS), ...get(G), ...get(XR), ...get(MS), ...simd(F32X4_MUL), ...simd(F32X4_SUB), ...simd(F32X4_MUL), ...store(),
        ...wAt(DW), ...wAt(DW), ...load(), ...get(DYV), ...get(XR), ...simd(F32X4_MUL), ...simd(F32X4_ADD), ...store(),
      ]),
    ]),
    END,
  ];
  return funcBody([[4, I32], [6, V128], [1, F32]], code);
}

/** gateFwd(g, s, u, y: byte offsets, n): y = (g·s)·u — the SwiGLU gate given s = σ(g). */
function gateFwdBody(): number[] {
  const G = 0, S = 1, U = 2, Y = 3, N = 4, OFF = 5, END_ = 6;
  const at = (base: number) => [...get(base), ...get(OFF), I32_ADD];
  const code = [
    ...elementwise(N, OFF, END_, [
      ...at(Y), ...at(G), ...load(), ...at(S), ...load(), ...simd(F32X4_MUL), ...at(U), ...load(), ...simd(F32X4_MUL), ...store(),
    ]),
    END,
  ];
  return funcBody([[2, I32]], code);
}

/**
 * gateBwd(dy, g, u, s, dg, du: byte offsets, n): with a = g·s,
 *   du = dy·a,   dg = (dy·u)·(s·(1 + g − a))      (d(g·σ(g))/dg = s·(1 + g − a))
 */
function gateBwdBody(): number[] {
  const DY = 0, G = 1, U = 2, S = 3, DG = 4, DU = 5, N = 6, OFF = 7, END_ = 8;
  const DYV = 9, GV = 10, SV = 11, A = 12, ONE = 13;
  const at = (base: number) => [...get(base), ...get(OFF), I32_ADD];
  const code = [
    F32_CONST, 0, 0, 0x80, 0x3f, ...simd(F32X4_SPLAT), ...set(ONE),
    ...elementwise(N, OFF, END_, [
      ...at(DY), ...load(), ...set(DYV),
      ...at(G), ...load(), ...set(GV),
      ...at(S), ...load(), ...set(SV),
      ...get(GV), ...get(SV), ...simd(F32X4_MUL), ...set(A),
      ...at(DU), ...get(DYV), ...get(A), ...simd(F32X4_MUL), ...store(),
      ...at(DG), ...get(DYV), ...at(U), ...load(), ...simd(F32X4_MUL),
      ...get(SV), ...get(ONE), ...get(GV), ...simd(F32X4_ADD), ...get(A), ...simd(F32X4_SUB), ...simd(F32X4_MUL),
      ...simd(F32X4_MUL), ...store(),
    ]),
    END,
  ];
  return funcBody([[2, I32], [5, V128]], code);
}

/** The module's bytes: imports env.memory, exports the kernels below (function i has type i). */
export function simdModuleBytes(): Uint8Array {
  const params = [I32, I32, I32, I32, I32, I32, I32, I32, F32, F32, F32, F32, F32, F32, F32, F32, F32];
  const adamwType = [0x60, ...uleb(params.length), ...params, 0x00];
  const sumsqType = [0x60, 2, I32, I32, 1, F64];
  const rotateType = [0x60, 8, I32, I32, I32, I32, I32, I32, I32, I32, 0];
  const rmsFwdType = [0x60, 7, I32, I32, I32, I32, I32, I32, F32, 0];
  const rmsBwdType = [0x60, 8, I32, I32, I32, I32, I32, I32, I32, I32, 0];
  const gateFwdType = [0x60, 5, I32, I32, I32, I32, I32, 0];
  const gateBwdType = [0x60, 7, I32, I32, I32, I32, I32, I32, I32, 0];
  const exports = ['adamw', 'sumsq', 'rotate', 'rmsFwd', 'rmsBwd', 'gateFwd', 'gateBwd'];
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
    ...section(1, vec([adamwType, sumsqType, rotateType, rmsFwdType, rmsBwdType, gateFwdType, gateBwdType])),
    ...section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x00, 0x00]])), // memory, min 0 pages, no max
    ...section(3, vec(exports.map((_, i) => [i]))), // function i has type i
    ...section(7, vec(exports.map((e, i) => [...name(e), 0x00, i]))),
    ...section(10, vec([adamwBody(), sumsqBody(), rotateBody(), rmsFwdBody(), rmsBwdBody(), gateFwdBody(), gateBwdBody()])),
  ];
  return Uint8Array.from(bytes);
}

export type AdamwSimd = (
  p: number, g: number, m: number, v: number, p1: number, m1: number, v1: number, n: number,
  gradScale: number, beta1: number, c1: number, beta2: number, c2: number, invBc2: number, eps: number, step: number, keep: number,
) => void;

/** Σ x² over n float32 values (n a multiple of 4) at byte offset x, accumulated in float64. */
export type SumSqSimd = (x: number, n: number) => number;

/** RoPE's pair rotation (see rotateBody): byte offsets x, y, cos, sin; rows, T, H, half. */
export type RotateSimd = (x: number, y: number, cos: number, sin: number, rows: number, t: number, h: number, half: number) => void;

/** RMSNorm forward (see rmsFwdBody): byte offsets x, w, y, r; rows, d; eps. */
export type RmsFwdSimd = (x: number, w: number, y: number, r: number, rows: number, d: number, eps: number) => void;
/** RMSNorm gradient (see rmsBwdBody): byte offsets dy, x, w, r, dx, dw; rows, d. */
export type RmsBwdSimd = (dy: number, x: number, w: number, r: number, dx: number, dw: number, rows: number, d: number) => void;

/** SwiGLU gate forward (see gateFwdBody): byte offsets g, s, u, y; n elements. */
export type GateFwdSimd = (g: number, s: number, u: number, y: number, n: number) => void;
/** SwiGLU gate gradient (see gateBwdBody): byte offsets dy, g, u, s, dg, du; n elements. */
export type GateBwdSimd = (dy: number, g: number, u: number, s: number, dg: number, du: number, n: number) => void;

export interface SimdKernels {
  adamw: AdamwSimd;
  sumsq: SumSqSimd;
  rotate: RotateSimd;
  rmsFwd: RmsFwdSimd;
  rmsBwd: RmsBwdSimd;
  gateFwd: GateFwdSimd;
  gateBwd: GateBwdSimd;
}

let compiled: WebAssembly.Module | null | undefined;
const instances = new WeakMap<WebAssembly.Memory, SimdKernels>();

/**
 * The SIMD kernels bound to `memory`, or null where this runtime cannot compile them (no
 * wasm SIMD); callers then use their scalar loops.
 */
export function simdKernelsFor(memory: WebAssembly.Memory): SimdKernels | null {
  if (compiled === undefined) {
    try {
      compiled = new WebAssembly.Module(simdModuleBytes());
    } catch {
      compiled = null;
    }
  }
  if (!compiled) return null;
  let k = instances.get(memory);
  if (!k) {
    const inst = new WebAssembly.Instance(compiled, { env: { memory } });
    const e = inst.exports;
    k = {
      adamw: e.adamw as AdamwSimd, sumsq: e.sumsq as SumSqSimd, rotate: e.rotate as RotateSimd,
      rmsFwd: e.rmsFwd as RmsFwdSimd, rmsBwd: e.rmsBwd as RmsBwdSimd,
      gateFwd: e.gateFwd as GateFwdSimd, gateBwd: e.gateBwd as GateBwdSimd,
    };
    instances.set(memory, k);
  }
  return k;
}

/** NOTELLM2_SIMD=0 turns the SIMD kernels off (1, the default, leaves them on). */
function simdFromEnv(): boolean {
  const v = (process.env.NOTELLM2_SIMD ?? '').trim();
  if (v !== '' && v !== '0' && v !== '1') throw new Error(`NOTELLM2_SIMD must be 1 or 0, got "${v}"`);
  return v !== '0';
}

let simdOn = simdFromEnv();

/** Whether the SIMD kernels are switched on (they also need a wasm backend to run). */
export function simdEnabled(): boolean {
  return simdOn;
}

/** Turns the SIMD kernels off (callers fall back to their scalar or op-by-op paths); for comparisons and tests. */
export function setSimd(on: boolean): void {
  simdOn = on;
}

/** The SIMD kernels on a tfjs wasm backend's own memory, or null (turned off, or not a wasm backend). */
export function simdForBackend(backend: unknown): SimdKernels | null {
  if (!simdOn) return null;
  const memory = (backend as { wasm?: { asm?: { memory?: unknown } } }).wasm?.asm?.memory;
  return memory instanceof WebAssembly.Memory ? simdKernelsFor(memory) : null;
}

/** Whether the SIMD kernels run on the active tfjs backend (wasm, switched on, compiled). */
export function simdActive(): boolean {
  return tf.getBackend() === 'wasm' && simdForBackend(tf.backend()) !== null;
}

/** The SIMD kernels of a wasm backend inside a kernel; an error naming `who` when they are off. */
export function requireSimd(backend: unknown, who: string): SimdKernels {
  const simd = simdForBackend(backend);
  if (!simd) throw new Error(`${who}: wasm SIMD is not available (check the kernel's availability first)`);
  return simd;
}

/** Registers a tfjs kernel on the wasm backend, once. */
export function registerWasmKernel(kernelName: string, kernelFunc: unknown): void {
  if (!tf.getKernel(kernelName, 'wasm')) {
    tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: kernelFunc as tf.KernelConfig['kernelFunc'] });
  }
}
