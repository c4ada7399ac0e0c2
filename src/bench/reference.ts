/**
 * The reference stack every speed figure of the project is quoted on (issues 2 and 6):
 * a LLaMA-style decoder (4 layers, d = 128, 4 heads, SwiGLU, RoPE, RMSNorm) on a batch of
 * 16 sequences of 48 tokens, the note embedding read at the last token, symmetric in-batch
 * InfoNCE (docs/method.md "Training objective") over the 8 pairs (rows i and i + 8), and one AdamW
 * update. Inputs are random token ids from a seeded Rng: the figure is about compute only.
 */
import { Rng, tf } from '../backend';
import { DecoderLM, ParamStore, swigluHidden } from '../model';
import { createTemperature, infoNce } from '../train/loss';
import { AdamW } from '../train/optim';

export interface ReferenceDims {
  layers: number;
  dim: number;
  heads: number;
  mlpHidden: number;
  vocab: number;
  batch: number;
  seqLen: number;
  pairs: number;
  params: number;
  loss: string;
  optimizer: string;
}

export const REFERENCE = { layers: 4, dim: 128, heads: 4, vocab: 512, batch: 16, seqLen: 48 } as const;

export class ReferenceStack {
  readonly dims: ReferenceDims;
  private readonly store: ParamStore;
  private readonly lm: DecoderLM;
  private readonly tau: tf.Variable;
  private readonly opt: AdamW;
  private readonly ids: tf.Tensor2D;

  constructor(seed = 0) {
    const { layers, dim, heads, vocab, batch, seqLen } = REFERENCE;
    this.store = new ParamStore(seed);
    this.lm = new DecoderLM({ vocabSize: vocab, dim, nLayers: layers, nHeads: heads }, this.store, 'lm');
    this.tau = createTemperature();
    this.opt = new AdamW(new Map([...this.store.entries(), ['loss.tau', this.tau]]), { lr: 1e-3, weightDecay: 0.01 });
    const rng = new Rng(seed).fork('bench.ids');
    this.ids = tf.tensor2d(Int32Array.from({ length: batch * seqLen }, () => rng.int(vocab)), [batch, seqLen], 'int32');
    this.dims = {
      layers, dim, heads, mlpHidden: swigluHidden(dim), vocab, batch, seqLen, pairs: batch / 2,
      params: this.store.numParams(),
      loss: `symmetric InfoNCE on the last token's final hidden state, ${batch / 2} pairs (rows i, i+${batch / 2})`,
      optimizer: 'AdamW (lr 1e-3, weight decay 0.01)',
    };
  }

  /** Note embeddings [b, d]: final hidden state at the last token. */
  private embedLast(ids: tf.Tensor2D): tf.Tensor2D {
    const [b, t] = ids.shape;
    const { last } = this.lm.forward(this.lm.embed(ids));
    return tf.reshape(tf.slice(last, [0, t - 1, 0], [b, 1, REFERENCE.dim]), [b, REFERENCE.dim]) as tf.Tensor2D;
  }

  /** One training step (forward, backward, AdamW); returns the loss. */
  step(): number {
    const half = REFERENCE.batch / 2;
    return this.opt.minimize(() => {
      const e = this.embedLast(this.ids); // [16, 128]
      const a = tf.slice(e, [0, 0], [half, REFERENCE.dim]) as tf.Tensor2D;
      const b = tf.slice(e, [half, 0], [half, REFERENCE.dim]) as tf.Tensor2D;
      return infoNce(a, b, this.tau);
    }).loss;
  }

  /** Forward-only embedding of the reference batch (inference); returns [b, d] values. */
  embed(): Float32Array {
    // Read outside tidy: tidy walks a returned typed array element by element.
    const e = tf.tidy(() => this.embedLast(this.ids));
    const v = e.dataSync() as Float32Array;
    e.dispose();
    return v;
  }

  dispose(): void {
    this.opt.dispose();
    this.store.dispose();
    this.tau.dispose();
    this.ids.dispose();
  }
}
