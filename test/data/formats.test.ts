/**
 * Every format the README names, decoded the way the cache decodes them
 * (decodeResized), against PIL / pydicom / GDCM / DCMTK references; and every
 * cut-short file rejected with a message naming it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { decodeResized, ImageDecodeError } from '../../src/data/decode.js';
import {
  buildFormatFixtures,
  formatFixturesMissing,
  resizeMismatch,
  type Reference,
  shrinkAt,
} from '../helpers/formats.js';
import { tempDir } from '../helpers/oracle.js';

const SIZE = 24;

describe('formats written by other encoders', { skip: formatFixturesMissing() }, () => {
  let dir: { path: string; cleanup: () => void };
  let references: Record<string, Reference>;
  before(() => {
    dir = tempDir();
    references = buildFormatFixtures(dir.path, SIZE);
  });
  after(() => dir.cleanup());

  it('decode and resize every file as PIL / pydicom and torchvision would', async () => {
    const classes = new Set(Object.keys(references).map((path) => path.split('/').slice(0, 2).join('/')));
    assert.equal(classes.size, 28, `${[...classes].join(', ')}`);
    const failures: string[] = [];
    for (const [path, expected] of Object.entries(references)) {
      try {
        const pixels = await decodeResized(join(dir.path, path), { size: SIZE });
        const mismatch = resizeMismatch(pixels, expected, shrinkAt(SIZE));
        if (mismatch !== undefined) failures.push(`${path}: ${mismatch}`);
      } catch (error) {
        failures.push(`${path}: ${(error as Error).message}`);
      }
    }
    assert.deepEqual(failures, []);
  });

  it('a file cut anywhere is an error naming it and what was wrong, never [object Object]', async () => {
    const cuts = [0.1, 0.5, 0.9, 0.99];
    for (const path of Object.keys(references).filter((_, i) => i % 3 === 0)) {
      const bytes = readFileSync(join(dir.path, path));
      for (const fraction of cuts) {
        const name = `${path}@${fraction}`;
        await assert.rejects(
          decodeResized(bytes.subarray(0, Math.floor(bytes.length * fraction)), { size: SIZE, name }),
          (error: unknown) => {
            assert.ok(error instanceof ImageDecodeError, String(error));
            assert.equal(error.file, name);
            assert.ok(error.message.startsWith(`${name}: `), error.message);
            assert.doesNotMatch(error.message, /\[object |undefined|null/);
            assert.match(error.reason, /truncated|not a readable DICOM|could not decode|cannot be read|holds|expected/);
            return true;
          },
        );
      }
    }
  });

  it('a 12-bit JPEG extended DICOM says it is not read, and how to convert it', async () => {
    const source = join(dir.path, 'pydicom', 'mono2-12bit', '0.dcm');
    const extended = join(dir.path, 'extended.dcm');
    execFileSync('dcmcjpeg', ['+ee', source, extended]);
    await assert.rejects(decodeResized(extended, { size: SIZE }), {
      message: new RegExp(
        `^${extended}: JPEG extended pixel data could not be decoded \\(12-bit JPEG .*dcmdjpeg IN OUT`,
      ),
    });
  });

  it('a missing file is "not found"; a folder given as an image says so', async () => {
    const missing = join(dir.path, 'nowhere.png');
    await assert.rejects(decodeResized(missing, { size: SIZE }), { message: `${missing}: not found` });
    await assert.rejects(decodeResized(dir.path, { size: SIZE }), /is a folder, expected an image file/);
  });
});
