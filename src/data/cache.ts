/**
 * Builds the image cache: every image decoded once in worker threads, resized
 * to a fixed square and kept as uint8 grey in one file, so that training never
 * decodes a JPEG again. An interrupted build resumes from its journal; a
 * complete cache with the same fingerprint is reused. (`cache-reader.ts` holds
 * the layout and the reader.)
 *
 * Images are squares so that a batch is one contiguous tensor: the default
 * (`fit: 'crop'`) scales the shorter side to `size` keeping the aspect ratio
 * and keeps the centred square, as MoCo-CXR's resize of the shorter side
 * followed by a crop; `fit: 'squash'` keeps the whole field instead.
 */
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, statfs, truncate, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

import { type WorkerResult, type WorkerSetup, type WorkerTask } from './cache-worker.js';
import {
  cacheFingerprint,
  type CacheRecord,
  checkPixelFile,
  FORMAT,
  ImageCache,
  INDEX,
  type IndexFile,
  JOURNAL,
  PIXELS,
  readIndex,
  type SkippedImage,
  VERSION,
} from './cache-reader.js';
import { type FitMode } from './decode.js';
import { checkImageSize } from './limits.js';
import { formatDuration } from '../util/progress.js';

export { cacheFingerprint, type CacheRecord, ImageCache, type SkippedImage } from './cache-reader.js';

/** How long a stopping build waits for the images being decoded before it names them. */
const STOP_NOTICE_MS = 3000;

/** Options of {@link buildCache}. */
export interface CacheOptions {
  /** The cache folder (created if missing). */
  dir: string;
  /** Side of the stored squares in pixels (MoCo-CXR: 320; at most `MAX_IMAGE_SIZE`, 2048). */
  size?: number;
  /** `crop` (default): shorter side to `size`, centred square; `squash`: both axes to `size`. */
  fit?: FitMode;
  /** Decoding threads (default: the number of cores). */
  workers?: number;
  /** Make an unreadable image an error instead of a skipped entry. */
  strict?: boolean;
  /** Where progress and warnings go (default: standard error). */
  log?: (line: string) => void;
  /** Milliseconds between progress lines (default 2000). */
  progressEvery?: number;
  /** Stops the build; what was finished stays for the next run. */
  signal?: AbortSignal;
  /** Called after each image is stored or skipped. */
  onProgress?: (progress: BuildProgress) => void;
}

/** Where a build stands. */
export interface BuildProgress {
  /** Images stored or skipped so far, this run and earlier ones. */
  done: number;
  total: number;
  /** Images decoded by this run. */
  decoded: number;
  skipped: number;
}

/** What a build did. */
export interface BuildStats {
  /** True when a complete cache with the same fingerprint was found and nothing was decoded. */
  reused: boolean;
  /** Images decoded by this run. */
  decoded: number;
  /** Images kept from an interrupted earlier run. */
  resumed: number;
  skipped: number;
  seconds: number;
}

function startWorker(setup: WorkerSetup): Worker {
  if (!import.meta.url.endsWith('.ts'))
    return new Worker(new URL('./cache-worker.js', import.meta.url), { workerData: setup });
  // Run from TypeScript sources (tsx), a worker does not inherit the loader hooks; register them first.
  const tsx = import.meta.resolve('tsx/esm/api');
  const worker = new URL('./cache-worker.ts', import.meta.url).href;
  const bootstrap = `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(worker)}); });`;
  return new Worker(bootstrap, { eval: true, workerData: setup });
}

function checkRecords(records: readonly CacheRecord[]): void {
  const seen = new Set<string>();
  records.forEach((record, i) => {
    if (typeof record.id !== 'string' || typeof record.path !== 'string') {
      throw new TypeError(`image cache: record ${i} needs string 'id' and 'path'`);
    }
    if (seen.has(record.id)) throw new Error(`image cache: id '${record.id}' appears twice (record ${i})`);
    seen.add(record.id);
  });
}

/**
 * Reads the journal of an interrupted build of the same fingerprint: the slots
 * already stored, and the length of its complete lines (a line cut by the
 * interrupt is dropped, and cut off the file before new lines are appended).
 */
async function readJournal(
  dir: string,
  fingerprint: string,
  slots: number,
): Promise<{ done: Set<number>; validLength: number } | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, JOURNAL), 'utf8');
  } catch {
    return undefined;
  }
  const lines = text.split('\n');
  try {
    const header = JSON.parse(lines[0] ?? '') as { fingerprint?: string };
    if (header.fingerprint !== fingerprint) return undefined;
  } catch {
    return undefined;
  }
  const done = new Set<number>();
  // The last element is '' after a final newline, or a cut line: either way not a slot.
  for (const line of lines.slice(1, -1)) {
    const slot = Number(line);
    if (line !== '' && Number.isInteger(slot) && slot >= 0 && slot < slots) done.add(slot);
  }
  return { done, validLength: Buffer.byteLength(text) - Buffer.byteLength(lines[lines.length - 1] ?? '') };
}

/**
 * Builds the cache of `records` in `options.dir`, or reuses it when a
 * complete one with the same fingerprint is there; resumes an interrupted
 * build of the same fingerprint; starts afresh when anything changed.
 * Unreadable images are skipped with a warning naming them (an error with
 * `strict`). Memory stays bounded by a few images per worker whatever the
 * data set's size.
 */
export async function buildCache(
  records: readonly CacheRecord[],
  options: CacheOptions,
): Promise<{ cache: ImageCache; stats: BuildStats }> {
  const started = performance.now();
  const size = options.size ?? 320;
  const fit = options.fit ?? 'crop';
  checkImageSize('image cache: size', size);
  if (fit !== 'crop' && fit !== 'squash')
    throw new TypeError(`image cache: fit must be 'crop' or 'squash', got '${String(fit)}'`);
  checkRecords(records);
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const { dir } = options;
  await mkdir(dir, { recursive: true });
  const fingerprint = await cacheFingerprint(records, { size, fit });

  const existing = await readIndex(dir);
  if (existing?.fingerprint === fingerprint) {
    try {
      await checkPixelFile(dir, existing);
      const cache = ImageCache.fromIndex(dir, existing);
      const seconds = (performance.now() - started) / 1000;
      return { cache, stats: { reused: true, decoded: 0, resumed: 0, skipped: existing.skipped.length, seconds } };
    } catch {
      // A damaged pixel file: rebuild below.
    }
  }

  const pixelPath = join(dir, PIXELS);
  const journalPath = join(dir, JOURNAL);
  await checkFreeSpace(dir, records.length, size);
  await rm(join(dir, INDEX), { force: true });
  const journaled = existsSync(pixelPath) ? await readJournal(dir, fingerprint, records.length) : undefined;
  const finished = journaled?.done ?? new Set<number>();
  if (journaled === undefined) {
    await rm(pixelPath, { force: true });
    const header = `${JSON.stringify({ fingerprint, size, fit, images: records.length })}\n`;
    await writing(journalPath, () => writeFile(journalPath, header));
  } else {
    await truncate(journalPath, journaled.validLength);
  }
  const pixels = await open(pixelPath, existsSync(pixelPath) ? 'r+' : 'w+');
  const journal = await open(journalPath, 'a');
  const skipped: SkippedImage[] = [];
  let decoded = 0;
  const resumed = finished.size;
  try {
    await pixels.truncate(records.length * size * size);
    const todo: number[] = [];
    for (let slot = 0; slot < records.length; slot++) if (!finished.has(slot)) todo.push(slot);
    log(
      `cache: ${todo.length === records.length ? 'building' : 'resuming'} ${dir}: ${records.length} images at ` +
        `${size}x${size} (${fit})${resumed > 0 ? `, ${resumed} already done` : ''}`,
    );
    let lastLine = performance.now();
    const total = records.length;
    const report = (force: boolean): void => {
      const now = performance.now();
      if (!force && now - lastLine < (options.progressEvery ?? 2000)) return;
      lastLine = now;
      const done = resumed + decoded + skipped.length;
      const rate = (decoded + skipped.length) / Math.max(1e-3, (now - started) / 1000);
      log(
        `cache: ${done}/${total} (${Math.floor((100 * done) / Math.max(1, total))}%) ${rate.toFixed(0)} img/s, ` +
          `ETA ${formatDuration((total - done) / rate)}${skipped.length > 0 ? `, ${skipped.length} skipped` : ''}`,
      );
    };
    await runWorkers(todo, records, { size, fit }, options, async (result) => {
      const record = records[result.slot]!;
      if ('error' in result) {
        if (options.strict === true) {
          throw new Error(`image cache: ${record.path} (id '${record.id}'): ${result.error}`);
        }
        skipped.push({ id: record.id, path: record.path, reason: result.error });
        log(`cache: warning: skipped ${record.path}: ${result.error}`);
      } else {
        await writing(pixelPath, () => pixels.write(result.pixels, 0, result.pixels.length, result.slot * size * size));
        // The pixels are written before the journal says so: a resumed build trusts the journal.
        await writing(journalPath, () => journal.write(`${result.slot}\n`));
        decoded++;
      }
      options.onProgress?.({ done: resumed + decoded + skipped.length, total, decoded, skipped: skipped.length });
      report(false);
    });
    report(true);
  } finally {
    await journal.close();
    await pixels.close();
  }

  const index: IndexFile = {
    format: FORMAT,
    version: VERSION,
    fingerprint,
    size,
    fit,
    ids: records.map((record) => record.id),
    skipped,
  };
  await writing(join(dir, `${INDEX}.tmp`), () => writeFile(join(dir, `${INDEX}.tmp`), JSON.stringify(index)));
  await rename(join(dir, `${INDEX}.tmp`), join(dir, INDEX));
  await rm(journalPath, { force: true });
  const seconds = (performance.now() - started) / 1000;
  log(
    `cache: done, ${decoded} decoded in ${seconds.toFixed(1)} s (${(decoded / Math.max(seconds, 1e-3)).toFixed(0)} img/s)` +
      `${resumed > 0 ? `, ${resumed} kept from before` : ''}, ${skipped.length} skipped` +
      (skipped.length > 0 ? ` (unreadable or missing; listed in ${join(dir, INDEX)})` : ''),
  );
  return {
    cache: ImageCache.fromIndex(dir, index),
    stats: { reused: false, decoded, resumed, skipped: skipped.length, seconds },
  };
}

function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}

/**
 * Refuses a build whose pixel file would not fit on the disk holding `dir`.
 * The pixel file is sparse, so without this check a cache too big for the
 * disk would start and fail hours later. Space the current pixel file holds
 * counts as available: a resumed build keeps it, a fresh one deletes it.
 */
async function checkFreeSpace(dir: string, images: number, size: number): Promise<void> {
  const needed = images * size * size;
  const disk = await statfs(dir);
  const free = disk.bavail * disk.bsize;
  const held = await stat(join(dir, PIXELS)).then(
    (info) => info.blocks * 512,
    () => 0,
  );
  if (needed > free + held) {
    throw new Error(
      `image cache: ${dir} needs ${formatBytes(needed)} (${images} images of ${size}x${size} bytes) but its disk has ` +
        `${formatBytes(free + held)} free; free some space, choose another cache folder or a smaller cache size`,
    );
  }
}

/** Runs a write to `file`, naming the file (and a full disk as such) when it fails. */
async function writing<T>(file: string, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') {
      throw new Error(
        `image cache: cannot write ${file}: the disk is full (${code}); free some space and rerun to resume ` +
          'where the build stopped',
      );
    }
    throw new Error(`image cache: cannot write ${file}: ${(error as Error).message}`);
  }
}

/**
 * Feeds `slots` to a pool of decoding threads, two tasks in flight per thread,
 * and hands each result to `store` in completion order. Stops early on abort
 * or when `store` throws, after the tasks in flight have come back: a thread
 * inside a native call cannot be stopped, and Node waits for it even to exit.
 * When they are slow to come back (a file on a hung network share), it says
 * which files it is waiting for.
 */
async function runWorkers(
  slots: readonly number[],
  records: readonly CacheRecord[],
  setup: WorkerSetup,
  options: CacheOptions,
  store: (result: WorkerResult) => Promise<void>,
): Promise<void> {
  if (slots.length === 0) return;
  const count = Math.max(1, Math.min(options.workers ?? availableParallelism(), slots.length));
  const workers = Array.from({ length: count }, () => startWorker(setup));
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const pending = new Set<number>();
  let next = 0;
  let failure: Error | undefined;
  let waitingNotice: NodeJS.Timeout | undefined;
  const onAbort = (): void => {
    waitingNotice = setTimeout(() => {
      if (pending.size === 0) return;
      const paths = [...pending].map((slot) => records[slot]!.path);
      log(
        `cache: stopping; waiting for ${paths.length} image(s) still being read: ${paths.slice(0, 4).join(', ')}` +
          `${paths.length > 4 ? ', ...' : ''} (a second interrupt quits at once)`,
      );
    }, STOP_NOTICE_MS);
    waitingNotice.unref();
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  // Stores run one after another so that writes and journal lines stay in order.
  let storing = Promise.resolve();
  try {
    await Promise.all(
      workers.map(
        (worker) =>
          new Promise<void>((resolve, reject) => {
            let inFlight = 0;
            const stopping = (): boolean => failure !== undefined || options.signal?.aborted === true;
            const feed = (): void => {
              while (inFlight < 2 && next < slots.length && !stopping()) {
                const slot = slots[next++]!;
                inFlight++;
                pending.add(slot);
                worker.postMessage({ slot, path: records[slot]!.path } satisfies WorkerTask);
              }
              if (inFlight === 0) resolve();
            };
            worker.on('message', (result: WorkerResult) => {
              pending.delete(result.slot);
              storing = storing
                .then(() => (failure === undefined ? store(result) : undefined))
                .catch((error: unknown) => {
                  failure ??= error instanceof Error ? error : new Error(String(error));
                })
                .finally(() => {
                  inFlight--;
                  feed();
                });
            });
            worker.on('error', reject);
            worker.on('exit', (code) => {
              if (inFlight > 0) reject(new Error(`image cache: a decoding thread exited (code ${code}) mid-task`));
            });
            feed();
          }),
      ),
    );
    await storing;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    clearTimeout(waitingNotice);
    await Promise.all(workers.map((worker) => worker.terminate()));
  }
  if (failure !== undefined) throw failure;
  if (options.signal?.aborted === true) {
    throw options.signal.reason instanceof Error ? options.signal.reason : new Error('image cache: build aborted');
  }
}
