/**
 * Test-only crash injection, for the crash-consistency tests (test/cli/crash-resume.test.ts):
 * `NOTELLM2_TEST_KILL=<point>[@<n>]` makes the process SIGKILL itself the n-th time (default:
 * the first) it reaches the named point, exactly as an out-of-memory kill or a power cut would
 * stop it — no handler, no `finally`, no flushed buffers. Several points may be listed,
 * separated by commas; the first one reached the right number of times fires.
 *
 * The points (each spelled once, where it is reached):
 *
 *   train:step                 after an optimiser step, before any checkpoint of that step
 *   save:<slot>:staging        inside a checkpoint write: model.safetensors is staged, the rest is not
 *   save:<slot>:staged         the new checkpoint is complete in its staging folder
 *   save:<slot>:moved-aside    between the two renames: the previous checkpoint is moved aside,
 *                              the new one not yet in place (`<slot>` is `last` or `best`)
 *   save:<slot>:swapped        the new checkpoint is in place, the previous not yet removed
 *
 * Unset (always, outside those tests) it costs one environment lookup per call.
 */
const ENV = 'NOTELLM2_TEST_KILL';

let plan: Map<string, number> | null | undefined;
const hits = new Map<string, number>();

function parse(spec: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^([^@]+)(?:@(\d+))?$/.exec(part);
    if (!m || (m[2] !== undefined && Number(m[2]) < 1)) throw new Error(`${ENV}: expected <point>[@<n>] (n ≥ 1), got "${part}"`);
    out.set(m[1], m[2] === undefined ? 1 : Number(m[2]));
  }
  return out;
}

/** Marks that the process reached `point`; kills it there when NOTELLM2_TEST_KILL asks for it. */
export function crashPoint(point: string): void {
  if (plan === undefined) plan = process.env[ENV] ? parse(process.env[ENV]!) : null;
  if (plan === null) return;
  const want = plan.get(point);
  if (want === undefined) return;
  const n = (hits.get(point) ?? 0) + 1;
  hits.set(point, n);
  if (n === want) process.kill(process.pid, 'SIGKILL');
}
