/**
 * Connectors: vision tokens → LLM-width tokens spliced into the prompt (docs/method.md
 * "Architecture").
 *
 *  - 'mlp'     LLaVA-style: the `mlp2x_gelu` projector (Linear → GELU → Linear) on every
 *              vision token; as many LLM tokens as vision tokens.
 *  - 'qformer' BLIP-2-style: learnable query tokens; each layer does self-attention among the
 *              queries, cross-attention from the queries to the vision tokens and an MLP;
 *              then the `mlp2x_gelu` projector into the LLM width. The number of LLM tokens
 *              is the number of queries (the paper ablates 8/16/32/48, default 16).
 *
 * Departures from BLIP-2, for training from scratch at small scale: pre-norm blocks (BLIP-2's
 * BERT layers are post-norm), cross-attention in every layer (BLIP-2: every other layer) and
 * queries that do not share weights with a text transformer.
 *
 * Dimension legend: b batch, n vision tokens, dv vision width, q queries, dq Q-Former width,
 * dl LLM width, h heads.
 */
import { tf } from '../backend';
import type { ParamStore } from './params';
import { DEFAULT_INIT_STD, GeluMLP, LayerNorm, mlp2xGelu } from './layers';
import { MultiHeadAttention } from './attention';

export type ConnectorKind = 'mlp' | 'qformer';
export const CONNECTOR_KINDS: readonly ConnectorKind[] = ['mlp', 'qformer'];

export interface ConnectorConfig {
  /** 'mlp' (LLaVA mlp2x_gelu) or 'qformer' (learnable queries + projector). */
  kind: ConnectorKind;
  /** Q-Former: number of learnable query tokens. Defaults to 16 (the paper's default). */
  numQueries?: number;
  /** Q-Former: number of layers. Defaults to 2 (the reference uses 6; tiny models need fewer). */
  layers?: number;
  /** Q-Former: width dq. Defaults to the vision width. */
  dim?: number;
  /** Q-Former: attention heads; must divide dim. Defaults to 4. */
  heads?: number;
  /** Q-Former: MLP hidden width as a multiple of dim. Defaults to 4. */
  mlpRatio?: number;
  /** Std of the weight and query init. Defaults to 0.02. */
  initStd?: number;
}

export interface ResolvedConnectorConfig {
  kind: ConnectorKind;
  numQueries: number;
  layers: number;
  /** Q-Former width (resolved against the vision width). */
  dim: number;
  heads: number;
  mlpRatio: number;
  initStd: number;
}

/** Applies ConnectorConfig defaults (the one place they live) and validates. */
export function resolveConnectorConfig(cfg: ConnectorConfig, visionDim: number): ResolvedConnectorConfig {
  if (!(CONNECTOR_KINDS as readonly string[]).includes(cfg.kind)) {
    throw new Error(`ConnectorConfig.kind "${String(cfg.kind)}" is not one of ${CONNECTOR_KINDS.join(', ')}`);
  }
  const r: ResolvedConnectorConfig = {
    kind: cfg.kind,
    numQueries: cfg.numQueries ?? 16,
    layers: cfg.layers ?? 2,
    dim: cfg.dim ?? visionDim,
    heads: cfg.heads ?? 4,
    mlpRatio: cfg.mlpRatio ?? 4,
    initStd: cfg.initStd ?? DEFAULT_INIT_STD,
  };
  if (r.kind === 'qformer') {
    for (const key of ['numQueries', 'layers', 'dim', 'heads'] as const) {
      if (!Number.isInteger(r[key]) || r[key] <= 0) throw new Error(`ConnectorConfig.${key} must be a positive integer, got ${r[key]}`);
    }
    if (r.dim % r.heads !== 0) throw new Error(`ConnectorConfig: heads (${r.heads}) must divide the Q-Former width (${r.dim})`);
    if (!(r.mlpRatio > 0) || !Number.isInteger(r.mlpRatio * r.dim)) {
      throw new Error(`ConnectorConfig.mlpRatio (${r.mlpRatio}) × dim (${r.dim}) must be a positive integer`);
    }
  }
  return r;
}

/** What every connector offers the composed model. */
export interface Connector {
  readonly kind: ConnectorKind;
  readonly cfg: ResolvedConnectorConfig;
  /** How many LLM tokens `apply` yields for this many vision tokens. */
  numTokens(numVisionTokens: number): number;
  /** Vision tokens [b, n, dv] → LLM-width tokens [b, numTokens(n), dl]. */
  apply(visionTokens: tf.Tensor3D): tf.Tensor3D;
}

function checkVision(x: tf.Tensor3D, visionDim: number, who: string): void {
  if (x.rank !== 3 || x.shape[2] !== visionDim) {
    throw new Error(`${who}: vision tokens must be [b, n, ${visionDim}], got [${x.shape}]`);
  }
}

/** LLaVA's projector on every token. Params: `<prefix>.projector.{fc1,fc2}`. */
export class MlpConnector implements Connector {
  readonly kind = 'mlp' as const;
  readonly projector: GeluMLP;

  constructor(readonly cfg: ResolvedConnectorConfig, store: ParamStore, readonly visionDim: number, lmDim: number, prefix = 'connector') {
    this.projector = mlp2xGelu(store, `${prefix}.projector`, visionDim, lmDim, cfg.initStd);
  }

  numTokens(numVisionTokens: number): number {
    return numVisionTokens;
  }

  apply(visionTokens: tf.Tensor3D): tf.Tensor3D {
    checkVision(visionTokens, this.visionDim, 'MlpConnector.apply');
    return this.projector.apply(visionTokens); // [b, n, dl]
  }
}

/**
 * One Q-Former layer; params under `<path>`: `norm1`, `self_attn`, `norm2`, `cross_attn`
 * (keys/values from the vision width), `norm3`, `mlp.{fc1,fc2}`.
 */
export class QFormerLayer {
  readonly norm1: LayerNorm;
  readonly selfAttn: MultiHeadAttention;
  readonly norm2: LayerNorm;
  readonly crossAttn: MultiHeadAttention;
  readonly norm3: LayerNorm;
  readonly mlp: GeluMLP;

  constructor(store: ParamStore, readonly path: string, cfg: ResolvedConnectorConfig, visionDim: number) {
    const { dim, heads, initStd } = cfg;
    this.norm1 = new LayerNorm(store, `${path}.norm1`, dim);
    this.selfAttn = new MultiHeadAttention(store, `${path}.self_attn`, { dim, heads, kind: 'bidirectional', initStd });
    this.norm2 = new LayerNorm(store, `${path}.norm2`, dim);
    this.crossAttn = new MultiHeadAttention(store, `${path}.cross_attn`, { dim, heads, kind: 'cross', contextDim: visionDim, initStd });
    this.norm3 = new LayerNorm(store, `${path}.norm3`, dim);
    this.mlp = new GeluMLP(store, `${path}.mlp`, dim, cfg.mlpRatio * dim, dim, { initStd });
  }

  /** queries [b, q, dq], vision [b, n, dv] → [b, q, dq] */
  forward(queries: tf.Tensor3D, vision: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      let h = tf.add(queries, this.selfAttn.forward(this.norm1.apply(queries)).out) as tf.Tensor3D;
      h = tf.add(h, this.crossAttn.forward(this.norm2.apply(h), { context: vision }).out) as tf.Tensor3D;
      return tf.add(h, this.mlp.apply(this.norm3.apply(h))) as tf.Tensor3D;
    });
  }
}

/**
 * Q-Former + projector. Params under `<prefix>`: `qformer.queries` [q, dq],
 * `qformer.vision_norm` (BLIP-2's ln_vision on the vision tokens), `qformer.layers.<i>.*`,
 * `qformer.norm`, `projector.{fc1,fc2}` (dq → dl → dl).
 */
export class QFormerConnector implements Connector {
  readonly kind = 'qformer' as const;
  readonly queries: tf.Variable;
  readonly visionNorm: LayerNorm;
  readonly layers: QFormerLayer[];
  readonly norm: LayerNorm;
  readonly projector: GeluMLP;

  constructor(readonly cfg: ResolvedConnectorConfig, store: ParamStore, readonly visionDim: number, lmDim: number, prefix = 'connector') {
    const p = `${prefix}.qformer`;
    this.queries = store.param(`${p}.queries`, [cfg.numQueries, cfg.dim], { kind: 'normal', std: cfg.initStd });
    this.visionNorm = new LayerNorm(store, `${p}.vision_norm`, visionDim);
    this.layers = Array.from({ length: cfg.layers }, (_, i) => new QFormerLayer(store, `${p}.layers.${i}`, cfg, visionDim));
    this.norm = new LayerNorm(store, `${p}.norm`, cfg.dim);
    this.projector = mlp2xGelu(store, `${prefix}.projector`, cfg.dim, lmDim, cfg.initStd);
  }

  numTokens(): number {
    return this.cfg.numQueries;
  }

  apply(visionTokens: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      checkVision(visionTokens, this.visionDim, 'QFormerConnector.apply');
      const b = visionTokens.shape[0];
      const vision = this.visionNorm.apply(visionTokens); // [b, n, dv]
      let q = tf.tile(tf.expandDims(this.queries, 0), [b, 1, 1]) as tf.Tensor3D; // [b, q, dq]
      for (const layer of this.layers) q = layer.forward(q, vision);
      return this.projector.apply(this.norm.apply(q)); // [b, q, dl]
    });
  }
}

/** Builds the connector `cfg.kind` names; unknown kinds are rejected with the valid list. */
export function createConnector(cfg: ConnectorConfig, store: ParamStore, visionDim: number, lmDim: number, prefix = 'connector'): Connector {
  const r = resolveConnectorConfig(cfg, visionDim);
  switch (r.kind) {
    case 'mlp':
      return new MlpConnector(r, store, visionDim, lmDim, prefix);
    case 'qformer':
      return new QFormerConnector(r, store, visionDim, lmDim, prefix);
    default: {
      const never: never = r.kind;
      throw new Error(`createConnector: kind "${String(never)}" is not one of ${CONNECTOR_KINDS.join(', ')}`);
    }
  }
}
