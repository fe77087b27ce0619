/** Label fractions: sizes, reproducibility, patients kept whole, both classes, saved draws. */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import {
  fractionSize,
  labelFraction,
  labelFractionDraws,
  readDraw,
  recordsOfDraw,
  writeDraw,
} from '../../src/data/fractions.js';
import { combineSeeds, Prng } from '../../src/data/prng.js';
import { type XrayRecord } from '../../src/data/records.js';

const folder = mkdtempSync(join(tmpdir(), 'moco-cxr-fractions-'));
after(() => rmSync(folder, { recursive: true, force: true }));

/** `patients` patients with 1 to 4 images each; positives where `positive(patient, image)`. */
function makeRecords(patients: number, positive = (p: number, i: number) => (p * 7 + i) % 3 === 0): XrayRecord[] {
  const records: XrayRecord[] = [];
  for (let p = 0; p < patients; p++) {
    for (let i = 0; i <= p % 4; i++) {
      records.push({
        id: `p${p}/i${i}.png`,
        path: `/data/p${p}/i${i}.png`,
        labels: { y: positive(p, i) ? 1 : 0 },
        patientId: `p${p}`,
        studyId: `p${p}/s0`,
      });
    }
  }
  return records;
}

const ids = (records: readonly XrayRecord[]): string[] => records.map((r) => r.id);

test('fractionSize rounds half up and keeps at least one', () => {
  assert.equal(fractionSize(0.001, 223414), 223);
  assert.equal(fractionSize(0.01, 223414), 2234);
  assert.equal(fractionSize(0.001, 500), 1); // 0.5 rounds up
  assert.equal(fractionSize(0.001, 100), 1); // 0.1 is raised to the minimum of one
  assert.equal(fractionSize(0.1, 25), 3); // 2.5 rounds up
  assert.equal(fractionSize(0.0625, 430), 27); // 26.875
  assert.equal(fractionSize(1, 7), 7);
  assert.throws(() => fractionSize(0, 10), /fraction must be in \(0, 1\]/);
  assert.throws(() => fractionSize(1.5, 10), /fraction must be in \(0, 1\]/);
});

test('the generator is mulberry32: fixed values for a fixed seed', () => {
  // mulberry32 with state 0: the first outputs, worked from the reference algorithm.
  const prng = new Prng(0);
  const first = [prng.next(), prng.next(), prng.next()].map((x) => Math.round(x * 4294967296));
  assert.deepEqual(first, [1144304738, 1416247, 958946056]);
  assert.notEqual(combineSeeds(1, 0), combineSeeds(0, 1));
  assert.equal(combineSeeds(42, 3), combineSeeds(42, 3));
});

test('per image: correctly sized, reproducible, different per draw and seed, order-free', () => {
  const records = makeRecords(400);
  const options = { fraction: 0.1, draw: 0, seed: 7, per: 'image' as const };
  const a = labelFraction(records, options);
  assert.equal(a.records.length, Math.round(records.length * 0.1));
  assert.equal(a.units, a.records.length);
  assert.deepEqual(ids(labelFraction(records, options).records), ids(a.records));
  assert.notDeepEqual(ids(labelFraction(records, { ...options, draw: 1 }).records), ids(a.records));
  assert.notDeepEqual(ids(labelFraction(records, { ...options, seed: 8 }).records), ids(a.records));
  const reversed = labelFraction([...records].reverse(), options);
  assert.deepEqual(ids(reversed.records).sort(), ids(a.records).sort());
  // Records come back in input order.
  const position = new Map(records.map((r, i) => [r, i]));
  const order = a.records.map((r) => position.get(r) as number);
  assert.deepEqual(
    order,
    [...order].sort((x, y) => x - y),
  );
});

test('per patient: whole patients, the right number of them', () => {
  const records = makeRecords(400);
  const draw = labelFraction(records, { fraction: 0.05, draw: 2, seed: 1, per: 'patient' });
  const drawn = new Set(draw.records.map((r) => r.patientId));
  assert.equal(drawn.size, 20);
  assert.equal(draw.units, 20);
  for (const patient of drawn) {
    const all = records.filter((r) => r.patientId === patient).length;
    const inDraw = draw.records.filter((r) => r.patientId === patient).length;
    assert.equal(inDraw, all, `patient ${patient} split`);
  }
  const tiny = labelFraction(records, { fraction: 0.0001, draw: 0, seed: 1, per: 'patient' });
  assert.equal(tiny.units, 1);
});

test('a smaller fraction of one draw lies inside a larger one', () => {
  const records = makeRecords(300);
  for (const per of ['image', 'patient'] as const) {
    const small = new Set(ids(labelFraction(records, { fraction: 0.01, draw: 3, seed: 5, per }).records));
    const large = new Set(ids(labelFraction(records, { fraction: 0.1, draw: 3, seed: 5, per }).records));
    for (const id of small) assert.ok(large.has(id), `${per}: ${id}`);
  }
});

test('keepBothClasses: every draw holds a positive and a negative', () => {
  // 1000 images, 3 positive: a 0.2% draw (2 images) almost never holds a positive by chance.
  const records = makeRecords(1000, (p) => p === 10 || p === 500 || p === 900).filter((r) => r.id.endsWith('/i0.png'));
  assert.equal(records.length, 1000);
  let withoutFlag = 0;
  for (let draw = 0; draw < 30; draw++) {
    const options = { fraction: 0.002, draw, seed: 3, per: 'image' as const, task: 'y' };
    const plain = labelFraction(records, options);
    if (!plain.records.some((r) => r.labels.y === 1)) withoutFlag++;
    const kept = labelFraction(records, { ...options, keepBothClasses: true });
    assert.equal(kept.records.length, 2, `draw ${draw}`);
    assert.ok(
      kept.records.some((r) => r.labels.y === 1),
      `draw ${draw} has no positive`,
    );
    assert.ok(
      kept.records.some((r) => r.labels.y === 0),
      `draw ${draw} has no negative`,
    );
  }
  assert.ok(withoutFlag > 20, 'the flag must matter for this test to mean anything');
  // One image cannot hold both classes: a second is added.
  const single = labelFraction(records, {
    fraction: 0.0001,
    draw: 0,
    seed: 3,
    per: 'image',
    task: 'y',
    keepBothClasses: true,
  });
  assert.equal(single.records.length, 2);
  assert.deepEqual(single.records.map((r) => r.labels.y).sort(), [0, 1]);
  const negatives = records.filter((r) => r.labels.y === 0);
  assert.throws(
    () => labelFraction(negatives, { fraction: 0.1, draw: 0, seed: 0, per: 'image', task: 'y', keepBothClasses: true }),
    /no positive label of 'y'/,
  );
  assert.throws(
    () => labelFraction(records, { fraction: 0.1, draw: 0, seed: 0, per: 'image', keepBothClasses: true }),
    /keepBothClasses needs the task/,
  );
  assert.throws(
    () => labelFraction(records, { fraction: 0.1, draw: 0, seed: 0, per: 'image', task: 'z' }),
    /no task 'z' in these records; their labels are: y/,
  );
});

test('keepBothClasses per patient keeps patients whole', () => {
  const records = makeRecords(500, (p) => p % 97 === 0);
  for (let draw = 0; draw < 10; draw++) {
    const kept = labelFraction(records, {
      fraction: 0.004,
      draw,
      seed: 9,
      per: 'patient',
      task: 'y',
      keepBothClasses: true,
    });
    assert.equal(kept.units, 2);
    assert.ok(kept.records.some((r) => r.labels.y === 1) && kept.records.some((r) => r.labels.y === 0));
    for (const patient of new Set(kept.records.map((r) => r.patientId))) {
      assert.equal(
        kept.records.filter((r) => r.patientId === patient).length,
        records.filter((r) => r.patientId === patient).length,
      );
    }
  }
});

test("the paper's protocol: 0.1%, 1%, 10% five draws each, 100% once", () => {
  const records = makeRecords(2000);
  const draws = labelFractionDraws(records, { seed: 0, per: 'image' });
  assert.deepEqual(
    draws.map((d) => `${d.fraction}/${d.draw}`),
    ['0.001/0', '0.001/1', '0.001/2', '0.001/3', '0.001/4', '0.01/0', '0.01/1', '0.01/2', '0.01/3', '0.01/4'].concat([
      '0.1/0',
      '0.1/1',
      '0.1/2',
      '0.1/3',
      '0.1/4',
      '1/0',
    ]),
  );
  assert.equal(draws[15]?.records.length, records.length);
});

test('a draw written out reads back to the same records', async () => {
  const records = makeRecords(200);
  const draw = labelFraction(records, { fraction: 0.1, draw: 1, seed: 4, per: 'patient', task: 'y' });
  const file = join(folder, 'draw.json');
  await writeDraw(file, draw, 'made:200');
  const saved = await readDraw(file);
  assert.equal(saved.source, 'made:200');
  assert.equal(saved.fraction, 0.1);
  assert.equal(saved.draw, 1);
  assert.equal(saved.seed, 4);
  assert.equal(saved.per, 'patient');
  assert.equal(saved.task, 'y');
  assert.equal(saved.units, draw.units);
  assert.deepEqual(saved.ids, ids(draw.records));
  assert.deepEqual(
    recordsOfDraw(saved, [...records].reverse())
      .map((r) => r.id)
      .sort(),
    ids(draw.records).sort(),
  );
  assert.throws(
    () => recordsOfDraw(saved, records.slice(50), file),
    new RegExp(`${file}: \\d+ of its \\d+ ids are not in the source`),
  );

  const text = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  writeFileSync(join(folder, 'other.json'), JSON.stringify({ ...text, format: 'something' }));
  await assert.rejects(readDraw(join(folder, 'other.json')), /not a draw \(expected "format": "moco-cxr-draw"\)/);
  writeFileSync(join(folder, 'broken.json'), '{');
  await assert.rejects(readDraw(join(folder, 'broken.json')), /draw file .*broken.json: /);
});
