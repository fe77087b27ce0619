/**
 * Sources on small made-up files: every error path, the label policies,
 * filters, image roots, and the generic kinds.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { gzipSync } from 'node:zlib';

import {
  CHEXPERT_OBSERVATIONS,
  openSource,
  parseKermanyName,
  registerSource,
  sourceKinds,
} from '../../src/data/sources/index.js';

const root = mkdtempSync(join(tmpdir(), 'moco-cxr-sources-'));
after(() => rmSync(root, { recursive: true, force: true }));

const HEADER = ['Path', 'Sex', 'Age', 'Frontal/Lateral', 'AP/PA', ...CHEXPERT_OBSERVATIONS].join(',');
const EFFUSION = CHEXPERT_OBSERVATIONS.indexOf('Pleural Effusion');

/** A CheXpert row with `effusion` in the Pleural Effusion column and blanks elsewhere. */
function row(patient: number, study: number, view: string, projection: string, effusion: string): string {
  const labels = CHEXPERT_OBSERVATIONS.map((_, i) => (i === EFFUSION ? effusion : ''));
  const name = `view1_${view.toLowerCase()}.jpg`;
  const path = `CheXpert-v1.0-small/train/patient${String(patient).padStart(5, '0')}/study${study}/${name}`;
  return [path, 'Female', '50', view, projection, ...labels].join(',');
}

let files = 0;
function file(name: string, text: string | Buffer): string {
  const folder = join(root, `f${files++}`);
  mkdirSync(folder, { recursive: true });
  const path = join(folder, name);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, text);
  return path;
}

const GOOD = [
  HEADER,
  row(1, 1, 'Frontal', 'AP', '1.0'),
  row(1, 1, 'Lateral', '', '-1.0'),
  row(2, 1, 'Frontal', 'PA', '0.0'),
  row(2, 2, 'Frontal', 'AP', ''),
  row(3, 1, 'Frontal', 'LL', '-1.0'),
].join('\n');

const effusionOf = (labels: Record<string, number | null>[]): (number | null | undefined)[] =>
  labels.map((l) => l['Pleural Effusion']);

test('chexpert: uncertainty and blank policies', async () => {
  const csv = file('train.csv', GOOD);
  const labels = async (options: Parameters<typeof openSource>[1]): Promise<(number | null | undefined)[]> =>
    effusionOf((await openSource(`chexpert:${csv}`, options)).records.map((r) => r.labels));
  assert.deepEqual(await labels({}), [1, null, 0, 0, null]);
  assert.deepEqual(await labels({ uncertain: 'ones' }), [1, 1, 0, 0, 1]);
  assert.deepEqual(await labels({ uncertain: 'zeros' }), [1, 0, 0, 0, 0]);
  assert.deepEqual(await labels({ uncertain: 'ignore', blank: 'ignore' }), [1, null, 0, null, null]);
  assert.deepEqual(await labels({ uncertain: { 'Pleural Effusion': 'ones', '*': 'zeros' } }), [1, 1, 0, 0, 1]);
  const source = await openSource(`chexpert:${csv}`, { uncertain: { Edema: 'ones' } });
  assert.equal(source.records[0]?.labels.Edema, 0, 'blank is negative');
  assert.deepEqual(source.fileCounts?.['Pleural Effusion'], { positive: 1, negative: 1, uncertain: 2, blank: 1 });
  await assert.rejects(
    openSource(`chexpert:${csv}`, { uncertain: { 'Plural Effusion': 'ones' } }),
    /unknown task 'Plural Effusion'; tasks are: No Finding, .*Pleural Effusion/,
  );
  await assert.rejects(
    openSource(`chexpert:${csv}`, { uncertain: 'maybe' as 'ones' }),
    /unknown uncertainty policy 'maybe'; expected ones, zeros, ignore/,
  );
});

test('chexpert: patient, study, view, filters and the file counts they leave', async () => {
  const csv = file('train.csv', GOOD);
  const all = await openSource(`chexpert:${csv}`);
  assert.deepEqual(
    all.records.map((r) => [r.patientId, r.studyId, r.view, r.projection]),
    [
      ['patient00001', 'patient00001/study1', 'frontal', 'AP'],
      ['patient00001', 'patient00001/study1', 'lateral', undefined],
      ['patient00002', 'patient00002/study1', 'frontal', 'PA'],
      ['patient00002', 'patient00002/study2', 'frontal', 'AP'],
      ['patient00003', 'patient00003/study1', 'frontal', 'LL'],
    ],
  );
  const frontal = await openSource(`chexpert:${csv}`, { frontalOnly: true, projections: ['AP', 'PA'] });
  assert.equal(frontal.records.length, 3);
  assert.deepEqual(frontal.fileCounts?.['Pleural Effusion'], { positive: 1, negative: 1, uncertain: 0, blank: 1 });
  await assert.rejects(
    openSource(`chexpert:${csv}`, { projections: ['XY'] }),
    /no images pass the filters \(projections XY\)/,
  );
});

test('chexpert: image paths resolve against the folder holding CheXpert-v1.0-small/', async () => {
  const inside = file('CheXpert-v1.0-small/valid.csv', GOOD);
  const parent = join(inside, '..', '..');
  const source = await openSource(`chexpert:${inside}`);
  assert.equal(
    source.records[0]?.path,
    join(parent, 'CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg'),
  );
  const apart = file('train.csv', GOOD);
  const moved = await openSource(`chexpert:${apart}`, { imageRoot: '/images' });
  assert.equal(moved.records[0]?.path, '/images/CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg');
  assert.equal(moved.records[0]?.id, 'CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg');
});

test('chexpert: a gzipped CSV reads as the plain one', async () => {
  const plain = await openSource(`chexpert:${file('train.csv', GOOD)}`);
  const zipped = await openSource(`chexpert:${file('train.csv.gz', gzipSync(GOOD))}`);
  assert.deepEqual(
    zipped.records.map((r) => [r.id, r.labels]),
    plain.records.map((r) => [r.id, r.labels]),
  );
});

test('chexpert: a row of the wrong length names the file and line', async () => {
  const lines = GOOD.split('\n');
  lines[3] = (lines[3] as string).replace(/,$/, '');
  const csv = file('train.csv', lines.join('\n'));
  await assert.rejects(openSource(`chexpert:${csv}`), {
    message: `${csv} line 4: 18 columns, expected 19 as in the header`,
  });
});

test('chexpert: a bad label value names the file, line and column', async () => {
  const lines = GOOD.split('\n');
  lines[4] = row(2, 2, 'Frontal', 'AP', '2.0');
  const csv = file('train.csv', lines.join('\n'));
  await assert.rejects(openSource(`chexpert:${csv}`), {
    message: `${csv} line 5, column 16 (Pleural Effusion): expected 1.0, 0.0, -1.0 or blank, got '2.0'`,
  });
});

test('chexpert: line numbers count the lines inside quoted fields', async () => {
  const lines = GOOD.split('\n');
  lines[1] = (lines[1] as string).replace('Female', '"Fe\nmale"');
  lines[3] = row(2, 1, 'Frontal', 'PA', 'yes');
  const csv = file('train.csv', lines.join('\n'));
  await assert.rejects(openSource(`chexpert:${csv}`), /line 5, column 16 \(Pleural Effusion\).*got 'yes'/);
});

test('chexpert: a bad view, a path without patient/study, a missing column', async () => {
  const badView = GOOD.replace('Frontal,PA', 'Oblique,PA');
  const csv1 = file('train.csv', badView);
  await assert.rejects(openSource(`chexpert:${csv1}`), {
    message: `${csv1} line 4, column 4 (Frontal/Lateral): expected Frontal or Lateral, got 'Oblique'`,
  });
  const csv2 = file('train.csv', GOOD.replace('patient00002/study1', 'someone/first'));
  await assert.rejects(
    openSource(`chexpert:${csv2}`),
    /line 4, column 1 \(Path\): expected a path with .*patientNNNNN\/studyN/,
  );
  const csv3 = file('train.csv', GOOD.replace('Pleural Effusion', 'Effusion'));
  await assert.rejects(openSource(`chexpert:${csv3}`), /no column 'Pleural Effusion' \(a CheXpert observation\)/);
  const csv4 = file('train.csv', '');
  await assert.rejects(openSource(`chexpert:${csv4}`), /empty file, expected a header line/);
});

test('KIND:PATH: unknown kind lists the kinds; malformed specs and missing paths are named', async () => {
  await assert.rejects(openSource('nifti:/x'), (error: Error) => {
    assert.match(error.message, /unknown kind 'nifti'; the kinds are:/);
    for (const kind of ['chexpert', 'csv', 'folder', 'mimic', 'nih', 'padchest', 'tb', 'vindr'])
      assert.match(error.message, new RegExp(`\\n  ${kind} `));
    return true;
  });
  await assert.rejects(
    openSource('/data/train.csv'),
    /expected KIND:PATH, where KIND is one of chexpert, csv, folder, mimic, nih, padchest, phantom, tb, vindr/,
  );
  await assert.rejects(openSource('tb:'), /nothing after 'tb:', expected a path/);
  const gone = join(root, 'no-such-folder');
  await assert.rejects(openSource(`tb:${gone}`), { message: `tb: no such folder: ${gone}` });
  await assert.rejects(openSource(`folder:${gone}`), { message: `folder: no such folder: ${gone}` });
  await assert.rejects(openSource(`chexpert:${gone}.csv`), { message: `chexpert: no such file: ${gone}.csv` });
  await assert.rejects(openSource(`csv:${gone}.csv`), { message: `csv: no such file: ${gone}.csv` });
});

test('tb: labels from the last digit, patients from the number; masks and other names skipped', async () => {
  const folder = join(root, 'tb');
  for (const name of [
    'CXR_png/MCUCXR_0001_0.png',
    'CXR_png/MCUCXR_0002_1.png',
    'ManualMask/leftMask/MCUCXR_0001_0.png',
    'shenzhen/CHNCXR_0010_1.png',
    'shenzhen/CHNCXR_0010_1_mask.png',
    'shenzhen/notes.txt',
  ]) {
    mkdirSync(join(folder, name, '..'), { recursive: true });
    writeFileSync(join(folder, name), '');
  }
  const source = await openSource(`tb:${folder}`);
  assert.deepEqual(
    source.records.map((r) => [r.id, r.labels.Tuberculosis, r.patientId]),
    [
      ['CXR_png/MCUCXR_0001_0.png', 0, 'MCUCXR_0001'],
      ['CXR_png/MCUCXR_0002_1.png', 1, 'MCUCXR_0002'],
      ['shenzhen/CHNCXR_0010_1.png', 1, 'CHNCXR_0010'],
    ],
  );
  assert.deepEqual(
    source.skipped?.map((s) => s.path),
    ['ManualMask/leftMask/MCUCXR_0001_0.png', 'shenzhen/CHNCXR_0010_1_mask.png'],
  );
  const empty = join(root, 'tb-empty');
  mkdirSync(empty);
  await assert.rejects(openSource(`tb:${empty}`), /no CHNCXR_NNNN_L.png or MCUCXR_NNNN_L.png images under/);
});

test('folder: one-hot labels, patients per file when names carry none, errors', async () => {
  const folder = join(root, 'classes');
  for (const name of ['cat/a.png', 'cat/b.jpg', 'dog/c.png', 'dog/readme.txt', 'fox/deep/d.dcm']) {
    mkdirSync(join(folder, name, '..'), { recursive: true });
    writeFileSync(join(folder, name), '');
  }
  const source = await openSource(`folder:${folder}`);
  assert.deepEqual(source.tasks, ['cat', 'dog', 'fox']);
  assert.equal(source.defaultTask, undefined);
  assert.deepEqual(
    source.records.map((r) => [r.id, r.labels, r.patientId]),
    [
      ['cat/a.png', { cat: 1, dog: 0, fox: 0 }, 'cat/a.png'],
      ['cat/b.jpg', { cat: 1, dog: 0, fox: 0 }, 'cat/b.jpg'],
      ['dog/c.png', { cat: 0, dog: 1, fox: 0 }, 'dog/c.png'],
      ['fox/deep/d.dcm', { cat: 0, dog: 0, fox: 1 }, 'fox/deep/d.dcm'],
    ],
  );
  assert.deepEqual(source.skipped, [{ path: 'dog/readme.txt', reason: 'not an image file' }]);

  const flat = join(root, 'flat');
  mkdirSync(flat);
  writeFileSync(join(flat, 'x.png'), '');
  await assert.rejects(openSource(`folder:${flat}`), /has no sub-folders; expected one per class/);
  const splits = join(root, 'splits');
  mkdirSync(join(splits, 'train', 'NORMAL'), { recursive: true });
  mkdirSync(join(splits, 'test'), { recursive: true });
  await assert.rejects(openSource(`folder:${splits}`), /holds split folders \(test, train\), not class folders/);
});

test('folder: symlinked class folders are classes; hidden files, broken links and stray files are reported', async () => {
  const store = join(root, 'store');
  for (const name of ['normal-images/a.png', 'normal-images/.DS_Store', 'sick-images/b.png', 'sick-images/c.txt']) {
    mkdirSync(join(store, name, '..'), { recursive: true });
    writeFileSync(join(store, name), '');
  }
  symlinkSync(join(store, 'nowhere.png'), join(store, 'sick-images', 'gone.png'));
  mkdirSync(join(store, 'sick-images', '.thumbnails'));
  writeFileSync(join(store, 'sick-images', '.thumbnails', 'b.png'), '');
  const folder = join(root, 'linked');
  mkdirSync(folder);
  symlinkSync(join(store, 'normal-images'), join(folder, 'NORMAL'));
  symlinkSync(join(store, 'sick-images'), join(folder, 'PNEUMONIA'));
  symlinkSync(join(store, 'missing-folder'), join(folder, 'GONE'));
  writeFileSync(join(folder, 'README.md'), '');
  const source = await openSource(`folder:${folder}`);
  assert.deepEqual(source.tasks, ['NORMAL', 'PNEUMONIA']);
  assert.equal(source.defaultTask, 'PNEUMONIA');
  assert.deepEqual(
    source.records.map((r) => [r.id, r.path]),
    [
      ['NORMAL/a.png', join(folder, 'NORMAL', 'a.png')],
      ['PNEUMONIA/b.png', join(folder, 'PNEUMONIA', 'b.png')],
    ],
  );
  assert.deepEqual(source.skipped, [
    { path: 'GONE', reason: 'broken symbolic link' },
    { path: 'README.md', reason: 'a file beside the class folders, not in one' },
    { path: 'NORMAL/.DS_Store', reason: 'hidden file' },
    { path: 'PNEUMONIA/.thumbnails/', reason: 'hidden folder' },
    { path: 'PNEUMONIA/gone.png', reason: 'broken symbolic link' },
    { path: 'PNEUMONIA/c.txt', reason: 'not an image file' },
  ]);
});

test('folder: a NORMAL class makes the other the binary task', async () => {
  const folder = join(root, 'binary');
  for (const name of ['NORMAL/IM-0001-0001.jpeg', 'PNEUMONIA/person1_virus_6.jpeg']) {
    mkdirSync(join(folder, name, '..'), { recursive: true });
    writeFileSync(join(folder, name), '');
  }
  const source = await openSource(`folder:${folder}`);
  assert.equal(source.defaultTask, 'PNEUMONIA');
  assert.deepEqual(
    source.records.map((r) => r.patientId),
    ['IM-0001', 'person1'],
  );
});

test('parseKermanyName: the three naming schemes', () => {
  assert.deepEqual(parseKermanyName('person1000_bacteria_2931.jpeg'), { patientId: 'person1000' });
  assert.deepEqual(parseKermanyName('person447_virus_921_1.jpeg'), { patientId: 'person447' });
  assert.deepEqual(parseKermanyName('IM-0115-0001.jpeg'), { patientId: 'IM-0115', studyId: 'IM-0115-0001' });
  assert.deepEqual(parseKermanyName('IM-0429-0001-0002.jpeg'), { patientId: 'IM-0429', studyId: 'IM-0429-0001' });
  assert.deepEqual(parseKermanyName('NORMAL2-IM-1427-0001.jpeg'), {
    patientId: 'NORMAL2-IM-1427',
    studyId: 'NORMAL2-IM-1427-0001',
  });
  assert.equal(parseKermanyName('scan_17.png'), undefined);
});

test('csv: path, label, patient and study columns', async () => {
  const csv = file(
    'labels.csv',
    ['image,patient,study,effusion,nodule', 'a.png,p1,s1,1,', 'b.png,p1,s2,0,-1', '/abs/c.png,p2,s3,,1.0'].join('\n'),
  );
  const source = await openSource(`csv:${csv}`, {
    pathColumn: 'image',
    patientColumn: 'patient',
    studyColumn: 'study',
    uncertain: 'ones',
  });
  assert.deepEqual(source.tasks, ['effusion', 'nodule']);
  assert.deepEqual(
    source.records.map((r) => [r.id, r.path, r.patientId, r.studyId, r.labels]),
    [
      ['a.png', join(csv, '..', 'a.png'), 'p1', 's1', { effusion: 1, nodule: 0 }],
      ['b.png', join(csv, '..', 'b.png'), 'p1', 's2', { effusion: 0, nodule: 1 }],
      ['/abs/c.png', '/abs/c.png', 'p2', 's3', { effusion: 0, nodule: 1 }],
    ],
  );
  assert.deepEqual(source.fileCounts?.nodule, { positive: 1, negative: 0, uncertain: 1, blank: 1 });
  const one = await openSource(`csv:${csv}`, { pathColumn: 'image', labelColumns: ['nodule'] });
  assert.deepEqual(one.tasks, ['nodule']);
  assert.equal(one.records[0]?.patientId, 'a.png', 'one patient per row without a patient column');
});

test('csv: errors name the column and suggest the option', async () => {
  const csv = file('labels.csv', ['Path,Sex,effusion', 'a.png,F,1', 'b.png,M,0'].join('\n'));
  await assert.rejects(openSource(`csv:${csv}`), {
    message: `${csv} line 2, column 2 (Sex): expected 1.0, 0.0, -1.0 or blank, got 'F' (choose the label columns with labelColumns / --labels)`,
  });
  await assert.rejects(openSource(`csv:${csv}`, { pathColumn: 'file' }), /no column 'file' \(image paths/);
  await assert.rejects(openSource(`csv:${csv}`, { labelColumns: ['age'] }), /no column 'age' \(a label\)/);
  const twice = file('labels.csv', ['Path,y', 'a.png,1', 'a.png,0'].join('\n'));
  await assert.rejects(openSource(`csv:${twice}`), /image 'a.png' is listed twice/);
});

test('registerSource: a new kind opens through openSource, and the filters apply to it', async () => {
  registerSource('made', 'records made for a test', (location) => ({
    kind: 'made',
    location,
    tasks: ['y'],
    records: Array.from({ length: Number(location) }, (_, i) => ({
      id: `m${i}`,
      path: `/m${i}.png`,
      labels: { y: i % 2 },
      patientId: `p${i}`,
      studyId: `s${i}`,
      view: i < 2 ? 'frontal' : 'lateral',
    })),
  }));
  assert.ok(sourceKinds().some((entry) => entry.kind === 'made'));
  assert.equal((await openSource('made:5')).records.length, 5);
  assert.equal((await openSource('made:5', { frontalOnly: true })).records.length, 2);
  assert.throws(() => registerSource('Bad Kind', '', () => ({ kind: '', location: '', tasks: [], records: [] })));
});
