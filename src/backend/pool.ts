/**
 * A small concurrency pool: `fn` over `items` with at most `limit` calls in flight, results in
 * input order. Image decoding, dataset writing and the ablation runner's worker processes all
 * bound their parallelism with it. (The maintained npm pools are ESM-only in their current
 * majors; this project builds to CommonJS.)
 */
export async function mapPool<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  if (!(limit >= 1)) throw new Error(`mapPool: limit must be at least 1, got ${limit}`);
  const out = new Array<R>(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.floor(limit), items.length) }, lane));
  return out;
}
