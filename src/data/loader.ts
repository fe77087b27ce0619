/**
 * The batch loader: gathers batches of cached images into one uint8 tensor,
 * converts it to float once, and applies a batched augmentation. The next
 * batch's file reads are under way while the current one trains.
 *
 * Randomness is fixed by the seed: the order of epoch `e` comes from
 * `(seed, e)` and the augmentation of batch `k` from `(seed, e, k)`, so a run
 * repeats exactly, and prefetching or skipping batches changes nothing.
 *
 * With `pairGroups` (MedAug's patient- or study-level positives), the second
 * and later views of an image are made from another image of its group; the
 * partner is drawn from `(seed, e, k)` as well, so a resumed run pairs the
 * same images.
 */
import * as torch from '../torch/index.js';
import { BufferPool } from './buffer-pool.js';
import { type ImageCache } from './cache.js';
import { combineSeeds, Prng } from './prng.js';
import { type LabelValue } from './records.js';

type Tensor = torch.Tensor;

/** What the loader needs of a record: its id and, for labelled batches, its labels. */
export interface LoaderRecord {
  id: string;
  labels?: Readonly<Record<string, LabelValue>>;
}

/** Rank `rank`'s rows `[start, end)` of `count`, split as evenly as it goes (a rank may get none). */
export function shardRange(count: number, rank: number, size: number): [number, number] {
  return [Math.floor((rank * count) / size), Math.floor(((rank + 1) * count) / size)];
}

/** A batch transform drawing its randomness from the batch's generator ({@link Augmentation} is one). */
export interface BatchAugmentation {
  apply(images: Tensor, rng: Prng): Tensor;
  /**
   * `apply` on grey uint8 pixels `[B, 1, H, W]` (levels 0–255): the same draws
   * and, to float rounding, the same view as `apply(pixels / 255, rng)`. When
   * present, a loader hands it the batch as read, so that no float copy of the
   * batch is made ({@link Augmentation} fuses the whole view into one pass),
   * and `allocate`, which gives float tensors of a shape from buffers the
   * loader reuses once earlier batches are disposed (it may be left unused).
   */
  applyToPixels?(pixels: Tensor, rng: Prng, allocate?: (shape: readonly number[]) => Tensor): Tensor;
  /**
   * Draws (and drops) what `apply` would draw for `count` images of
   * `height` × `width`, so that a shard of a batch gets exactly the draws its
   * rows get in the whole batch. Needed by a sharded loader.
   */
  skip?(count: number, height: number, width: number, rng: Prng): void;
}

/**
 * This process's part of every batch in data-parallel training: the batch of
 * `batchSize` is the global one, rank `rank` of `count` takes its rows
 * `[rank·b, (rank+1)·b)` with b = batchSize / count. The order of an epoch is
 * the same on every rank (seeded by seed and epoch), so together the ranks see
 * each image once per epoch, and each shard gets the augmentation its rows
 * get in a one-process run of the global batch. A short last batch of n rows
 * (kept unless `dropLast`) is split as evenly as it goes: rank r takes rows
 * `[⌊r·n/count⌋, ⌊(r+1)·n/count⌋)`, possibly none.
 */
export interface LoaderShard {
  rank: number;
  count: number;
}

/** Options of a {@link BatchLoader}. */
export interface LoaderOptions {
  batchSize: number;
  /** Shuffle each epoch (default true). */
  shuffle?: boolean;
  seed?: number;
  /** Leave out the last batch when it is short (default false); MoCo's queue needs full batches. */
  dropLast?: boolean;
  /**
   * The records to load, in order (default: every image in the cache). Records
   * whose image was skipped when the cache was built are left out and
   * counted in {@link BatchLoader.missing}.
   */
  records?: readonly LoaderRecord[];
  /** Label names to put in `labels` (needs `records` with labels). */
  tasks?: readonly string[];
  /**
   * Applied to each batch (float [B, 1, S, S] in [0, 1], or the uint8 pixels
   * when it has `applyToPixels`); without it, the plain images.
   */
  augment?: BatchAugmentation;
  /** Independent augmented views per batch: 2 for MoCo's query and key (default 1). */
  views?: number;
  /**
   * A group key per record of `records` (same order), e.g. its patient or
   * study: the first view of an image is made from the image itself, every
   * further view from a partner drawn uniformly from the other images of its
   * group (an image alone in its group is its own partner). Default: every
   * view from the image itself.
   */
  pairGroups?: readonly string[];
  /**
   * Where batches go (default `cpu`). The uint8 pixels move there before they
   * are converted, so that the augmentation runs there too, and a quarter of
   * the bytes of float images cross the bus.
   */
  device?: torch.Device;
  /** Take only this rank's rows of each (global) batch; see {@link LoaderShard}. */
  shard?: LoaderShard;
}

/** One batch. Its tensors belong to the caller: `dispose()` it when done. */
export interface Batch {
  epoch: number;
  /** Index of the batch in its epoch. */
  index: number;
  ids: string[];
  /** One tensor per view, float32 `[B, C, H, W]`. */
  views: Tensor[];
  /** The first view. */
  images: Tensor;
  /** With `pairGroups`: the id of the image each row's further views were made from. */
  partnerIds?: string[];
  /** `[B, tasks]` float32, masked entries 0; present when `tasks` were given. */
  labels?: Tensor;
  /** `[B, tasks]` float32, 1 where the label is known and 0 where masked. */
  labelMask?: Tensor;
  dispose(): void;
}

/** Batches of cached images, shuffled by seed, with augmentation and prefetching. */
export class BatchLoader {
  /** Records left out because the cache holds no image for them. */
  readonly missing: readonly string[];
  private readonly positions: Int32Array;
  private readonly ids: readonly string[];
  private readonly labelRows: Float32Array | undefined;
  private readonly maskRows: Float32Array | undefined;
  /** With `pairGroups`: the loader items of each item's group, the item itself included. */
  private readonly groupItems: readonly (readonly number[])[] | undefined;
  private readonly options: Required<Pick<LoaderOptions, 'batchSize' | 'shuffle' | 'seed' | 'dropLast' | 'views'>>;
  private readonly shard: LoaderShard;

  constructor(
    readonly cache: ImageCache,
    private readonly config: LoaderOptions,
  ) {
    const { batchSize } = config;
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new RangeError(`loader: batchSize must be a positive integer, got ${batchSize}`);
    }
    const views = config.views ?? 1;
    if (!Number.isInteger(views) || views < 1)
      throw new RangeError(`loader: views must be a positive integer, got ${views}`);
    const shard = config.shard ?? { rank: 0, count: 1 };
    if (
      !Number.isInteger(shard.count) ||
      shard.count < 1 ||
      !Number.isInteger(shard.rank) ||
      shard.rank < 0 ||
      shard.rank >= shard.count
    ) {
      throw new RangeError(`loader: shard rank ${shard.rank} of ${shard.count} is not a rank of the group`);
    }
    if (batchSize % shard.count !== 0) {
      throw new RangeError(`loader: batch size ${batchSize} is not divisible by the ${shard.count} ranks`);
    }
    if (shard.count > 1 && config.augment !== undefined && config.augment.skip === undefined) {
      throw new RangeError('loader: a sharded loader needs an augmentation that can skip draws (skip)');
    }
    this.shard = shard;
    this.options = {
      batchSize,
      shuffle: config.shuffle ?? true,
      seed: config.seed ?? 0,
      dropLast: config.dropLast ?? false,
      views,
    };
    const records = config.records ?? cache.ids.map((id) => ({ id }));
    const pairGroups = config.pairGroups;
    if (pairGroups !== undefined && pairGroups.length !== records.length) {
      throw new RangeError(`loader: ${pairGroups.length} pair groups for ${records.length} records`);
    }
    const kept: LoaderRecord[] = [];
    const keptGroups: string[] = [];
    const positions: number[] = [];
    const missing: string[] = [];
    records.forEach((record, i) => {
      const position = cache.positionOfId(record.id);
      if (position === undefined) {
        missing.push(record.id);
      } else {
        kept.push(record);
        positions.push(position);
        if (pairGroups !== undefined) keptGroups.push(pairGroups[i] as string);
      }
    });
    if (pairGroups !== undefined) {
      const members = new Map<string, number[]>();
      keptGroups.forEach((group, item) => {
        const list = members.get(group);
        if (list === undefined) members.set(group, [item]);
        else list.push(item);
      });
      this.groupItems = keptGroups.map((group) => members.get(group) as number[]);
    }
    this.missing = missing;
    this.positions = Int32Array.from(positions);
    this.ids = kept.map((record) => record.id);
    const tasks = config.tasks;
    if (tasks !== undefined) {
      this.labelRows = new Float32Array(kept.length * tasks.length);
      this.maskRows = new Float32Array(kept.length * tasks.length);
      kept.forEach((record, i) => {
        tasks.forEach((task, t) => {
          const value = record.labels?.[task];
          if (value === undefined) throw new Error(`loader: record '${record.id}' has no label '${task}'`);
          if (value !== null) {
            this.labelRows![i * tasks.length + t] = value;
            this.maskRows![i * tasks.length + t] = 1;
          }
        });
      });
    }
  }

  /** Number of images an epoch draws from. */
  get length(): number {
    return this.positions.length;
  }

  /** Batches in one epoch. */
  get batchesPerEpoch(): number {
    const { batchSize, dropLast } = this.options;
    return dropLast ? Math.floor(this.length / batchSize) : Math.ceil(this.length / batchSize);
  }

  /** The order of items (indices into the loader's records) in an epoch. */
  order(epoch: number): number[] {
    const order = Array.from({ length: this.length }, (_, i) => i);
    return this.options.shuffle ? new Prng(combineSeeds(this.options.seed, epoch)).shuffle(order) : order;
  }

  /**
   * The partner of each item of batch `index` of `epoch` (see `pairGroups`):
   * another member of its group, uniformly, or itself when alone.
   */
  partners(epoch: number, index: number, items: readonly number[]): number[] | undefined {
    const groups = this.groupItems;
    if (groups === undefined) return undefined;
    const rng = new Prng(combineSeeds(this.options.seed, epoch, index, 2));
    return items.map((item) => {
      const group = groups[item] as readonly number[];
      if (group.length === 1) return item;
      // Uniform over the group without the item: draw among length − 1 and step over the item itself.
      const at = Math.floor(rng.next() * (group.length - 1));
      return group[at < group.indexOf(item) ? at : at + 1] as number;
    });
  }

  /**
   * The batches of one epoch, from batch `startBatch` on (a resumed run skips
   * what it has done without reading it; the batches are the same as in a
   * full pass). While the caller works on batch k, batch k+1's pixels are
   * being read from the cache.
   */
  async *epoch(epoch: number, startBatch = 0): AsyncGenerator<Batch, void, undefined> {
    const order = this.order(epoch);
    const { batchSize } = this.options;
    const count = this.batchesPerEpoch;
    const imageBytes = this.cache.imageBytes;
    // Two buffers: one being read for the next batch while the other's tensor is made. Partners
    // are read after the batch's own images, into the same buffer.
    const slots = this.groupItems === undefined ? batchSize : 2 * batchSize;
    const buffers = [new Uint8Array(slots * imageBytes), new Uint8Array(slots * imageBytes)];
    const { count: ranks } = this.shard;
    const batchItems = (k: number): number[] => order.slice(k * batchSize, Math.min((k + 1) * batchSize, order.length));
    const shardOf = <T>(rows: T[]): T[] => {
      if (ranks === 1) return rows;
      const [start, end] = this.shardRows(rows.length);
      return rows.slice(start, end);
    };
    const itemsOf = (k: number): number[] => shardOf(batchItems(k));
    // Partners are drawn over the whole (global) batch, so a shard pairs as its rows do in one process.
    const partnersOf = (k: number): number[] | undefined => {
      const partners = this.partners(epoch, k, batchItems(k));
      return partners === undefined ? undefined : shardOf(partners);
    };
    const read = (k: number): Promise<Uint8Array> => {
      const items = itemsOf(k);
      const all = items.concat(partnersOf(k) ?? []);
      const buffer = buffers[k % 2]!.subarray(0, all.length * imageBytes);
      return this.cache.read(
        all.map((item) => this.positions[item]!),
        buffer,
      );
    };
    if (!Number.isInteger(startBatch) || startBatch < 0) {
      throw new RangeError(`loader: startBatch must be a non-negative integer, got ${startBatch}`);
    }
    // An augmentation that takes the uint8 pixels gets them as read; the rest get floats in [0, 1].
    const pixelsIn = this.config.augment?.applyToPixels !== undefined;
    // Views are written into buffers reused once their batch is disposed: room for the batch being
    // trained on, the one being made and one the caller still holds.
    const pool = new BufferPool(3 * this.options.views);
    let pending = startBatch < count ? read(startBatch) : undefined;
    try {
      for (let k = startBatch; k < count; k++) {
        const bytes = await pending!;
        const items = itemsOf(k);
        const images = this.toTensor(bytes, bytes.length / imageBytes, pixelsIn);
        pending = k + 1 < count ? read(k + 1) : undefined;
        try {
          yield this.assemble(
            epoch,
            k,
            items,
            partnersOf(k),
            images,
            batchItems(k).length,
            pixelsIn ? pool : undefined,
          );
        } finally {
          images.dispose();
        }
      }
    } finally {
      // A caller that stops early leaves a read in flight; its outcome no longer matters.
      pending?.catch(() => undefined);
      pool.dispose();
    }
  }

  /** This rank's rows `[start, end)` of a global batch of `rows`. */
  private shardRows(rows: number): [number, number] {
    return shardRange(rows, this.shard.rank, this.shard.count);
  }

  private toTensor(bytes: Uint8Array, batch: number, pixelsIn: boolean): Tensor {
    const size = this.cache.size;
    const device = this.config.device ?? 'cpu';
    return torch.tidy(() => {
      const pixels = torch.tensor(bytes, [batch, 1, size, size]);
      const there = device === 'cpu' ? pixels : pixels.to(device);
      return pixelsIn ? there : there.float().div_(255);
    });
  }

  /** `images` holds the batch's own images, then (with `pairGroups`) its partners' in the same order. */
  private assemble(
    epoch: number,
    index: number,
    items: number[],
    partners: number[] | undefined,
    images: Tensor,
    globalRows: number,
    pool: BufferPool | undefined,
  ): Batch {
    const { augment } = this.config;
    const rng = new Prng(combineSeeds(this.options.seed, epoch, index, 1));
    const own = partners === undefined ? images : images.narrow(0, 0, items.length);
    const partnerImages = partners === undefined ? images : images.narrow(0, items.length, items.length);
    const views: Tensor[] = [];
    try {
      const { count } = this.shard;
      const [, , height, width] = own.shape as [number, number, number, number];
      const [start, end] = this.shardRows(globalRows);
      for (let v = 0; v < this.options.views; v++) {
        const source = v === 0 ? own : partnerImages;
        // The rows before and after this shard draw from the batch's generator as in a one-process run.
        if (count > 1) augment?.skip!(start, height, width, rng);
        views.push(
          augment === undefined || source.size(0) === 0
            ? source.clone()
            : pool !== undefined
              ? augment.applyToPixels!(source, rng, (shape) => pool.take(shape))
              : augment.apply(source, rng),
        );
        if (count > 1) augment?.skip!(globalRows - end, height, width, rng);
      }
    } catch (error) {
      torch.dispose(views);
      throw error;
    } finally {
      if (partners !== undefined) torch.dispose([own, partnerImages]);
    }
    const batch: Batch = {
      epoch,
      index,
      ids: items.map((item) => this.ids[item]!),
      views,
      images: views[0]!,
      dispose: () => torch.dispose([batch.views, batch.labels, batch.labelMask]),
    };
    if (partners !== undefined) batch.partnerIds = partners.map((item) => this.ids[item]!);
    const tasks = this.config.tasks;
    if (tasks !== undefined && this.labelRows !== undefined && this.maskRows !== undefined) {
      const width = tasks.length;
      const labels = new Float32Array(items.length * width);
      const mask = new Float32Array(items.length * width);
      items.forEach((item, row) => {
        labels.set(this.labelRows!.subarray(item * width, (item + 1) * width), row * width);
        mask.set(this.maskRows!.subarray(item * width, (item + 1) * width), row * width);
      });
      batch.labels = torch.tensor(labels, [items.length, width], { device: this.config.device });
      batch.labelMask = torch.tensor(mask, [items.length, width], { device: this.config.device });
    }
    return batch;
  }
}
