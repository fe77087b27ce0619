/** `moco-cxr data`: the JSON report on the real TB folder, the text report, and errors. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import sharp from 'sharp';

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
