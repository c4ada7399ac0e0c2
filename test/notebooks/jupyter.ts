/**
 * What the notebook tests need from the machine: a Python with nbconvert/nbclient, the tslab
 * kernel registered with that Python's Jupyter, and a built library in dist/ (notebooks import
 * `../dist`). The kernel is registered by the same code as `npm run notebook`
 * (scripts/notebook.js), but into Jupyter folders of the test's own, so a test run neither
 * reads nor changes the user's kernels, trust database or settings.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';

export const ROOT = resolve(__dirname, '../..');
export const NOTEBOOK_DIR = join(ROOT, 'notebooks');
export const BIN_DIR = join(ROOT, 'node_modules', '.bin');

/** Environment for Jupyter and the tslab kernel: node_modules/.bin first on PATH. */
export function jupyterEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PATH: `${BIN_DIR}${delimiter}${process.env.PATH ?? ''}`,
    // Quiets a debugger notice that Debian's Python prints on every kernel start.
    PYDEVD_DISABLE_FILE_VALIDATION: '1',
    ...extra,
  };
}

/**
 * A Python that can execute notebooks: $NOTELLM2_PYTHON, else Debian's /usr/bin/python3 (where
 * apt installs nbconvert), else the first python3 on PATH.
 */
export function findJupyterPython(): string | undefined {
  const candidates = [process.env.NOTELLM2_PYTHON, '/usr/bin/python3', 'python3'].filter((p): p is string => !!p);
  for (const py of candidates) {
    const r = spawnSync(py, ['-c', 'import nbconvert, nbclient, jupyter_client'], { stdio: 'ignore' });
    if (r.status === 0) return py;
  }
  return undefined;
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const launcher = require('../../scripts/notebook.js') as {
  installKernel(python: string, opts: { user?: boolean; env?: Record<string, string> }): void;
  describe(found: { found: Record<string, unknown>[]; chosen: Record<string, unknown> | null }): string;
  probePython(python: string): { plotlyLabExtension?: boolean } | null;
  KERNEL: string;
};

/** Jupyter's data, config and runtime folders under `dir` (created), as environment variables. */
export function jupyterDirs(dir: string): Record<string, string> {
  const env = { JUPYTER_DATA_DIR: join(dir, 'data'), JUPYTER_CONFIG_DIR: join(dir, 'config'), JUPYTER_RUNTIME_DIR: join(dir, 'runtime') };
  for (const d of Object.values(env)) mkdirSync(d, { recursive: true });
  return env;
}

/**
 * Registers the tslab kernels ("TypeScript" and "JavaScript", started through
 * scripts/tslab-kernel.js) in the per-user kernel folder of `dirs`, and checks that `python`'s
 * Jupyter lists the TypeScript one there.
 */
export function registerTslab(python: string, dirs: Record<string, string>): void {
  launcher.installKernel(python, { user: true, env: dirs });
  const list = spawnSync(python, ['-m', 'jupyter_client.kernelspecapp', 'list'], { env: jupyterEnv(dirs), encoding: 'utf8' });
  const line = list.stdout.split('\n').find((l) => /^\s*tslab\s/.test(l));
  if (!line || !line.includes(dirs.JUPYTER_DATA_DIR)) throw new Error(`tslab kernel not listed in ${dirs.JUPYTER_DATA_DIR} by ${python}:\n${list.stdout}\n${list.stderr}`);
}

function newestMtime(dir: string, ext: string): number {
  let newest = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    newest = Math.max(newest, st.isDirectory() ? newestMtime(p, ext) : name.endsWith(ext) ? st.mtimeMs : 0);
  }
  return newest;
}

/**
 * Builds dist/ (`npm run build`, what `npm install` runs through `prepare`) when it is missing
 * or older than a source file, so notebooks never test a stale library. (tsc leaves an output
 * file untouched when its content is unchanged, so the newest output is compared, not index.js.)
 */
export function ensureBuilt(): { built: boolean } {
  const dist = join(ROOT, 'dist');
  if (existsSync(join(dist, 'index.js')) && newestMtime(dist, '.js') >= newestMtime(join(ROOT, 'src'), '.ts')) return { built: false };
  const r = spawnSync('npm', ['run', 'build'], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`npm run build failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return { built: true };
}

export function listNotebooks(): string[] {
  if (!existsSync(NOTEBOOK_DIR)) return [];
  return readdirSync(NOTEBOOK_DIR).filter((f) => f.endsWith('.ipynb')).sort();
}
