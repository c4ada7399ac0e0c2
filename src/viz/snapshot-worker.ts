/**
 * The worker thread behind {@link snapshotFigure} (snapshot.ts): keeps one headless Chromium
 * with plotly.js loaded for the life of the process and answers each request with a PNG (or
 * an error message), then wakes the waiting thread through the request's shared flag.
 */
import { parentPort } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import type { Page } from 'playwright-core';
import sharp from 'sharp';
import { launchChromium, plotlyPage, plotlyPng } from './browser';
import type { ChromiumSession } from './browser';
import type { Figure } from './types';

export interface SnapshotRequest {
  figure: Figure;
  width: number;
  height: number;
  port: MessagePort;
  /** Set to 1 (and notified) once the reply is on `port`. */
  flag: Int32Array;
}

/** Asks the worker to close its browser and end. */
export interface CloseRequest {
  close: true;
  flag: Int32Array;
}

export type SnapshotReply = { png: Uint8Array } | { error: string };

let session: ChromiumSession | undefined;
let page: Promise<Page> | undefined;

async function open(): Promise<Page> {
  session = await launchChromium();
  return plotlyPage(session);
}

async function answer(req: SnapshotRequest): Promise<SnapshotReply> {
  try {
    page ??= open();
    const png = await plotlyPng(await page, req.figure, { width: req.width, height: req.height });
    // A notebook stores the picture twice (image/png, and inside the HTML an untrusted view
    // shows): re-encoded with a 256-colour palette, a chart loses nothing visible and about
    // two thirds of its bytes.
    return { png: await sharp(png).png({ palette: true, compressionLevel: 9, effort: 10 }).toBuffer() };
  } catch (err) {
    // Start afresh next time: the browser may be what failed.
    page = undefined;
    const old = session;
    session = undefined;
    await old?.close();
    return { error: (err as Error).message.split('\n')[0] };
  }
}

function wake(flag: Int32Array): void {
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
}

parentPort?.on('message', (req: SnapshotRequest | CloseRequest) => {
  if ('close' in req) {
    void (async () => {
      await page?.catch(() => undefined);
      await session?.close();
      session = undefined;
      page = undefined;
      wake(req.flag);
      parentPort?.close();
    })();
    return;
  }
  void answer(req).then((reply) => {
    req.port.postMessage(reply);
    req.port.close();
    wake(req.flag);
  });
});
