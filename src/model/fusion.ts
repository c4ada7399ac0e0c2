/**
 * Late-fusion gate (docs/method.md "Late fusion gate"):
 *
 *   v = W_v · CLS_vit                 Linear, no bias, vision width → LM width
 *   z = sigmoid(W_g · [h ; v])        Linear 2d → d, no bias
 *   ĥ = z ⊙ h + (1 − z) ⊙ v
 *
 * Applied after the LM, to n_m and (under mICL) n_v with the same weights, so the vision
 * encoder's own global feature reaches the embedding without passing through the LM.
 * Params: `<path>.v.weight` [dv, d], `<path>.g.weight` [2d, d].
 */
import { tf } from '../backend';
import { Linear } from './layers';
import type { ParamStore } from './params';

export class LateFusionGate {
  readonly wv: Linear;
  readonly wg: Linear;

  constructor(store: ParamStore, readonly path: string, visionDim: number, readonly dim: number) {
    this.wv = new Linear(store, `${path}.v`, visionDim, dim, { bias: false });
    this.wg = new Linear(store, `${path}.g`, 2 * dim, dim, { bias: false });
  }

  /** v = W_v · CLS: [b, dv] → [b, d]. Computed once per batch and shared by n_m and n_v. */
  visual(cls: tf.Tensor2D): tf.Tensor2D {
    return this.wv.apply(cls);
  }

  /** The gate value z for an LM embedding h [b, d] and visual feature v [b, d]. */
  gate(h: tf.Tensor2D, v: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => tf.sigmoid(this.wg.apply(tf.concat([h, v], 1))) as tf.Tensor2D);
  }

  /** ĥ = z ⊙ h + (1 − z) ⊙ v, [b, d]. */
  apply(h: tf.Tensor2D, v: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const z = this.gate(h, v);
      return tf.add(tf.mul(z, h), tf.mul(tf.sub(1, z), v)) as tf.Tensor2D;
    });
  }
}
