/**
 * A decoder layer's training pass with its backward written out (DecoderLMOptions.blockGrad
 * 'fused'): one tape node per layer instead of a few dozen.
 *
 * Why: tfjs's automatic gradient keeps, until the whole backward pass ends, every tensor any
 * op saves for its gradient (an Add keeps both inputs, a bias add its whole output) and every
 * intermediate gradient. At a real LLM size that is ~150 MB per layer for a batch of 1024
 * tokens and the 4 GB wasm heap runs out long before the model does. Here a layer saves only
 * what its backward needs (x, q and k after RoPE, v, the attention probabilities, the
 * attention output, the residual after attention, the SwiGLU's gate and up: 5⅔·[N, d] +
 * 2·[N, f] here), recomputes the cheap rest (an RMSNorm output, σ(gate), the gated product,
 * an adapter's x·A — each only when a weight or adapter gradient needs it), and frees its
 * temporaries as it goes. Frozen weights get no gradient at all:
 * only the layer's trainable variables are inputs of the node.
 *
 * LoRA on a frozen native weight runs as one product with W' = W + (alpha/r)·A·B, merged in
 * native memory once per change of A or B (mergedWeight), instead of the adapter branch.
 * Otherwise the forward is the same ops in the same order as DecoderBlock.forward (bit-identical
 * values); the backward computes the same gradients (test/model/lm-train.test.ts checks both
 * against the automatic gradient).
 *
 * Legend: b batch, t tokens, N = b·t, d width, h query heads, kv key/value heads, g = h/kv,
 * hd head width, f SwiGLU hidden width, r LoRA rank.
 */
import { tf } from '../backend';
import { NativeMatrix, nativeAddLowRank, nativeProduct } from '../backend/native-matmul';
import { rmsNormBackward, rmsNormForward, rmsNormKernelAvailable } from '../backend/rmsnorm-kernel';
import { gateBackward, gateForward, gateKernelAvailable } from '../backend/gate-kernel';
import { causalBias, type MultiHeadAttention } from './attention';
import type { Linear, RMSNorm, SwiGLUMLP } from './layers';

/** What the fused path reads of a decoder layer (lm.ts's DecoderBlock has exactly these). */
export interface FusableBlock {
  readonly path: string;
  readonly attnNorm: RMSNorm;
  readonly attn: MultiHeadAttention;
  readonly mlpNorm: RMSNorm;
  readonly mlp: SwiGLUMLP;
}

type T = tf.Tensor;

/** RMSNorm over rows of x [N, d]: [y, r] with r [N, 1] (the kernel where it runs). */
function rmsForward(x: T, norm: RMSNorm): [T, T] {
  const d = x.shape[1] as number;
  if (rmsNormKernelAvailable(d)) return rmsNormForward(x, norm.weight, norm.eps);
  const r = tf.rsqrt(tf.add(tf.mean(tf.square(x), 1, true), norm.eps));
  return [tf.mul(tf.mul(x, r), norm.weight), r];
}

/** [∂x, ∂w] of the RMSNorm above (layers.ts has the formulas). */
function rmsBackward(dy: T, x: T, norm: RMSNorm, r: T): [T, T] {
  const d = x.shape[1] as number;
  if (rmsNormKernelAvailable(d)) return rmsNormBackward(dy, x, norm.weight, r);
  const xr = tf.mul(x, r);
  const g = tf.mul(dy, norm.weight);
  const dx = tf.mul(r, tf.sub(g, tf.mul(xr, tf.mean(tf.mul(g, xr), 1, true))));
  return [dx, colSum(tf.mul(dy, xr))];
}

/** silu(g)·u and s = σ(g). */
function gateValue(g: T, u: T): { m: T; s: T } {
  const s = tf.sigmoid(g);
  return { m: gateKernelAvailable() ? gateForward(g, s, u) : tf.mul(tf.mul(g, s), u), s };
}

/** [∂g, ∂u] of silu(g)·u given s = σ(g) (layers.ts siluGate has the formulas). */
function gateGrad(dy: T, g: T, u: T, s: T): [T, T] {
  if (gateKernelAvailable()) return gateBackward(dy, g, u, s);
  const a = tf.mul(g, s);
  return [tf.mul(tf.mul(dy, u), tf.mul(s, tf.add(tf.sub(g, a), 1))), tf.mul(dy, a)];
}

/** Column sums of [N, n] → [n], as a product with a ones row (a leading-axis reduction transposes first on wasm). */
function colSum(x: T): T {
  const [n, c] = x.shape;
  return tf.reshape(tf.matMul(tf.ones([1, n]) as tf.Tensor2D, x as tf.Tensor2D), [c]);
}

/**
 * Backward of y = x·W (+ b) (+ (alpha/r)·(x·A)·B) for x [N, in] (null when needsInput is
 * false) and dy [N, out]: ∂x, and the gradients of whichever of W, b, A, B are trainable
 * variables. ∂x goes through the merged W' where the forward used it.
 */
function linearBackward(lin: Linear, x: T | null, dy: T, grads: Map<tf.Variable, T>): T {
  const mergedBase = mergesAdapter(lin);
  let dx: T = lin.native
    ? nativeProduct(dy as tf.Tensor2D, mergedBase ? mergedWeight(lin) : lin.native, true)
    : tf.matMul(dy as tf.Tensor2D, lin.weight as tf.Tensor2D, false, true);
  if (!lin.native && lin.weight.trainable) grads.set(lin.weight, tf.matMul(x as tf.Tensor2D, dy as tf.Tensor2D, true, false));
  if (lin.bias?.trainable) grads.set(lin.bias, colSum(dy));
  if (lin.lora) {
    const { a, b, scale } = lin.lora;
    const dxa = tf.mul(tf.matMul(dy as tf.Tensor2D, b as tf.Tensor2D, false, true), scale); // [N, r] = ∂L/∂(x·A)
    if (b.trainable) grads.set(b, tf.matMul(tf.mul(tf.matMul(x as tf.Tensor2D, a as tf.Tensor2D), scale) as tf.Tensor2D, dy as tf.Tensor2D, true, false));
    if (a.trainable) grads.set(a, tf.matMul(x as tf.Tensor2D, dxa as tf.Tensor2D, true, false));
    if (!mergedBase) dx = tf.add(dx, tf.matMul(dxa as tf.Tensor2D, a as tf.Tensor2D, false, true));
  }
  return dx;
}

/** A frozen native weight with its adapter merged, W + (alpha/r)·A·B, and the A, B it was made from. */
interface MergedWeight {
  a: tf.DataId;
  b: tf.DataId;
  w: NativeMatrix;
}
const mergedWeights = new WeakMap<Linear, MergedWeight>();

/**
 * W' = W + (alpha/r)·A·B [in, out] of an adapted Linear with a native base weight, in native
 * memory beside W, recomputed only when A or B change (an assignment gives a variable a new
 * data id). One [in, r]·[r, out] product per step instead of the two thin products and two
 * additions per layer pass that the adapter branch costs each way (x·A·B and dy·Bᵀ·Aᵀ).
 */
function mergedWeight(lin: Linear): NativeMatrix {
  const { a, b, scale } = lin.lora!;
  const m = mergedWeights.get(lin);
  if (m && m.a === a.dataId && m.b === b.dataId) return m.w;
  const w = m?.w ?? new NativeMatrix(new Float32Array(lin.inDim * lin.outDim), lin.inDim, lin.outDim, `${lin.path} + LoRA`);
  tf.tidy(() => nativeAddLowRank(lin.native!, tf.mul(a, scale) as tf.Tensor2D, b as tf.Tensor2D, w));
  mergedWeights.set(lin, { a: a.dataId, b: b.dataId, w });
  return w;
}

/** Frees the merged weight kept for a Linear (lm-train.ts releaseLMNative). */
export function releaseMergedWeight(lin: Linear): void {
  mergedWeights.get(lin)?.w.release();
  mergedWeights.delete(lin);
}

/** Whether the adapter is applied through a merged native weight (a native base) rather than as a branch. */
function mergesAdapter(lin: Linear): boolean {
  return lin.lora !== null && lin.native !== null;
}

/**
 * y = x·W (+ (alpha/r)·(x·A)·B) (+ b). With a store-held base the same ops in the same order
 * as Linear.apply; with a native base and an adapter, one product with the merged W'.
 */
function linearForward(lin: Linear, x: T): T {
  let y: T;
  if (mergesAdapter(lin)) y = nativeProduct(x as tf.Tensor2D, mergedWeight(lin));
  else {
    y = lin.native ? nativeProduct(x as tf.Tensor2D, lin.native) : tf.matMul(x as tf.Tensor2D, lin.weight as tf.Tensor2D);
    if (lin.lora) {
      const xa = tf.mul(tf.matMul(x as tf.Tensor2D, lin.lora.a as tf.Tensor2D), lin.lora.scale);
      y = tf.add(y, tf.matMul(xa as tf.Tensor2D, lin.lora.b as tf.Tensor2D));
    }
  }
  if (lin.bias) y = tf.add(y, lin.bias);
  return y;
}

/** Whether the backward needs the Linear's input: for its weight's gradient or its adapter's. */
function needsInput(lin: Linear): boolean {
  return Boolean(lin.lora) || (!lin.native && lin.weight.trainable);
}

/** The layer's variables in a fixed order (store-held weights, biases, norm gains, LoRA factors). */
export function blockVariables(block: FusableBlock): tf.Variable[] {
  const out: tf.Variable[] = [block.attnNorm.weight, block.mlpNorm.weight];
  for (const lin of [block.attn.q, block.attn.k, block.attn.v, block.attn.o, block.mlp.gate, block.mlp.up, block.mlp.down]) {
    if (!lin.native) out.push(lin.weight);
    if (lin.bias) out.push(lin.bias);
    if (lin.lora) out.push(lin.lora.a, lin.lora.b);
  }
  return out;
}

/** Forward of one layer on x [N, d] (b, t given), and the tensors its backward needs. */
function forwardCore(block: FusableBlock, x: T, b: number, t: number): { out: T; saved: T[] } {
  const { heads: h, kvHeads: kv, headDim: hd, rope } = block.attn.cfg;
  const g = h / kv;
  const N = b * t;
  const lin = linearForward;
  const [h1, r1] = rmsForward(x, block.attnNorm);
  const q = lin(block.attn.q, h1), k = lin(block.attn.k, h1), v = lin(block.attn.v, h1);
  const scale = 1 / Math.sqrt(hd);
  const q4 = tf.reshape(q, [b, t, h, hd]);
  const k4 = tf.reshape(k, [b, t, kv, hd]);
  const qr = rope ? rope.apply(q4, 0, scale) : tf.mul(q4, scale);
  const kr = rope ? rope.apply(k4, 0) : k4;
  const qh = tf.transpose(qr, [0, 2, 1, 3]); // [b, h, t, hd]
  const kt = tf.transpose(kr, [0, 2, 3, 1]); // [b, kv, hd, t]
  const vh = tf.transpose(tf.reshape(v, [b, t, kv, hd]), [0, 2, 1, 3]); // [b, kv, t, hd]
  const raw = g === 1 ? tf.matMul(qh, kt) : tf.reshape(tf.matMul(tf.reshape(qh, [b, kv, g * t, hd]), kt), [b, h, t, t]);
  const p = tf.softmax(tf.add(raw, causalBias(t))); // [b, h, t, t]
  const ctx = g === 1 ? tf.matMul(p, vh) : tf.reshape(tf.matMul(tf.reshape(p, [b, kv, g * t, t]), vh), [b, h, t, hd]);
  const merged = tf.reshape(tf.transpose(ctx, [0, 2, 1, 3]), [N, h * hd]);
  const xm = tf.add(x, lin(block.attn.o, merged)); // [N, d]
  const [h2, r2] = rmsForward(xm, block.mlpNorm);
  const gg = lin(block.mlp.gate, h2), uu = lin(block.mlp.up, h2);
  const { m } = gateValue(gg, uu);
  const out = tf.add(xm, lin(block.mlp.down, m));
  return { out, saved: [x, r1, qh, kt, vh, p, merged, xm, r2, gg, uu] };
}

/** The layer's backward: ∂x and the gradients of its trainable variables. */
function backwardCore(block: FusableBlock, dy: T, saved: T[], b: number, t: number, grads: Map<tf.Variable, T>): T {
  const [x, r1, qh, kt, vh, p, merged, xm, r2, gg, uu] = saved;
  const { attn, mlp } = block;
  const { heads: h, kvHeads: kv, headDim: hd, rope } = attn.cfg;
  const g = h / kv;
  const N = b * t;
  const back = (l: Linear, input: T | null, d: T) => linearBackward(l, input, d, grads);
  const keep = (v: tf.Variable, grad: T) => {
    if (v.trainable) grads.set(v, grad);
  };

  // MLP: out = xm + down(silu(gate(h2))·up(h2)), h2 = norm2(xm). Inputs are recomputed only
  // where a weight or adapter gradient needs them.
  const h2 = needsInput(mlp.gate) || needsInput(mlp.up) ? rmsForward(xm, block.mlpNorm)[0] : null;
  const s = tf.sigmoid(gg);
  const m = needsInput(mlp.down) ? (gateKernelAvailable() ? gateForward(gg, s, uu) : tf.mul(tf.mul(gg, s), uu)) : null;
  const dm = back(mlp.down, m, dy);
  const [dg, du] = gateGrad(dm, gg, uu, s);
  const dh2 = tf.add(back(mlp.gate, h2, dg), back(mlp.up, h2, du));
  const [dxmNorm, dw2] = rmsBackward(dh2, xm, block.mlpNorm, r2);
  keep(block.mlpNorm.weight, dw2);
  const dxm = tf.add(dy, dxmNorm);

  // Attention: xm = x + o(merged), merged = heads of softmax(q·kᵀ + causal)·v.
  const dmerged = back(attn.o, merged, dxm);
  const dctx = tf.reshape(tf.transpose(tf.reshape(dmerged, [b, t, h, hd]), [0, 2, 1, 3]), [b, kv, g * t, hd]);
  const pg = tf.reshape(p, [b, kv, g * t, t]);
  const dp = tf.reshape(tf.matMul(dctx, vh, false, true), [b, h, t, t]);
  const dvh = tf.matMul(pg, dctx, true, false); // [b, kv, t, hd]
  // softmax: ∂s = P ⊙ (∂P − Σ_j ∂P ⊙ P); masked entries have P = 0 and get none.
  const ds = tf.reshape(tf.mul(p, tf.sub(dp, tf.sum(tf.mul(dp, p), -1, true))), [b, kv, g * t, t]);
  const dqh = tf.matMul(ds, kt, false, true); // [b, kv, g·t, hd]
  const dkt = tf.matMul(tf.reshape(qh, [b, kv, g * t, hd]), ds, true, false); // [b, kv, hd, t]
  const scale = 1 / Math.sqrt(hd);
  const dqr = tf.transpose(tf.reshape(dqh, [b, h, t, hd]), [0, 2, 1, 3]); // [b, t, h, hd]
  const dkr = tf.transpose(dkt, [0, 3, 1, 2]); // [b, t, kv, hd]
  const dq = tf.reshape(rope ? rope.applyGrad(dqr, 0, scale) : tf.mul(dqr, scale), [N, h * hd]);
  const dk = tf.reshape(rope ? rope.applyGrad(dkr, 0) : dkr, [N, kv * hd]);
  const dv = tf.reshape(tf.transpose(dvh, [0, 2, 1, 3]), [N, kv * hd]);
  const h1 = needsInput(attn.q) || needsInput(attn.k) || needsInput(attn.v) ? rmsForward(x, block.attnNorm)[0] : null;
  const dh1 = tf.addN([back(attn.q, h1, dq), back(attn.k, h1, dk), back(attn.v, h1, dv)]);
  const [dxNorm, dw1] = rmsBackward(dh1, x, block.attnNorm, r1);
  keep(block.attnNorm.weight, dw1);
  return tf.add(dxm, dxNorm);
}

/**
 * One decoder layer on x [b, t, d] as a single differentiable op whose inputs are x and the
 * layer's trainable variables (read at call time). Without a gradient tape it is just the forward.
 * `save: false` keeps nothing for a backward pass: for a layer without trainable variables
 * whose input needs no gradient either (a frozen prefix under last:N fed by a frozen
 * embedding); a backward through such a layer is an error.
 */
export function fusedBlockForward(block: FusableBlock, x: tf.Tensor3D, opts: { save?: boolean } = {}): tf.Tensor3D {
  const [b, t, d] = x.shape;
  const vars = blockVariables(block).filter((v) => v.trainable);
  const keep = opts.save ?? true;
  if (!keep && vars.length) throw new Error(`fusedBlockForward ${block.path}: a layer with trainable variables must save for its backward`);
  type Save = (ts: T[]) => void;
  const f = (...args: unknown[]) => {
    const save = args[args.length - 1] as Save;
    const xIn = args[0] as T;
    const { out, saved } = forwardCore(block, tf.reshape(xIn, [b * t, d]), b, t);
    if (keep) save(saved);
    return {
      value: tf.reshape(out, [b, t, d]),
      gradFunc: (dy: T, kept: T[]) =>
        tf.tidy(() => {
          if (!keep) throw new Error(`fusedBlockForward ${block.path}: a gradient through this layer was asked, but its forward ran with inputsNeedGrad false`);
          const grads = new Map<tf.Variable, T>();
          const dx = backwardCore(block, tf.reshape(dy, [b * t, d]), kept, b, t, grads);
          return [tf.reshape(dx, [b, t, d]), ...vars.map((v) => {
            const gr = grads.get(v);
            if (!gr) throw new Error(`fusedBlockForward ${block.path}: no gradient computed for a trainable variable of shape [${v.shape}]`);
            return gr;
          })];
        }),
    };
  };
  const op = tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (...xs: T[]) => T;
  return op(x, ...vars) as tf.Tensor3D;
}
