#!/usr/bin/env node
// `npm run notebook`: says which Jupyter front end and which figure renderers it found (and how
// to add what is missing), registers the tslab TypeScript kernel, then starts that front end on
// notebooks/. Builds dist/ first when it is missing (notebooks import '../dist').
//   npm run notebook                          start (extra arguments go to Jupyter, e.g. -- --port 8890 --no-browser)
//   npm run notebook -- --check               only print what was found
// The notebook tests use the same functions (module.exports below).
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const { delimiter, join, resolve } = require('node:path');

const root = resolve(__dirname, '..');
const bin = join(root, 'node_modules', '.bin');
const KERNEL = join(__dirname, 'tslab-kernel.js');

/** Environment for Jupyter and the kernel: node_modules/.bin first on PATH (tslab, tsx). */
function jupyterEnv(extra = {}) {
  // PYDEVD_DISABLE_FILE_VALIDATION quiets a debugger notice Debian's Python prints on every kernel start.
  return { ...process.env, PATH: `${bin}${delimiter}${process.env.PATH || ''}`, PYDEVD_DISABLE_FILE_VALIDATION: '1', ...extra };
}

const PROBE = `
import json, os, sys, sysconfig
from importlib import metadata
def version(name):
    try:
        return metadata.version(name)
    except Exception:
        return None
info = {name: version(name) for name in ["jupyterlab", "notebook", "plotly", "nbconvert", "nbclient", "jupyter_client"]}
try:
    from jupyter_core.paths import jupyter_path
    info["plotlyLabExtension"] = any(os.path.isdir(os.path.join(p, "jupyterlab-plotly")) for p in jupyter_path("labextensions"))
except Exception:
    info["plotlyLabExtension"] = False
info["externallyManaged"] = os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) and sys.prefix == sys.base_prefix
info["executable"] = sys.executable
print(json.dumps(info))
`;

const major = (v) => (v ? Number(String(v).split('.')[0]) : 0);

/** What one Python has: Jupyter packages and their versions, or null when it does not run. */
function probePython(python) {
  const r = spawnSync(python, ['-c', PROBE], { encoding: 'utf8', env: jupyterEnv() });
  if (r.status !== 0) return null;
  try {
    return { python, ...JSON.parse(r.stdout) };
  } catch {
    return null;
  }
}

/** The front end a probed Python would serve: JupyterLab ≥ 3, Notebook 7, or the classic Notebook. */
function frontEnd(info) {
  if (!info) return null;
  if (major(info.jupyterlab) >= 3) return { name: `JupyterLab ${info.jupyterlab}`, module: 'jupyterlab', modern: major(info.jupyterlab) >= 4 };
  if (major(info.notebook) >= 7) return { name: `Notebook ${info.notebook}`, module: 'notebook', modern: true };
  if (info.notebook) return { name: `classic Notebook ${info.notebook}`, module: 'notebook', modern: false };
  return null;
}

function rank(info) {
  const fe = frontEnd(info);
  if (!fe) return 0;
  return (fe.module === 'jupyterlab' ? 3 : fe.modern ? 2 : 1) + (info.plotlyLabExtension && fe.modern ? 0.5 : 0);
}

/**
 * Pythons to look at ($NOTELLM2_PYTHON, Debian's /usr/bin/python3, python3 on PATH), probed. The
 * chosen one is $NOTELLM2_PYTHON when it serves notebooks, else the one with the best front end
 * (JupyterLab, then Notebook 7, then classic; with the plotly renderer before without).
 */
function findJupyter() {
  const names = [...new Set([process.env.NOTELLM2_PYTHON, '/usr/bin/python3', 'python3'].filter(Boolean))];
  const found = names.map((py) => probePython(py) ?? { python: py, missing: true });
  const usable = found.filter((f) => !f.missing && frontEnd(f));
  const explicit = process.env.NOTELLM2_PYTHON && usable.find((f) => f.python === process.env.NOTELLM2_PYTHON);
  const chosen = explicit || usable.slice().sort((a, b) => rank(b) - rank(a))[0] || null;
  return { found, chosen };
}

function findChromium() {
  const env = process.env.NOTELLM2_CHROMIUM;
  if (env) return existsSync(env) ? env : undefined;
  return ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => existsSync(p));
}

function plotlyJsVersion() {
  try {
    return require(join(root, 'node_modules', 'plotly.js-dist-min', 'package.json')).version;
  } catch {
    return undefined;
  }
}

/** The command that gives `info`'s Python (or a new one) JupyterLab with the plotly renderer. */
function addPlotlyCommand(info) {
  const fe = frontEnd(info);
  if (info && !info.externallyManaged && fe && fe.modern) return `${info.python} -m pip install plotly`;
  if (info && !info.externallyManaged) return `${info.python} -m pip install jupyterlab plotly`;
  // Debian's Python refuses pip installs (PEP 668): a virtual environment of its own.
  const venv = '~/.venvs/notellm2-jupyter';
  return `python3 -m venv ${venv} && ${venv}/bin/pip install jupyterlab plotly && NOTELLM2_PYTHON=${venv}/bin/python npm run notebook`;
}

/** The report `npm run notebook` prints: front end, renderers, what is missing and how to add it. */
function describe({ found, chosen }) {
  const lines = [];
  for (const f of found) {
    if (f.missing) {
      lines.push(`notebook: ${f.python}: not found`);
      continue;
    }
    const fe = frontEnd(f);
    const have = [f.jupyterlab && `jupyterlab ${f.jupyterlab}`, f.notebook && `notebook ${f.notebook}`, f.plotly && `plotly ${f.plotly}`].filter(Boolean);
    lines.push(`notebook: ${f.python}: ${fe ? fe.name : 'no Jupyter front end'}${have.length ? ` (${have.join(', ')})` : ''}`);
  }
  if (!chosen) {
    lines.push(
      'notebook: no Jupyter front end found. Install one, then run `npm run notebook` again:',
      '  Debian/Ubuntu:  sudo apt-get install jupyter-notebook python3-nbconvert python3-nbclient   (classic Notebook 6)',
      `  JupyterLab 4 with the plotly renderer:  ${addPlotlyCommand(null)}`,
      'Set NOTELLM2_PYTHON to use a particular Python.',
    );
    return lines.join('\n');
  }
  const fe = frontEnd(chosen);
  lines.push(`notebook: front end: ${fe.name} (${chosen.python})`);
  lines.push('notebook: figure renderers:');
  if (fe.modern && chosen.plotlyLabExtension) {
    lines.push(`  found    interactive figures in every notebook, trusted or not (reopened, executed headless, from git): plotly ${chosen.plotly} renderer`);
  } else if (fe.modern) {
    lines.push(`  MISSING  interactive figures in untrusted notebooks (reopened, executed headless, from git): the Python \`plotly\` package. Add it: ${addPlotlyCommand(chosen)}`);
  } else {
    lines.push(
      `  MISSING  interactive figures in untrusted notebooks: the classic Notebook has no plotly renderer; use JupyterLab 4 or Notebook 7 with the Python \`plotly\` package: ${addPlotlyCommand(chosen)}`,
    );
  }
  const chromium = findChromium();
  lines.push(
    chromium
      ? `  found    static pictures saved with every figure (what an untrusted view shows): Chromium ${chromium}`
      : '  MISSING  static pictures saved with every figure (an untrusted view then shows only a note): Chromium. Add it: sudo apt-get install chromium (or set NOTELLM2_CHROMIUM)',
  );
  const pj = plotlyJsVersion();
  lines.push(
    pj
      ? `  found    interactive figures in cells just run and in trusted notebooks: plotly.js ${pj} from node_modules`
      : '  MISSING  plotly.js from node_modules: run npm install',
  );
  lines.push(
    chosen.nbconvert && chosen.nbclient
      ? `notebook: headless execution (jupyter nbconvert --to notebook --execute): nbconvert ${chosen.nbconvert}, nbclient ${chosen.nbclient}`
      : 'notebook: headless execution: nbconvert/nbclient not found (Debian: sudo apt-get install python3-nbconvert python3-nbclient)',
  );
  return lines.join('\n');
}

/**
 * Registers the "TypeScript" (tslab) and "JavaScript" (jslab) kernels with `python`'s Jupyter,
 * started through scripts/tslab-kernel.js. `user`: the per-user kernel folder (under
 * $JUPYTER_DATA_DIR when set, which the tests use to stay out of the real one).
 */
function installKernel(python, opts = {}) {
  const args = ['install', `--python=${python}`, `--binary=${KERNEL}`];
  if (opts.user) args.push('--user');
  const r = spawnSync(join(bin, 'tslab'), args, { env: jupyterEnv(opts.env), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tslab ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
}

function main() {
  const argv = process.argv.slice(2);
  const check = argv.includes('--check');
  const found = findJupyter();
  console.log(describe(found));
  if (check) process.exit(found.chosen ? 0 : 1);
  if (!found.chosen) process.exit(1);
  const { python } = found.chosen;
  const fe = frontEnd(found.chosen);

  if (!existsSync(join(root, 'dist', 'index.js'))) {
    console.log('notebook: building dist/ (npm run build)');
    const b = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit', env: jupyterEnv() });
    if (b.status !== 0) process.exit(b.status || 1);
  }
  try {
    installKernel(python);
  } catch (err) {
    console.error(`notebook: registering the tslab kernel with ${python} failed: ${err.message}`);
    process.exit(1);
  }
  const args = ['-m', fe.module, `--notebook-dir=${join(root, 'notebooks')}`, ...argv];
  // Jupyter refuses to run as root without this flag; containers often run as root.
  if (process.getuid && process.getuid() === 0 && !args.includes('--allow-root')) args.push('--allow-root');
  console.log(`notebook: ${python} ${args.join(' ')}`);
  const child = spawn(python, args, { stdio: 'inherit', env: jupyterEnv(), cwd: root });
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => process.exit(signal ? 1 : code ?? 0));
}

module.exports = { jupyterEnv, probePython, frontEnd, findJupyter, describe, installKernel, KERNEL };

if (require.main === module) main();
