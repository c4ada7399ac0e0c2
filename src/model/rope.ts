/**
 * Rotary position embedding (RoPE, Su et al. 2021) in the LLaMA / Hugging Face "rotate half"
 * layout: feature i of a head is paired with feature i + hd/2 and the pair is rotated by the
 * angle pos · θ^(−2i/hd). Rotating q and k this way makes q·k depend on positions only
 * through their difference.
 *
 * Dimension legend: b batch, t tokens, h heads, hd head width.
 */
import { tf } from '../backend';
import { ropeKernelAvailable, ropeRotate } from '../backend/rope-kernel';

type Tables = { cos: Float32Array; sin: Float32Array };

export class RoPE {
  /**
   * Every table this RoPE has built, by kind and arguments (plain arrays, not tensors:
   * nothing to dispose, nothing leaks). Bounded: sequence lengths are few in practice.
   */
  private readonly cache = new Map<string, Tables & { negSin?: Float32Array }>();

  constructor(
    readonly headDim: number,
    /** Base of the geometric frequency ladder. LLaMA uses 10000. */
    readonly theta = 10000,
  ) {
    if (!Number.isInteger(headDim) || headDim <= 0 || headDim % 2 !== 0) {
      throw new Error(`RoPE: head width must be a positive even integer, got ${headDim}`);
    }
  }

  /** cos and sin tables [t, hd] for positions offset … offset + t − 1 (plain JS so every backend agrees). */
  tables(t: number, offset = 0): Tables {
    return this.memo(`t:${t}:${offset}`, () => this.buildTables(t, offset));
  }

  private memo<T extends Tables>(key: string, build: () => T): T {
    const hit = this.cache.get(key);
    if (hit) return hit as T;
    const made = build();
    if (this.cache.size >= 64) this.cache.clear();
    this.cache.set(key, made);
    return made;
  }

  private buildTables(t: number, offset: number): Tables {
    const hd = this.headDim;
    const half = hd / 2;
    const cos = new Float32Array(t * hd);
    const sin = new Float32Array(t * hd);
    for (let p = 0; p < t; p++) {
      for (let i = 0; i < half; i++) {
        const angle = (p + offset) * Math.pow(this.theta, (-2 * i) / hd);
        const c = Math.cos(angle), s = Math.sin(angle);
        cos[p * hd + i] = c;
        cos[p * hd + i + half] = c;
        sin[p * hd + i] = s;
        sin[p * hd + i + half] = s;
      }
    }
    return { cos, sin };
  }

  /**
   * cos and sin tables [t, h, hd] for h heads, each multiplied by `scale`: the [t, hd] rows
   * repeated per head, so the product with x [b, t, h, hd] broadcasts over the batch axis
   * only (a broadcast over a middle axis is several times slower on the wasm backend).
   */
  private headTables(t: number, offset: number, heads: number, scale: number): Tables {
    return this.memo(`h:${t}:${offset}:${heads}:${scale}`, () => {
      const { cos, sin } = this.tables(t, offset);
      const hd = this.headDim;
      const out = { cos: new Float32Array(t * heads * hd), sin: new Float32Array(t * heads * hd) };
      for (let p = 0; p < t; p++) {
        for (let h = 0; h < heads; h++) {
          for (let i = 0; i < hd; i++) {
            out.cos[(p * heads + h) * hd + i] = cos[p * hd + i] * scale;
            out.sin[(p * heads + h) * hd + i] = sin[p * hd + i] * scale;
          }
        }
      }
      return out;
    });
  }

  /**
   * [t, hd/2] tables for the rotation kernel (the [t, hd] ones repeat each angle in both
   * halves), times `scale`, and the negated sines the gradient rotates with.
   */
  private pairTables(t: number, offset: number, scale: number): Tables & { negSin: Float32Array } {
    return this.memo(`p:${t}:${offset}:${scale}`, () => {
      const { cos, sin } = this.tables(t, offset);
      const hd = this.headDim, half = hd / 2;
      const out = { cos: new Float32Array(t * half), sin: new Float32Array(t * half), negSin: new Float32Array(t * half) };
      for (let p = 0; p < t; p++) {
        for (let i = 0; i < half; i++) {
          out.cos[p * half + i] = cos[p * hd + i] * scale;
          out.sin[p * half + i] = sin[p * hd + i] * scale;
          out.negSin[p * half + i] = -out.sin[p * half + i];
        }
      }
      return out;
    });
  }

  /**
   * Rotates x [b, t, h, hd] (token axis 1, head-width axis last) for positions
   * offset … offset + t − 1:  x·cos + rotate_half(x)·sin,  rotate_half([x1, x2]) = [−x2, x1],
   * times `scale` (attention folds its 1/√hd into the query's rotation this way, for free).
   *
   * rotate_half is computed as one product x·R with R the signed permutation matrix
   * (rotationMatrix): a product costs one kernel forward and one backward on a matrix
   * engine, where split/negate/concat cost three small copies each way. Products with ±1 and
   * 0 are exact, so this equals the split form bit for bit on finite inputs.
   */
  apply<T extends tf.Tensor>(x: T, offset = 0, scale = 1): T {
    if (x.rank !== 4 || x.shape[3] !== this.headDim) {
      throw new Error(`RoPE.apply: expected [b, t, h, ${this.headDim}], got [${x.shape}]`);
    }
    if (x.dtype === 'float32' && ropeKernelAvailable(this.headDim)) return this.applyKernel(x, offset, scale);
    return tf.tidy(() => {
      const [, t, heads] = x.shape as number[];
      const hd = this.headDim;
      const { cos, sin } = this.headTables(t, offset, heads, scale);
      // copies: the cpu backend keeps the array it is given, and these arrays are cached
      const cosT = tf.tensor(cos.slice(), [t, heads, hd]); // broadcasts over b
      const sinT = tf.tensor(sin.slice(), [t, heads, hd]);
      const r = tf.tensor2d(this.rotationMatrix(), [hd, hd]);
      const rotated = tf.reshape(tf.matMul(tf.reshape(x, [-1, hd]), r), x.shape); // rotate_half(x)
      return tf.add(tf.mul(x, cosT), tf.mul(rotated, sinT)) as T;
    });
  }

  /**
   * The gradient of apply: dy [b, t, h, hd] → ∂L/∂x = scale · R(−θ)·dy (a rotation's transpose
   * is its inverse). For hand-written backward passes (model/block-grad.ts).
   */
  applyGrad<T extends tf.Tensor>(dy: T, offset = 0, scale = 1): T {
    if (dy.rank !== 4 || dy.shape[3] !== this.headDim) {
      throw new Error(`RoPE.applyGrad: expected [b, t, h, ${this.headDim}], got [${dy.shape}]`);
    }
    const t = dy.shape[1] as number;
    if (dy.dtype === 'float32' && ropeKernelAvailable(this.headDim)) {
      const half = this.headDim / 2;
      const { cos, negSin } = this.pairTables(t, offset, scale);
      return tf.tidy(() => ropeRotate(dy, tf.tensor2d(cos.slice(), [t, half]), tf.tensor2d(negSin.slice(), [t, half]))) as T;
    }
    return tf.tidy(() => {
      // y = x⊙C + (x·R)⊙S  ⇒  ∂L/∂x = dy⊙C + (dy⊙S)·Rᵀ
      const heads = dy.shape[2] as number;
      const hd = this.headDim;
      const { cos, sin } = this.headTables(t, offset, heads, scale);
      const cosT = tf.tensor(cos.slice(), [t, heads, hd]);
      const sinT = tf.tensor(sin.slice(), [t, heads, hd]);
      const r = tf.tensor2d(this.rotationMatrix(), [hd, hd]);
      const back = tf.reshape(tf.matMul(tf.reshape(tf.mul(dy, sinT), [-1, hd]), r, false, true), dy.shape);
      return tf.add(tf.mul(dy, cosT), back) as T;
    });
  }

  /**
   * The same rotation as one kernel each way (backend/rope-kernel.ts, wasm SIMD): per pair
   * (x_i, x_{i+hd/2}) at angle θ, forward rotates by θ and the gradient by −θ (a rotation's
   * transpose is its inverse), both times `scale`.
   */
  private applyKernel<T extends tf.Tensor>(x: T, offset: number, scale: number): T {
    const t = x.shape[1] as number;
    const half = this.headDim / 2;
    const { cos, sin, negSin } = this.pairTables(t, offset, scale);
    // copies: the cpu backend keeps the array it is given, and these arrays are cached
    const rotate = (v: tf.Tensor, sines: Float32Array) =>
      tf.tidy(() => ropeRotate(v, tf.tensor2d(cos.slice(), [t, half]), tf.tensor2d(sines.slice(), [t, half])));
    const f = tf.customGrad(((xIn: tf.Tensor) => ({
      value: rotate(xIn, sin),
      gradFunc: (dy: tf.Tensor) => rotate(dy, negSin),
    })) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (v: tf.Tensor) => tf.Tensor;
    return f(x) as T;
  }

  /**
   * R [hd, hd] with x·R = rotate_half(x) = [−x2, x1]: R[i + hd/2][i] = −1 and
   * R[i][i + hd/2] = 1 for i < hd/2, zero elsewhere (a fresh copy each call).
   */
  rotationMatrix(): Float32Array {
    const hd = this.headDim, half = hd / 2;
    const r = new Float32Array(hd * hd);
    for (let i = 0; i < half; i++) {
      r[(i + half) * hd + i] = -1;
      r[i * hd + i + half] = 1;
    }
    return r;
  }
}
