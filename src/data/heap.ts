/**
 * Binary heap steps over a plain array: `before(a, b)` says a belongs nearer the root, so
 * heap[0] is the element that comes before all others. Callers keep the array (and may read
 * or replace heap[0] themselves); these restore the order after a change at index i.
 */
export type Before<T> = (a: T, b: T) => boolean;

/** Moves heap[i] up until its parent comes before it (after a push at i). */
export function siftUp<T>(heap: T[], i: number, before: Before<T>): void {
  while (i > 0) {
    const p = (i - 1) >> 1;
    if (!before(heap[i], heap[p])) break;
    [heap[i], heap[p]] = [heap[p], heap[i]];
    i = p;
  }
}

/** Moves heap[i] down until it comes before both children (after replacing heap[i]). */
export function siftDown<T>(heap: T[], i: number, before: Before<T>): void {
  for (;;) {
    const l = 2 * i + 1;
    const r = l + 1;
    let m = i;
    if (l < heap.length && before(heap[l], heap[m])) m = l;
    if (r < heap.length && before(heap[r], heap[m])) m = r;
    if (m === i) return;
    [heap[i], heap[m]] = [heap[m], heap[i]];
    i = m;
  }
}
