/** `vindr:` on a small tree in VinDr-CXR's layout: the reader rule, DICOM paths, errors. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { openSource, summarizeSource, VINDR_FINDINGS } from '../../src/data/sources/index.js';
import { oracleMissing, runPython } from '../helpers/oracle.js';

const root = mkdtempSync(join(tmpdir(), 'moco-cxr-vindr-'));
after(() => rmSync(root, { recursive: true, force: true }));

const HEADER = 'image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max';
/** Three readers on image a1: two mark cardiomegaly (one twice), one says no finding; b2 has no finding from all. */
const ROWS = [
  'a1,Cardiomegaly,3,R8,691.0,1375.0,1653.0,1831.0',
  'a1,Cardiomegaly,3,R8,700.0,1380.0,1650.0,1830.0',
  'a1,Cardiomegaly,3,R9,690.0,1370.0,1655.0,1835.0',
  'a1,Aortic enlargement,0,R9,1264.0,743.0,1611.0,1019.0',
  'a1,No finding,14,R10,,,,',
  'b2,No finding,14,R1,,,,',
  'b2,No finding,14,R2,,,,',
  'b2,No finding,14,R3,,,,',
  'c3,Nodule/Mass,8,R11,10,10,20,20',
];

let trees = 0;
function tree(rows: readonly string[]): { folder: string; csv: string } {
  const folder = join(root, `t${trees++}`);
  mkdirSync(join(folder, 'train'), { recursive: true });
  const csv = join(folder, 'train.csv');
  writeFileSync(csv, [HEADER, ...rows].join('\n') + '\n');
  return { folder, csv };
}

const positives = (source: Awaited<ReturnType<typeof openSource>>): Record<string, string[]> =>
  Object.fromEntries(source.records.map((r) => [r.id, source.tasks.filter((t) => r.labels[t] === 1)]));

test('vindr: a finding is positive when at least minReaders readers marked it', async () => {
  const { folder, csv } = tree(ROWS);
  const any = await openSource(`vindr:${csv}`);
  assert.deepEqual(any.tasks, VINDR_FINDINGS);
  assert.deepEqual(positives(any), { a1: ['Aortic enlargement', 'Cardiomegaly'], b2: [], c3: ['Nodule/Mass'] });
  assert.deepEqual(
    any.records.map((r) => [r.path, r.patientId, r.studyId, r.view, r.projection]),
    ['a1', 'b2', 'c3'].map((id) => [join(folder, 'train', `${id}.dicom`), id, id, 'frontal', undefined]),
  );
  // R8's two boxes count once: two readers marked cardiomegaly, one aortic enlargement.
  assert.deepEqual(positives(await openSource(`vindr:${csv}`, { minReaders: 2 })), {
    a1: ['Cardiomegaly'],
    b2: [],
    c3: [],
  });
  assert.deepEqual(positives(await openSource(`vindr:${csv}`, { minReaders: 3 })), { a1: [], b2: [], c3: [] });
  await assert.rejects(openSource(`vindr:${csv}`, { minReaders: 0 }), /minReaders must be a positive integer, got 0/);
  const moved = await openSource(`vindr:${csv}`, { imageRoot: join(root, 'dicoms') });
  assert.equal(moved.records[0]?.path, join(root, 'dicoms', 'train', 'a1.dicom'));
});

test('vindr: the DICOM files decode, and a missing one is reported', { skip: oracleMissing() }, async () => {
  const { folder, csv } = tree(ROWS);
  runPython(
    String.raw`
import numpy as np, sys
sys.path.insert(0, INPUT['helpers'])
import formats
for name in ('a1', 'b2'):
    formats.dicom_dataset(WORKDIR + '/train/' + name + '.dicom', (np.arange(12 * 10).reshape(12, 10) * 30) % 4096, bits_stored=12)`,
    { helpers: fileURLToPath(new URL('../helpers', import.meta.url)) },
    folder,
  );
  const summary = await summarizeSource(await openSource(`vindr:${csv}`), { probe: Infinity });
  assert.deepEqual(summary.probe?.formats, { dicom: 2 });
  assert.deepEqual(summary.probe?.sizes, { '10x12': 2 });
  assert.deepEqual(
    summary.probe?.unreadable.map((u) => [u.id, u.error]),
    [['c3', 'not found']],
  );
  assert.equal(summary.patients, 3);
  assert.match(summary.patientRule, /^one per image/);
});

test('vindr: malformed rows name the file, line and column', async () => {
  const cases: [string, RegExp][] = [
    ['a1,Cardiomegally,3,R8,1,1,2,2', /line 2, column 2 \(class_name\): unknown finding 'Cardiomegally'/],
    [
      'a1,Cardiomegaly,4,R8,1,1,2,2',
      /line 2, column 3 \(class_id\): class_id '4' does not match 'Cardiomegaly', which is 3/,
    ],
    ['a1,No finding,14,,,,,', /line 2, column 4 \(rad_id\): empty radiologist id/],
    ['../a1,No finding,14,R1,,,,', /line 2, column 1 \(image_id\): expected an image id/],
  ];
  for (const [row, message] of cases) {
    const { csv } = tree([ROWS[0] as string, row].slice(1));
    await assert.rejects(openSource(`vindr:${csv}`), (error: Error) => {
      assert.ok(error.message.startsWith(csv), error.message);
      assert.match(error.message, message);
      return true;
    });
  }
  const { csv } = tree([]);
  writeFileSync(csv, 'image_id,class_name,rad_id\n');
  await assert.rejects(openSource(`vindr:${csv}`), /train.csv: no column 'class_id'/);
});
