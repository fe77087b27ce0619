/** Patients from file names: NIH names in folders, a user's pattern on any source, and how `data` says it. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { openSource, parseNihName, summarizeSource } from '../../src/data/sources/index.js';
import { writeGreyImage } from '../helpers/images.js';

const root = mkdtempSync(join(tmpdir(), 'moco-cxr-patients-'));
after(() => rmSync(root, { recursive: true, force: true }));

test('parseNihName: patient and follow-up from 00001234_005.png, nothing from other names', () => {
  assert.deepEqual(parseNihName('00001234_005.png'), { patientId: '00001234', studyId: '00001234_005' });
  assert.deepEqual(parseNihName('00030805_000.PNG'), { patientId: '00030805', studyId: '00030805_000' });
  for (const name of ['1234_005.png', '00001234_05.png', '00001234_005', 'x00001234_005.png', 'person1_virus_2.jpeg']) {
    assert.equal(parseNihName(name), undefined, name);
  }
});

test('folder: NIH names give patient and study; the report says which rule found them', async () => {
  const folder = join(root, 'nih-classes');
  for (const name of ['Effusion/00000001_000.png', 'Effusion/00000001_001.png', 'NORMAL/00000002_000.png']) {
    await writeGreyImage(join(folder, name));
  }
  await writeGreyImage(join(folder, 'NORMAL', 'person7_virus_1.jpeg'));
  await writeGreyImage(join(folder, 'NORMAL', 'scan.png'));
  const source = await openSource(`folder:${folder}`);
  assert.deepEqual(
    source.records.map((r) => [r.id, r.patientId, r.studyId]),
    [
      ['Effusion/00000001_000.png', '00000001', '00000001_000'],
      ['Effusion/00000001_001.png', '00000001', '00000001_001'],
      ['NORMAL/00000002_000.png', '00000002', '00000002_000'],
      ['NORMAL/person7_virus_1.jpeg', 'person7', 'NORMAL/person7_virus_1.jpeg'],
      ['NORMAL/scan.png', 'NORMAL/scan.png', 'NORMAL/scan.png'],
    ],
  );
  const summary = await summarizeSource(source);
  assert.equal(summary.patients, 4);
  assert.equal(
    summary.patientRule,
    'file names (Kermany person123_/IM-0001-0001 1, NIH 00001234_005 3), one per image 1',
  );
});

test('patientPattern: the first group of a pattern on the ids, on any source; errors name the id', async () => {
  const folder = join(root, 'own-names');
  for (const name of ['a/P12_scan1.png', 'a/P12_scan2.png', 'b/P7_scan1.png']) await writeGreyImage(join(folder, name));
  const plain = await openSource(`folder:${folder}`);
  assert.equal(plain.patientRule, 'one per image 3');
  const source = await openSource(`folder:${folder}`, { patientPattern: '/(P\\d+)_' });
  assert.deepEqual(
    source.records.map((r) => r.patientId),
    ['P12', 'P12', 'P7'],
  );
  assert.deepEqual(
    source.records.map((r) => r.studyId),
    ['a/P12_scan1.png', 'a/P12_scan2.png', 'b/P7_scan1.png'],
  );
  assert.equal(source.patientRule, "pattern '/(P\\d+)_' on the image ids");
  const csv = join(root, 'own.csv');
  writeFileSync(csv, 'Path,Effusion\na/P12_scan1.png,1\nb/P7_scan1.png,0\n');
  const fromCsv = await openSource(`csv:${csv}`, { patientPattern: '(P\\d+)' });
  assert.deepEqual(
    fromCsv.records.map((r) => r.patientId),
    ['P12', 'P7'],
  );
  assert.equal(
    (await openSource(`csv:${csv}`)).patientRule,
    'one per row (patientColumn / --patient-column names a column)',
  );
  await assert.rejects(
    openSource(`folder:${folder}`, { patientPattern: '(Q\\d+)_' }),
    /source 'folder:.*': patientPattern '\(Q\\d\+\)_' finds no patient id in 'a\/P12_scan1.png'/,
  );
  await assert.rejects(
    openSource(`folder:${folder}`, { patientPattern: 'P\\d+' }),
    /patientPattern 'P\\d\+' has no capture group/,
  );
  await assert.rejects(
    openSource(`folder:${folder}`, { patientPattern: '(P' }),
    /patientPattern '\(P' is not a regular expression/,
  );
});
