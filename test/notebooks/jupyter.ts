/**
 * What the notebook tests need from the machine: a Python with nbconvert/nbclient, the tslab
 * kernel registered with that Python's Jupyter, and a built library in dist/ (notebooks import
 * `../dist`). scripts/notebook.js does the same set-up before starting Jupyter.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
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

/** Registers the tslab kernels ("TypeScript" and "JavaScript") with `python`'s Jupyter. */
export function registerTslab(python: string): void {
  const r = spawnSync(join(BIN_DIR, 'tslab'), ['install', `--python=${python}`], { env: jupyterEnv(), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tslab install --python=${python} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  const list = spawnSync(python, ['-m', 'jupyter_client.kernelspecapp', 'list'], { env: jupyterEnv(), encoding: 'utf8' });
  if (!/\btslab\b/.test(list.stdout)) throw new Error(`tslab kernel not listed by ${python} after install:\n${list.stdout}\n${list.stderr}`);
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
