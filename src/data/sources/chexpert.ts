/**
 * CheXpert's `train.csv` / `valid.csv`: one row per image, a path such as
 * `CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg`, the view
 * (`Frontal/Lateral`, `AP/PA`) and 14 observations, each `1.0`, `0.0`, `-1.0`
 * (uncertain) or blank (not mentioned in the report).
 *
 * Labels: uncertain cells follow the uncertainty policy (default `ignore`,
 * masked); blank cells are negative unless `blank: 'ignore'`. The paper's
 * U-Ignore masks `-1` only and keeps blank as 0, which is what `ignore` does.
 */
import { existsSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';

import { type LabelValue, type XrayRecord } from '../records.js';
import { type CsvTable, readCsvTable } from './csv-table.js';
import { requireFile } from './files.js';
import {
  blankPolicy,
  Cell,
  CELL_SPELLINGS,
  CellMapper,
  type FileLabelCounts,
  readCell,
  uncertaintyPerTask,
} from './labels.js';
import { passesFilters, type Source, type SourceOptions } from './source.js';

/** The 14 observations, in the CSV's column order. */
export const CHEXPERT_OBSERVATIONS: readonly string[] = [
  'No Finding',
  'Enlarged Cardiomediastinum',
  'Cardiomegaly',
  'Lung Opacity',
  'Lung Lesion',
  'Edema',
  'Consolidation',
  'Pneumonia',
  'Atelectasis',
  'Pneumothorax',
  'Pleural Effusion',
  'Pleural Other',
  'Fracture',
  'Support Devices',
];

const PATIENT_STUDY = /(?:^|\/)(patient\d+)\/(study\d+)\//;

/**
 * Finds the folder image paths are relative to: the one holding the first
 * path segment (`CheXpert-v1.0-small/`), looked for among the CSV's folder and
 * its parents, since the CSV normally lives inside that folder. Failing that,
 * the CSV's own folder (a CSV kept apart from its images).
 */
function imageRootFinder(csvFile: string, override: string | undefined): (segment: string) => string {
  const csvFolder = dirname(resolve(csvFile));
  if (override !== undefined) return () => resolve(override);
  const found = new Map<string, string>();
  return (segment) => {
    let root = found.get(segment);
    if (root === undefined) {
      root = csvFolder;
      for (let folder = csvFolder; ; folder = dirname(folder)) {
        if (basename(folder) === segment) {
          root = dirname(folder);
          break;
        }
        if (existsSync(join(folder, segment))) {
          root = folder;
          break;
        }
        if (dirname(folder) === folder) break;
      }
      found.set(segment, root);
    }
    return root;
  };
}

function viewOf(table: CsvTable, row: number, column: number, text: string): string {
  if (text === 'Frontal') return 'frontal';
  if (text === 'Lateral') return 'lateral';
  throw new Error(`${table.where(row, column)}: expected Frontal or Lateral, got '${text}'`);
}

/** Opens a CheXpert CSV (see the module comment for the label rules). */
export async function openChexpert(location: string, options: SourceOptions): Promise<Source> {
  await requireFile(location, 'chexpert');
  const table = await readCsvTable(location);
  table.checkLengths();
  const pathColumn = table.column('Path', 'image paths');
  const viewColumn = table.column('Frontal/Lateral', 'the view');
  const projectionColumn = table.column('AP/PA', 'the projection');
  const labelColumns = CHEXPERT_OBSERVATIONS.map((name) => table.column(name, 'a CheXpert observation'));
  const tasks = [...CHEXPERT_OBSERVATIONS];
  const where = `chexpert ${location}`;
  const blank = blankPolicy(options.blank, where);
  const mappers = uncertaintyPerTask(options.uncertain, tasks, where).map((policy) => new CellMapper(policy, blank));
  const fileCounts = tasks.map((): FileLabelCounts => ({ positive: 0, negative: 0, uncertain: 0, blank: 0 }));
  const rootOf = imageRootFinder(location, options.imageRoot);

  const records: XrayRecord[] = [];
  const cells = new Array<Cell>(tasks.length);
  for (let row = 0; row < table.rows.length; row++) {
    const fields = table.rows[row] as string[];
    const id = fields[pathColumn] as string;
    const ids = PATIENT_STUDY.exec(id);
    if (ids === null) {
      throw new Error(`${table.where(row, pathColumn)}: expected a path with .../patientNNNNN/studyN/..., got '${id}'`);
    }
    const view = viewOf(table, row, viewColumn, fields[viewColumn] as string);
    const projection = (fields[projectionColumn] as string) || undefined;
    // Cells are checked on every row, kept or not: a malformed file is an error whatever the filters.
    for (let task = 0; task < tasks.length; task++) {
      const cell = readCell(fields[labelColumns[task] as number] as string);
      if (cell === Cell.Invalid) {
        const column = labelColumns[task] as number;
        throw new Error(`${table.where(row, column)}: expected ${CELL_SPELLINGS}, got '${fields[column]}'`);
      }
      cells[task] = cell;
    }
    if (!passesFilters(view, projection, options)) continue;
    const labels: Record<string, LabelValue> = {};
    for (let task = 0; task < tasks.length; task++) {
      const cell = cells[task] as Cell;
      const count = fileCounts[task] as FileLabelCounts;
      if (cell === Cell.Positive) count.positive++;
      else if (cell === Cell.Negative) count.negative++;
      else if (cell === Cell.Uncertain) count.uncertain++;
      else count.blank++;
      labels[tasks[task] as string] = (mappers[task] as CellMapper).map(cell);
    }
    const patientId = ids[1] as string;
    const slash = id.indexOf('/');
    // Plain concatenation: `join` per row costs a tenth of the parse on CheXpert's 223k rows.
    const path = isAbsolute(id) ? id : `${rootOf(slash < 0 ? '' : id.slice(0, slash))}${sep}${id}`;
    records.push({ id, path, labels, patientId, studyId: `${patientId}/${ids[2]}`, view, projection });
  }
  return {
    kind: 'chexpert',
    location,
    tasks,
    records,
    patientRule: 'paths (.../patientNNNNN/studyN/...)',
    fileCounts: Object.fromEntries(tasks.map((task, i) => [task, fileCounts[i] as FileLabelCounts])),
  };
}
