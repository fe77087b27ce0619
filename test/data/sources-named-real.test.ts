/**
 * The named sources on the real label files kept beside the project (skipped
 * when absent): every count checked against a direct count by Python's csv
 * module over the same file.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { openSource, summarizeSource, VINDR_FINDINGS, type Source } from '../../src/data/sources/index.js';
import { PYTHON, runPython } from '../helpers/oracle.js';

// MOCO_CXR_DATA names the data folder where it is not beside the project.
const DATA = process.env['MOCO_CXR_DATA'] ?? fileURLToPath(new URL('../../../shared/data', import.meta.url));
const NIH = join(DATA, 'nih-csv', 'Data_Entry_2017_v2020.csv.gz');
const VINDR = join(DATA, 'vindr-csv', 'vinbigdata-train.csv.gz');
// Not in the data folder yet; where they would be kept, following its naming.
const MIMIC = join(DATA, 'mimic-cxr-csv');
const PADCHEST = join(DATA, 'padchest-csv');

function missing(path: string): string | false {
  if (!existsSync(path)) return `real data not found at ${path}`;
  return existsSync(PYTHON) ? false : `${PYTHON} (the csv-module oracle) not found`;
}

/** What the oracle counts: positives per task, images per view and projection, patients, studies. */
interface Counts {
  images: number;
  positive: Record<string, number>;
  views: Record<string, number>;
  projections: Record<string, number>;
  patients: number;
  studies: number;
}

async function countsOf(source: Source): Promise<Counts> {
  const summary = await summarizeSource(source);
  return {
    images: summary.images,
    positive: Object.fromEntries(source.tasks.map((task) => [task, summary.labels[task]?.positive ?? -1])),
    views: summary.views,
    projections: summary.projections,
    patients: summary.patients,
    studies: summary.studies,
  };
}

test('nih: the real Data_Entry_2017_v2020.csv.gz, counted by the csv module', { skip: missing(NIH) }, async () => {
  const source = await openSource(`nih:${NIH}`);
  const expected = runPython<Counts>(
    String.raw`
import csv, gzip, collections
positive, projections, patients, studies = collections.Counter(), collections.Counter(), set(), set()
rows = 0
with gzip.open(INPUT['file'], 'rt', newline='') as f:
    for row in csv.DictReader(f):
        rows += 1
        for finding in row['Finding Labels'].split('|'):
            if finding != 'No Finding':
                positive[finding] += 1
        projections[row['View Position']] += 1
        patients.add(row['Patient ID'])
        studies.add((row['Patient ID'], row['Follow-up #']))
OUTPUT = {'images': rows, 'positive': {t: positive[t] for t in INPUT['tasks']}, 'views': {'frontal': rows},
          'projections': dict(projections), 'patients': len(patients), 'studies': len(studies)}`,
    { file: NIH, tasks: source.tasks },
  );
  assert.deepEqual(await countsOf(source), expected);
  // The data folder's README: 112,120 rows, 30,805 patients, PA 67,310 / AP 44,810.
  assert.equal(expected.images, 112120);
  assert.equal(expected.patients, 30805);
  assert.deepEqual(expected.projections, { PA: 67310, AP: 44810 });
  assert.equal(Object.values(expected.positive).filter((n) => n > 0).length, 14);
});

test('vindr: the real train.csv.gz under the any-reader and two-reader rules', { skip: missing(VINDR) }, async () => {
  const rules = [1, 2];
  const tasks = VINDR_FINDINGS;
  const expected = runPython<{ counts: Counts[]; readers: number }>(
    String.raw`
import csv, gzip, collections
marked, readers = collections.defaultdict(lambda: collections.defaultdict(set)), set()
images = set()
with gzip.open(INPUT['file'], 'rt', newline='') as f:
    for row in csv.DictReader(f):
        images.add(row['image_id'])
        readers.add(row['rad_id'])
        if row['class_name'] != 'No finding':
            marked[row['image_id']][row['class_name']].add(row['rad_id'])
counts = []
for n in INPUT['rules']:
    positive = collections.Counter()
    for image, findings in marked.items():
        for finding, by in findings.items():
            if len(by) >= n:
                positive[finding] += 1
    counts.append({'images': len(images), 'positive': {t: positive[t] for t in INPUT['tasks']},
                   'views': {'frontal': len(images)}, 'projections': {'unknown': len(images)},
                   'patients': len(images), 'studies': len(images)})
OUTPUT = {'counts': counts, 'readers': len(readers)}`,
    { file: VINDR, tasks, rules },
  );
  for (const [i, minReaders] of rules.entries()) {
    assert.deepEqual(await countsOf(await openSource(`vindr:${VINDR}`, { minReaders })), expected.counts[i]);
  }
  // The data folder's README: 15,000 images, 17 radiologists.
  assert.equal(expected.counts[0]?.images, 15000);
  assert.equal(expected.readers, 17);
  assert.ok((expected.counts[1]?.positive['Cardiomegaly'] ?? 0) < (expected.counts[0]?.positive['Cardiomegaly'] ?? 0));
});

test('mimic: the real chexpert and metadata tables, counted by the csv module', { skip: missing(MIMIC) }, async () => {
  const source = await openSource(`mimic:${MIMIC}`);
  const expected = runPython<Counts>(
    String.raw`
import csv, gzip, os, collections
def rows(name):
    for ending in ('.csv', '.csv.gz'):
        path = os.path.join(INPUT['folder'], name + ending)
        if os.path.exists(path):
            f = gzip.open(path, 'rt', newline='') if ending.endswith('gz') else open(path, newline='')
            with f:
                yield from csv.DictReader(f)
            return
labels = {row['study_id']: row for row in rows('mimic-cxr-2.0.0-chexpert')}
views = {'PA': 'frontal', 'AP': 'frontal', 'LATERAL': 'lateral', 'LL': 'lateral'}
positive, by_view, by_projection, patients, studies, images = collections.Counter(), collections.Counter(), collections.Counter(), set(), set(), 0
for row in rows('mimic-cxr-2.0.0-metadata'):
    study = labels.get(row['study_id'])
    if study is None:
        continue
    images += 1
    for task in INPUT['tasks']:
        if study[task] in ('1.0', '1'):
            positive[task] += 1
    by_view[views.get(row['ViewPosition'], 'unknown')] += 1
    by_projection[row['ViewPosition'] or 'unknown'] += 1
    patients.add(row['subject_id'])
    studies.add(row['study_id'])
OUTPUT = {'images': images, 'positive': {t: positive[t] for t in INPUT['tasks']}, 'views': dict(by_view),
          'projections': dict(by_projection), 'patients': len(patients), 'studies': len(studies)}`,
    { folder: MIMIC, tasks: source.tasks },
  );
  assert.deepEqual(await countsOf(source), expected);
});

test('padchest: the real label file, counted by the csv module', { skip: missing(PADCHEST) }, async () => {
  const source = await openSource(`padchest:${PADCHEST}`);
  const expected = runPython<Counts>(
    String.raw`
import ast, csv, gzip, os, re, collections
name = sorted(n for n in os.listdir(INPUT['folder']) if re.match(r'PADCHEST_chest_x_ray_images_labels.*\.csv(\.gz)?$', n, re.I))[-1]
path = os.path.join(INPUT['folder'], name)
views = {'PA': 'frontal', 'AP': 'frontal', 'AP_horizontal': 'frontal', 'L': 'lateral'}
positive, by_view, by_projection, patients, studies, seen = collections.Counter(), collections.Counter(), collections.Counter(), set(), set(), set()
with (gzip.open(path, 'rt', newline='') if name.endswith('.gz') else open(path, newline='')) as f:
    for row in csv.DictReader(f):
        if row['ImageID'] in seen:
            continue
        seen.add(row['ImageID'])
        labels = set(label.strip() for label in (ast.literal_eval(row['Labels']) if row['Labels'].strip() else []))
        for label in labels - {'', 'normal'}:
            positive[label] += 1
        by_view[views.get(row['Projection'], 'unknown')] += 1
        by_projection[row['Projection'] or 'unknown'] += 1
        patients.add(row['PatientID'])
        studies.add(row['StudyID'])
OUTPUT = {'images': len(seen), 'positive': {t: positive[t] for t in INPUT['tasks']}, 'views': dict(by_view),
          'projections': dict(by_projection), 'patients': len(patients), 'studies': len(studies)}`,
    { folder: PADCHEST, tasks: source.tasks },
  );
  assert.deepEqual(await countsOf(source), expected);
  assert.deepEqual(Object.keys(expected.positive).sort(), [...source.tasks].sort());
});
