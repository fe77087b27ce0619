/**
 * A study target takes every option a source takes, checked with the key
 * named, and its runs open their sources with them: patients found from NIH
 * file names or from a pattern, so that draws are per patient and no patient
 * is in both the training and the validation set.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { prepareDownstreamData } from '../../src/downstream/setup.js';
import { resolveDownstreamConfig, sourceOptionsFor } from '../../src/downstream/settings.js';
import { drawTrainingSet } from '../../src/downstream/setup.js';
import { resolveStudyConfig } from '../../src/study/config.js';
import { writeGreyImage } from '../helpers/images.js';
import { tempDir } from '../helpers/oracle.js';

/** Patients with 1 to 4 images each, in NORMAL/ and PNEUMONIA/ class folders, named by `name`. */
async function classFolders(root: string, name: (patient: number, image: number) => string): Promise<void> {
  for (let patient = 0; patient < 24; patient++) {
    const label = patient % 2 === 0 ? 'NORMAL' : 'PNEUMONIA';
    for (let image = 0; image < 1 + (patient % 4); image++) {
      await writeGreyImage(join(root, label, name(patient, image)), { width: 12, height: 12 });
    }
  }
}

const patientsOf = (records: readonly { patientId: string }[]): Set<string> => new Set(records.map((r) => r.patientId));

describe('study targets and their sources', () => {
  const dir = tempDir();
  const nih = join(dir.path, 'nih');
  const own = join(dir.path, 'own');
  before(async () => {
    // NIH names: 8-digit patient, 3-digit follow-up.
    await classFolders(nih, (p, i) => `${String(1000 + p).padStart(8, '0')}_${String(i).padStart(3, '0')}.png`);
    // Names no source knows: the patient is the part before '-'.
    await classFolders(own, (p, i) => `case${p}-view${i}.png`);
  });
  after(() => dir.cleanup());

  test('a target takes source options, with paths relative to the file and typos named', () => {
    const config = resolveStudyConfig(
      {
        pretrain: { data: 'phantom:8' },
        targets: [
          {
            train: 'folder:own',
            test: 'folder:own',
            'patient-pattern': '^case(\\d+)-',
            'image-root': 'pictures',
            views: 'frontal',
            'test-part': 'test',
          },
        ],
      },
      'study.yaml',
      '/data',
    );
    const target = config.targets[0]!;
    assert.equal(target.patientPattern, '^case(\\d+)-');
    assert.equal(target.imageRoot, '/data/pictures');
    assert.equal(target.views, 'frontal');
    assert.equal(target.testPart, 'test');
    assert.throws(
      () =>
        resolveStudyConfig(
          { pretrain: { data: 'phantom:8' }, targets: [{ train: 'a:b', test: 'a:b', 'patient-patern': 'x' }] },
          'study.yaml',
        ),
      /^RangeError: study\.yaml: targets\[0\]: unknown key 'patientPatern'/,
    );
    assert.throws(
      () =>
        resolveStudyConfig(
          { pretrain: { data: 'phantom:8' }, targets: [{ train: 'a:b', test: 'a:b', 'patient-pattern': '(' }] },
          'study.yaml',
        ),
      /study\.yaml: targets\[0\]: patientPattern/,
    );
  });

  for (const [name, folder, pattern] of [
    ['NIH file names', () => nih, undefined],
    ['a patient pattern', () => own, 'case(\\d+)-'],
  ] as const) {
    test(`patients from ${name}: the validation split and the draws keep patients whole`, async () => {
      const config = resolveDownstreamConfig({
        train: `folder:${folder()}`,
        test: `folder:${folder()}`,
        valSplit: 0.25,
        cacheDir: join(dir.path, 'cache'),
        cacheSize: 12,
        imageSize: 12,
        patientPattern: pattern,
      });
      const data = await prepareDownstreamData(
        { ...config, sources: { train: sourceOptionsFor(config, 'train'), test: sourceOptionsFor(config, 'test') } },
        { log: () => undefined },
      );
      try {
        const train = patientsOf(data.train.records);
        const val = patientsOf(data.val.records);
        assert.equal(train.size + val.size, 24, 'every patient found, each once');
        assert.deepEqual(
          [...val].filter((p) => train.has(p)),
          [],
          'no patient in both',
        );
        const drawn = drawTrainingSet(data.train.records, {
          task: data.task,
          fraction: 0.5,
          draw: 0,
          seed: 0,
          per: 'patient',
        }).records;
        const drawnPatients = patientsOf(drawn);
        for (const record of data.train.records) {
          assert.equal(
            drawn.includes(record),
            drawnPatients.has(record.patientId),
            `${record.id}: drawn with its patient`,
          );
        }
      } finally {
        await data.close();
      }
    });
  }
});
