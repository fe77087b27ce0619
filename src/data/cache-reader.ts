/**
 * A finished image cache and its files: the layout, the index, the fingerprint
 * that decides reuse, and {@link ImageCache}, which reads images by position.
 * Building one is `cache.ts`'s job.
 *
 * Layout of a cache folder:
 * - `pixels.bin`: one slot of size×size bytes per record, in record order (a
 *   skipped image leaves its slot unused); read by position, never whole.
 * - `index.json`: the fingerprint, size, fit, the ids in slot order and the
 *   images that were skipped. Written last: its presence means complete.
 * - `build.jsonl` (only while building): the fingerprint, then one finished
 *   slot per line, so that an interrupted build resumes where it stopped.
 */
import { createHash } from 'node:crypto';
import { open, readFile, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

import { type FitMode } from './decode.js';

export const FORMAT = 'moco-cxr-image-cache';
export const VERSION = 1;
export const INDEX = 'index.json';
export const PIXELS = 'pixels.bin';
export const JOURNAL = 'build.jsonl';

/** What the cache needs of a record: a unique id and the image file. */
export interface CacheRecord {
  id: string;
  path: string;
}

/** An image that could not be decoded, and why. */
export interface SkippedImage {
  id: string;
  path: string;
  reason: string;
}

/** The index file of a complete cache. */
export interface IndexFile {
  format: string;
  version: number;
  fingerprint: string;
  size: number;
  fit: FitMode;
  /** Record ids in slot order. */
  ids: string[];
  skipped: SkippedImage[];
}

/**
 * A finished cache, read by position. Positions number the stored images
 * (skipped ones left out) in record order.
 */
export class ImageCache {
  /** Ids of the stored images, by position. */
  readonly ids: readonly string[];
  readonly skipped: readonly SkippedImage[];
  /** Bytes of one image (size × size). */
  readonly imageBytes: number;
  private readonly slots: Int32Array;
  private readonly positionOf = new Map<string, number>();
  private handle: Promise<FileHandle> | undefined;

  private constructor(
    /** The cache folder. */
    readonly dir: string,
    private readonly index: IndexFile,
  ) {
    const skippedIds = new Set(index.skipped.map((entry) => entry.id));
    const ids: string[] = [];
    const slots: number[] = [];
    index.ids.forEach((id, slot) => {
      if (skippedIds.has(id)) return;
      this.positionOf.set(id, ids.length);
      ids.push(id);
      slots.push(slot);
    });
    this.ids = ids;
    this.slots = Int32Array.from(slots);
    this.skipped = index.skipped;
    this.imageBytes = index.size * index.size;
  }

  /** Opens a complete cache folder. */
  static async open(dir: string): Promise<ImageCache> {
    const index = await readIndex(dir);
    if (index === undefined) throw new Error(`${join(dir, INDEX)}: no complete image cache here (build it first)`);
    await checkPixelFile(dir, index);
    return new ImageCache(dir, index);
  }

  /** @internal */
  static fromIndex(dir: string, index: IndexFile): ImageCache {
    return new ImageCache(dir, index);
  }

  /** Side of the stored squares. */
  get size(): number {
    return this.index.size;
  }

  get fit(): FitMode {
    return this.index.fit;
  }

  /** Identifies the records, file dates and options the cache was built from. */
  get fingerprint(): string {
    return this.index.fingerprint;
  }

  /** Number of stored images. */
  get length(): number {
    return this.ids.length;
  }

  /** Position of an id, or undefined when it is not stored (unknown or skipped). */
  positionOfId(id: string): number | undefined {
    return this.positionOf.get(id);
  }

  /**
   * Reads the images at `positions` into one buffer, image after image
   * (`positions.length` × size × size bytes). Runs of consecutive slots are
   * read with one call; the reads of a batch go out together.
   */
  async read(positions: readonly number[], into?: Uint8Array): Promise<Uint8Array> {
    const bytes = this.imageBytes;
    const out = into ?? new Uint8Array(positions.length * bytes);
    if (out.length < positions.length * bytes) {
      throw new RangeError(`read: buffer holds ${out.length} bytes, ${positions.length * bytes} needed`);
    }
    this.handle ??= open(join(this.dir, PIXELS), 'r');
    const handle = await this.handle;
    const reads: Promise<unknown>[] = [];
    let start = 0;
    while (start < positions.length) {
      const first = this.slotAt(positions[start]!);
      let end = start + 1;
      while (end < positions.length && this.slotAt(positions[end]!) === first + (end - start)) end++;
      reads.push(readFully(handle, out, start * bytes, (end - start) * bytes, first * bytes));
      start = end;
    }
    await Promise.all(reads);
    return out;
  }

  /** Closes the pixel file (reads reopen it). */
  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    if (handle !== undefined) await (await handle).close();
  }

  private slotAt(position: number): number {
    const slot = this.slots[position];
    if (!Number.isInteger(position) || slot === undefined) {
      throw new RangeError(`cache position ${position} is out of range [0, ${this.ids.length})`);
    }
    return slot;
  }
}

async function readFully(handle: FileHandle, out: Uint8Array, offset: number, length: number, position: number) {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(out, offset + done, length - done, position + done);
    if (bytesRead === 0) throw new Error(`image cache: ${PIXELS} ends before byte ${position + length}`);
    done += bytesRead;
  }
}

/** The index of a complete cache in `dir`, or undefined (none, unreadable, or another format). */
export async function readIndex(dir: string): Promise<IndexFile | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, INDEX), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const index = JSON.parse(text) as IndexFile;
    return index.format === FORMAT && index.version === VERSION ? index : undefined;
  } catch {
    return undefined;
  }
}

/** Throws unless the pixel file holds exactly the index's slots. */
export async function checkPixelFile(dir: string, index: IndexFile): Promise<void> {
  const expected = index.ids.length * index.size * index.size;
  const actual = (await stat(join(dir, PIXELS)).catch(() => undefined))?.size;
  if (actual !== expected) {
    throw new Error(`${join(dir, PIXELS)}: ${actual ?? 'missing'} bytes, expected ${expected}; rebuild the cache`);
  }
}

/**
 * A digest of everything the cached pixels depend on: the options, and each
 * record's id, path, file size and modification time. A missing file counts
 * as such, so that it is tried again once it appears.
 */
export async function cacheFingerprint(
  records: readonly CacheRecord[],
  options: { size: number; fit: FitMode },
): Promise<string> {
  const hash = createHash('sha256');
  hash.update(JSON.stringify({ format: FORMAT, version: VERSION, size: options.size, fit: options.fit }));
  const chunk = 256;
  for (let start = 0; start < records.length; start += chunk) {
    const part = records.slice(start, start + chunk);
    const stats = await Promise.all(part.map((record) => stat(record.path).catch(() => undefined)));
    part.forEach((record, i) => {
      const info = stats[i];
      hash.update(`\n${record.id}\0${record.path}\0${info?.size ?? -1}\0${info?.mtimeMs ?? -1}`);
    });
  }
  return hash.digest('hex');
}
