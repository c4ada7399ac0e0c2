/**
 * `notellm2 bench`: matMul throughput and the reference-stack train step (src/bench) for the
 * chosen backend and GEMM, and, unless --no-compare, the other configurations beside it.
 */
import type { Command } from 'commander';
import { defaultOrtThreads, initBackend, gemmInfo, ortAvailable, simdEnabled } from '../backend';
import { configLabel, formatBench, runBench, type BenchConfig, type BenchGemm } from '../bench';
import { intArg } from './args';

const BACKENDS = ['wasm', 'cpu', 'tensorflow', 'tensorflow-gpu'];
const GEMMS: BenchGemm[] = ['ort', 'backend', 'shipped'];

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description('measure matMul GFLOP/s and the reference-stack train step (medians) on this machine')
    .option('--backend <name>', `tfjs backend: ${BACKENDS.join(' | ')} (default: NOTELLM2_BACKEND or the first that loads)`)
    .option('--gemm <name>', `${GEMMS.join(' | ')} (default: NOTELLM2_GEMM or ort when it loads); shipped = wasm matMul as tfjs ships it`)
    .option('--steps <n>', 'timed train steps per configuration (after 2 warm-up steps; 3 at most on the cpu backend)', intArg('--steps', 1), 20)
    .option('--no-compare', 'measure only the chosen configuration')
    .option('--no-extras', 'skip the embedding-throughput and retrieval figures')
    .option('--json', 'print one JSON object instead of the table')
    .action(async (o: { backend?: string; gemm?: string; steps: number; compare: boolean; extras: boolean; json?: boolean }) => {
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
