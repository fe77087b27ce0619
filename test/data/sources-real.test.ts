/**
 * Sources against the real data sets kept beside the project (skipped when
 * that folder is absent): counts checked against the data folder's README.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { openSource } from '../../src/data/sources/index.js';

const DATA = fileURLToPath(new URL('../../../shared/data', import.meta.url));
const TB = join(DATA, 'tb-shenzhen-montgomery-128');
const KERMANY = join(DATA, 'pneumonia-kermany-224');
const CHEXPERT = join(DATA, 'chexpert-csv', 'train.csv.gz');

function missing(path: string): string | false {
  return existsSync(path) ? false : `real data not found at ${path}`;
}

function countBy<T>(items: readonly T[], key: (item: T) => string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) counts[key(item)] = (counts[key(item)] ?? 0) + 1;
  return counts;
}

test('tb: the Shenzhen/Montgomery train and test folders match the README', { skip: missing(TB) }, async () => {
  const train = await openSource(`tb:${join(TB, 'train')}`);
  assert.equal(train.records.length, 500);
  assert.deepEqual(train.tasks, ['Tuberculosis']);
  assert.equal(train.defaultTask, 'Tuberculosis');
  const bySetAndLabel = (records: typeof train.records): Record<string, number> =>
    countBy(records, (r) => `${r.patientId.slice(0, 6)} ${r.labels.Tuberculosis}`);
  // README: train 500 (CHN 205 normal / 212 TB, MCU 51 / 32): 244 TB in all.
  assert.deepEqual(bySetAndLabel(train.records), { 'CHNCXR 0': 205, 'CHNCXR 1': 212, 'MCUCXR 0': 51, 'MCUCXR 1': 32 });
  assert.equal(train.records.filter((r) => r.labels.Tuberculosis === 1).length, 244);
  assert.equal(new Set(train.records.map((r) => r.patientId)).size, 500);
  const first = train.records[0];
  assert.deepEqual(first, {
    id: 'CHNCXR_0001_0.png',
    path: join(TB, 'train', 'CHNCXR_0001_0.png'),
    labels: { Tuberculosis: 0 },
    patientId: 'CHNCXR_0001',
    studyId: 'CHNCXR_0001',
    view: 'frontal',
  });

  const test = await openSource(`tb:${join(TB, 'test')}`);
  assert.deepEqual(bySetAndLabel(test.records), { 'CHNCXR 0': 52, 'CHNCXR 1': 53, 'MCUCXR 0': 8, 'MCUCXR 1': 7 });
  const trainPatients = new Set(train.records.map((r) => r.patientId));
  assert.equal(test.records.filter((r) => trainPatients.has(r.patientId)).length, 0);

  const both = await openSource(`tb:${TB}`);
  assert.equal(both.records.length, 620);
  assert.equal(both.records[0]?.id, 'test/CHNCXR_0005_0.png');
});

test(
  'folder: Kermany train has 1341 NORMAL and 3875 PNEUMONIA, with patient ids',
  { skip: missing(KERMANY) },
  async () => {
    const source = await openSource(`folder:${join(KERMANY, 'train')}`);
    assert.deepEqual(source.tasks, ['NORMAL', 'PNEUMONIA']);
    assert.equal(source.defaultTask, 'PNEUMONIA');
    assert.deepEqual(
      countBy(source.records, (r) => `${r.labels.NORMAL}${r.labels.PNEUMONIA}`),
      { '10': 1341, '01': 3875 },
    );
    const byId = new Map(source.records.map((r) => [r.id, r]));
    assert.equal(byId.get('PNEUMONIA/person1000_bacteria_2931.jpeg')?.patientId, 'person1000');
    assert.equal(byId.get('PNEUMONIA/person1000_virus_1681.jpeg')?.patientId, 'person1000');
    assert.equal(byId.get('NORMAL/IM-0115-0001.jpeg')?.patientId, 'IM-0115');
    assert.equal(byId.get('NORMAL/IM-0429-0001-0002.jpeg')?.studyId, 'IM-0429-0001');
    assert.equal(byId.get('NORMAL/NORMAL2-IM-0383-0001.jpeg')?.patientId, 'NORMAL2-IM-0383');
    // Every name parses: no image falls back to being its own patient.
    for (const record of source.records) {
      const pattern = record.labels.PNEUMONIA === 1 ? /^person\d+$/ : /^(NORMAL2-)?IM-\d+$/;
      assert.match(record.patientId, pattern, record.id);
    }
    const patients = new Set(source.records.map((r) => r.patientId));
    assert.ok(patients.size < source.records.length, 'some patients have several images');
    assert.equal(patients.size, 2846);
  },
);

test('chexpert: the real train.csv.gz parses with the known counts', { skip: missing(CHEXPERT) }, async () => {
  const source = await openSource(`chexpert:${CHEXPERT}`);
  assert.equal(source.records.length, 223414);
  assert.equal(source.tasks.length, 14);
  assert.deepEqual(source.fileCounts?.['Pleural Effusion'], {
    positive: 86187,
    negative: 35396,
    uncertain: 11628,
    blank: 90203,
  });
  // Default policies: uncertain masked, blank negative.
  const effusion = countBy(source.records, (r) => String(r.labels['Pleural Effusion']));
  assert.deepEqual(effusion, { '1': 86187, '0': 35396 + 90203, null: 11628 });
  assert.equal(new Set(source.records.map((r) => r.patientId)).size, 64540);
  assert.equal(new Set(source.records.map((r) => r.studyId)).size, 187641);
  const first = source.records[0];
  assert.equal(first?.patientId, 'patient00001');
  assert.equal(first?.studyId, 'patient00001/study1');
  assert.equal(first?.view, 'frontal');
  assert.equal(first?.projection, 'AP');
  assert.equal(first?.path, join(DATA, 'chexpert-csv', first?.id ?? ''));
  assert.deepEqual(
    countBy(source.records, (r) => `${r.view} ${r.projection}`),
    { 'frontal AP': 161590, 'frontal PA': 29420, 'frontal LL': 16, 'frontal RL': 1, 'lateral undefined': 32387 },
  );
});
