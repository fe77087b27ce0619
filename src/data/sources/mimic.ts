/**
 * MIMIC-CXR-JPG: three tables in the release's root folder (`.csv` or
 * `.csv.gz`), and the images under `files/`:
 * - `mimic-cxr-2.0.0-chexpert.csv`: `subject_id`, `study_id` and the 14
 *   CheXpert observations per study, each `1.0`, `0.0`, `-1.0` (uncertain) or
 *   blank; the uncertainty and blank policies are the `chexpert:` source's.
 * - `mimic-cxr-2.0.0-metadata.csv`: one row per image, `dicom_id`,
 *   `subject_id`, `study_id`, `ViewPosition` (`PA`, `AP` frontal; `LATERAL`,
 *   `LL` lateral; other positions keep their name as the projection, view
 *   unknown) and more.
 * - `mimic-cxr-2.0.0-split.csv`: `dicom_id`, `study_id`, `subject_id`,
 *   `split` (`train`, `validate`, `test`); read when `split` asks for a part.
 *
 * An image is `files/pXX/pSUBJECT/sSTUDY/DICOM_ID.jpg` (XX the subject id's
 * first two digits) and takes its study's labels. Images whose study has no
 * row in the label table are not taken, and listed as skipped.
 */
import { stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

import { type LabelValue, type XrayRecord } from '../records.js';
import { CHEXPERT_OBSERVATIONS } from './chexpert.js';
import { type CsvTable, readCsvTable } from './csv-table.js';
import {
  blankPolicy,
  Cell,
  CELL_SPELLINGS,
  CellMapper,
  type FileLabelCounts,
  readCell,
  uncertaintyPerTask,
} from './labels.js';
import { passesFilters, type SkippedFile, type Source, type SourceOptions } from './source.js';

/** The release's table names, without `.csv` / `.csv.gz`. */
export const MIMIC_TABLES = {
  labels: 'mimic-cxr-2.0.0-chexpert',
  metadata: 'mimic-cxr-2.0.0-metadata',
  split: 'mimic-cxr-2.0.0-split',
} as const;

/** The parts of the official split. */
export const MIMIC_SPLITS: readonly string[] = ['train', 'validate', 'test'];

const VIEWS: Readonly<Record<string, string>> = { PA: 'frontal', AP: 'frontal', LATERAL: 'lateral', LL: 'lateral' };
const DIGITS = /^\d+$/;
const DICOM_ID = /^[A-Za-z0-9-]+$/;

async function kindOf(path: string): Promise<'file' | 'folder' | undefined> {
  const info = await stat(path).catch(() => undefined);
  return info === undefined ? undefined : info.isDirectory() ? 'folder' : 'file';
}

/** The table `name` in `folder`, plain or gzip-compressed. */
async function tablePath(folder: string, name: string, why: string): Promise<string> {
  for (const ending of ['.csv', '.csv.gz']) {
    const path = join(folder, name + ending);
    if ((await kindOf(path)) === 'file') return path;
  }
  throw new Error(`mimic: no ${name}.csv or ${name}.csv.gz in ${folder} (${why})`);
}

/** The release's folder: `location` itself, or the folder of the table file it names. */
async function releaseFolder(location: string): Promise<string> {
  const kind = await kindOf(location);
  if (kind === undefined) throw new Error(`mimic: no such file or folder: ${location}`);
  if (kind === 'folder') return location;
  if (!basename(location).startsWith('mimic-cxr-')) {
    throw new Error(`mimic: ${location} is not one of the release's tables; name the folder that holds them`);
  }
  return dirname(location);
}

function ids(table: CsvTable, row: number, columns: readonly number[]): string[] {
  const fields = table.rows[row] as string[];
  return columns.map((column) => {
    const value = fields[column] as string;
    const name = table.header[column] as string;
    const valid = name === 'dicom_id' ? DICOM_ID.test(value) : DIGITS.test(value);
    if (!valid) {
      const expected = name === 'dicom_id' ? 'a DICOM id (letters, digits and -)' : 'a number';
      throw new Error(`${table.where(row, column)}: expected ${expected}, got '${value}'`);
    }
    return value;
  });
}

function size(width: string | undefined, height: string | undefined): { width?: number; height?: number } {
  return width !== undefined && height !== undefined && DIGITS.test(width) && DIGITS.test(height)
    ? { width: Number(width), height: Number(height) }
    : {};
}

/** Opens MIMIC-CXR-JPG (see the module comment). */
export async function openMimic(location: string, options: SourceOptions): Promise<Source> {
  const folder = await releaseFolder(location);
  if (options.split !== undefined && !MIMIC_SPLITS.includes(options.split)) {
    throw new Error(`mimic: unknown split '${options.split}'; expected ${MIMIC_SPLITS.join(', ')}`);
  }
  const where = `mimic ${location}`;
  const tasks = [...CHEXPERT_OBSERVATIONS];
  const blank = blankPolicy(options.blank, where);
  const mappers = uncertaintyPerTask(options.uncertain, tasks, where).map((policy) => new CellMapper(policy, blank));

  const labelTable = await readCsvTable(await tablePath(folder, MIMIC_TABLES.labels, 'the labels per study'));
  labelTable.checkLengths();
  const labelIds = ['subject_id', 'study_id'].map((name) => labelTable.column(name, 'ids'));
  const labelColumns = tasks.map((name) => labelTable.column(name, 'a CheXpert observation'));
  const studies = new Map<string, { subject: string; cells: Cell[] }>();
  for (let row = 0; row < labelTable.rows.length; row++) {
    const [subject, study] = ids(labelTable, row, labelIds) as [string, string];
    const fields = labelTable.rows[row] as string[];
    const cells = labelColumns.map((column) => {
      const cell = readCell(fields[column] as string);
      if (cell === Cell.Invalid) {
        throw new Error(`${labelTable.where(row, column)}: expected ${CELL_SPELLINGS}, got '${fields[column]}'`);
      }
      return cell;
    });
    if (studies.has(study))
      throw new Error(`${labelTable.where(row, labelIds[1] as number)}: study ${study} is listed twice`);
    studies.set(study, { subject, cells });
  }

  let parts: Map<string, string> | undefined;
  if (options.split !== undefined) {
    const splitTable = await readCsvTable(await tablePath(folder, MIMIC_TABLES.split, `split '${options.split}'`));
    splitTable.checkLengths();
    const dicomColumn = splitTable.column('dicom_id', 'image ids');
    const splitColumn = splitTable.column('split', 'the part: train, validate or test');
    parts = new Map();
    for (let row = 0; row < splitTable.rows.length; row++) {
      const [dicom] = ids(splitTable, row, [dicomColumn]) as [string];
      const part = (splitTable.rows[row] as string[])[splitColumn] as string;
      if (!MIMIC_SPLITS.includes(part)) {
        throw new Error(`${splitTable.where(row, splitColumn)}: expected ${MIMIC_SPLITS.join(', ')}, got '${part}'`);
      }
      parts.set(dicom, part);
    }
  }

  const metadata = await readCsvTable(await tablePath(folder, MIMIC_TABLES.metadata, 'one row per image'));
  metadata.checkLengths();
  const imageIds = ['dicom_id', 'subject_id', 'study_id'].map((name) => metadata.column(name, 'ids'));
  const positionColumn = metadata.column('ViewPosition', 'the view position');
  // The JPEGs keep the DICOMs' sizes, so the table's Rows and Columns are theirs.
  const rowsColumn = metadata.header.indexOf('Rows');
  const columnsColumn = metadata.header.indexOf('Columns');
  const root = resolve(options.imageRoot ?? folder);
  const fileCounts = tasks.map((): FileLabelCounts => ({ positive: 0, negative: 0, uncertain: 0, blank: 0 }));
  const records: XrayRecord[] = [];
  const skipped: SkippedFile[] = [];
  for (let row = 0; row < metadata.rows.length; row++) {
    const [dicom, subject, study] = ids(metadata, row, imageIds) as [string, string, string];
    const fields = metadata.rows[row] as string[];
    const position = fields[positionColumn] as string;
    const id = `files/p${subject.slice(0, 2)}/p${subject}/s${study}/${dicom}.jpg`;
    if (parts !== undefined && parts.get(dicom) !== options.split) continue;
    const view = VIEWS[position];
    const projection = position === '' ? undefined : position;
    if (!passesFilters(view, projection, options)) continue;
    const labelled = studies.get(study);
    if (labelled === undefined) {
      skipped.push({ path: id, reason: `its study has no row in ${MIMIC_TABLES.labels}` });
      continue;
    }
    if (labelled.subject !== subject) {
      throw new Error(
        `${metadata.where(row, imageIds[1] as number)}: study ${study} is subject ${labelled.subject}'s in ${MIMIC_TABLES.labels}, not ${subject}'s`,
      );
    }
    const labels: Record<string, LabelValue> = {};
    for (let task = 0; task < tasks.length; task++) {
      const cell = labelled.cells[task] as Cell;
      const count = fileCounts[task] as FileLabelCounts;
      if (cell === Cell.Positive) count.positive++;
      else if (cell === Cell.Negative) count.negative++;
      else if (cell === Cell.Uncertain) count.uncertain++;
      else count.blank++;
      labels[tasks[task] as string] = (mappers[task] as CellMapper).map(cell);
    }
    records.push({
      id,
      path: join(root, id),
      labels,
      patientId: subject,
      studyId: study,
      ...(view === undefined ? {} : { view }),
      ...(projection === undefined ? {} : { projection }),
      ...size(fields[columnsColumn], fields[rowsColumn]),
    });
  }
  return {
    kind: 'mimic',
    location,
    tasks,
    records,
    fileCounts: Object.fromEntries(tasks.map((task, i) => [task, fileCounts[i] as FileLabelCounts])),
    skipped,
    patientRule: "column 'subject_id', studies by 'study_id'",
  };
}
