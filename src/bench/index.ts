/**
 * `notellm2 bench`: compute figures of this machine (docs/architecture.md "Compute"), as medians.
 *
 * For each configuration (tfjs backend × GEMM × ORT threads × SIMD kernels) it measures
 * matMul GFLOP/s at a few sizes, the median train-step time of the reference stack
 * (reference.ts), notes embedded per second (forward only) and the seconds of one retrieval
 * pass (query × pool cosine scores and top-k). Figures are medians of repeated runs; nothing
 * here is asserted in tests.
 *
 * Shared machines drift: the same configuration can run 30 % slower a minute later. So the
 * train steps of configurations on the same backend are interleaved — a few steps of each in
 * turn, round after round, each turn opening with one untimed step — and every configuration
 * sees the same conditions; ratios between them are then fair even when the absolute figures
 * move. (The pure-JS cpu backend's steps take seconds, and wasm as shipped ten times longer
 * than the others: those run one after the other.)
 */
import { availableParallelism, cpus, loadavg } from 'node:os';
import {
  defaultOrtThreads, gemmInfo, initBackend, resetGemmStats, setGemm, setOrtThreads, setSimd, setTransposeWrapper, simdEnabled,
  tf, Rng, WASM_THREADS_FINDINGS, type GemmInfo,
} from '../backend';
import { ReferenceStack, type ReferenceDims } from './reference';

/** Whether the SIMD kernels were on when this module loaded (NOTELLM2_SIMD): restored after each group. */
const simdDefault = simdEnabled();

export type BenchGemm = 'ort' | 'backend' | 'shipped';

export interface BenchConfig {
  /** tfjs backend: wasm | cpu (| tensorflow when a native build loads). */
  backend: string;
  /**
   * ort: ONNX Runtime GEMM; backend: the backend's kernels (on wasm with the transpose
   * wrapper); shipped: wasm's BatchMatMul exactly as tfjs ships it (the before figure).
   */
  gemm: BenchGemm;
  /** ONNX Runtime intra-op threads for gemm "ort" (default: defaultOrtThreads()). */
  ortThreads?: number;
  /** false: the wasm SIMD kernels (AdamW, RMSNorm, RoPE, SwiGLU gate) off, tfjs ops instead. Default on. */
  simd?: boolean;
}

/** "wasm/ort"; ":1t" when the configuration fixes ORT's thread count, ":no-simd" without the SIMD kernels. */
export function configLabel(c: BenchConfig): string {
  const threads = c.gemm === 'ort' && c.ortThreads !== undefined ? `:${c.ortThreads}t` : '';
  return `${c.backend}/${c.gemm}${threads}${c.simd === false ? ':no-simd' : ''}`;
}

export interface MatMulFigure {
  m: number;
  k: number;
  n: number;
  transposeB: boolean;
  ms: number;
  gflops: number;
}

export interface BenchFigures extends BenchConfig {
  label: string;
  gemmInfo: GemmInfo;
  matMul: MatMulFigure[];
  /**
   * medianMs / minMs / p90Ms: wall clock. cpuMedianMs: this process's CPU time (user +
   * system, all threads) per step — less inflated than wall time when other processes share
   * the cores, but it counts every ONNX Runtime worker thread too. interleaved: whether the
   * steps alternated with other configurations' (see the module note).
   */
  trainStep: {
    medianMs: number; minMs: number; p90Ms: number; cpuMedianMs: number; steps: number;
    firstLoss: number; lastLoss: number; interleaved: boolean;
  };
  embed?: { notesPerSec: number; batch: number; medianMs: number };
  retrieval?: { seconds: number; queries: number; pool: number; dim: number; k: number };
}

export interface BenchResult {
  /** The primary configuration's figures, flattened to the top for `--json` readers. */
  backend: string;
  gemm: BenchGemm;
  reference: ReferenceDims;
  trainStepMs: number;
  trainStepCpuMs: number;
  matMulGflops: Record<string, number>;
  notesPerSec?: number;
  retrievalSeconds?: number;
  runs: BenchFigures[];
  /** trainStep median of each other run (by label) divided by the primary's (> 1: primary is faster). */
  ratios: Record<string, number>;
  machine: { cpus: number; model: string; node: string; loadBefore: number[]; loadAfter: number[] };
  notes: string[];
}

export interface BenchOptions {
  configs: BenchConfig[];
  /** Timed train steps per configuration (after 2 warm-up steps). */
  steps: number;
  /** Also measure embedding throughput and retrieval. */
  extras?: boolean;
  /** Timed repetitions per matMul size (default 15; 3 on the pure-JS cpu kernels). */
  matMulReps?: number;
  /** Untimed warm-up train steps per configuration (default 2). */
  warmup?: number;
  /** Steps each configuration takes per turn when interleaved (default 2). */
  stepsPerTurn?: number;
  /** Called after each configuration, for progress output. */
  onRun?: (f: BenchFigures) => void;
}

export const MATMUL_SIZES: ReadonlyArray<[number, number, number, boolean]> = [
  [768, 128, 384, false], // x·W of the reference stack (b·t = 768 rows, d = 128 → 3d)
  [768, 344, 128, false], // SwiGLU down-projection
  [768, 512, 128, false], // the size quoted in issue 6
  [512, 512, 512, true], // a square product with transposeB (backward-pass shape)
];

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const h = Math.floor(s.length / 2);
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

/**
 * Reads a tensor made inside tf.tidy and disposes it. (Returning the typed array from tidy
 * itself would make tfjs walk every element looking for tensors — seconds for large arrays.)
 */
function readOut(make: () => tf.Tensor): ArrayLike<number> {
  const t = tf.tidy(make);
  const v = t.dataSync();
  t.dispose();
  return v;
}

function timeMs(fn: () => void): number {
  const t = performance.now();
  fn();
  return performance.now() - t;
}

/** Makes `cfg` the active configuration; GEMM call counters keep running (read them as differences). */
async function activate(cfg: BenchConfig): Promise<GemmInfo> {
  await initBackend(cfg.backend);
  const info = setGemm(cfg.gemm === 'ort' ? 'ort' : 'backend');
  setTransposeWrapper(cfg.gemm !== 'shipped');
  if (cfg.gemm === 'ort') setOrtThreads(cfg.ortThreads ?? defaultOrtThreads());
  setSimd(cfg.simd ?? simdDefault);
  return info;
}

function benchMatMul(rng: Rng, reps: number): MatMulFigure[] {
  return MATMUL_SIZES.map(([m, k, n, tb]) => {
    const a = tf.tensor2d(rng.normalArray(m * k, 1), [m, k]);
    const b = tf.tensor2d(rng.normalArray(k * n, 1), tb ? [n, k] : [k, n]);
    const run = () => readOut(() => tf.matMul(a, b, false, tb));
    run();
    const times = Array.from({ length: reps }, () => timeMs(run));
    a.dispose();
    b.dispose();
    const ms = median(times);
    return { m, k, n, transposeB: tb, ms, gflops: (2 * m * k * n) / ms / 1e6 };
  });
}

function benchRetrieval(rng: Rng, queries: number, pool: number, dim: number, k: number): number {
  const q = tf.tensor2d(rng.normalArray(queries * dim, 1), [queries, dim]);
  const p = tf.tensor2d(rng.normalArray(pool * dim, 1), [pool, dim]);
  const run = () =>
    readOut(() => {
      const norm = (x: tf.Tensor2D) => tf.div(x, tf.norm(x, 'euclidean', 1, true));
      const scores = tf.matMul(norm(q), norm(p), false, true); // [queries, pool]
      return tf.topk(scores, k).indices;
    });
  run();
  const s = median([timeMs(run), timeMs(run), timeMs(run)]) / 1000;
  q.dispose();
  p.dispose();
  return s;
}

/** One configuration in flight: its stack and what has been measured so far. */
interface Run {
  cfg: BenchConfig;
  stack: ReferenceStack;
  matMul: MatMulFigure[];
  losses: number[];
  times: number[];
  cpuTimes: number[];
  calls: { ort: number; backend: number };
  slow: boolean;
}

function percentile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

/** Runs `n` train steps of `run`, timing them when `timed`, and counts its GEMM calls. */
function steps(run: Run, n: number, timed: boolean): void {
  const before = gemmInfo().calls;
  for (let i = 0; i < n; i++) {
    let loss = 0;
    const cpu0 = process.cpuUsage();
    const ms = timeMs(() => {
      loss = run.stack.step();
    });
    const cpu = process.cpuUsage(cpu0);
    run.losses.push(loss);
    if (timed) {
      run.times.push(ms);
      run.cpuTimes.push((cpu.user + cpu.system) / 1000);
    }
  }
  const after = gemmInfo().calls;
  run.calls.ort += after.ort - before.ort;
  run.calls.backend += after.backend - before.backend;
}

/**
 * Measures configurations that share one tfjs backend: matMul figures and warm-up one by
 * one, then the timed train steps interleaved (`interleave`) or one configuration after the
 * other, then the extras.
 */
async function benchGroup(
  cfgs: BenchConfig[],
  nSteps: number,
  interleave: boolean,
  opts: { extras?: boolean; matMulReps?: number; warmup?: number; stepsPerTurn?: number },
): Promise<BenchFigures[]> {
  const runs: Run[] = [];
  for (const cfg of cfgs) {
    await activate(cfg);
    const slow = cfg.backend === 'cpu' && cfg.gemm !== 'ort';
    const matMul = benchMatMul(new Rng(7), Math.min(opts.matMulReps ?? 15, slow ? 3 : Infinity));
    const run: Run = { cfg, stack: new ReferenceStack(0), matMul, losses: [], times: [], cpuTimes: [], calls: { ort: 0, backend: 0 }, slow };
    steps(run, opts.warmup ?? 2, false);
    runs.push(run);
  }
  if (interleave) {
    const turn = Math.max(1, opts.stepsPerTurn ?? 2);
    for (let done = 0; done < nSteps; done += turn) {
      for (const run of runs) {
        await activate(run.cfg);
        // One untimed step first: the previous configuration's step leaves other data in the
        // caches, and training never switches configuration between steps.
        steps(run, 1, false);
        steps(run, Math.min(turn, nSteps - done), true);
      }
    }
  } else {
    for (const run of runs) {
      await activate(run.cfg);
      steps(run, nSteps, true);
    }
  }
  const figs: BenchFigures[] = [];
  for (const run of runs) {
    await activate(run.cfg);
    const { stack, times, cpuTimes, losses, slow } = run;
    const fig: BenchFigures = {
      ...run.cfg,
      label: configLabel(run.cfg),
      gemmInfo: { ...gemmInfo(), calls: run.calls },
      matMul: run.matMul,
      trainStep: {
        medianMs: median(times), minMs: Math.min(...times), p90Ms: percentile(times, 0.9), cpuMedianMs: median(cpuTimes),
        steps: times.length, firstLoss: losses[0], lastLoss: losses[losses.length - 1], interleaved: interleave,
      },
    };
    if (opts.extras ?? true) {
      stack.embed();
      const embedTimes = Array.from({ length: slow ? 2 : 5 }, () => timeMs(() => stack.embed()));
      const ms = median(embedTimes);
      fig.embed = { notesPerSec: (stack.dims.batch * 1000) / ms, batch: stack.dims.batch, medianMs: ms };
      const [queries, pool, dim, k] = [1000, 10000, stack.dims.dim, 100];
      fig.retrieval = { seconds: benchRetrieval(new Rng(8), queries, pool, dim, k), queries, pool, dim, k };
    }
    stack.dispose();
    figs.push(fig);
  }
  setTransposeWrapper(true);
  setOrtThreads();
  setSimd(simdDefault);
  resetGemmStats();
  return figs;
}

/** Measures one configuration on its own. */
export async function benchConfig(
  cfg: BenchConfig,
  nSteps: number,
  opts: { extras?: boolean; matMulReps?: number; warmup?: number } = {},
): Promise<BenchFigures> {
  return (await benchGroup([cfg], nSteps, false, opts))[0];
}

export async function runBench(opts: BenchOptions): Promise<BenchResult> {
  if (opts.configs.length === 0) throw new Error('runBench: no configuration to run');
  if (!Number.isInteger(opts.steps) || opts.steps < 1) throw new Error(`runBench: steps must be a positive integer, got ${opts.steps}`);
  const loadBefore = loadavg().map((x) => Math.round(x * 100) / 100);
  // Group by backend in order of first appearance; the primary configuration stays first.
  // wasm as shipped runs on its own: its 10× longer steps, interleaved, slow down the steps of
  // the configurations around them (measured: 58 vs 46–49 ms for wasm/ort).
  const groups = new Map<string, BenchConfig[]>();
  for (const cfg of opts.configs) {
    const key = cfg.gemm === 'shipped' ? `${cfg.backend}/shipped` : cfg.backend;
    groups.set(key, [...(groups.get(key) ?? []), cfg]);
  }
  const byLabel = new Map<string, BenchFigures>();
  for (const cfgs of groups.values()) {
    // The pure-JS cpu kernels are far slower: fewer steps, one configuration at a time.
    const cpu = cfgs[0].backend === 'cpu';
    const nSteps = cpu ? Math.min(opts.steps, 3) : opts.steps;
    for (const fig of await benchGroup(cfgs, nSteps, !cpu && cfgs.length > 1, opts)) {
      byLabel.set(fig.label, fig);
      opts.onRun?.(fig);
    }
  }
  const runs = opts.configs.map((c) => byLabel.get(configLabel(c))!);
  const loadAfter = loadavg().map((x) => Math.round(x * 100) / 100);
  const primary = runs[0];
  const ratios: Record<string, number> = {};
  for (const r of runs.slice(1)) ratios[r.label] = r.trainStep.medianMs / primary.trainStep.medianMs;
  const stackDims = new ReferenceStack(0);
  const reference = stackDims.dims;
  stackDims.dispose();
  const notes = [
    'medians of repeated runs; configurations on one backend take their train steps in turns, so their ratios are fair even when the machine drifts; ' +
      'absolute figures move with the load (loadBefore/loadAfter are os.loadavg)',
    WASM_THREADS_FINDINGS,
  ];
  return {
    backend: primary.backend,
    gemm: primary.gemm,
    reference,
    trainStepMs: primary.trainStep.medianMs,
    trainStepCpuMs: primary.trainStep.cpuMedianMs,
    matMulGflops: Object.fromEntries(primary.matMul.map((f) => [`${f.m}x${f.k}x${f.n}${f.transposeB ? 'T' : ''}`, Math.round(f.gflops * 10) / 10])),
    notesPerSec: primary.embed?.notesPerSec,
    retrievalSeconds: primary.retrieval?.seconds,
    runs,
    ratios,
    machine: { cpus: availableParallelism(), model: cpus()[0]?.model ?? 'unknown', node: process.version, loadBefore, loadAfter },
    notes,
  };
}

/** Human-readable summary: one line per configuration, ratios against the first. */
export function formatBench(r: BenchResult): string {
  const d = r.reference;
  const lines = [
    `reference stack: ${d.layers} layers, d=${d.dim}, ${d.heads} heads, SwiGLU ${d.mlpHidden}, vocab ${d.vocab}, ` +
      `batch ${d.batch} × ${d.seqLen} tokens, ${d.params} params; ${d.loss}; ${d.optimizer}`,
    `machine: ${r.machine.cpus} cores (${r.machine.model}), node ${r.machine.node}, load ${r.machine.loadBefore.join(' ')} → ${r.machine.loadAfter.join(' ')}`,
    '',
    'config            step ms (median, cpu ms)  vs first   matMul GFLOP/s (' + Object.keys(r.matMulGflops).join(', ') + ')   notes/s   retrieval s',
  ];
  const first = r.runs[0].trainStep.medianMs;
  for (const f of r.runs) {
    const name = f.label.padEnd(17);
    const ratio = (f.trainStep.medianMs / first).toFixed(2) + '×';
    const mm = f.matMul.map((x) => x.gflops.toFixed(1)).join(', ');
    lines.push(
      `${name} ${f.trainStep.medianMs.toFixed(1).padStart(10)} (${f.trainStep.cpuMedianMs.toFixed(0).padStart(5)}, n=${f.trainStep.steps})  ${ratio.padStart(7)}   ${mm.padEnd(40)} ` +
        `${f.embed ? f.embed.notesPerSec.toFixed(0).padStart(7) : '      -'}   ${f.retrieval ? f.retrieval.seconds.toFixed(3) : '-'}`,
    );
  }
  lines.push('', ...r.notes.map((n) => `note: ${n}`));
  return lines.join('\n');
}
