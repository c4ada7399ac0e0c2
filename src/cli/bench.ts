/**
 * `notellm2 bench`: matMul throughput and the reference-stack train step (src/bench) for the
 * chosen backend and GEMM, and, unless --no-compare, the other configurations beside it.
 * With --shape: one representation training step of a real-size LLM per --lm-train mode
 * (src/bench/scale.ts), each mode in a child process of this command.
 */
import { fork } from 'node:child_process';
import { Option, type Command } from 'commander';
import { defaultOrtThreads, initBackend, gemmInfo, ortAvailable, setOrtThreads, simdEnabled } from '../backend';
import { configLabel, formatBench, runBench, type BenchConfig, type BenchGemm } from '../bench';
import { benchScaleMode, formatScaleBench, runScaleBench, SCALE_MODES, SCALE_SHAPES, type ScaleModeFigures } from '../bench/scale';
import { parseLMTrain } from '../model/lm-train';
import { intArg } from './args';

interface ScaleCliOptions {
  backend?: string;
  shape: string;
  modes: string;
  layers?: number;
  steps: number;
  ortThreads?: number;
  oneMode?: string;
  json?: boolean;
}

/** Message a mode's child process sends back. */
type ChildReply = { ok: ScaleModeFigures } | { error: string };

/** Runs one mode in a child process of this command (a step that overruns the wasm heap ends only that process). */
function runModeInChild(mode: string, o: ScaleCliOptions): Promise<ScaleModeFigures | { why: string }> {
  const args = ['bench', '--shape', o.shape, '--one-mode', mode, '--steps', String(o.steps)];
  if (o.backend) args.push('--backend', o.backend);
  if (o.layers !== undefined) args.push('--layers', String(o.layers));
  if (o.ortThreads !== undefined) args.push('--ort-threads', String(o.ortThreads));
  return new Promise((resolve) => {
    const child = fork(process.argv[1], args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    let reply: ChildReply | null = null;
    let stderr = '';
    child.stderr?.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString()).slice(-2000);
    });
    child.on('message', (m) => {
      reply = m as ChildReply;
    });
    child.on('exit', (code, signal) => {
      const r = reply as ChildReply | null;
      if (r && 'ok' in r) resolve(r.ok);
      else if (r && 'error' in r) resolve({ why: r.error });
      else {
        const tail = stderr.trim().split('\n').slice(-3).join(' | ');
        resolve({ why: `the step's process ended (${signal ?? `exit code ${code}`})${tail ? `: ${tail}` : ''}` });
      }
    });
  });
}

async function scaleBench(o: ScaleCliOptions): Promise<void> {
  if (!SCALE_SHAPES[o.shape]) throw new Error(`--shape "${o.shape}" is not one of ${Object.keys(SCALE_SHAPES).join(', ')}`);
  const modes = o.modes.split(',').map((m) => m.trim()).filter(Boolean);
  for (const m of modes) parseLMTrain(m);
  const info = await initBackend(o.backend ?? 'wasm');
  if (o.ortThreads !== undefined) setOrtThreads(o.ortThreads);
  if (o.oneMode !== undefined) {
    // The child's side: one mode, figures back over IPC.
    let reply: ChildReply;
    try {
      reply = { ok: benchScaleMode(SCALE_SHAPES[o.shape], o.oneMode, { layers: o.layers, steps: o.steps }) };
    } catch (e) {
      reply = { error: `${(e as Error).message}` };
    }
    if (process.send) await new Promise<void>((res) => process.send!(reply, () => res()));
    else console.log(JSON.stringify(reply));
    return;
  }
  const result = await runScaleBench(
    o.shape,
    modes,
    async (m) => {
      if (!o.json) console.error(`bench: ${o.shape} ${m} …`);
      return runModeInChild(m, o);
    },
    { layers: o.layers, backend: info.name, ortThreads: o.ortThreads },
  );
  console.log(o.json ? JSON.stringify(result, null, 2) : formatScaleBench(result));
}

const BACKENDS = ['wasm', 'cpu', 'tensorflow', 'tensorflow-gpu'];
const GEMMS: BenchGemm[] = ['ort', 'backend', 'shipped'];

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description('measure matMul GFLOP/s and the reference-stack train step (medians) on this machine; with --shape, a real-size LLM step per training mode')
    .option('--backend <name>', `tfjs backend: ${BACKENDS.join(' | ')} (default: NOTELLM2_BACKEND or the first that loads)`)
    .option('--gemm <name>', `${GEMMS.join(' | ')} (default: NOTELLM2_GEMM or ort when it loads); shipped = wasm matMul as tfjs ships it`)
    .option('--steps <n>', 'timed train steps per configuration (after 2 warm-up steps; 3 at most on the cpu backend; with --shape 3, after 1)', intArg('--steps', 1), 20)
    .option('--no-compare', 'measure only the chosen configuration')
    .option('--no-extras', 'skip the embedding-throughput and retrieval figures')
    .option('--json', 'print one JSON object instead of the table')
    .option('--shape <name>', `time a real-size LLM's representation training step per mode instead: ${Object.keys(SCALE_SHAPES).join(' | ')}`)
    .option('--modes <list>', `with --shape: the --lm-train modes to time, comma-separated`, SCALE_MODES.join(','))
    .option('--layers <n>', 'with --shape: override the layer count (the same width, cheaper)', intArg('--layers', 1))
    .option('--ort-threads <n>', 'with --shape: ONNX Runtime intra-op threads (default NOTELLM2_ORT_THREADS or the cores)', intArg('--ort-threads', 1))
    .addOption(new Option('--one-mode <mode>', 'internal: run one mode and report over IPC').hideHelp())
    .action(async (o: { backend?: string; gemm?: string; steps: number; compare: boolean; extras: boolean; json?: boolean; shape?: string; modes: string; layers?: number; ortThreads?: number; oneMode?: string }, cmd: Command) => {
      if (o.shape !== undefined) {
        // --steps defaults to 20 for the reference stack; a real-size step takes seconds: 3 unless given.
        const steps = cmd.getOptionValueSource('steps') === 'default' ? 3 : o.steps;
        await scaleBench({ ...o, shape: o.shape, steps });
        return;
      }
      if (o.backend !== undefined && !BACKENDS.includes(o.backend)) {
        throw new Error(`--backend "${o.backend}" is not one of ${BACKENDS.join(', ')}`);
      }
      if (o.gemm !== undefined && !(GEMMS as string[]).includes(o.gemm)) {
        throw new Error(`--gemm "${o.gemm}" is not one of ${GEMMS.join(', ')}`);
      }
      const info = await initBackend(o.backend);
      const backend = info.name;
      const gemm: BenchGemm = (o.gemm as BenchGemm | undefined) ?? gemmInfo().active;
      const configs: BenchConfig[] = [{ backend, gemm }];
      if (o.compare) {
        const add = (c: BenchConfig) => {
          if (!configs.some((x) => configLabel(x) === configLabel(c))) configs.push(c);
        };
        if (backend === 'wasm' || backend === 'cpu') {
          add({ backend: 'wasm', gemm: 'ort' });
          // ORT on one thread beside the default pool: what the extra threads buy here.
          if (defaultOrtThreads() > 1) add({ backend: 'wasm', gemm: 'ort', ortThreads: 1 });
          // and without the SIMD kernels: what they buy.
          if (simdEnabled()) add({ backend: 'wasm', gemm: 'ort', simd: false });
          add({ backend: 'wasm', gemm: 'backend' });
          add({ backend: 'wasm', gemm: 'shipped' });
          add({ backend: 'cpu', gemm: 'ort' });
          add({ backend: 'cpu', gemm: 'backend' });
        }
        // ORT may be unavailable here: drop its configurations rather than fail the comparison.
        if (!ortAvailable()) {
          for (let i = configs.length - 1; i > 0; i--) if (configs[i].gemm === 'ort') configs.splice(i, 1);
        }
      }
      const result = await runBench({
        configs,
        steps: o.steps,
        extras: o.extras,
        onRun: o.json ? undefined : (f) => console.error(`bench: ${f.label} step median ${f.trainStep.medianMs.toFixed(1)} ms`),
      });
      console.log(o.json ? JSON.stringify(result, null, 2) : formatBench(result));
    });
}
