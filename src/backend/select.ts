/**
 * Backend selection: tfjs-node-gpu → tfjs-node → wasm → cpu, overridable with
 * NOTELLM2_BACKEND. The native builds are optional peers (their install downloads
 * libtensorflow, which is impossible where only the npm registry is reachable), so they are
 * picked up only when they load.
 */
import { initGemm } from './gemm';
import { tf } from './tf';
import { installWasmKernels } from './wasm-kernels';

export type BackendName = 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';
export const BACKEND_ORDER: readonly BackendName[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

export interface BackendInfo {
  /** The tfjs backend now active (tfjs's own name: 'tensorflow', 'wasm' or 'cpu'). */
  name: string;
  /** What was asked for and why this one was chosen. */
  reason: string;
}

function tryRequire(id: string): boolean {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require(id);
    return true;
  } catch {
    return false;
  }
}

async function activate(name: BackendName): Promise<boolean> {
  switch (name) {
    // A package may resolve under these names without being the native build (an npm alias of
    // @tensorflow/tfjs-node to plain tfjs, as some packages' overrides install), so the test
    // is whether the 'tensorflow' backend got registered, not whether require() succeeded.
    case 'tensorflow-gpu':
      if (!tryRequire('@tensorflow/tfjs-node-gpu') || !tf.findBackendFactory('tensorflow')) return false;
      return tf.setBackend('tensorflow');
    case 'tensorflow':
      if (!tryRequire('@tensorflow/tfjs-node') || !tf.findBackendFactory('tensorflow')) return false;
      return tf.setBackend('tensorflow');
    case 'wasm':
      if (!tryRequire('@tensorflow/tfjs-backend-wasm')) return false;
      return tf.setBackend('wasm');
    case 'cpu':
      return tf.setBackend('cpu');
    default: {
      const never: never = name;
      throw new Error(`unknown backend ${never}`);
    }
  }
}

/**
 * Installs this folder's fast-path kernels on the active backend: on wasm the transpose
 * wrapper and UnsortedSegmentSum; on wasm and cpu the GEMM routing (NOTELLM2_GEMM).
 */
function installFastPaths(name: string): void {
  if (name === 'wasm') installWasmKernels();
  initGemm();
}

let hooks: Array<(name: string) => void> = [];
/** Lets backend/ register its fast-path kernels once a backend is active. */
export function onBackendReady(hook: (name: string) => void): void {
  hooks.push(hook);
}

/**
 * Activates a backend. With no argument, NOTELLM2_BACKEND decides, else the first of
 * BACKEND_ORDER that loads. An explicit name that cannot load is an error (no silent fallback).
 */
export async function initBackend(requested?: string): Promise<BackendInfo> {
  // tfjs prints an advert for tfjs-node the first time its cpu backend holds data; its
  // production flag silences that (and only its other warnings).
  tf.env().set('PROD', true);
  const want = requested ?? process.env.NOTELLM2_BACKEND ?? '';
  if (want) {
    if (!(BACKEND_ORDER as readonly string[]).includes(want)) {
      throw new Error(`NOTELLM2_BACKEND/backend "${want}" is not one of ${BACKEND_ORDER.join(', ')}`);
    }
    if (!(await activate(want as BackendName))) {
      throw new Error(`backend "${want}" was requested but could not be loaded`);
    }
    await tf.ready();
    installFastPaths(tf.getBackend());
    for (const h of hooks) h(tf.getBackend());
    return { name: tf.getBackend(), reason: `requested "${want}"` };
  }
  for (const name of BACKEND_ORDER) {
    if (await activate(name)) {
      await tf.ready();
      installFastPaths(tf.getBackend());
      for (const h of hooks) h(tf.getBackend());
      return { name: tf.getBackend(), reason: `first of ${BACKEND_ORDER.join(' → ')} that loaded` };
    }
  }
  throw new Error('no tfjs backend could be activated');
}

/** For tests: forget registered hooks. */
export function resetBackendHooks(): void {
  hooks = [];
}
