import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import sharp from 'sharp';

import { buildCache, ImageCache, type CacheRecord } from '../../src/data/cache.js';
import { decodeResized } from '../../src/data/decode.js';
import { tempDir } from '../helpers/oracle.js';

const DATA = fileURLToPath(new URL('../../../shared/data', import.meta.url));

function realDataMissing(): string | undefined {
  return existsSync(join(DATA, 'tb-shenzhen-montgomery-128')) ? undefined : `${DATA} is absent`;
}

const quiet = (lines: string[]) => (line: string) => lines.push(line);

/** Writes `count` grey PNGs of `width`×`height` whose pixels depend on the index; returns their records. */
async function writeImages(folder: string, count: number, width = 24, height = 20): Promise<CacheRecord[]> {
  const records: CacheRecord[] = [];
  for (let i = 0; i < count; i++) {
    const pixels = Uint8Array.from({ length: width * height }, (_, p) => (i * 7 + p * 3) % 256);
    const path = join(folder, `img${String(i).padStart(4, '0')}.png`);
    await sharp(pixels, { raw: { width, height, channels: 1 } })
      .png()
      .toFile(path);
    records.push({ id: `img${i}`, path });
  }
  return records;
}

describe('image cache', () => {
  let dir: { path: string; cleanup: () => void };
  let records: CacheRecord[];
  let broken: CacheRecord[];
  before(async () => {
    dir = tempDir();
    records = await writeImages(dir.path, 12);
    const jpeg = await sharp(
      Uint8Array.from({ length: 64 * 64 }, (_, i) => i % 256),
      {
        raw: { width: 64, height: 64, channels: 1 },
      },
    )
      .jpeg()
      .toBuffer();
    writeFileSync(join(dir.path, 'cut.jpeg'), jpeg.subarray(0, 150));
    writeFileSync(join(dir.path, 'notes.png'), 'not an image at all');
    broken = [
      { id: 'cut', path: join(dir.path, 'cut.jpeg') },
      { id: 'gone', path: join(dir.path, 'missing.png') },
      { id: 'text', path: join(dir.path, 'notes.png') },
    ];
  });
  after(() => dir.cleanup());

  it('stores every image decoded and resized once, readable by position', async () => {
    const lines: string[] = [];
    const { cache, stats } = await buildCache(records, {
      dir: join(dir.path, 'a'),
      size: 16,
      workers: 2,
      log: quiet(lines),
    });
    assert.deepEqual([stats.reused, stats.decoded, stats.skipped], [false, 12, 0]);
    assert.equal(cache.length, 12);
    assert.deepEqual(
      cache.ids,
      records.map((r) => r.id),
    );
    const bytes = await cache.read([3, 0, 11]);
    for (const [k, position] of [3, 0, 11].entries()) {
      const expected = await decodeResized(records[position]!.path, { size: 16 });
      assert.deepEqual(bytes.subarray(k * 256, (k + 1) * 256), expected);
    }
    assert.ok(
      lines.some((line) => /^cache: done, 12 decoded/.test(line)),
      lines.join('\n'),
    );
    await cache.close();
    const reopened = await ImageCache.open(join(dir.path, 'a'));
    assert.deepEqual(await reopened.read([5]), await decodeResized(records[5]!.path, { size: 16 }));
    await reopened.close();
  });

  it('is reused when nothing changed and rebuilt when the size, the list or a file changes', async () => {
    const folder = join(dir.path, 'b');
    const log = quiet([]);
    const first = await buildCache(records, { dir: folder, size: 16, log, workers: 1 });
    await first.cache.close();
    const again = await buildCache(records, { dir: folder, size: 16, log, workers: 1 });
    assert.deepEqual([again.stats.reused, again.stats.decoded], [true, 0]);

    const bigger = await buildCache(records, { dir: folder, size: 20, log, workers: 1 });
    assert.deepEqual([bigger.stats.reused, bigger.stats.decoded, bigger.cache.size], [false, 12, 20]);
    const squashed = await buildCache(records, { dir: folder, size: 20, fit: 'squash', log, workers: 1 });
    assert.equal(squashed.stats.decoded, 12);

    const fewer = await buildCache(records.slice(0, 10), { dir: folder, size: 20, fit: 'squash', log, workers: 1 });
    assert.deepEqual([fewer.stats.decoded, fewer.cache.length], [10, 10]);

    const later = new Date(Date.now() + 5000);
    utimesSync(records[0]!.path, later, later);
    const touched = await buildCache(records.slice(0, 10), { dir: folder, size: 20, fit: 'squash', log, workers: 1 });
    assert.equal(touched.stats.decoded, 10);
  });

  it('skips corrupt, truncated and missing images with a warning naming each, and counts them', async () => {
    const lines: string[] = [];
    const mixed = [...records.slice(0, 4), ...broken, ...records.slice(4, 6)];
    const { cache, stats } = await buildCache(mixed, { dir: join(dir.path, 'c'), size: 16, log: quiet(lines) });
    assert.equal(stats.skipped, 3);
    assert.equal(cache.length, 6);
    assert.deepEqual(cache.skipped.map((entry) => entry.id).sort(), ['cut', 'gone', 'text']);
    for (const record of broken) {
      assert.ok(
        lines.some((line) => line.startsWith('cache: warning: skipped') && line.includes(record.path)),
        `no warning names ${record.path}:\n${lines.join('\n')}`,
      );
    }
    assert.ok(lines.some((line) => /3 skipped \(unreadable or missing/.test(line)));
    // Positions skip the holes: position 4 is the fifth good image.
    assert.equal(cache.ids[4], 'img4');
    assert.equal(cache.positionOfId('gone'), undefined);
    assert.deepEqual(await cache.read([4]), await decodeResized(records[4]!.path, { size: 16 }));
    await cache.close();
  });

  it('in strict mode an unreadable image is an error naming it', async () => {
    await assert.rejects(
      buildCache([...records.slice(0, 3), broken[0]!], {
        dir: join(dir.path, 'd'),
        size: 16,
        strict: true,
        log: quiet([]),
      }),
      new RegExp(`cut\\.jpeg`),
    );
    assert.equal(existsSync(join(dir.path, 'd', 'index.json')), false);
  });

  it('resumes an aborted build without decoding the finished images again', async () => {
    const folder = join(dir.path, 'e');
    const many = [...records, ...(await writeImagesIn(dir.path, 'more', 28))];
    const controller = new AbortController();
    await assert.rejects(
      buildCache(many, {
        dir: folder,
        size: 16,
        workers: 1,
        signal: controller.signal,
        log: quiet([]),
        onProgress: ({ decoded }) => {
          if (decoded === 15) controller.abort(new Error('stopped by the test'));
        },
      }),
      /stopped by the test/,
    );
    assert.equal(existsSync(join(folder, 'index.json')), false);
    const resumed = await buildCache(many, { dir: folder, size: 16, log: quiet([]) });
    assert.ok(resumed.stats.resumed >= 15, `resumed ${resumed.stats.resumed}`);
    assert.equal(resumed.stats.resumed + resumed.stats.decoded, many.length);
    const all = await resumed.cache.read(many.map((_, i) => i));
    for (const i of [0, 14, 20, many.length - 1]) {
      assert.deepEqual(all.subarray(i * 256, (i + 1) * 256), await decodeResized(many[i]!.path, { size: 16 }));
    }
    await resumed.cache.close();
  });

  it('resumes after the building process is killed', async () => {
    const folder = join(dir.path, 'f');
    const many = await writeImagesIn(dir.path, 'big', 160, 256, 256);
    const listFile = join(dir.path, 'big.json');
    writeFileSync(listFile, JSON.stringify(many));
    const cacheModule = fileURLToPath(new URL('../../src/data/cache.ts', import.meta.url));
    const script = `import { buildCache } from ${JSON.stringify(cacheModule)};
import { readFileSync } from 'node:fs';
await buildCache(JSON.parse(readFileSync(${JSON.stringify(listFile)}, 'utf8')), { dir: ${JSON.stringify(folder)}, size: 128, workers: 1, log: () => {} });`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: 'ignore',
    });
    const journal = join(folder, 'build.jsonl');
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    let lines = 0;
    while (lines < 30) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      lines = existsSync(journal) ? readFileSync(journal, 'utf8').split('\n').length - 2 : 0;
      assert.ok(child.exitCode === null, 'the build finished before it could be interrupted');
    }
    child.kill('SIGKILL');
    await exited;
    const resumed = await buildCache(many, { dir: folder, size: 128, log: quiet([]) });
    assert.ok(resumed.stats.resumed >= 30 && resumed.stats.resumed < many.length, `resumed ${resumed.stats.resumed}`);
    assert.equal(resumed.stats.resumed + resumed.stats.decoded, many.length);
    const all = await resumed.cache.read(many.map((_, i) => i));
    for (const i of [0, 29, many.length - 1]) {
      const expected = await decodeResized(many[i]!.path, { size: 128 });
      assert.deepEqual(all.subarray(i * 128 * 128, (i + 1) * 128 * 128), expected);
    }
    await resumed.cache.close();
  });

  it('reads real radiographs', { skip: realDataMissing() }, async () => {
    const root = join(DATA, 'tb-shenzhen-montgomery-128', 'test');
    const real = readdirSync(root)
      .filter((name) => name.endsWith('.png'))
      .slice(0, 20)
      .map((name) => ({ id: name, path: join(root, name) }));
    const { cache, stats } = await buildCache(real, { dir: join(dir.path, 'real'), size: 64, log: quiet([]) });
    assert.deepEqual([stats.decoded, stats.skipped], [20, 0]);
    const pixels = await cache.read([0]);
    const mean = pixels.reduce((sum, v) => sum + v, 0) / pixels.length;
    assert.ok(mean > 30 && mean < 220, `mean grey ${mean}`);
    await cache.close();
  });
});

async function writeImagesIn(
  root: string,
  name: string,
  count: number,
  width = 24,
  height = 20,
): Promise<CacheRecord[]> {
  const folder = join(root, name);
  mkdirSync(folder, { recursive: true });
  const written = await writeImages(folder, count, width, height);
  return written.map((record) => ({ ...record, id: `${name}/${record.id}` }));
}
