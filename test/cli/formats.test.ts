/**
 * Every format the README names, end to end through the CLI: folders of files
 * written by PIL, pydicom, GDCM and DCMTK go through `moco-cxr data` and
 * `moco-cxr pretrain --max-steps 2`; nothing is skipped, and the cached pixels
 * are PIL's / pydicom's pixels resized as torchvision resizes them.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { ImageCache } from '../../src/data/cache.js';
import { sourceCacheFolder } from '../../src/data/cache-folder.js';
import {
  buildFormatFixtures,
  FAMILIES,
  formatFixturesMissing,
  type Reference,
  resizeMismatch,
  shrinkAt,
} from '../helpers/formats.js';
import { tempDir } from '../helpers/oracle.js';

const SIZE = 24;

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args], {
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: '1' },
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

interface DataReport {
  images: number;
  probe: { probed: number; of: number; unreadable: { id: string; error: string }[]; formats: Record<string, number> };
  skipped: { path: string; reason: string }[];
}

describe('every format, through moco-cxr data and pretrain', { skip: formatFixturesMissing() }, () => {
  let dir: { path: string; cleanup: () => void };
  let references: Record<string, Reference>;
  before(() => {
    dir = tempDir();
    references = buildFormatFixtures(join(dir.path, 'images'), SIZE);
    // What a real folder collects beside the images: each is counted and reported, not silently passed over.
    const pil = join(dir.path, 'images', 'pil');
    writeFileSync(join(pil, 'grey8', '.DS_Store'), 'Bud1');
    writeFileSync(join(pil, 'grey8', 'notes.txt'), 'acquired 2024');
    symlinkSync(join(dir.path, 'nowhere.png'), join(pil, 'palette', 'gone.png'));
  });
  after(() => dir.cleanup());

  for (const family of FAMILIES) {
    it(`${family}: data checks every image readable; pretrain caches them all, as the reference resize`, async () => {
      const root = join(dir.path, 'images', family);
      const expected = Object.keys(references).filter((path) => path.startsWith(`${family}/`));

      const data = cli('data', `folder:${root}`, '--json');
      assert.equal(data.status, 0, data.stderr);
      const report = JSON.parse(data.stdout) as DataReport;
      assert.equal(report.images, expected.length);
      assert.equal(report.probe.probed, expected.length);
      assert.deepEqual(report.probe.unreadable, []);

      const out = join(dir.path, `run-${family}`);
      const cacheDir = join(dir.path, 'cache');
      const run = cli(
        'pretrain',
        `--data=folder:${root}`,
        '--max-steps=2',
        `--image-size=${SIZE}`,
        '--batch-size=2',
        '--queue=4',
        '--workers=2',
        `--out=${out}`,
        `--cache-dir=${join(cacheDir, family)}`,
      );
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.stderr, new RegExp(`cache: done, ${expected.length} decoded .*, 0 skipped`));

      const cache = await ImageCache.open(sourceCacheFolder(join(cacheDir, family), `folder:${root}`, SIZE));
      assert.equal(cache.length, expected.length);
      const failures: string[] = [];
      for (const path of expected) {
        const position = cache.positionOfId(path.slice(family.length + 1));
        if (position === undefined) {
          failures.push(`${path}: not in the cache`);
          continue;
        }
        const mismatch = resizeMismatch(await cache.read([position]), references[path]!, shrinkAt(SIZE));
        if (mismatch !== undefined) failures.push(`${path}: ${mismatch}`);
      }
      assert.deepEqual(failures, []);
      if (family === 'pil') {
        // The files beside the images are named in data's report, and in a warning when pretraining opens the source.
        assert.deepEqual(
          report.skipped.map((entry) => `${entry.path}: ${entry.reason}`),
          [
            'grey8/.DS_Store: hidden file',
            'grey8/notes.txt: not an image file',
            'palette/gone.png: broken symbolic link',
          ],
        );
        assert.match(
          run.stderr,
          /data: warning: 3 files in folder:\S+ not taken \(1 hidden file, 1 not an image file, 1 broken symbolic link\)/,
        );
      }
    });
  }
});
