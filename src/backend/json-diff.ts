/**
 * The first difference between two JSON-like values, for messages that must say what differs
 * (a resume under another configuration, a variant already in a run folder with other settings):
 * the dotted path of the first differing field and both values as JSON ('absent' when missing).
 */
export function firstDifference(a: unknown, b: unknown, path = ''): { path: string; a: string; b: string } | null {
  if (JSON.stringify(a) === JSON.stringify(b)) return null;
  const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
  if (isObj(a) && isObj(b)) {
    for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])]) {
      const d = firstDifference(a[k], b[k], path ? `${path}.${k}` : k);
      if (d) return d;
    }
  }
  const show = (x: unknown) => (x === undefined ? 'absent' : JSON.stringify(x));
  return { path: path || '(the whole value)', a: show(a), b: show(b) };
}
