/**
 * PadChest's label file (`PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv`,
 * `.csv.gz` too): one row per image, with `ImageID` (the PNG's name),
 * `ImageDir` (the numbered folder of the release it is in), `StudyID`,
 * `PatientID`, `Projection` (`PA`, `AP`, `AP_horizontal` frontal; `L`
 * lateral; `COSTAL`, `EXCLUDE`, `UNK` view unknown), `MethodLabel` and
 * `Labels`, a Python-style list of label strings (`['pneumonia', 'COPD signs']`).
 *
 * The tasks are the label strings the file holds (trimmed; in code-unit
 * order), `normal` apart: `['normal']` makes every task negative. A row whose
 * list is empty (`[]`, `['']` or a blank cell) has no labels, so every task is
 * masked there rather than guessed. Images (16-bit PNGs) are looked for at
 * `IMAGEDIR/IMAGEID` under the CSV's folder (or `imageRoot`), else directly in it.
 */
import { readdir, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';

import { type LabelValue, type XrayRecord } from '../records.js';
import { readCsvTable } from './csv-table.js';
import { passesFilters, type SkippedFile, type Source, type SourceOptions } from './source.js';

/** How the release names its label file. */
export const PADCHEST_CSV = /^PADCHEST_chest_x_ray_images_labels.*\.csv(\.gz)?$/i;

/** The label that means no finding: every task negative. */
export const PADCHEST_NORMAL = 'normal';

const VIEWS: Readonly<Record<string, string>> = {
  PA: 'frontal',
  AP: 'frontal',
  AP_horizontal: 'frontal',
  L: 'lateral',
};
const SIMPLE_NAME = /^[^/\\]+$/;

/**
 * Reads a Python list literal of strings, as PadChest writes its labels:
 * `['a', "b's", 'c']`, with any spacing, `[]`, or a blank cell (none). Strings
 * are single- or double-quoted with backslash escapes. Returns the strings,
 * or a description of the first thing that is not the expected syntax.
 */
export function parsePythonList(text: string): string[] | { problem: string } {
  const items: string[] = [];
  let at = 0;
  const skipSpace = (): void => {
    while (at < text.length && /\s/.test(text[at] as string)) at++;
  };
  const fail = (expected: string): { problem: string } => ({
    problem: `expected ${expected} at character ${at + 1}${at < text.length ? ` ('${text[at]}')` : ' (the end)'}`,
  });
  skipSpace();
  if (at === text.length) return items;
  if (text[at] !== '[') return fail("'['");
  at++;
  skipSpace();
  if (text[at] === ']') {
    at++;
  } else {
    for (;;) {
      const quote = text[at];
      if (quote !== "'" && quote !== '"') return fail('a quoted string');
      at++;
      let item = '';
      for (;;) {
        if (at >= text.length) return fail(`a closing ${quote}`);
        const c = text[at] as string;
        if (c === quote) break;
        if (c === '\\' && at + 1 < text.length) {
          item += text[at + 1];
          at += 2;
        } else {
          item += c;
          at++;
        }
      }
      at++;
      items.push(item);
      skipSpace();
      if (text[at] === ',') {
        at++;
        skipSpace();
        // Python allows a trailing comma.
        if (text[at] === ']') {
          at++;
          break;
        }
        continue;
      }
      if (text[at] === ']') {
        at++;
        break;
      }
      return fail("',' or ']'");
    }
  }
  skipSpace();
  return at === text.length ? items : fail('nothing after the list');
}

async function labelFile(location: string): Promise<string> {
  const info = await stat(location).catch(() => undefined);
  if (info === undefined) throw new Error(`padchest: no such file or folder: ${location}`);
  if (!info.isDirectory()) return location;
  const names = (await readdir(location)).filter((name) => PADCHEST_CSV.test(name)).sort();
  if (names.length === 0) {
    throw new Error(
      `padchest: ${location} holds no PADCHEST_chest_x_ray_images_labels_*.csv(.gz); name the label file`,
    );
  }
  return join(location, names[names.length - 1] as string);
}

/** Opens PadChest's label file (see the module comment). */
export async function openPadchest(location: string, options: SourceOptions): Promise<Source> {
  const csv = await labelFile(location);
  const table = await readCsvTable(csv);
  table.checkLengths();
  const imageColumn = table.column('ImageID', 'image file names');
  const dirColumn = table.column('ImageDir', 'the image folder');
  const studyColumn = table.column('StudyID', 'study ids');
  const patientColumn = table.column('PatientID', 'patient ids');
  const projectionColumn = table.column('Projection', 'the projection');
  const labelColumn = table.column('Labels', "the labels, a list such as ['pneumonia', 'COPD signs']");

  const root = resolve(options.imageRoot ?? dirname(csv));
  const folders = new Set(
    (await readdir(root, { withFileTypes: true }).catch(() => []))
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name),
  );
  // First pass: check every row and gather the label strings, which are the tasks.
  const rows: { id: string; folder: string; labels: string[]; projection: string }[] = [];
  const seen = new Set<string>();
  for (let row = 0; row < table.rows.length; row++) {
    const fields = table.rows[row] as string[];
    const id = fields[imageColumn] as string;
    if (!SIMPLE_NAME.test(id) || id === '.' || id === '..') {
      throw new Error(`${table.where(row, imageColumn)}: expected an image file name, got '${id}'`);
    }
    const folder = fields[dirColumn] as string;
    if (folder !== '' && (!SIMPLE_NAME.test(folder) || folder === '.' || folder === '..')) {
      throw new Error(`${table.where(row, dirColumn)}: expected a folder name such as 0 or 54, got '${folder}'`);
    }
    for (const column of [studyColumn, patientColumn]) {
      if (fields[column] === '') throw new Error(`${table.where(row, column)}: empty id`);
    }
    const parsed = parsePythonList(fields[labelColumn] as string);
    if (!Array.isArray(parsed)) {
      throw new Error(
        `${table.where(row, labelColumn)}: not a list of quoted labels: ${parsed.problem} in '${fields[labelColumn]}'`,
      );
    }
    const labels = parsed.map((label) => label.trim()).filter((label) => label !== '');
    for (const label of labels) if (label !== PADCHEST_NORMAL) seen.add(label);
    rows.push({ id, folder, labels, projection: fields[projectionColumn] as string });
  }
  const skipped: SkippedFile[] = [];
  const tasks = [...seen].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const records: XrayRecord[] = [];
  const taken = new Set<string>();
  for (let row = 0; row < rows.length; row++) {
    const { id, folder, labels: given, projection: written } = rows[row] as (typeof rows)[number];
    if (taken.has(id)) {
      skipped.push({ path: id, reason: `listed again at ${csv} line ${table.lineOf(row)}` });
      continue;
    }
    taken.add(id);
    const view = VIEWS[written];
    const projection = written === '' ? undefined : written;
    if (!passesFilters(view, projection, options)) continue;
    const labels: Record<string, LabelValue> = {};
    const positive = new Set(given);
    for (const task of tasks) labels[task] = given.length === 0 ? null : positive.has(task) ? 1 : 0;
    const fields = table.rows[row] as string[];
    const relative = folder !== '' && folders.has(folder) ? `${folder}/${id}` : id;
    // The id is the file name, which is unique in the release, so that it is the same whichever layout holds the files.
    records.push({
      id,
      path: join(root, relative),
      labels,
      patientId: fields[patientColumn] as string,
      studyId: fields[studyColumn] as string,
      ...(view === undefined ? {} : { view }),
      ...(projection === undefined ? {} : { projection }),
    });
  }
  return {
    kind: 'padchest',
    location,
    tasks,
    records,
    skipped,
    patientRule: "column 'PatientID', studies by 'StudyID'",
  };
}
