/** `nih:` on a small tree in the release's layout: findings, patients, studies, image folders, the split, errors. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { gzipSync } from 'node:zlib';

import { NIH_FINDINGS, openSource, summarizeSource } from '../../src/data/sources/index.js';
import { writeGreyImage } from '../helpers/images.js';

const root = mkdtempSync(join(tmpdir(), 'moco-cxr-nih-'));
after(() => rmSync(root, { recursive: true, force: true }));

const HEADER =
  'Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,' +
  'OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]';
const ROWS = [
  '00000001_000.png,Cardiomegaly,0,1,57,M,PA,2682,2749,0.143,0.143',
  '00000001_001.png,Cardiomegaly|Emphysema,1,1,58,M,PA,2894,2729,0.143,0.143',
  '00000002_000.png,No Finding,0,2,81,M,AP,2500,2048,0.171,0.171',
  '00000003_000.png,Hernia|Effusion|Pleural_Thickening,0,3,74,F,PA,2500,2048,0.168,0.168',
];

const png = (path: string): Promise<void> => writeGreyImage(path);

let trees = 0;
function tree(rows: readonly string[], name = 'Data_Entry_2017.csv'): { folder: string; csv: string } {
  const folder = join(root, `t${trees++}`);
  mkdirSync(folder, { recursive: true });
  const csv = join(folder, name);
  const text = [HEADER, ...rows].join('\n') + '\n';
  writeFileSync(csv, name.endsWith('.gz') ? gzipSync(text) : text);
  return { folder, csv };
}

test('nih: findings joined by |, No Finding all negative, patient and follow-up, projections', async () => {
  const { folder, csv } = tree(ROWS);
  // The release's layout: images_001/images/..., images_002/images/...
  await png(join(folder, 'images_001', 'images', '00000001_000.png'));
  await png(join(folder, 'images_001', 'images', '00000001_001.png'));
  await png(join(folder, 'images_002', 'images', '00000002_000.png'));
  const source = await openSource(`nih:${csv}`);
  assert.deepEqual(source.tasks, NIH_FINDINGS);
  assert.equal(source.tasks.length, 14);
  const positives = source.records.map((r) => source.tasks.filter((t) => r.labels[t] === 1));
  assert.deepEqual(positives, [
    ['Cardiomegaly'],
    ['Cardiomegaly', 'Emphysema'],
    [],
    ['Effusion', 'Pleural_Thickening', 'Hernia'],
  ]);
  assert.ok(source.records.every((r) => source.tasks.every((t) => r.labels[t] === 0 || r.labels[t] === 1)));
  assert.deepEqual(
    source.records.map((r) => [r.patientId, r.studyId, r.view, r.projection]),
    [
      ['00000001', '00000001_000', 'frontal', 'PA'],
      ['00000001', '00000001_001', 'frontal', 'PA'],
      ['00000002', '00000002_000', 'frontal', 'AP'],
      ['00000003', '00000003_000', 'frontal', 'PA'],
    ],
  );
  assert.deepEqual(
    source.records.map((r) => r.path),
    [
      join(folder, 'images_001', 'images', '00000001_000.png'),
      join(folder, 'images_001', 'images', '00000001_001.png'),
      join(folder, 'images_002', 'images', '00000002_000.png'),
      // Not there: named where the release would keep it, so that `data` reports it missing.
      join(folder, '00000003_000.png'),
    ],
  );
  const summary = await summarizeSource(source, { probe: Infinity });
  assert.equal(summary.patients, 3);
  assert.equal(summary.studies, 4);
  assert.deepEqual(
    summary.probe?.unreadable.map((u) => u.id),
    ['00000003_000.png'],
  );
  assert.equal(summary.patientRule, "column 'Patient ID', studies by 'Follow-up #'");
  const ap = await openSource(`nih:${csv}`, { projections: ['AP'] });
  assert.deepEqual(
    ap.records.map((r) => r.id),
    ['00000002_000.png'],
  );
});

test('nih: the folder, the _v2020 and .gz names, images/ and imageRoot', async () => {
  const { folder, csv } = tree(ROWS.slice(0, 2), 'Data_Entry_2017_v2020.csv.gz');
  await png(join(folder, 'images', '00000001_000.png'));
  const byFolder = await openSource(`nih:${folder}`);
  assert.equal(byFolder.records.length, 2);
  assert.equal(byFolder.records[0]?.path, join(folder, 'images', '00000001_000.png'));
  // A missing image is named under images/ when that folder is there.
  assert.equal(byFolder.records[1]?.path, join(folder, 'images', '00000001_001.png'));
  const elsewhere = join(root, 'elsewhere');
  await png(join(elsewhere, 'images_003', '00000001_001.png'));
  const moved = await openSource(`nih:${csv}`, { imageRoot: elsewhere });
  assert.equal(moved.records[1]?.path, join(elsewhere, 'images_003', '00000001_001.png'));
  await assert.rejects(
    openSource(`nih:${elsewhere}`),
    /nih: .*elsewhere is a folder without Data_Entry_2017_v2020.csv/,
  );
});

test('nih: the 2017 file, whose lines end in a comma (an unnamed last column)', async () => {
  const { csv } = tree([], 'Data_Entry_2017.csv');
  writeFileSync(csv, [`${HEADER},`, ...ROWS.map((row) => `${row},`)].join('\n') + '\n');
  const source = await openSource(`nih:${csv}`);
  assert.equal(source.records.length, 4);
  assert.deepEqual(source.records[1]?.labels.Emphysema, 1);
});

test('nih: the official split from train_val_list.txt and test_list.txt', async () => {
  const { folder, csv } = tree(ROWS);
  await assert.rejects(
    openSource(`nih:${csv}`, { split: 'test' }),
    new RegExp(`nih: split 'test' needs ${join(folder, 'test_list.txt')}, which is not there`),
  );
  writeFileSync(join(folder, 'train_val_list.txt'), '00000001_000.png\n00000001_001.png\n00000003_000.png\n');
  writeFileSync(join(folder, 'test_list.txt'), '00000002_000.png\r\n');
  const ids = async (split: string): Promise<string[]> =>
    (await openSource(`nih:${csv}`, { split })).records.map((r) => r.id);
  assert.deepEqual(await ids('test'), ['00000002_000.png']);
  assert.deepEqual(await ids('train'), ['00000001_000.png', '00000001_001.png', '00000003_000.png']);
  assert.equal((await openSource(`nih:${csv}`)).records.length, 4);
  await assert.rejects(
    openSource(`nih:${csv}`, { split: 'valid' }),
    /nih: unknown split 'valid'; expected train or test/,
  );
  writeFileSync(join(folder, 'test_list.txt'), '00000002_000.png\n../x/00000002_000.png\n');
  await assert.rejects(
    openSource(`nih:${csv}`, { split: 'test' }),
    /test_list.txt line 2: expected an image name, got '..\/x\/00000002_000.png'/,
  );
});

test('nih: malformed files name the file, line and column', async () => {
  const cases: [string[], RegExp][] = [
    [
      [ROWS[0] as string, '00000002_000.png,Cardiomegally,0,2,81,M,AP,1,1,1,1'],
      /line 3, column 2 \(Finding Labels\): unknown finding 'Cardiomegally'/,
    ],
    [
      ['00000002_000.png,No Finding,0,2,81,M,LL,1,1,1,1'],
      /line 2, column 7 \(View Position\): expected PA or AP, got 'LL'/,
    ],
    [
      ['00000002_000.png,No Finding,x,2,81,M,AP,1,1,1,1'],
      /line 2, column 3 \(Follow-up #\): expected a follow-up number, got 'x'/,
    ],
    [
      ['00000002_000.png,No Finding,0,,81,M,AP,1,1,1,1'],
      /line 2, column 4 \(Patient ID\): expected a numeric patient id, got ''/,
    ],
    [
      ['../../etc/00000002_000.png,No Finding,0,2,81,M,AP,1,1,1,1'],
      /line 2, column 1 \(Image Index\): expected an image file name/,
    ],
    [['00000002_000.png,No Finding,0,2,81,M,AP,1,1,1'], /line 2: 10 columns, expected 11/],
  ];
  for (const [rows, message] of cases) {
    const { csv } = tree(rows);
    await assert.rejects(openSource(`nih:${csv}`), (error: Error) => {
      assert.ok(error.message.startsWith(csv), error.message);
      assert.match(error.message, message);
      return true;
    });
  }
  const folder = join(root, 'no-view');
  mkdirSync(folder);
  writeFileSync(join(folder, 'Data_Entry_2017.csv'), 'Image Index,Finding Labels,Follow-up #,Patient ID\n');
  await assert.rejects(
    openSource(`nih:${folder}`),
    /Data_Entry_2017.csv: no column 'View Position' \(the projection\)/,
  );
});
