/** `padchest:` on a small tree in PadChest's layout: the label lists, tasks, views, folders, errors. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { gzipSync } from 'node:zlib';

import { openSource, parsePythonList, summarizeSource } from '../../src/data/sources/index.js';
import { writeGreyImage } from '../helpers/images.js';

const root = mkdtempSync(join(tmpdir(), 'moco-cxr-padchest-'));
after(() => rmSync(root, { recursive: true, force: true }));

const NAME = 'PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv';
/** The release's columns (the first, unnamed, is the row index). */
const HEADER = [
  '',
  'ImageID',
  'ImageDir',
  'StudyDate_DICOM',
  'StudyID',
  'PatientID',
  'PatientBirth',
  'PatientSex_DICOM',
  'ViewPosition_DICOM',
  'Projection',
  'MethodProjection',
  'Pediatric',
  'Modality_DICOM',
  'Manufacturer_DICOM',
  'PhotometricInterpretation_DICOM',
  'PixelRepresentation_DICOM',
  'PixelAspectRatio_DICOM',
  'SpatialResolution_DICOM',
  'BitsStored_DICOM',
  'WindowCenter_DICOM',
  'WindowWidth_DICOM',
  'Rows_DICOM',
  'Columns_DICOM',
  'XRayTubeCurrent_DICOM',
  'Exposure_DICOM',
  'ExposureInuAs_DICOM',
  'ExposureTime',
  'RelativeXRayExposure_DICOM',
  'ReportID',
  'Report',
  'MethodLabel',
  'Labels',
  'Localizations',
  'LabelsLocalizationsBySentence',
  'labelCUIS',
  'LocalizationsCUIS',
].join(',');

function row(
  index: number,
  image: string,
  dir: string,
  study: string,
  patient: string,
  projection: string,
  labels: string,
): string {
  const quoted = `"${labels.replace(/"/g, '""')}"`;
  return [
    index,
    image,
    dir,
    '20150311',
    study,
    patient,
    '1939.0',
    'M',
    'POSTEROANTERIOR',
    projection,
    'Manual review of DICOM fields',
    'No',
    'CR',
    'PhilipsMedicalSystems',
    'MONOCHROME2',
    '0',
    '1\\1',
    '0.139',
    '12',
    '2048',
    '4095',
    '2446',
    '2010',
    '',
    '',
    '',
    '',
    '',
    '4765777',
    'sin hallazgos',
    'Physician',
    quoted,
    '[]',
    '[]',
    '[]',
    '[]',
  ].join(',');
}

const IMAGES = [
  '20536686640136348236148679891455886468_k6ga29.png',
  '135803415504923515076821959678074435083_fzis7d.png',
  '313572750430997347502932654319389875966_x2lsaz.png',
  '216840111366964012819207061112010315104455352_04-024-184.png',
  '216840111366964013076187734852011291090445391_00-196-140.png',
];
const ROWS = [
  row(0, IMAGES[0] as string, '0', 's1', 'p1', 'PA', "['normal']"),
  row(1, IMAGES[1] as string, '0', 's1', 'p1', 'L', "['pneumonia', 'COPD signs']"),
  row(2, IMAGES[2] as string, '1', 's2', 'p2', 'AP_horizontal', "[' pleural effusion', 'pneumonia' ,\"cardiomegaly\"]"),
  row(3, IMAGES[3] as string, '1', 's3', 'p2', 'COSTAL', '[]'),
  row(4, IMAGES[4] as string, '54', 's4', 'p3', 'AP', "['']"),
];

let trees = 0;
function tree(rows: readonly string[], name = NAME): { folder: string; csv: string } {
  const folder = join(root, `t${trees++}`);
  mkdirSync(folder, { recursive: true });
  const csv = join(folder, name);
  const text = [HEADER, ...rows].join('\n') + '\n';
  writeFileSync(csv, name.endsWith('.gz') ? gzipSync(text) : text);
  return { folder, csv };
}

test('padchest: Python-style lists, spaces and quotes in them, empty ones', () => {
  assert.deepEqual(parsePythonList("['pneumonia', 'COPD signs']"), ['pneumonia', 'COPD signs']);
  assert.deepEqual(parsePythonList(" [ \"it's\" ,'a\\'b',] "), ["it's", "a'b"]);
  assert.deepEqual(parsePythonList('[]'), []);
  assert.deepEqual(parsePythonList(''), []);
  assert.deepEqual(parsePythonList("['']"), ['']);
  assert.deepEqual(parsePythonList("['a' 'b']"), { problem: "expected ',' or ']' at character 6 (''')" });
  assert.deepEqual(parsePythonList("['a'"), { problem: "expected ',' or ']' at character 5 (the end)" });
  assert.deepEqual(parsePythonList('pneumonia'), { problem: "expected '[' at character 1 ('p')" });
  assert.deepEqual(parsePythonList("['a'] x"), { problem: "expected nothing after the list at character 7 ('x')" });
});

test('padchest: tasks are the labels seen, normal all negative, an empty list masked; views; folders', async () => {
  const { folder, csv } = tree(ROWS);
  await writeGreyImage(join(folder, '0', IMAGES[0] as string), { bits: 16 });
  await writeGreyImage(join(folder, '0', IMAGES[1] as string), { bits: 16 });
  const source = await openSource(`padchest:${csv}`);
  assert.deepEqual(source.tasks, ['COPD signs', 'cardiomegaly', 'pleural effusion', 'pneumonia']);
  assert.deepEqual(
    source.records.map((r) => source.tasks.map((t) => r.labels[t])),
    [
      [0, 0, 0, 0],
      [1, 0, 0, 1],
      [0, 1, 1, 1],
      [null, null, null, null],
      [null, null, null, null],
    ],
  );
  assert.deepEqual(
    source.records.map((r) => [r.patientId, r.studyId, r.view, r.projection]),
    [
      ['p1', 's1', 'frontal', 'PA'],
      ['p1', 's1', 'lateral', 'L'],
      ['p2', 's2', 'frontal', 'AP_horizontal'],
      ['p2', 's3', undefined, 'COSTAL'],
      ['p3', 's4', 'frontal', 'AP'],
    ],
  );
  // ImageDir folders where they are there (0/), else the CSV's folder (no 1/ or 54/ here).
  assert.deepEqual(
    source.records.map((r) => r.path),
    [
      join(folder, '0', IMAGES[0] as string),
      join(folder, '0', IMAGES[1] as string),
      ...IMAGES.slice(2).map((i) => join(folder, i)),
    ],
  );
  assert.deepEqual(
    source.records.map((r) => r.id),
    IMAGES,
  );
  const summary = await summarizeSource(source, { probe: Infinity });
  assert.deepEqual(summary.probe?.depths, { '16-bit': 2 });
  assert.equal(summary.probe?.unreadable.length, 3);
  assert.equal(summary.patients, 3);
  assert.equal(summary.studies, 4);
  assert.equal(summary.patientRule, "column 'PatientID', studies by 'StudyID'");
  const lateral = await openSource(`padchest:${folder}`, { views: ['lateral'] });
  assert.deepEqual(
    lateral.records.map((r) => r.projection),
    ['L'],
  );
});

test('padchest: the folder, .csv.gz, a flat image folder, imageRoot, a repeated image', async () => {
  const { folder } = tree([...ROWS.slice(0, 2), ROWS[0] as string], `${NAME}.gz`);
  const flat = join(root, 'flat');
  await writeGreyImage(join(flat, IMAGES[1] as string), { bits: 16 });
  const source = await openSource(`padchest:${folder}`, { imageRoot: flat });
  assert.deepEqual(
    source.records.map((r) => r.path),
    IMAGES.slice(0, 2).map((i) => join(flat, i)),
  );
  assert.deepEqual(source.skipped, [
    { path: IMAGES[0], reason: `listed again at ${join(folder, `${NAME}.gz`)} line 4` },
  ]);
  await assert.rejects(
    openSource(`padchest:${flat}`),
    /padchest: .*flat holds no PADCHEST_chest_x_ray_images_labels_\*\.csv/,
  );
});

test('padchest: malformed rows name the file, line and column', async () => {
  const cases: [string, RegExp][] = [
    [
      row(1, 'a.png', '0', 's', 'p', 'PA', "['pneumonia', COPD]"),
      /line 3, column 32 \(Labels\): not a list of quoted labels: expected a quoted string at character 15 \('C'\)/,
    ],
    [
      row(1, 'a.png', '0', 's', 'p', 'PA', "['pneumonia'"),
      /line 3, column 32 \(Labels\): not a list of quoted labels: expected ',' or ']' at character 13 \(the end\)/,
    ],
    [
      row(1, '../../a.png', '0', 's', 'p', 'PA', '[]'),
      /line 3, column 2 \(ImageID\): expected an image file name, got '..\/..\/a.png'/,
    ],
    [row(1, 'a.png', '..', 's', 'p', 'PA', '[]'), /line 3, column 3 \(ImageDir\): expected a folder name/],
    [row(1, 'a.png', '0', 's', '', 'PA', '[]'), /line 3, column 6 \(PatientID\): empty id/],
  ];
  for (const [bad, message] of cases) {
    const { csv } = tree([ROWS[0] as string, bad]);
    await assert.rejects(openSource(`padchest:${csv}`), (error: Error) => {
      assert.ok(error.message.startsWith(csv), error.message);
      assert.match(error.message, message);
      return true;
    });
  }
  const { csv } = tree([]);
  writeFileSync(csv, 'ImageID,ImageDir,StudyID,PatientID,Projection\n');
  await assert.rejects(openSource(`padchest:${csv}`), /no column 'Labels'/);
});

test('view filters: every source, unknown views named in the error', async () => {
  const { folder } = tree(ROWS);
  await assert.rejects(
    openSource(`padchest:${folder}`, { views: ['oblique'] }),
    /source 'padchest:.*': unknown view 'oblique'; expected frontal or lateral/,
  );
  const ap = await openSource(`padchest:${folder}`, { projections: ['ap', 'AP_HORIZONTAL'] });
  assert.deepEqual(
    ap.records.map((r) => r.projection),
    ['AP_horizontal', 'AP'],
  );
  const classes = join(root, 'classes');
  await writeGreyImage(join(classes, 'NORMAL', 'a.png'));
  await writeGreyImage(join(classes, 'PNEUMONIA', 'b.png'));
  await assert.rejects(
    openSource(`folder:${classes}`, { views: ['frontal'] }),
    /no images pass the filters \(views frontal\); 2 of 2 images have no view in this source/,
  );
});
