/** Patient splits: disjoint, sized by patients, reproducible, balanced when asked. */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { openSource } from '../../src/data/sources/index.js';
import { type XrayRecord } from '../../src/data/records.js';
import { patientSplit, SHENZHEN_SPLIT } from '../../src/data/splits.js';

const TB = fileURLToPath(new URL('../../../shared/data/tb-shenzhen-montgomery-128', import.meta.url));

function makeRecords(patients: number): XrayRecord[] {
  const records: XrayRecord[] = [];
  for (let p = 0; p < patients; p++) {
    for (let i = 0; i <= p % 3; i++) {
      records.push({
        id: `p${p}/${i}`,
        path: `/p${p}/${i}.png`,
        labels: { y: p % 5 === 0 ? 1 : 0 },
        patientId: `p${p}`,
        studyId: `p${p}`,
      });
    }
  }
  return records;
}

const patientsOf = (records: readonly XrayRecord[]): Set<string> => new Set(records.map((r) => r.patientId));

test('patientSplit: patient-disjoint, complete, sized in patients, reproducible', () => {
  const records = makeRecords(101);
  const split = patientSplit(records, { valFraction: 0.15, testFraction: 0.2, seed: 3 });
  const train = patientsOf(split.train);
  const validation = patientsOf(split.validation);
  const test = patientsOf(split.test);
  assert.equal(validation.size, 15); // 15.15
  assert.equal(test.size, 20); // 20.2
  assert.equal(train.size, 66);
  for (const patient of validation) assert.ok(!train.has(patient) && !test.has(patient), patient);
  for (const patient of test) assert.ok(!train.has(patient), patient);
  assert.equal(split.train.length + split.validation.length + split.test.length, records.length);
  assert.equal(new Set([...split.train, ...split.validation, ...split.test]).size, records.length);
  assert.equal(split.attempts, 1);

  const again = patientSplit([...records].reverse(), { valFraction: 0.15, testFraction: 0.2, seed: 3 });
  assert.deepEqual(patientsOf(again.validation), validation);
  assert.deepEqual(patientsOf(again.test), test);
  const other = patientSplit(records, { valFraction: 0.15, testFraction: 0.2, seed: 4 });
  assert.notDeepEqual(patientsOf(other.validation), validation);

  const twoWay = patientSplit(records, { valFraction: 0.1, seed: 0 });
  assert.equal(twoWay.test.length, 0);
  assert.equal(patientsOf(twoWay.validation).size, 10);
  assert.equal(patientsOf(patientSplit(records.slice(0, 3), { valFraction: 0.01, seed: 0 }).validation).size, 1);
  assert.throws(
    () => patientSplit(records.slice(0, 2), { valFraction: 0.5, testFraction: 0.5, seed: 0 }),
    /cannot split 2 patients into 1 validation and 1 test and keep any for training/,
  );
});

test('patientSplit: balance redraws until every part is near the overall positive rate', () => {
  const records = makeRecords(200);
  const split = patientSplit(records, {
    valFraction: 0.15,
    testFraction: 0.2,
    seed: 1,
    balance: { task: 'y', tolerance: 0.01 },
  });
  const rate = (part: readonly XrayRecord[]): number => part.filter((r) => r.labels.y === 1).length / part.length;
  const overall = rate(records);
  for (const part of [split.train, split.validation, split.test]) assert.ok(Math.abs(rate(part) - overall) <= 0.01);
  assert.ok(split.attempts > 1, 'this tolerance needs redraws');
  assert.throws(
    () => patientSplit(records, { valFraction: 0.15, seed: 1, balance: { task: 'y', tolerance: 0, maxAttempts: 3 } }),
    /no split within 3 attempts/,
  );
});

test(
  'patientSplit: the 65/15/20 balanced split of the real TB images',
  { skip: existsSync(TB) ? false : `no ${TB}` },
  async () => {
    const { records } = await openSource(`tb:${TB}`);
    const split = patientSplit(records, { ...SHENZHEN_SPLIT, seed: 0, balance: { task: 'Tuberculosis' } });
    assert.deepEqual([split.train.length, split.validation.length, split.test.length], [403, 93, 124]);
    const rate = (part: readonly XrayRecord[]): number =>
      part.filter((r) => r.labels.Tuberculosis === 1).length / part.length;
    for (const part of [split.train, split.validation, split.test])
      assert.ok(Math.abs(rate(part) - rate(records)) <= 0.02);
  },
);
