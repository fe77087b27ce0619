/** `mimic:` on a small tree in MIMIC-CXR-JPG's layout: per-study labels joined to images, views, the split, errors. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { gzipSync } from 'node:zlib';

import { CHEXPERT_OBSERVATIONS, MIMIC_TABLES, openSource, summarizeSource } from '../../src/data/sources/index.js';
import { writeGreyImage } from '../helpers/images.js';

const root = mkdtempSync(join(tmpdir(), 'moco-cxr-mimic-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** The release's column order: ids, then the observations alphabetically. */
const LABEL_HEADER = [
  'subject_id',
  'study_id',
  'Atelectasis',
  'Cardiomegaly',
  'Consolidation',
  'Edema',
  'Enlarged Cardiomediastinum',
  'Fracture',
  'Lung Lesion',
  'Lung Opacity',
  'No Finding',
  'Pleural Effusion',
  'Pleural Other',
  'Pneumonia',
  'Pneumothorax',
  'Support Devices',
].join(',');
const META_HEADER =
  'dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,StudyDate,StudyTime,' +
  'ProcedureCodeSequence_CodeMeaning,ViewCodeSequence_CodeMeaning,PatientOrientationCodeSequence_CodeMeaning';
const SPLIT_HEADER = 'dicom_id,study_id,subject_id,split';

/** A label row: Cardiomegaly (column 4) and Pleural Effusion (column 12) given, the rest blank. */
function labelRow(subject: string, study: string, cardiomegaly: string, effusion: string): string {
  const cells = Array.from({ length: 14 }, () => '');
  cells[1] = cardiomegaly;
  cells[9] = effusion;
  return [subject, study, ...cells].join(',');
}
const D = ['02aa804e-bde0afdd-112c0b34-7bc16630-4e384014', '174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962'];
const LABELS = [
  LABEL_HEADER,
  labelRow('10000032', '50414267', '1.0', '-1.0'),
  labelRow('10000032', '53189527', '0.0', ''),
  labelRow('11000011', '51029426', '-1.0', '1.0'),
];
const META = [
  META_HEADER,
  `${D[0]},10000032,50414267,CHEST (PA AND LAT),PA,3056,2544,21800506,213014.531,CHEST (PA AND LAT),postero-anterior,Erect`,
  `${D[1]},10000032,50414267,CHEST (PA AND LAT),LATERAL,3056,2544,21800506,213014.531,CHEST (PA AND LAT),lateral,Erect`,
  '2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab,10000032,53189527,CHEST (PORTABLE AP),AP,2705,2539,21800626,165500.312,CHEST (PORTABLE AP),antero-posterior,Erect',
  'e084de3b-be89b11e-20fe3f9f-9c8d8dfe-4cfd202c,11000011,51029426,CHEST (PA AND LAT),LL,2544,3056,21840101,100000,CHEST (PA AND LAT),left lateral,Erect',
  'ffff0000-00000000-00000000-00000000-00000001,11000011,51029426,CHEST,,2544,3056,21840101,100000,CHEST,,',
  // A study with no label row: not taken.
  'abcd0000-00000000-00000000-00000000-00000002,12000022,59999999,CHEST,PA,100,100,21840101,100000,CHEST,,',
];
const SPLIT = [
  SPLIT_HEADER,
  `${D[0]},50414267,10000032,train`,
  `${D[1]},50414267,10000032,train`,
  '2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab,53189527,10000032,validate',
  'e084de3b-be89b11e-20fe3f9f-9c8d8dfe-4cfd202c,51029426,11000011,test',
  'ffff0000-00000000-00000000-00000000-00000001,51029426,11000011,test',
  'abcd0000-00000000-00000000-00000000-00000002,59999999,12000022,test',
];

let trees = 0;
function tree(tables: { labels?: string[]; metadata?: string[]; split?: string[] }, gz = false): string {
  const folder = join(root, `t${trees++}`);
  mkdirSync(folder, { recursive: true });
  for (const [key, lines] of Object.entries(tables)) {
    const name = MIMIC_TABLES[key as keyof typeof MIMIC_TABLES];
    const text = lines.join('\n') + '\n';
    writeFileSync(join(folder, `${name}.csv${gz ? '.gz' : ''}`), gz ? gzipSync(text) : text);
  }
  return folder;
}

test('mimic: study labels on each image, the uncertainty policies, views, paths, sizes', async () => {
  const folder = tree({ labels: LABELS, metadata: META }, true);
  await writeGreyImage(join(folder, 'files', 'p10', 'p10000032', 's50414267', `${D[0]}.jpg`));
  const source = await openSource(`mimic:${folder}`);
  assert.deepEqual(source.tasks, CHEXPERT_OBSERVATIONS);
  assert.deepEqual(
    source.records.map((r) => [
      r.patientId,
      r.studyId,
      r.view,
      r.projection,
      r.labels.Cardiomegaly,
      r.labels['Pleural Effusion'],
      r.labels.Edema,
    ]),
    [
      ['10000032', '50414267', 'frontal', 'PA', 1, null, 0],
      ['10000032', '50414267', 'lateral', 'LATERAL', 1, null, 0],
      ['10000032', '53189527', 'frontal', 'AP', 0, 0, 0],
      ['11000011', '51029426', 'lateral', 'LL', null, 1, 0],
      ['11000011', '51029426', undefined, undefined, null, 1, 0],
    ],
  );
  const first = source.records[0];
  assert.equal(first?.id, `files/p10/p10000032/s50414267/${D[0]}.jpg`);
  assert.equal(first?.path, join(folder, 'files', 'p10', 'p10000032', 's50414267', `${D[0]}.jpg`));
  assert.equal(
    source.records[3]?.path,
    join(folder, 'files', 'p11', 'p11000011', 's51029426', 'e084de3b-be89b11e-20fe3f9f-9c8d8dfe-4cfd202c.jpg'),
  );
  assert.deepEqual([first?.width, first?.height], [2544, 3056]);
  assert.deepEqual(source.skipped, [
    {
      path: 'files/p12/p12000022/s59999999/abcd0000-00000000-00000000-00000000-00000002.jpg',
      reason: 'its study has no row in mimic-cxr-2.0.0-chexpert',
    },
  ]);
  assert.deepEqual(source.fileCounts?.Cardiomegaly, { positive: 2, negative: 1, uncertain: 2, blank: 0 });
  const ones = await openSource(`mimic:${folder}`, { uncertain: 'ones', blank: 'ignore' });
  assert.deepEqual(
    ones.records.map((r) => r.labels['Pleural Effusion']),
    [1, 1, null, 1, 1],
  );
  const summary = await summarizeSource(source, { probe: Infinity });
  assert.equal(summary.patients, 2);
  assert.equal(summary.studies, 3);
  assert.equal(summary.probe?.unreadable.length, 4);
  assert.deepEqual(summary.views, { frontal: 2, lateral: 2, unknown: 1 });
  assert.deepEqual(
    (await openSource(`mimic:${folder}`, { frontalOnly: true })).records.map((r) => r.projection),
    ['PA', 'AP'],
  );
  // The location may name one of the tables instead of the folder.
  assert.equal((await openSource(`mimic:${join(folder, `${MIMIC_TABLES.labels}.csv.gz`)}`)).records.length, 5);
});

test('mimic: the official split', async () => {
  const folder = tree({ labels: LABELS, metadata: META, split: SPLIT });
  const ids = async (split: string): Promise<string[]> =>
    (await openSource(`mimic:${folder}`, { split })).records.map((r) => r.id.split('/').pop()?.slice(0, 8) ?? '');
  assert.deepEqual(await ids('train'), ['02aa804e', '174413ec']);
  assert.deepEqual(await ids('validate'), ['2a2277a9']);
  // The unlabelled study's image is in the test part of the split, and is still not taken.
  assert.deepEqual(await ids('test'), ['e084de3b', 'ffff0000']);
  await assert.rejects(
    openSource(`mimic:${folder}`, { split: 'valid' }),
    /mimic: unknown split 'valid'; expected train, validate, test/,
  );
  const noSplit = tree({ labels: LABELS, metadata: META });
  await assert.rejects(
    openSource(`mimic:${noSplit}`, { split: 'test' }),
    /mimic: no mimic-cxr-2.0.0-split.csv or mimic-cxr-2.0.0-split.csv.gz in .* \(split 'test'\)/,
  );
});

test('mimic: malformed tables name the file, line and column', async () => {
  const bad = (lines: string[], index: number, line: string): string[] => lines.map((l, i) => (i === index ? line : l));
  const cases: [Parameters<typeof tree>[0], RegExp, string][] = [
    [
      { labels: bad(LABELS, 2, labelRow('10000032', '53189527', 'yes', '')), metadata: META },
      /line 3, column 4 \(Cardiomegaly\): expected 1.0, 0.0, -1.0 or blank, got 'yes'/,
      MIMIC_TABLES.labels,
    ],
    [
      { labels: LABELS, metadata: bad(META, 1, META[1]!.replace(D[0]!, '../../etc/passwd')) },
      /line 2, column 1 \(dicom_id\): expected a DICOM id/,
      MIMIC_TABLES.metadata,
    ],
    [
      { labels: LABELS, metadata: bad(META, 1, META[1]!.replace(',10000032,', ',p10000032,')) },
      /line 2, column 2 \(subject_id\): expected a number, got 'p10000032'/,
      MIMIC_TABLES.metadata,
    ],
    [
      { labels: LABELS, metadata: bad(META, 1, META[1]!.replace(',10000032,', ',10000099,')) },
      /line 2, column 2 \(subject_id\): study 50414267 is subject 10000032's/,
      MIMIC_TABLES.metadata,
    ],
    [{ labels: [LABELS[0]!.replace(',Edema', '')], metadata: META }, /no column 'Edema'/, MIMIC_TABLES.labels],
    [
      { labels: LABELS, metadata: META, split: bad(SPLIT, 1, `${D[0]},50414267,10000032,training`) },
      /line 2, column 4 \(split\): expected train, validate, test, got 'training'/,
      MIMIC_TABLES.split,
    ],
  ];
  for (const [tables, message, file] of cases) {
    const folder = tree(tables);
    await assert.rejects(
      openSource(`mimic:${folder}`, tables.split === undefined ? {} : { split: 'train' }),
      (error: Error) => {
        assert.ok(error.message.startsWith(join(folder, `${file}.csv`)), error.message);
        assert.match(error.message, message);
        return true;
      },
    );
  }
  await assert.rejects(
    openSource(`mimic:${tree({ labels: LABELS })}`),
    /mimic: no mimic-cxr-2.0.0-metadata.csv or .*\(one row per image\)/,
  );
});
