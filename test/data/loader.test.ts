import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import sharp from 'sharp';

import { mocoCxrAugmentation } from '../../src/data/augment.js';
import { buildCache, type ImageCache } from '../../src/data/cache.js';
import { BufferPool } from '../../src/data/buffer-pool.js';
import { BatchLoader, type Batch } from '../../src/data/loader.js';
import * as torch from '../../src/torch/index.js';
import { tempDir } from '../helpers/oracle.js';

const COUNT = 23;

/** Image i is a flat grey of value 10·i, so a batch's pixels tell which images it holds. */
async function flatImages(
  folder: string,
): Promise<{ id: string; path: string; labels: Record<string, number | null> }[]> {
  const records = [];
  for (let i = 0; i < COUNT; i++) {
    const path = join(folder, `flat${i}.png`);
    await sharp(new Uint8Array(12 * 12).fill(10 * i), { raw: { width: 12, height: 12, channels: 1 } })
      .png()
      .toFile(path);
    records.push({ id: `flat${i}`, path, labels: { Even: i % 2 === 0 ? 1 : 0, Third: i % 3 === 0 ? null : 1 } });
  }
  return records;
}

async function collect(loader: BatchLoader, epoch: number): Promise<{ ids: string[][]; firstPixels: number[][] }> {
  const ids: string[][] = [];
  const firstPixels: number[][] = [];
  for await (const batch of loader.epoch(epoch)) {
    ids.push(batch.ids);
    const values = batch.images.data() as Float32Array;
    const perImage = values.length / batch.ids.length;
    firstPixels.push(batch.ids.map((_, b) => Math.round(values[b * perImage]! * 255)));
    batch.dispose();
  }
  return { ids, firstPixels };
}

describe('batch loader', () => {
  let dir: { path: string; cleanup: () => void };
  let cache: ImageCache;
  let records: Awaited<ReturnType<typeof flatImages>>;
  before(async () => {
    dir = tempDir();
    records = await flatImages(dir.path);
    ({ cache } = await buildCache(records, { dir: join(dir.path, 'cache'), size: 8, workers: 1, log: () => {} }));
  });
  after(async () => {
    await cache.close();
    dir.cleanup();
  });

  it('gathers the right pixels for each id, in order without shuffling', async () => {
    const loader = new BatchLoader(cache, { batchSize: 5, shuffle: false });
    assert.equal(loader.batchesPerEpoch, 5);
    const { ids, firstPixels } = await collect(loader, 0);
    assert.deepEqual(
      ids.flat(),
      records.map((r) => r.id),
    );
    assert.deepEqual(
      ids.map((batch) => batch.length),
      [5, 5, 5, 5, 3],
    );
    assert.deepEqual(
      firstPixels.flat(),
      records.map((_, i) => 10 * i),
    );
  });

  it('shuffles by seed and epoch, and drops the short last batch when asked', async () => {
    const loader = new BatchLoader(cache, { batchSize: 5, seed: 3, dropLast: true });
    assert.equal(loader.batchesPerEpoch, 4);
    const first = await collect(loader, 0);
    const again = await collect(new BatchLoader(cache, { batchSize: 5, seed: 3, dropLast: true }), 0);
    const second = await collect(loader, 1);
    assert.deepEqual(first, again);
    const tail: string[][] = [];
    for await (const batch of loader.epoch(0, 2)) {
      tail.push(batch.ids);
      batch.dispose();
    }
    assert.deepEqual(tail, first.ids.slice(2));
    assert.notDeepEqual(first.ids, second.ids);
    assert.equal(first.ids.flat().length, 20);
    assert.equal(new Set(first.ids.flat()).size, 20);
    for (const run of [first, second]) {
      run.ids.flat().forEach((id, k) => assert.equal(run.firstPixels.flat()[k], 10 * Number(id.slice(4))));
    }
  });

  it('gives labels with a mask for masked values, and leaves out records missing from the cache', async () => {
    const wanted = [records[3]!, { id: 'nowhere', labels: { Even: 1, Third: 1 } }, records[4]!];
    const loader = new BatchLoader(cache, { batchSize: 8, shuffle: false, records: wanted, tasks: ['Even', 'Third'] });
    assert.deepEqual(loader.missing, ['nowhere']);
    for await (const batch of loader.epoch(0)) {
      assert.deepEqual(batch.ids, ['flat3', 'flat4']);
      assert.deepEqual(batch.labels!.toArray(), [0, 0, 1, 1]);
      assert.deepEqual(batch.labelMask!.toArray(), [1, 0, 1, 1]);
      batch.dispose();
    }
  });

  it('two augmented views per batch, repeatable for a seed', async () => {
    const augment = mocoCxrAugmentation(6);
    const run = async (): Promise<Float32Array[]> => {
      const loader = new BatchLoader(cache, { batchSize: 4, seed: 9, augment, views: 2, dropLast: true });
      const out: Float32Array[] = [];
      for await (const batch of loader.epoch(2)) {
        assert.equal(batch.views.length, 2);
        assert.deepEqual(batch.images.shape, [4, 3, 6, 6]);
        out.push(...batch.views.map((view) => view.data() as Float32Array));
        batch.dispose();
      }
      return out;
    };
    const first = await run();
    const second = await run();
    assert.deepEqual(first, second);
    assert.notDeepEqual(first[0], first[1]);
  });

  it('shards of every batch, a short last one split as evenly as it goes, make up the one-process batch', async () => {
    // 23 images in batches of 4: the last holds 3 rows, split 0 / 1 / 1 / 1 over 4 ranks.
    const augment = mocoCxrAugmentation(6);
    const options = { batchSize: 4, seed: 4, augment, records, tasks: ['Even', 'Third'] };
    const views = async (shard?: {
      rank: number;
      count: number;
    }): Promise<{ ids: string[]; rows: Float32Array[] }[]> => {
      const out = [];
      for await (const batch of new BatchLoader(cache, { ...options, shard }).epoch(1)) {
        out.push({
          ids: batch.ids,
          rows: [batch.images, batch.labels!, batch.labelMask!].map((t) => t.data() as Float32Array),
        });
        batch.dispose();
      }
      return out;
    };
    const whole = await views();
    const shards = await Promise.all([0, 1, 2, 3].map((rank) => views({ rank, count: 4 })));
    assert.equal(whole.length, 6);
    assert.deepEqual(
      shards.map((batches) => batches[5]!.ids.length),
      [0, 1, 1, 1],
    );
    whole.forEach((batch, k) => {
      assert.deepEqual(
        shards.flatMap((batches) => batches[k]!.ids),
        batch.ids,
      );
      batch.rows.forEach((values, t) =>
        assert.deepEqual(Float32Array.from(shards.flatMap((batches) => [...batches[k]!.rows[t]!])), values),
      );
    });
  });

  it('disposing a batch frees its views, and a loop stopped early leaves the cache readable', async () => {
    const loader = new BatchLoader(cache, { batchSize: 4, augment: mocoCxrAugmentation(6), views: 2 });
    let seen: Batch | undefined;
    for await (const batch of loader.epoch(0)) {
      seen = batch;
      break;
    }
    seen!.dispose();
    assert.ok(seen!.views.every((view) => view.isDisposed));
    // The loop above left a prefetch in flight; the next epoch still reads correctly.
    const { ids } = await collect(new BatchLoader(cache, { batchSize: 23, shuffle: false }), 0);
    assert.equal(ids[0]!.length, 23);
  });

  it('patient positives: the second view is another image of the same patient, drawn by seed, epoch and batch', async () => {
    // Patients of three images (flat0-2, flat3-5, ...), and flat21, flat22 alone, with one record missing.
    const patientOf = (i: number): string => (i < 21 ? `p${Math.floor(i / 3)}` : `p${i}`);
    const wanted = [...records, { id: 'nowhere' }];
    const groups = [...records.map((_, i) => patientOf(i)), 'p0'];
    const options = { batchSize: 4, seed: 5, dropLast: true, views: 2, records: wanted, pairGroups: groups };
    const loader = new BatchLoader(cache, options);
    assert.deepEqual(loader.missing, ['nowhere']);
    const pixel = (batch: Batch, view: number, row: number): number => {
      const values = batch.views[view]!.data() as Float32Array;
      return Math.round(values[(row * values.length) / batch.ids.length]! * 255);
    };
    const seen = new Map<string, Set<string>>();
    const partnersOf = async (epoch: number, start = 0): Promise<string[][]> => {
      const all: string[][] = [];
      for await (const batch of new BatchLoader(cache, options).epoch(epoch, start)) {
        const partners = batch.partnerIds!;
        batch.ids.forEach((id, row) => {
          const i = Number(id.slice(4));
          const j = Number(partners[row]!.slice(4));
          assert.equal(patientOf(j), patientOf(i), `${id} paired with ${partners[row]}`);
          if (i < 21) assert.notEqual(j, i, `${id} has other images but paired with itself`);
          else assert.equal(j, i, `${id} is alone and pairs with itself`);
          // The pixels say which image each view was made from.
          assert.equal(pixel(batch, 0, row), 10 * i);
          assert.equal(pixel(batch, 1, row), 10 * j);
          if (!seen.has(id)) seen.set(id, new Set());
          seen.get(id)!.add(partners[row]!);
        });
        all.push(partners);
        batch.dispose();
      }
      return all;
    };
    const first = await partnersOf(0);
    assert.equal(first.length, loader.batchesPerEpoch);
    assert.deepEqual(await partnersOf(0), first, 'the same seed and epoch pair the same images');
    assert.deepEqual(await partnersOf(0, 2), first.slice(2), 'a resumed epoch pairs as the full one');
    for (let epoch = 1; epoch < 8; epoch++) await partnersOf(epoch);
    // Both other images of a patient get drawn over epochs.
    const twice = [...seen.entries()].filter(([id, partners]) => Number(id.slice(4)) < 21 && partners.size === 2);
    assert.ok(twice.length >= 15, `only ${twice.length} images met both partners`);
    assert.throws(
      () => new BatchLoader(cache, { ...options, pairGroups: groups.slice(1) }),
      /23 pair groups for 24 records/,
    );
  });

  it('image positives: without pair groups there are no partners and both views come from the image itself', async () => {
    for await (const batch of new BatchLoader(cache, { batchSize: 6, seed: 2, views: 2 }).epoch(0)) {
      assert.equal(batch.partnerIds, undefined);
      assert.deepEqual(batch.views[1]!.data(), batch.views[0]!.data());
      batch.dispose();
    }
  });

  it('reuses view buffers only once their batch is disposed: a batch kept longer keeps its pixels', async () => {
    const options = { batchSize: 4, seed: 9, augment: mocoCxrAugmentation(6), views: 2, dropLast: true };
    const expected: Float32Array[][] = [];
    for await (const batch of new BatchLoader(cache, options).epoch(1)) {
      expected.push(batch.views.map((view) => view.data() as Float32Array));
      batch.dispose();
    }
    // All batches held to the end: none may be overwritten by a later one.
    const kept: Batch[] = [];
    for await (const batch of new BatchLoader(cache, options).epoch(1)) kept.push(batch);
    assert.deepEqual(
      kept.map((batch) => batch.views.map((view) => view.data() as Float32Array)),
      expected,
    );
    kept.forEach((batch) => batch.dispose());
    // Disposed batches free their buffers for the next: the epoch repeats exactly after reuse too.
    const again: Float32Array[][] = [];
    for await (const batch of new BatchLoader(cache, options).epoch(1)) {
      again.push(batch.views.map((view) => view.data() as Float32Array));
      batch.dispose();
    }
    assert.deepEqual(again, expected);
  });
});

describe('buffer pool', () => {
  it('hands a buffer out again only when no other tensor shares its storage', () => {
    const pool = new BufferPool(2);
    const first = pool.take([2, 3]);
    first.fill_(1);
    const firstId = first._storageId();
    const saved = first.narrow(0, 0, 1);
    first.dispose();
    // A view still alive holds the storage: the next take gets another buffer.
    const second = pool.take([2, 3]);
    assert.notEqual(second._storageId(), firstId);
    saved.dispose();
    const third = pool.take([2, 3]);
    assert.equal(third._storageId(), firstId);
    // Past the limit, fresh tensors that the pool does not keep.
    const fourth = pool.take([2, 3]);
    assert.notEqual(fourth._storageId(), firstId);
    assert.notEqual(fourth._storageId(), second._storageId());
    pool.dispose();
    assert.deepEqual(third.toArray(), [1, 1, 1, 1, 1, 1], 'views outlive the pool');
    torch.dispose([second, third, fourth]);
  });
});
