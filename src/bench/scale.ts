/**
 * `notellm2 bench --shape <name>`: one representation training step of a real-size LLM, per
 * training mode (model/lm-train.ts), and catalogue embedding — the figures that say whether an
 * imported model of that size trains on this machine and how fast.
 *
 * The step: random weights at the named shape (no LM head: representation training has none),
 * 16 sequences of 64 random token ids, the note embedding at the last token of the final-normed
 * hidden states, symmetric in-batch InfoNCE over the 8 pairs (rows i and i + 8) with a learnable
 * temperature, AdamW over the mode's trainable tensors (the temperature included). Embedding is
 * the same forward without a tape, batch after batch (notes per second).
 *
 * Each mode runs in its own process (the CLI forks itself with --one-mode): a step that does
 * not fit the wasm heap ends the process that tried it, and peak RSS is then per mode.
 */
import { availableParallelism, loadavg } from 'node:os';
import { Rng, tf, gemmInfo, defaultOrtThreads } from '../backend';
import { ParamStore } from '../model/params';
import { lmLayout, resolveLMConfig, type LMConfig, type DecoderLM } from '../model/lm';
import { NativeMatrix } from '../backend/native-matmul';
import { buildLMForTraining, formatLMTrain, isNativePath, lmNativeBytes, lmParamShapes, lmTrainedPaths as lmTrainedPathsOf, parseLMTrain, releaseLMNative, type LMTrainMode } from '../model/lm-train';
import { createTemperature, infoNce } from '../train/loss';
import { AdamW } from '../train/optim';
import { median } from './index';

/** Shapes by name: the LLM a figure is quoted for. */
export const SCALE_SHAPES: Record<string, LMConfig> = {
  // HuggingFaceTB/SmolLM2-135M: 30 × 576, 9 heads, 3 key/value heads (head_dim 64), SwiGLU 1536, vocab 49152.
  'smollm-135m': { vocabSize: 49152, dim: 576, nLayers: 30, nHeads: 9, nKVHeads: 3, headDim: 64, mlpHidden: 1536, ropeTheta: 100000, normEps: 1e-5, head: 'none' },
  // Qwen2.5-0.5B's body: 24 × 896, 14 heads, 2 key/value heads, SwiGLU 4864, vocab 151936, q/k/v biases.
  'qwen2.5-0.5b': { vocabSize: 151936, dim: 896, nLayers: 24, nHeads: 14, nKVHeads: 2, headDim: 64, mlpHidden: 4864, ropeTheta: 1000000, normEps: 1e-6, qkvBias: true, head: 'none' },
  // TinyLlama-1.1B's body: 22 × 2048, 32 heads, 4 key/value heads, SwiGLU 5632, vocab 32000.
  'tinyllama-1.1b': { vocabSize: 32000, dim: 2048, nLayers: 22, nHeads: 32, nKVHeads: 4, headDim: 64, mlpHidden: 5632, ropeTheta: 10000, normEps: 1e-5, head: 'none' },
};

export const SCALE_BATCH = { batch: 16, seqLen: 64 } as const;

/** The modes `bench --shape` times, in order. */
export const SCALE_MODES = ['full', 'lora:8', 'last:4'] as const;

/** The wasm heap's ceiling: 4 GiB (32-bit addresses). */
export const WASM_HEAP_LIMIT = 4 * 1024 ** 3;

export interface ScaleOptions {
  /** Override the shape's layer count (a cheaper run of the same width). */
  layers?: number;
  /** Timed steps (after one untimed warm-up step). Defaults to 3. */
  steps?: number;
  /** Timed embedding batches. Defaults to 3. */
  embedBatches?: number;
  seed?: number;
}

export interface ScaleModeFigures {
  mode: string;
  /** Parameters the mode trains (temperature included) and the ones it holds frozen outside the backend. */
  trainableParams: number;
  nativeMB: number;
  /** Medians over the timed steps; all step times, and the loss before and after. */
  stepMs: number;
  stepsMs: number[];
  stepCpuMs: number;
  firstLoss: number;
  lastLoss: number;
  /** Forward-only embedding, notes per second (median over batches of 16). */
  notesPerSec?: number;
  /** Backend bytes in use after the steps; the wasm heap's size (its peak: it never shrinks); the most the process ever held (RSS). */
  backendMB: number;
  wasmHeapMB: number;
  peakRssMB: number;
  /** Tensors alive after each step (constant when nothing leaks). */
  numTensors: number[];
  ortThreads?: number;
}

/** Params of the named shape (embedding + layers + final norm, no head). */
export function shapeParams(cfg: LMConfig): number {
  const c = resolveLMConfig(cfg);
  const l = lmLayout(c);
  const q = c.nHeads * l.headDim, kv = l.nKVHeads * l.headDim;
  const attn = c.dim * q + 2 * c.dim * kv + q * c.dim + (l.qkvBias ? q + 2 * kv : 0) + (l.oBias ? c.dim : 0);
  const mlp = 3 * c.dim * c.mlpHidden + (l.mlpBias ? 2 * c.mlpHidden + c.dim : 0);
  const head = l.head === 'untied' ? c.dim * c.vocabSize : 0;
  return c.vocabSize * c.dim + c.nLayers * (attn + mlp + 2 * c.dim) + c.dim + head;
}

/**
 * Random weights for a timing run, made fast: the store's own init draws every value through
 * Box–Muller in JS (about a minute for 135M parameters here), which the figures do not need.
 * Matrices are windows of one shared block of normals (std 0.02) at path-dependent offsets,
 * norms ones, biases zeros; the mode's frozen matrices are returned as native weights, the
 * rest are put in the store.
 */
function fastRandomWeights(cfg: LMConfig, store: ParamStore, mode: LMTrainMode, seed: number): Map<string, NativeMatrix> {
  const block = new Rng(seed).fork('bench.scale.block').normalArray(1 << 20, 0.02);
  const native = new Map<string, NativeMatrix>();
  const c = resolveLMConfig(cfg);
  let k = 0;
  for (const [path, shape] of lmParamShapes(c)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (shape.length === 1) data.fill(/norm/.test(path) ? 1 : 0);
    else {
      const off = (k++ * 7919) % block.length;
      for (let i = 0; i < n; i += block.length - off) data.set(block.subarray(off, off + Math.min(block.length - off, n - i)), i);
    }
    if (isNativePath(mode, c, 'lm', path)) native.set(path, new NativeMatrix(data, shape[0], shape[1], path));
    else store.set(path, { shape, data });
  }
  return native;
}

/**
 * The wasm heap a training step of `mode` needs at this shape, by the arithmetic of the fused
 * layers (model/block-grad.ts): 16 B per trained parameter (value, gradient, AdamW's two
 * moments), 4 B per frozen parameter still in the store (norms, biases), the activations each
 * layer keeps for its backward (and its input gradient) times 1.35 for the allocator and the
 * transients around them, three copies of the largest trained tensor (AdamW's update), and a
 * fixed 128 MiB. Measured against it here: 135M full fine-tuning asked 3.43 GiB (estimate
 * 3.42), LoRA 0.98 GiB (estimate 1.1). Frozen matrices are native: they count nowhere here.
 */
export function estimateHeapBytes(cfg: LMConfig, mode: LMTrainMode | string, batch = SCALE_BATCH): { bytes: number; trainable: number } {
  const m = typeof mode === 'string' ? parseLMTrain(mode) : mode;
  const c = resolveLMConfig(cfg);
  const l = lmLayout(c);
  const shapes = lmParamShapes(c);
  const trained = new Set(lmTrainedPathsOf(m, c));
  let trainable = 0, frozenStore = 0, largest = 0;
  for (const [path, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (trained.has(path)) {
      trainable += n;
      largest = Math.max(largest, n);
    } else if (!isNativePath(m, c, 'lm', path)) frozenStore += n;
  }
  const N = batch.batch * batch.seqLen;
  const loraCols = m.kind === 'lora' ? 4 * m.rank : 0;
  if (m.kind === 'lora') {
    const q = c.nHeads * l.headDim, kv = l.nKVHeads * l.headDim;
    trainable += c.nLayers * m.rank * (c.dim + q + c.dim + kv + c.dim + kv + q + c.dim);
  }
  const perLayer = 3 * N * c.dim + N * (2 * c.nHeads + 2 * l.nKVHeads) * l.headDim + batch.batch * c.nHeads * batch.seqLen ** 2 + 2 * N * c.mlpHidden + N * loraCols;
  const savedLayers = m.kind === 'last' ? m.layers : c.nLayers;
  const bytes = 16 * trainable + 4 * frozenStore + 1.35 * 4 * perLayer * savedLayers + 12 * largest + 128 * 2 ** 20;
  return { bytes, trainable };
}

/** One training set-up of a shape in a mode: model, optimiser, a fixed random batch. */
export class ScaleStack {
  readonly store: ParamStore;
  readonly lm: DecoderLM;
  readonly tau: tf.Variable;
  readonly opt: AdamW;
  readonly ids: tf.Tensor2D;
  readonly mode: LMTrainMode;

  constructor(readonly cfg: LMConfig, mode: LMTrainMode | string, seed = 0) {
    this.mode = typeof mode === 'string' ? parseLMTrain(mode) : mode;
    this.store = new ParamStore(seed);
    this.lm = buildLMForTraining(cfg, this.store, this.mode, { native: fastRandomWeights(cfg, this.store, this.mode, seed) });
    this.tau = createTemperature();
    const trainable = new Map<string, tf.Variable>([...this.store.trainableEntries(), ['loss.tau', this.tau]]);
    this.opt = new AdamW(trainable, { lr: 1e-4, weightDecay: 0.01 });
    const { batch, seqLen } = SCALE_BATCH;
    const rng = new Rng(seed).fork('bench.scale.ids');
    this.ids = tf.tensor2d(Int32Array.from({ length: batch * seqLen }, () => rng.int(this.lm.cfg.vocabSize)), [batch, seqLen], 'int32');
  }

  get trainableParams(): number {
    return this.store.trainableEntries().reduce((n, [, v]) => n + v.size, 0) + 1;
  }

  /** Final hidden state at the last token [b, d]. */
  private embedLast(ids: tf.Tensor2D): tf.Tensor2D {
    const [b, t] = ids.shape;
    const d = this.lm.cfg.dim;
    // A trainable embedding is the only thing upstream of the layers here.
    const { last } = this.lm.forward(this.lm.embed(ids), { inputsNeedGrad: this.lm.nativeEmbedding === null });
    return tf.reshape(tf.slice(last, [0, t - 1, 0], [b, 1, d]), [b, d]) as tf.Tensor2D;
  }

  /** One step: forward, backward, AdamW. Returns the loss. */
  step(): number {
    const half = SCALE_BATCH.batch / 2;
    const d = this.lm.cfg.dim;
    return this.opt.minimize(() => {
      const e = this.embedLast(this.ids);
      return infoNce(tf.slice(e, [0, 0], [half, d]) as tf.Tensor2D, tf.slice(e, [half, 0], [half, d]) as tf.Tensor2D, this.tau);
    }).loss;
  }

  /** Forward-only embedding of the batch. */
  embed(): Float32Array {
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
    releaseLMNative(this.lm);
  }
}

/** Size of the wasm heap (it only grows, so this is the peak so far); 0 on other backends. */
export function wasmHeapBytes(): number {
  const b = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  return b.wasm?.HEAPU8?.buffer.byteLength ?? 0;
}

function peakRssMB(): number {
  return process.resourceUsage().maxRSS / 1024; // kilobytes on Linux
}

/** Runs one mode in this process and returns its figures (throws when it cannot run). */
export function benchScaleMode(shape: LMConfig, modeSpec: string, opts: ScaleOptions = {}): ScaleModeFigures {
  const cfg = opts.layers !== undefined ? { ...shape, nLayers: opts.layers } : shape;
  const stack = new ScaleStack(cfg, modeSpec, opts.seed ?? 0);
  try {
    const losses: number[] = [];
    const times: number[] = [];
    const cpu: number[] = [];
    const numTensors: number[] = [];
    losses.push(stack.step()); // warm-up: sessions, first allocations
    for (let i = 0; i < (opts.steps ?? 3); i++) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      losses.push(stack.step());
      times.push(performance.now() - t0);
      const c = process.cpuUsage(c0);
      cpu.push((c.user + c.system) / 1000);
      numTensors.push(tf.memory().numTensors);
    }
    stack.embed();
    const embedTimes = Array.from({ length: opts.embedBatches ?? 3 }, () => {
      const t0 = performance.now();
      stack.embed();
      return performance.now() - t0;
    });
    return {
      mode: formatLMTrain(stack.mode),
      trainableParams: stack.trainableParams,
      nativeMB: lmNativeBytes(stack.lm) / 2 ** 20,
      stepMs: median(times),
      stepsMs: times,
      stepCpuMs: median(cpu),
      firstLoss: losses[0],
      lastLoss: losses[losses.length - 1],
      notesPerSec: (SCALE_BATCH.batch * 1000) / median(embedTimes),
      backendMB: tf.memory().numBytes / 2 ** 20,
      wasmHeapMB: wasmHeapBytes() / 2 ** 20,
      peakRssMB: peakRssMB(),
      numTensors,
      ortThreads: gemmInfo().ortThreads,
    };
  } finally {
    stack.dispose();
  }
}

/** A figure, or why it could not be measured. */
export type Figure = number | { why: string };

export interface ScaleResult {
  shape: string;
  dims: LMConfig & { batch: number; seqLen: number };
  /** Parameters of the shape (embedding, layers, final norm; no head). */
  params: number;
  /** Medians (ms) of one full fine-tuning step and one LoRA (rank 8) step, or why they could not run. */
  fullStepMs: Figure;
  loraStepMs: Figure;
  /** The step of the first last:N mode asked for (last:4 by default). */
  lastStepMs?: Figure;
  /** Forward-only embedding throughput, notes per second (from the LoRA run, else the first that ran). */
  notesPerSec: Figure;
  /** The largest peak RSS of the modes' processes (MiB). */
  peakRssMB: number;
  /** Per mode: its figures (with the heap estimate), or why it could not run. */
  modes: Record<string, (ScaleModeFigures & { heapEstimateMB: number }) | { why: string; heapEstimateMB: number }>;
  machine: { cpus: number; loadBefore: number[]; loadAfter: number[]; ortThreads: number };
}

/** Runs a mode somewhere (here or in a child process) and returns its figures or why it failed. */
export type ModeRunner = (modeSpec: string) => Promise<ScaleModeFigures | { why: string }>;

/**
 * Runs each mode through `run` and gathers the result. A mode whose heap estimate exceeds the
 * wasm heap by more than 10 % is not tried (on wasm): its `why` gives the arithmetic; one that
 * fails when tried gives the error.
 */
export async function runScaleBench(shapeName: string, modes: readonly string[], run: ModeRunner, opts: ScaleOptions & { backend?: string; ortThreads?: number } = {}): Promise<ScaleResult> {
  const shape = SCALE_SHAPES[shapeName];
  if (!shape) throw new Error(`--shape "${shapeName}" is not one of ${Object.keys(SCALE_SHAPES).join(', ')}`);
  const cfg = opts.layers !== undefined ? { ...shape, nLayers: opts.layers } : shape;
  const loadBefore = loadavg().map((x) => Math.round(x * 100) / 100);
  const results: ScaleResult['modes'] = {};
  const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
  for (const m of modes) {
    const mode = parseLMTrain(m);
    const key = formatLMTrain(mode);
    let est: { bytes: number; trainable: number };
    try {
      est = estimateHeapBytes(cfg, mode);
    } catch (e) {
      results[key] = { why: (e as Error).message, heapEstimateMB: 0 };
      continue;
    }
    const heapEstimateMB = Math.round(est.bytes / 2 ** 20);
    if ((opts.backend ?? 'wasm') === 'wasm' && est.bytes > 1.1 * WASM_HEAP_LIMIT) {
      results[key] = {
        why: `needs about ${gib(est.bytes)} of wasm heap (${(est.trainable / 1e6).toFixed(1)}M trained parameters at 16 B with gradients and AdamW moments, plus activations); the heap is capped at 4 GiB`,
        heapEstimateMB,
      };
      continue;
    }
    const r = await run(m);
    results[key] = { ...r, heapEstimateMB };
  }
  const loadAfter = loadavg().map((x) => Math.round(x * 100) / 100);
  const figure = (key: string, pick: (f: ScaleModeFigures) => number | undefined): Figure => {
    const r = results[key];
    if (!r) return { why: `mode ${key} was not asked for` };
    if ('why' in r) return { why: r.why };
    return pick(r) ?? { why: `mode ${key} did not measure it` };
  };
  const lastKey = Object.keys(results).find((k) => k.startsWith('last:'));
  const ran = Object.values(results).filter((r): r is ScaleModeFigures & { heapEstimateMB: number } => 'stepMs' in r);
  const embedFrom = results['lora:8'] && 'stepMs' in results['lora:8'] ? 'lora:8' : ran[0] ? formatLMTrain(parseLMTrain(ran[0].mode)) : 'lora:8';
  return {
    shape: shapeName,
    dims: { ...cfg, ...SCALE_BATCH },
    params: shapeParams(cfg),
    fullStepMs: figure('full', (f) => f.stepMs),
    loraStepMs: figure('lora:8', (f) => f.stepMs),
    ...(lastKey ? { lastStepMs: figure(lastKey, (f) => f.stepMs) } : {}),
    notesPerSec: figure(embedFrom, (f) => f.notesPerSec),
    peakRssMB: Math.max(0, ...ran.map((r) => r.peakRssMB)),
    modes: results,
    machine: { cpus: availableParallelism(), loadBefore, loadAfter, ortThreads: opts.ortThreads ?? defaultOrtThreads() },
  };
}

/** Human-readable lines of a scale result. */
export function formatScaleBench(r: ScaleResult): string {
  const d = r.dims;
  const lines = [
    `shape ${r.shape}: ${d.nLayers} layers × ${d.dim}, ${d.nHeads} heads (${d.nKVHeads ?? d.nHeads} key/value), SwiGLU ${d.mlpHidden}, vocab ${d.vocabSize}, no LM head; ` +
      `${(r.params / 1e6).toFixed(1)}M params; batch ${d.batch} × ${d.seqLen} tokens, last-token symmetric InfoNCE, AdamW`,
    `machine: ${r.machine.cpus} cores, ORT threads ${r.machine.ortThreads}, load ${r.machine.loadBefore.join(' ')} → ${r.machine.loadAfter.join(' ')}`,
    '',
    'mode       step ms (median)   cpu ms   trained    native MB  heap MiB (est.)  notes/s   peak RSS MB',
  ];
  for (const [m, f] of Object.entries(r.modes)) {
    if ('why' in f) {
      lines.push(`${m.padEnd(10)} cannot run: ${f.why}`);
      continue;
    }
    lines.push(
      `${m.padEnd(10)} ${f.stepMs.toFixed(0).padStart(10)} (n=${f.stepsMs.length})  ${f.stepCpuMs.toFixed(0).padStart(7)}  ${(f.trainableParams / 1e6).toFixed(2).padStart(7)}M  ` +
        `${f.nativeMB.toFixed(0).padStart(9)}  ${f.wasmHeapMB.toFixed(0).padStart(7)} (${String(f.heapEstimateMB).padStart(5)})  ${f.notesPerSec?.toFixed(1).padStart(7) ?? '      -'}  ${f.peakRssMB.toFixed(0).padStart(10)}`,
    );
  }
  return lines.join('\n');
}
