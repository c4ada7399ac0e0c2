/**
 * Ending a child process when its parent dies, even while the child's main thread is busy.
 *
 * A worker of the ablation runner spends its time in long synchronous stretches (matrix
 * products, encoder batches); Node delivers the IPC channel's 'disconnect' only when the event
 * loop next turns, which in training can be 10–25 s after the parent was killed — all that time
 * training for nobody. A small watchdog thread, with its own event loop, looks at the parent
 * every WATCH_MS: when the process has been re-parented (the parent is gone), it kills the
 * process at once. Killing is safe: every checkpoint write is crash-safe and the next run
 * resumes from the last checkpoint.
 */
import { Worker } from 'node:worker_threads';

/** How often the watchdog looks (the process ends within about this long of its parent). */
export const WATCH_MS = 200;

const WATCHDOG = `
const { workerData } = require('node:worker_threads');
setInterval(() => {
  // process.ppid is read afresh each time: the orphaned process is adopted by init or a subreaper.
  if (process.ppid !== workerData.ppid) process.kill(process.pid, 'SIGKILL');
}, workerData.ms);
`;

let started = false;

/** Starts the watchdog (once per process); it never keeps the process alive by itself. */
export function exitWithParent(): void {
  if (started) return;
  started = true;
  const w = new Worker(WATCHDOG, { eval: true, workerData: { ppid: process.ppid, ms: WATCH_MS } });
  w.unref();
}
