/**
 * Rotary position embedding (RoPE, Su et al. 2021) in the LLaMA / Hugging Face "rotate half"
 * layout: feature i of a head is paired with feature i + hd/2 and the pair is rotated by the
 * angle pos · θ^(−2i/hd). Rotating q and k this way makes q·k depend on positions only
 * through their difference.
 *
 * Dimension legend: b batch, t tokens, h heads, hd head width.
 */
import { tf } from '../backend';

export class RoPE {
  /** Tables by "t:offset" (plain arrays, not tensors: nothing to dispose, nothing leaks). */
  private readonly cache = new Map<string, { cos: Float32Array; sin: Float32Array }>();

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
  tables(t: number, offset = 0): { cos: Float32Array; sin: Float32Array } {
    const key = `${t}:${offset}`;
    const hit = this.cache.get(key);
    if (hit) return hit;
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
    if (this.cache.size >= 64) this.cache.clear(); // bounded: sequence lengths are few in practice
    this.cache.set(key, { cos, sin });
    return { cos, sin };
  }

  /**
   * Rotates x [b, t, h, hd] (token axis 1, head-width axis last) for positions
   * offset … offset + t − 1:  x·cos + rotate_half(x)·sin,  rotate_half([x1, x2]) = [−x2, x1].
   */
  apply<T extends tf.Tensor>(x: T, offset = 0): T {
    return tf.tidy(() => {
      if (x.rank !== 4 || x.shape[3] !== this.headDim) {
        throw new Error(`RoPE.apply: expected [b, t, h, ${this.headDim}], got [${x.shape}]`);
      }
      const t = x.shape[1] as number;
      const { cos, sin } = this.tables(t, offset);
      // copies: the cpu backend keeps the array it is given, and these arrays are cached
      const cosT = tf.tensor(cos.slice(), [t, 1, this.headDim]); // broadcasts over b and h
      const sinT = tf.tensor(sin.slice(), [t, 1, this.headDim]);
      const [x1, x2] = tf.split(x, 2, 3);
      const rotated = tf.concat([tf.neg(x2), x1], 3);
      return tf.add(tf.mul(x, cosT), tf.mul(rotated, sinT)) as T;
    });
  }
}
