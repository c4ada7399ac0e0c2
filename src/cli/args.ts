/** Argument parsers for commander options, with errors that name the option and the expected value. */
export function intArg(name: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`${name}: expected an integer ≥ ${min}, got "${v}"`);
    return n;
  };
}

export function numArg(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}: expected a positive number, got "${v}"`);
    return n;
  };
}

/** Which checkpoint of a variant folder: best (lowest validation loss) or last. */
export function checkpointArg(name: string) {
  return (v: string): 'best' | 'last' => {
    if (v !== 'best' && v !== 'last') throw new Error(`${name}: expected best or last, got "${v}"`);
    return v;
  };
}
