import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mapPool } from '../../src/backend/pool';

test('mapPool: results in input order, never more than `limit` calls in flight', async () => {
  let inFlight = 0;
  let peak = 0;
  const delays = [30, 5, 20, 1, 15, 2, 8];
  const out = await mapPool(delays, 3, async (ms, i) => {
    inFlight++;
    peak = Math.max(peak, inFlight);
    await new Promise((r) => setTimeout(r, ms));
    inFlight--;
    return `${i}:${ms}`;
  });
  assert.deepEqual(out, delays.map((ms, i) => `${i}:${ms}`));
  assert.equal(peak, 3);
});

test('mapPool: empty input, a limit above the item count, a rejected call, a bad limit', async () => {
  assert.deepEqual(await mapPool([], 4, async () => 1), []);
  let peak = 0;
  let inFlight = 0;
  await mapPool([1, 2], 8, async () => {
    peak = Math.max(peak, ++inFlight);
    await new Promise((r) => setTimeout(r, 5));
    inFlight--;
  });
  assert.equal(peak, 2);
  await assert.rejects(mapPool([1, 2, 3], 2, async (x) => { if (x === 2) throw new Error('boom'); return x; }), /boom/);
  await assert.rejects(mapPool([1], 0, async (x) => x), /limit must be at least 1/);
});
