/** `moco-cxr data`: the JSON report on the real TB folder, the text report, and errors. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import sharp from 'sharp';

import { buildCache } from '../../src/data/cache.js';
import { oracleMissing, runPython } from '../helpers/oracle.js';

const TB_TRAIN = fileURLToPath(new URL('../../../shared/data/tb-shenzhen-montgomery-128/train', import.meta.url));
const folder = mkdtempSync(join(tmpdir(), 'moco-cxr-data-cli-'));
after(() => rmSync(folder, { recursive: true, force: true }));

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', 'data', ...args], {
    encoding: 'utf8',
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

interface Report {
  source: string;
  kind: string;
  images: number;
  patients: number;
  studies: number;
  tasks: string[];
  defaultTask: string;
  labels: Record<string, { positive: number; negative: number; masked: number }>;
  views: Record<string, number>;
  probe: {
    probed: number;
    of: number;
    sizes: Record<string, number>;
    depths: Record<string, number>;
    channels: Record<string, number>;
    formats: Record<string, number>;
    unreadable: { id: string; error: string }[];
  };
}

test('data --json on the TB train folder', { skip: existsSync(TB_TRAIN) ? false : `no ${TB_TRAIN}` }, () => {
  const { status, stdout, stderr } = cli(`tb:${TB_TRAIN}`, '--json', '--probe', '1000');
  assert.equal(status, 0, stderr);
  const report = JSON.parse(stdout) as Report;
  assert.equal(report.source, `tb:${TB_TRAIN}`);
  assert.equal(report.kind, 'tb');
  assert.equal(report.images, 500);
  assert.equal(report.patients, 500);
  assert.equal(report.studies, 500);
  assert.deepEqual(report.tasks, ['Tuberculosis']);
  assert.equal(report.defaultTask, 'Tuberculosis');
  assert.deepEqual(report.labels, { Tuberculosis: { positive: 244, negative: 256, masked: 0 } });
  assert.deepEqual(report.views, { frontal: 500 });
  assert.deepEqual(report.probe, {
    probed: 500,
    of: 500,
    sizes: { '128x128': 500 },
    depths: { '8-bit': 500 },
    channels: { '1': 500 },
    formats: { png: 500 },
    unreadable: [],
  });
});

test('data: the probe is capped and spread; unreadable files are listed', async () => {
  const root = join(folder, 'set');
  for (const name of ['NORMAL', 'PNEUMONIA']) mkdirSync(join(root, name), { recursive: true });
  const grey16 = sharp(Buffer.alloc(6 * 4 * 2, 0x7f), {
    raw: { width: 6, height: 4, channels: 1, premultiplied: false },
  });
  await grey16
    .toColourspace('grey16')
    .png()
    .toFile(join(root, 'NORMAL', 'a.png'));
  await sharp({ create: { width: 5, height: 3, channels: 3, background: '#808080' } })
    .jpeg()
    .toFile(join(root, 'NORMAL', 'b.jpeg'));
  writeFileSync(join(root, 'PNEUMONIA', 'broken.png'), 'not an image');
  await sharp({ create: { width: 5, height: 3, channels: 3, background: '#808080' } })
    .jpeg()
    .toFile(join(root, 'PNEUMONIA', 'c.jpeg'));

  const all = JSON.parse(cli(`folder:${root}`, '--json').stdout) as Report;
  assert.equal(all.probe.probed, 4);
  assert.deepEqual(all.probe.sizes, { '6x4': 1, '5x3': 2 });
  assert.deepEqual(all.probe.formats, { png: 1, jpeg: 2 });
  assert.deepEqual(all.probe.depths, { '16-bit': 1, '8-bit': 2 });
  assert.deepEqual(all.probe.channels, { '1': 1, '3': 2 });
  assert.deepEqual(
    all.probe.unreadable.map((entry) => entry.id),
    ['PNEUMONIA/broken.png'],
  );
  assert.deepEqual(all.defaultTask, 'PNEUMONIA');

  const capped = JSON.parse(cli(`folder:${root}`, '--json', '--probe', '2').stdout) as Report;
  assert.equal(capped.probe.probed, 2);
  assert.equal(capped.probe.of, 4);
  // Spread over the list: one image from each class folder (NORMAL/a.png, PNEUMONIA/broken.png).
  assert.deepEqual(capped.probe.formats, { png: 1 });
  assert.deepEqual(
    capped.probe.unreadable.map((entry) => entry.id),
    ['PNEUMONIA/broken.png'],
  );

  const text = cli(`folder:${root}`, '--probe', '2');
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /^images {7}4$/m);
  assert.match(
    text.stdout,
    /images checked 2 of 4 \(spread over the set; 2 not checked, --probe all checks every one\), decoded as the image cache will/,
  );
});

test('data: a CSV report carries the counts as written, and the policies', () => {
  const csv = join(folder, 'labels.csv');
  writeFileSync(csv, ['Path,effusion', 'a.png,1.0', 'b.png,-1.0', 'c.png,', 'd.png,0.0'].join('\n'));
  const { status, stdout, stderr } = cli(`csv:${csv}`, '--json', '--probe', '0', '--uncertain', 'effusion=ones');
  assert.equal(status, 0, stderr);
  const report = JSON.parse(stdout) as Report & {
    labels: Record<string, { file: Record<string, number> }>;
    policy: { uncertain: Record<string, string>; blank: string };
  };
  assert.deepEqual(report.labels.effusion, {
    positive: 2,
    negative: 2,
    masked: 0,
    file: { positive: 1, negative: 1, uncertain: 1, blank: 1 },
  });
  assert.deepEqual(report.policy, { uncertain: { effusion: 'ones' }, blank: 'zeros' });
  assert.equal(report.probe, undefined);
  const text = cli(`csv:${csv}`);
  assert.match(
    text.stdout,
    /labels as written in the file\n {2}task +positive +negative +uncertain +blank\n {2}effusion +1 +1 +1 +1/,
  );
  assert.match(text.stdout, /none of the images read is there/);
});

test('data: errors exit non-zero with the message', () => {
  const unknown = cli('nifti:/x');
  assert.equal(unknown.status, 1);
  assert.match(unknown.stderr, /unknown kind 'nifti'; the kinds are:\n {2}chexpert/);
  const none = cli();
  assert.equal(none.status, 2);
  assert.match(none.stderr, /expected one KIND:PATH, got 0/);
  const task = cli(`csv:${join(folder, 'labels.csv')}`, '--task', 'Edema', '--probe', '0');
  assert.equal(task.status, 1);
  assert.match(task.stderr, /--task 'Edema': no such task/);
  const policy = cli(`csv:${join(folder, 'labels.csv')}`, '--uncertain', 'maybe');
  assert.match(policy.stderr, /--uncertain 'maybe': expected ones, zeros, ignore or TASK=POLICY/);
});

test('data judges each file as the image cache will, and says why one will not decode', async () => {
  const images = join(folder, 'judged');
  mkdirSync(join(images, 'dir.png'), { recursive: true });
  const grey = Uint8Array.from({ length: 30 * 20 }, (_, i) => (i * 7) % 256);
  const png = await sharp(grey, { raw: { width: 30, height: 20, channels: 1 } })
    .png()
    .toBuffer();
  writeFileSync(join(images, 'ok.png'), png);
  // The header is whole; the pixel data is cut short.
  writeFileSync(join(images, 'cut.png'), png.subarray(0, Math.floor(png.length * 0.6)));
  await sharp(
    Uint16Array.from(grey, (v) => v * 200),
    { raw: { width: 30, height: 20, channels: 1 } },
  )
    .toColourspace('grey16')
    .png()
    .toFile(join(images, 'deep.png'));
  const paths = ['ok.png', 'cut.png', 'deep.png', 'missing.png', 'dir.png'];
  if (oracleMissing() === undefined) {
    runPython(
      String.raw`
import numpy as np, sys
sys.path.insert(0, INPUT['helpers'])
import formats
formats.dicom_dataset(WORKDIR + '/scan.dcm', (np.arange(20 * 30).reshape(20, 30) * 5) % 4096, bits_stored=12)
cut = open(WORKDIR + '/scan.dcm', 'rb').read()
open(WORKDIR + '/cut.dcm', 'wb').write(cut[: len(cut) - 500])`,
      { helpers: fileURLToPath(new URL('../helpers', import.meta.url)) },
      images,
    );
    paths.push('scan.dcm', 'cut.dcm');
  }
  const csv = join(folder, 'judged.csv');
  writeFileSync(csv, ['Path,label', ...paths.map((path, i) => `${path},${i % 2}`)].join('\n'));

  const { status, stdout, stderr } = cli(`csv:${csv}`, '--image-root', images, '--json');
  assert.equal(status, 0, stderr);
  const report = JSON.parse(stdout) as Report;
  const unreadable = Object.fromEntries(report.probe.unreadable.map((entry) => [entry.id, entry.error]));
  assert.deepEqual(
    Object.keys(unreadable).sort(),
    ['cut.dcm', 'cut.png', 'dir.png', 'missing.png'].filter((id) => paths.includes(id)),
  );
  assert.equal(unreadable['missing.png'], 'not found');
  assert.equal(unreadable['dir.png'], 'is a folder, expected an image file');
  assert.match(unreadable['cut.png'] ?? '', /could not decode image \(.+\)/);
  if (paths.includes('cut.dcm')) assert.match(unreadable['cut.dcm'] ?? '', /DICOM .*truncated/);
  for (const error of Object.values(unreadable)) assert.doesNotMatch(error, /\[object |unsupported image format/);

  // The cache skips exactly those files, for the same reasons.
  const records = paths.map((path) => ({ id: path, path: join(images, path) }));
  const { cache } = await buildCache(records, {
    dir: join(folder, 'judged-cache'),
    size: 8,
    workers: 1,
    log: () => {},
  });
  assert.deepEqual(Object.fromEntries(cache.skipped.map((entry) => [entry.id, entry.reason])), unreadable);
});

test('data checks every image of a 1,000-image set by default, so 4 RGBA files among them show', async () => {
  const root = join(folder, 'thousand');
  for (const name of ['NORMAL', 'PNEUMONIA']) mkdirSync(join(root, name), { recursive: true });
  const grey = await sharp({ create: { width: 4, height: 4, channels: 3, background: '#606060' } })
    .toColourspace('b-w')
    .png()
    .toBuffer();
  const rgba = await sharp({ create: { width: 4, height: 4, channels: 4, background: '#60606080' } })
    .png()
    .toBuffer();
  for (let i = 0; i < 1000; i++) {
    const rgbaAt = [111, 222, 333, 777].includes(i);
    writeFileSync(
      join(root, i < 500 ? 'NORMAL' : 'PNEUMONIA', `${String(i).padStart(4, '0')}.png`),
      rgbaAt ? rgba : grey,
    );
  }
  const { status, stdout, stderr } = cli(`folder:${root}`, '--json');
  assert.equal(status, 0, stderr);
  const report = JSON.parse(stdout) as Report;
  assert.equal(report.probe.probed, 1000);
  assert.deepEqual(report.probe.channels, { '1': 996, '4': 4 });
  const text = cli(`folder:${root}`, '--probe', '100');
  assert.match(
    text.stdout,
    /images checked 100 of 1000 \(spread over the set; 900 not checked, --probe all checks every one\)/,
  );
});
