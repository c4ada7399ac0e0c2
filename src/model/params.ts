/**
 * ParamStore: every trainable tensor of a model, one `tf.Variable` per stable dotted path
 * (`lm.layers.3.attn.q.weight`, `vit.blocks.0.mlp.fc1.bias`, `connector.qformer.queries`).
 *
 * Why paths and not tfjs variable names: checkpoints, freezing and optimiser state are all
 * keyed by what a parameter *is*, which must not depend on how many models were built
 * before it in the same process (tfjs names are global and must be unique).
 *
 * Initialisation is deterministic and independent of creation order and backend: the values
 * of the parameter at `path` come from `new Rng(seed).fork(path)`, generated in JS, then
 * uploaded. Two stores with the same seed therefore hold bit-identical parameters.
 */
import { tf, Rng } from '../backend';

/** How a parameter is filled when it is created. */
export type ParamInit =
  | { kind: 'normal'; std: number } // truncated normal (±2 std), mean 0
  | { kind: 'zeros' }
  | { kind: 'ones' }
  | { kind: 'constant'; value: number };

/** One exported parameter: shape and row-major float32 values. */
export interface ParamTensor {
  shape: number[];
  data: Float32Array;
}

/** A whole exported store: path → values (what checkpoints serialise). */
export type ParamRecord = Record<string, ParamTensor>;

/** Outcome of a non-strict `load`. */
export interface LoadReport {
  /** Paths that were assigned. */
  loaded: string[];
  /** Store paths the record did not contain (left as they were). */
  missing: string[];
  /** Record paths the store does not have (ignored). */
  unexpected: string[];
}

let nextStoreId = 0;

/** True when `path` is `prefix` itself or lies below it (segment-wise: `vit` ⊃ `vit.x`, not `vitx`). */
export function pathHasPrefix(path: string, prefix: string): boolean {
  if (prefix === '') return true;
  return path === prefix || path.startsWith(prefix + '.');
}

function shapeSize(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function initValues(seed: number, path: string, size: number, init: ParamInit): Float32Array {
  switch (init.kind) {
    case 'normal':
      return new Rng(seed).fork(path).normalArray(size, init.std);
    case 'zeros':
      return new Float32Array(size);
    case 'ones':
      return new Float32Array(size).fill(1);
    case 'constant':
      return new Float32Array(size).fill(init.value);
    default: {
      const never: never = init;
      throw new Error(`params.ts initValues: unknown init ${JSON.stringify(never)}; valid kinds: normal, zeros, ones, constant`);
    }
  }
}

export class ParamStore {
  /** The seed every parameter's values derive from (with its path). */
  readonly seed: number;
  private readonly id = nextStoreId++;
  private readonly vars = new Map<string, tf.Variable>();
  /** Freezing rules in the order they were set; the longest matching prefix wins. */
  private readonly trainRules = new Map<string, boolean>();

  constructor(seed = 0) {
    if (!Number.isFinite(seed)) throw new Error(`ParamStore: seed must be a finite number, got ${seed}`);
    this.seed = seed;
  }

  /**
   * Creates the parameter at `path` (or returns it when it already exists with this shape —
   * so two modules can share a parameter by path). Its values come from rng.fork(path).
   */
  param(path: string, shape: number[], init: ParamInit): tf.Variable {
    if (!/^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$/.test(path)) {
      throw new Error(`ParamStore.param: path "${path}" must be dot-separated [A-Za-z0-9_] segments`);
    }
    const existing = this.vars.get(path);
    if (existing) {
      if (!sameShape(existing.shape, shape)) {
        throw new Error(`ParamStore.param: "${path}" exists with shape [${existing.shape}], requested [${shape}]`);
      }
      return existing;
    }
    if (shape.some((d) => !Number.isInteger(d) || d <= 0)) {
      throw new Error(`ParamStore.param: "${path}" has invalid shape [${shape}] (positive integers expected)`);
    }
    const values = initValues(this.seed, path, shapeSize(shape), init);
    const v = tf.tidy(() =>
      tf.variable(tf.tensor(values, shape, 'float32'), this.isTrainable(path), `notellm2_store${this.id}/${path}`),
    );
    this.vars.set(path, v);
    return v;
  }

  /**
   * Creates the parameter at `path` from given values, replacing any existing one whatever its
   * shape (a grown vocabulary; weights moved back from native memory). Modules built before
   * hold the old variable: rebuild them.
   */
  set(path: string, t: ParamTensor): tf.Variable {
    if (t.data.length !== shapeSize(t.shape) || t.shape.some((d) => !Number.isInteger(d) || d <= 0)) {
      throw new Error(`ParamStore.set: "${path}" gets ${t.data.length} values for shape [${t.shape}]`);
    }
    this.remove(path);
    const v = this.param(path, t.shape, { kind: 'zeros' });
    tf.tidy(() => v.assign(tf.tensor(t.data, t.shape, 'float32')));
    return v;
  }

  /**
   * Removes the parameter at `path` and returns its values (null when absent): a frozen weight
   * moved out of the backend (NativeMatrix), or one about to be replaced.
   */
  remove(path: string): ParamTensor | null {
    const v = this.vars.get(path);
    if (!v) return null;
    const out = { shape: [...v.shape], data: Float32Array.from(v.dataSync() as Float32Array) };
    v.dispose();
    this.vars.delete(path);
    return out;
  }

  has(path: string): boolean {
    return this.vars.has(path);
  }

  /** The variable at `path`; throws naming close paths when absent. */
  get(path: string): tf.Variable {
    const v = this.vars.get(path);
    if (!v) {
      const parent = path.split('.').slice(0, -1).join('.');
      const near = this.list(parent).slice(0, 8);
      throw new Error(
        `ParamStore.get: no parameter "${path}"` + (near.length ? `; under "${parent}" there are: ${near.join(', ')}` : ''),
      );
    }
    return v;
  }

  /** Paths (sorted) at or below `prefix` (all when omitted). */
  list(prefix = ''): string[] {
    return [...this.vars.keys()].filter((p) => pathHasPrefix(p, prefix)).sort();
  }

  /** [path, variable] pairs (sorted by path) at or below `prefix`. */
  entries(prefix = ''): Array<[string, tf.Variable]> {
    return this.list(prefix).map((p) => [p, this.vars.get(p) as tf.Variable]);
  }

  /** Number of scalar parameters at or below `prefix`. */
  numParams(prefix = ''): number {
    return this.entries(prefix).reduce((n, [, v]) => n + v.size, 0);
  }

  /**
   * Freezes (false) or unfreezes (true) every parameter at or below `prefix`, including ones
   * created later. More specific prefixes override less specific ones whatever the order.
   */
  setTrainable(prefix: string, trainable: boolean): void {
    this.trainRules.set(prefix, trainable);
    for (const [path, v] of this.vars) v.trainable = this.isTrainable(path);
  }

  /** Whether `path` is trainable under the current rules (default true). */
  isTrainable(path: string): boolean {
    let best = -1;
    let result = true;
    for (const [prefix, flag] of this.trainRules) {
      if (pathHasPrefix(path, prefix) && prefix.length > best) {
        best = prefix.length;
        result = flag;
      }
    }
    return result;
  }

  /** Trainable [path, variable] pairs, sorted by path. */
  trainableEntries(prefix = ''): Array<[string, tf.Variable]> {
    return this.entries(prefix).filter(([p]) => this.isTrainable(p));
  }

  /**
   * Value and gradients of a scalar loss with respect to the trainable parameters (at or
   * below `prefix`), keyed by path; parameters the loss does not depend on are absent.
   * The caller disposes `value` and the gradients.
   */
  variableGrads(f: () => tf.Scalar, prefix = ''): { value: tf.Scalar; grads: Record<string, tf.Tensor> } {
    const entries = this.trainableEntries(prefix);
    if (entries.length === 0) throw new Error(`ParamStore.variableGrads: no trainable parameters under "${prefix}"`);
    const { value, grads } = tf.variableGrads(f, entries.map(([, v]) => v));
    const byPath: Record<string, tf.Tensor> = {};
    for (const [path, v] of entries) if (grads[v.name]) byPath[path] = grads[v.name];
    return { value, grads: byPath };
  }

  /** Copies every parameter (at or below `prefix`) out as float32 arrays. */
  export(prefix = ''): ParamRecord {
    const out: ParamRecord = {};
    for (const [path, v] of this.entries(prefix)) {
      out[path] = { shape: [...v.shape], data: Float32Array.from(v.dataSync() as Float32Array) };
    }
    return out;
  }

  /**
   * Assigns values from a record. Strict (default): the record must hold exactly the store's
   * parameters, with equal shapes. Non-strict: assigns what matches, reports the rest; a shape
   * mismatch is always an error.
   */
  load(record: ParamRecord, opts: { strict?: boolean } = {}): LoadReport {
    const strict = opts.strict ?? true;
    const missing = this.list().filter((p) => !(p in record));
    const unexpected = Object.keys(record).filter((p) => !this.vars.has(p)).sort();
    if (strict && (missing.length || unexpected.length)) {
      throw new Error(
        `ParamStore.load (strict): record does not match the store; ` +
          `missing ${missing.length} [${missing.slice(0, 6).join(', ')}${missing.length > 6 ? ', …' : ''}], ` +
          `unexpected ${unexpected.length} [${unexpected.slice(0, 6).join(', ')}${unexpected.length > 6 ? ', …' : ''}]`,
      );
    }
    const loaded: string[] = [];
    for (const [path, t] of Object.entries(record)) {
      const v = this.vars.get(path);
      if (!v) continue;
      if (!sameShape(v.shape, t.shape)) {
        throw new Error(`ParamStore.load: "${path}" has shape [${v.shape}] in the store but [${t.shape}] in the record`);
      }
      if (t.data.length !== shapeSize(t.shape)) {
        throw new Error(`ParamStore.load: "${path}" holds ${t.data.length} values for shape [${t.shape}] (${shapeSize(t.shape)} expected)`);
      }
      tf.tidy(() => v.assign(tf.tensor(t.data, t.shape, 'float32')));
      loaded.push(path);
    }
    return { loaded: loaded.sort(), missing, unexpected };
  }

  /** Disposes every variable; the store is empty afterwards. */
  dispose(): void {
    for (const v of this.vars.values()) v.dispose();
    this.vars.clear();
  }
}
