/**
 * Any CSV with one row per image: a column of image paths (relative to the
 * CSV's folder unless `imageRoot` is given), label columns written as CheXpert
 * writes them (`1`, `0`, `-1` uncertain, blank; `.0` optional), and optional
 * patient and study columns. The uncertainty and blank policies apply as for
 * CheXpert.
 */
import { dirname, isAbsolute, join, resolve } from 'node:path';

import { type LabelValue, type XrayRecord } from '../records.js';
import { readCsvTable } from './csv-table.js';
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
import { type Source, type SourceOptions } from './source.js';

/** Opens a generic CSV (see the module comment). */
export async function openCsv(location: string, options: SourceOptions): Promise<Source> {
  await requireFile(location, 'csv');
  const table = await readCsvTable(location);
  table.checkLengths();
  const pathName = options.pathColumn ?? (table.header.includes('Path') ? 'Path' : 'path');
  const pathColumn = table.column(pathName, 'image paths; choose another with pathColumn / --path-column');
  const patientColumn =
    options.patientColumn === undefined ? undefined : table.column(options.patientColumn, 'patient ids');
  const studyColumn = options.studyColumn === undefined ? undefined : table.column(options.studyColumn, 'study ids');
  const tasks =
    options.labelColumns === undefined
      ? table.header.filter((_, i) => i !== pathColumn && i !== patientColumn && i !== studyColumn)
      : [...options.labelColumns];
  if (tasks.length === 0) throw new Error(`${location}: no label columns`);
  const labelColumns = tasks.map((name) => table.column(name, 'a label'));
  const where = `csv ${location}`;
  const blank = blankPolicy(options.blank, where);
  const mappers = uncertaintyPerTask(options.uncertain, tasks, where).map((policy) => new CellMapper(policy, blank));
  const fileCounts = tasks.map((): FileLabelCounts => ({ positive: 0, negative: 0, uncertain: 0, blank: 0 }));
  const root = resolve(options.imageRoot ?? dirname(location));
  const hint = options.labelColumns === undefined ? ' (choose the label columns with labelColumns / --labels)' : '';

  const records: XrayRecord[] = [];
  for (let row = 0; row < table.rows.length; row++) {
    const fields = table.rows[row] as string[];
    const id = fields[pathColumn] as string;
    if (id === '') throw new Error(`${table.where(row, pathColumn)}: empty image path`);
    const labels: Record<string, LabelValue> = {};
    for (let task = 0; task < tasks.length; task++) {
      const column = labelColumns[task] as number;
      const cell = readCell(fields[column] as string);
      const count = fileCounts[task] as FileLabelCounts;
      if (cell === Cell.Positive) count.positive++;
      else if (cell === Cell.Negative) count.negative++;
      else if (cell === Cell.Uncertain) count.uncertain++;
      else if (cell === Cell.Blank) count.blank++;
      else throw new Error(`${table.where(row, column)}: expected ${CELL_SPELLINGS}, got '${fields[column]}'${hint}`);
      labels[tasks[task] as string] = (mappers[task] as CellMapper).map(cell);
    }
    const patientId = patientColumn === undefined ? id : (fields[patientColumn] as string);
    if (patientId === '') throw new Error(`${table.where(row, patientColumn as number)}: empty patient id`);
    const studyId = studyColumn === undefined ? id : (fields[studyColumn] as string);
    if (studyId === '') throw new Error(`${table.where(row, studyColumn as number)}: empty study id`);
    records.push({ id, path: isAbsolute(id) ? id : join(root, id), labels, patientId, studyId });
  }
  return {
    kind: 'csv',
    location,
    tasks,
    records,
    patientRule:
      patientColumn === undefined
        ? 'one per row (patientColumn / --patient-column names a column)'
        : `column '${options.patientColumn}'`,
    fileCounts: Object.fromEntries(tasks.map((task, i) => [task, fileCounts[i] as FileLabelCounts])),
  };
}
