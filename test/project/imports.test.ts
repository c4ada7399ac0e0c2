/**
 * The module graph of src/ (every static `import … from './…'`, type-only imports included):
 * no cycles, and no layer importing from a layer below it (docs/architecture.md "Layers").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, existsSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const SRC = resolve('src');

function files(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) files(p, out);
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** Resolves a relative specifier the way the build does: `x.ts` or `x/index.ts`. */
function resolveSpec(from: string, spec: string): string | null {
  const base = resolve(dirname(from), spec);
  for (const cand of [`${base}.ts`, join(base, 'index.ts')]) if (existsSync(cand)) return cand;
  return null;
}

function graph(): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const f of files(SRC)) {
    const text = readFileSync(f, 'utf8');
    const deps: string[] = [];
    for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+'(\.[^']+)'/g)) {
      const target = resolveSpec(f, m[1]);
      assert.ok(target, `${relative(SRC, f)}: import '${m[1]}' does not resolve`);
      deps.push(target);
    }
    g.set(f, deps);
  }
  return g;
}

/** Strongly connected components with more than one module (or a self-import): the cycles. */
function cycles(g: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of g.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || (g.get(v) ?? []).includes(v)) out.push(comp.map((c) => relative(SRC, c)).sort());
    }
  };
  for (const v of g.keys()) if (!idx.has(v)) visit(v);
  return out;
}

test('src/ has no import cycle', () => {
  assert.deepEqual(cycles(graph()), []);
});

test('the cycle finder finds a planted cycle', () => {
  const g = new Map([
    ['/a.ts', ['/b.ts']],
    ['/b.ts', ['/c.ts']],
    ['/c.ts', ['/a.ts']],
    ['/d.ts', ['/a.ts']],
  ]);
  assert.equal(cycles(g).length, 1);
});

/** Layer order, top to bottom; a layer may import only from itself and the layers before it. */
const LAYERS = ['backend', 'data', 'model', 'train', 'eval', 'experiments', 'viz', 'bench', 'cli'];

test('layers import only from the layers above them', () => {
  const layerOf = (f: string) => relative(SRC, f).split('/')[0];
  const bad: string[] = [];
  for (const [f, deps] of graph()) {
    const from = LAYERS.indexOf(layerOf(f));
    if (from < 0) continue; // cli.ts, index.ts: the top
    for (const d of deps) {
      const to = LAYERS.indexOf(layerOf(d));
      if (to > from) bad.push(`${relative(SRC, f)} → ${relative(SRC, d)}`);
    }
  }
  assert.deepEqual(bad, []);
});
