/**
 * `npm run notebook` (scripts/notebook.js) tells the user which front end and which figure
 * renderers it found, and how to add what is missing; its kernel shim makes headless runs keep
 * execution counts (checked on real notebooks in notebooks.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, findJupyterPython, launcher } from './jupyter';

const lab = { python: '/venv/bin/python', jupyterlab: '4.6.4', notebook: '7.6.3', plotly: '7.1.0', plotlyLabExtension: true, nbconvert: '7.17.1', nbclient: '0.11.0', externallyManaged: false };
const debian = { python: '/usr/bin/python3', jupyterlab: null, notebook: '6.4.12', plotly: null, plotlyLabExtension: false, nbconvert: '6.5.3', nbclient: '0.7.2', externallyManaged: true };

test('launcher report: JupyterLab with the plotly package has every renderer', () => {
  const text = launcher.describe({ found: [lab], chosen: lab });
  assert.match(text, /front end: JupyterLab 4\.6\.4 \(\/venv\/bin\/python\)/);
  assert.match(text, /found {4}interactive figures in every notebook, trusted or not .*plotly 7\.1\.0 renderer/);
  assert.match(text, /interactive figures in cells just run and in trusted notebooks: plotly\.js \d+\.\d+\.\d+ from node_modules/);
  assert.match(text, /headless execution .*nbconvert 7\.17\.1, nbclient 0\.11\.0/);
  assert.equal(text.includes('MISSING  interactive'), false);
});

test('launcher report: JupyterLab without plotly names the package and the pip command for that Python', () => {
  const noPlotly = { ...lab, plotly: null, plotlyLabExtension: false };
  const text = launcher.describe({ found: [noPlotly], chosen: noPlotly });
  assert.match(text, /MISSING {2}interactive figures in untrusted notebooks .*the Python `plotly` package\. Add it: \/venv\/bin\/python -m pip install plotly/);
});

test('launcher report: classic Notebook from Debian points to JupyterLab with plotly in a virtual environment (no pip into the system Python)', () => {
  const text = launcher.describe({ found: [debian], chosen: debian });
  assert.match(text, /front end: classic Notebook 6\.4\.12 \(\/usr\/bin\/python3\)/);
  assert.match(text, /MISSING {2}interactive figures in untrusted notebooks: the classic Notebook has no plotly renderer; use JupyterLab 4 or Notebook 7 with the Python `plotly` package: python3 -m venv (\S+) && \1\/bin\/pip install jupyterlab plotly && NOTELLM2_PYTHON=\1\/bin\/python npm run notebook/);
  assert.equal(/pip install.*--break-system-packages|\/usr\/bin\/python3 -m pip/.test(text), false);
});

test('launcher report: no front end at all says how to install one', () => {
  const text = launcher.describe({ found: [{ python: 'python3', missing: true }], chosen: null });
  assert.match(text, /python3: not found/);
  assert.match(text, /no Jupyter front end found/);
  assert.match(text, /apt-get install jupyter-notebook python3-nbconvert python3-nbclient/);
  assert.match(text, /JupyterLab 4 with the plotly renderer: {2}python3 -m venv/);
});

const python = findJupyterPython();
test('npm run notebook -- --check on this machine names the front end it would start', { skip: python ? false : 'no Jupyter here' }, () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'notebook.js'), '--check'], { encoding: 'utf8', env: { ...process.env, NOTELLM2_PYTHON: python } });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /notebook: front end: (JupyterLab|Notebook|classic Notebook) \d/);
  assert.match(r.stdout, /figure renderers:/);
});
