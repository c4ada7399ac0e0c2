#!/usr/bin/env node
// `npm run notebook`: starts Jupyter on notebooks/ with the tslab TypeScript kernel registered.
// Builds dist/ first when it is missing (notebooks import '../dist'). Extra arguments go to Jupyter,
// e.g. `npm run notebook -- --port 8890 --no-browser`.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const { delimiter, join, resolve } = require('node:path');

const root = resolve(__dirname, '..');
const bin = join(root, 'node_modules', '.bin');
// The kernel is started as `tslab` from PATH, so node_modules/.bin must be on it for Jupyter.
const env = { ...process.env, PATH: `${bin}${delimiter}${process.env.PATH || ''}`, PYDEVD_DISABLE_FILE_VALIDATION: '1' };

function ok(cmd, args) {
  return spawnSync(cmd, args, { stdio: 'ignore', env }).status === 0;
}

// A Python whose Jupyter can serve notebooks: $NOTELLM2_PYTHON, Debian's python3, or python3 on PATH.
const candidates = [process.env.NOTELLM2_PYTHON, '/usr/bin/python3', 'python3'].filter(Boolean);
let python;
let app;
for (const py of candidates) {
  if (ok(py, ['-c', 'import jupyterlab'])) { python = py; app = 'jupyterlab'; break; }
  if (ok(py, ['-c', 'import notebook'])) { python = py; app = 'notebook'; break; }
}
if (!python) {
  console.error(
    [
      'notebook: Jupyter was not found (looked for the Python modules `jupyterlab` or `notebook` in ' + candidates.join(', ') + ').',
      'Install it, then run `npm run notebook` again:',
      '  Debian/Ubuntu:  sudo apt-get install jupyter-notebook python3-nbconvert python3-nbclient',
      '  elsewhere:      python3 -m pip install notebook   (or jupyterlab)',
      'Set NOTELLM2_PYTHON to use a particular Python.',
    ].join('\n'),
  );
  process.exit(1);
}

if (!existsSync(join(root, 'dist', 'index.js'))) {
  console.log('notebook: building dist/ (npm run build)');
  const b = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit', env });
  if (b.status !== 0) process.exit(b.status || 1);
}

const reg = spawnSync(join(bin, 'tslab'), ['install', `--python=${python}`], { stdio: 'inherit', env });
if (reg.status !== 0) {
  console.error(`notebook: registering the tslab kernel with ${python} failed`);
  process.exit(reg.status || 1);
}

const args = ['-m', app === 'jupyterlab' ? 'jupyterlab' : 'notebook', `--notebook-dir=${join(root, 'notebooks')}`, ...process.argv.slice(2)];
// Jupyter refuses to run as root without this flag; containers often run as root.
if (process.getuid && process.getuid() === 0 && !args.includes('--allow-root')) args.push('--allow-root');
console.log(`notebook: ${python} ${args.join(' ')}`);
const child = spawn(python, args, { stdio: 'inherit', env, cwd: root });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(signal ? 1 : code ?? 0));
