/**
 * VinDr-CXR's `train.csv`: one row per finding per radiologist, with
 * `image_id`, `class_name`, `class_id` (0–13 a finding, 14 `No finding`),
 * `rad_id` (`R1` … `R17`) and the box `x_min`, `y_min`, `x_max`, `y_max`
 * (blank for `No finding`). Each image was read by several radiologists; the
 * images are DICOM files at `train/IMAGE_ID.dicom` beside the CSV (or under
 * `imageRoot`).
 *
 * The label rule: an image is positive for a finding when at least
 * `minReaders` (default 1: any reader) of the radiologists who read it marked
 * that finding (several boxes by one reader count once), and negative
 * otherwise. VinDr-CXR gives no patient ids, so each image is its own patient
 * and study; every image is a frontal (posteroanterior) film, but the file does
 * not say the projection, so it is left unknown.
 */
import { dirname, join, resolve } from 'node:path';

import { type LabelValue, type XrayRecord } from '../records.js';
import { readCsvTable } from './csv-table.js';
import { requireFile } from './files.js';
import { type Source, type SourceOptions } from './source.js';

/** The 14 findings, by `class_id` (0–13); `No finding` is 14. */
export const VINDR_FINDINGS: readonly string[] = [
  'Aortic enlargement',
  'Atelectasis',
  'Calcification',
  'Cardiomegaly',
  'Consolidation',
  'ILD',
  'Infiltration',
  'Lung Opacity',
  'Nodule/Mass',
  'Other lesion',
  'Pleural effusion',
  'Pleural thickening',
  'Pneumothorax',
  'Pulmonary fibrosis',
];

const NO_FINDING = 'No finding';
const NO_FINDING_ID = 14;
const IMAGE_ID = /^[A-Za-z0-9_-]+$/;

/** The default of `minReaders`: a finding any reader marked is positive. */
export const VINDR_DEFAULT_MIN_READERS = 1;

interface Image {
  readers: Set<string>;
  /** Per finding, the readers who marked it. */
  marked: Set<string>[];
}

/** Opens VinDr-CXR's per-radiologist annotations (see the module comment for the label rule). */
export async function openVindr(location: string, options: SourceOptions): Promise<Source> {
  await requireFile(location, 'vindr');
  const minReaders = options.minReaders ?? VINDR_DEFAULT_MIN_READERS;
  if (!Number.isInteger(minReaders) || minReaders < 1) {
    throw new Error(`vindr ${location}: minReaders must be a positive integer, got ${minReaders}`);
  }
  const table = await readCsvTable(location);
  table.checkLengths();
  const imageColumn = table.column('image_id', 'image ids');
  const nameColumn = table.column('class_name', 'the finding');
  const classColumn = table.column('class_id', 'the finding number');
  const readerColumn = table.column('rad_id', 'the radiologist');
  const tasks = [...VINDR_FINDINGS];
  const images = new Map<string, Image>();
  for (let row = 0; row < table.rows.length; row++) {
    const fields = table.rows[row] as string[];
    const id = fields[imageColumn] as string;
    if (!IMAGE_ID.test(id)) {
      throw new Error(`${table.where(row, imageColumn)}: expected an image id (letters, digits, _ or -), got '${id}'`);
    }
    const name = fields[nameColumn] as string;
    const finding = name === NO_FINDING ? NO_FINDING_ID : tasks.indexOf(name);
    if (finding < 0) {
      throw new Error(
        `${table.where(row, nameColumn)}: unknown finding '${name}'; expected '${NO_FINDING}' or one of: ${tasks.join(', ')}`,
      );
    }
    if (fields[classColumn] !== String(finding)) {
      throw new Error(
        `${table.where(row, classColumn)}: class_id '${fields[classColumn]}' does not match '${name}', which is ${finding}`,
      );
    }
    const reader = fields[readerColumn] as string;
    if (reader === '') throw new Error(`${table.where(row, readerColumn)}: empty radiologist id`);
    let image = images.get(id);
    if (image === undefined) {
      image = { readers: new Set(), marked: tasks.map(() => new Set<string>()) };
      images.set(id, image);
    }
    image.readers.add(reader);
    if (finding !== NO_FINDING_ID) (image.marked[finding] as Set<string>).add(reader);
  }
  const root = resolve(options.imageRoot ?? dirname(location));
  const records: XrayRecord[] = [];
  for (const [id, image] of images) {
    const labels: Record<string, LabelValue> = {};
    for (let task = 0; task < tasks.length; task++) {
      labels[tasks[task] as string] = (image.marked[task] as Set<string>).size >= minReaders ? 1 : 0;
    }
    records.push({ id, path: join(root, 'train', `${id}.dicom`), labels, patientId: id, studyId: id, view: 'frontal' });
  }
  return { kind: 'vindr', location, tasks, records, patientRule: 'one per image (VinDr-CXR gives no patient ids)' };
}
