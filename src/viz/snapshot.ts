/**
 * A static PNG of a figure, rendered synchronously, so that `show()` can put the picture in
 * the same display output as the figure while staying an ordinary (non-async) call in a
 * notebook cell. The rendering is the report's: plotly.js in headless Chromium
 * (`Plotly.toImage`, browser.ts). It runs in a worker thread that keeps the browser for the
 * life of the kernel — the first figure pays for starting Chromium and loading plotly.js
 * (seconds), later ones take a fraction of a second — while the calling thread waits on a
 * shared flag.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { MessageChannel, Worker, receiveMessageOnPort } from 'node:worker_threads';
import { chromiumMissing, findChromium } from './browser';
import type { CloseRequest, SnapshotReply, SnapshotRequest } from './snapshot-worker';
import type { Figure } from './types';

export type Snapshot = { png: Buffer; width: number; height: number } | { error: string };

/** Waits for the first snapshot (Chromium start and plotly.js load included) and later ones. */
const FIRST_TIMEOUT_MS = 90_000;
const TIMEOUT_MS = 30_000;

let worker: Worker | undefined;
let answered = 0;

function startWorker(): Worker {
  const compiled = join(__dirname, 'snapshot-worker.js');
  // From the TypeScript sources (the test suite runs them through tsx), the worker thread has
  // to register tsx itself: loader flags of the parent do not apply to a worker's entry file.
  const w = existsSync(compiled)
    ? new Worker(compiled)
    : new Worker(`require(${JSON.stringify(require.resolve('tsx/cjs'))});require(${JSON.stringify(join(__dirname, 'snapshot-worker.ts'))});`, { eval: true });
  w.unref();
  w.on('error', () => {
    if (worker === w) worker = undefined;
  });
  return w;
}

/**
 * The size a figure is drawn at: its layout's width and height, else plotly's own default
 * width (700, narrow enough for a notebook beside JupyterLab's file browser) and 450.
 */
export function snapshotSize(figure: Figure): { width: number; height: number } {
  const num = (v: unknown, d: number) => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.round(v) : d);
  return { width: num(figure.layout.width, 700), height: num(figure.layout.height, 450) };
}

/**
 * Renders `figure` to PNG and returns it, or says why it could not (no Chromium, a timeout,
 * a plotly error). Blocks the calling thread until then.
 */
export function snapshotFigure(figure: Figure): Snapshot {
  if (!findChromium()) return { error: chromiumMissing() };
  const { width, height } = snapshotSize(figure);
  worker ??= startWorker();
  const { port1, port2 } = new MessageChannel();
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const req: SnapshotRequest = { figure: { data: figure.data, layout: figure.layout }, width, height, port: port2, flag };
  worker.postMessage(req, [port2]);
  const timeout = answered === 0 ? FIRST_TIMEOUT_MS : TIMEOUT_MS;
  const waited = Atomics.wait(flag, 0, 0, timeout);
  const reply = receiveMessageOnPort(port1)?.message as SnapshotReply | undefined;
  port1.close();
  if (waited === 'timed-out' || !reply) {
    // A browser that hangs is dropped; the next figure starts a new one.
    void worker.terminate();
    worker = undefined;
    answered = 0;
    return { error: `Chromium did not render the figure within ${timeout / 1000} s` };
  }
  answered += 1;
  if ('error' in reply) return reply;
  return { png: Buffer.from(reply.png), width, height };
}

/** Closes the snapshot browser and ends its worker (the next snapshot starts them again). */
export async function stopSnapshots(): Promise<void> {
  const w = worker;
  worker = undefined;
  answered = 0;
  if (!w) return;
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const closeReq: CloseRequest = { close: true, flag };
  w.postMessage(closeReq);
  await Atomics.waitAsync(flag, 0, 0, 10_000).value;
  await w.terminate();
}
