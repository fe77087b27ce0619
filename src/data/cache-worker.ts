/**
 * A decoding thread of the image cache: receives `{ slot, path }`, answers
 * `{ slot, pixels }` (size×size uint8, its buffer transferred) or
 * `{ slot, error }`. It loads sharp and the DICOM reader, never libtorch.
 */
import { parentPort, workerData } from 'node:worker_threads';

import sharp from 'sharp';

import { decodeResized, type FitMode } from './decode.js';
import { errorText, ImageDecodeError } from './image-error.js';

/** What the cache tells each worker once, at start. */
export interface WorkerSetup {
  size: number;
  fit: FitMode;
}

/** One image to decode. */
export interface WorkerTask {
  slot: number;
  path: string;
}

/** The worker's answer for one image. */
export type WorkerResult = { slot: number; pixels: Uint8Array } | { slot: number; error: string };

// Parallelism comes from the cache's threads; libvips threads inside each would only compete for the cores.
sharp.concurrency(1);
sharp.cache(false);

const setup = workerData as WorkerSetup;
const port = parentPort;
if (port === null) throw new Error('cache-worker must run as a worker thread');

/**
 * Decodes one image and answers. Images are decoded one after another: libvips
 * keeps one error buffer for the process, so two decodes failing at once could
 * swap or merge their messages.
 */
async function answer(task: WorkerTask): Promise<void> {
  try {
    const decoded = await decodeResized(task.path, { size: setup.size, fit: setup.fit });
    // A fresh buffer of exactly one image, so that transferring it moves no more than that.
    const pixels = new Uint8Array(decoded);
    port!.postMessage({ slot: task.slot, pixels } satisfies WorkerResult, [pixels.buffer]);
  } catch (error) {
    // The cache names the file itself: send only what was wrong with it.
    const reason = error instanceof ImageDecodeError ? error.reason : errorText(error);
    port!.postMessage({ slot: task.slot, error: reason } satisfies WorkerResult);
  }
}

let queue = Promise.resolve();
port.on('message', (task: WorkerTask) => {
  queue = queue.then(() => answer(task));
});
