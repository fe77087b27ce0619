/**
 * NIH ChestX-ray14's `Data_Entry_2017.csv` (or the 2020 revision,
 * `Data_Entry_2017_v2020.csv`; `.csv.gz` too): one row per image, with
 * `Image Index` (`00000001_000.png`), `Finding Labels` (findings joined by `|`,
 * or `No Finding`), `Follow-up #`, `Patient ID` and `View Position` (`PA`/`AP`;
 * every NIH image is frontal).
 *
 * Images are looked for under the CSV's folder (or `imageRoot`) in the
 * release's layouts: `images/`, `images_001/images/` … `images_012/images/`,
 * `images_001/` …, or the folder itself. The official split is read from
 * `train_val_list.txt` / `test_list.txt` beside the CSV when `split` asks for it.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';

import { type LabelValue, type XrayRecord } from '../records.js';
import { readCsvTable } from './csv-table.js';
import { compareText, requireFile } from './files.js';
import { passesFilters, type Source, type SourceOptions } from './source.js';

/** The 14 findings, in the order of the ChestX-ray14 paper (Wang et al. 2017). */
export const NIH_FINDINGS: readonly string[] = [
  'Atelectasis',
  'Cardiomegaly',
  'Effusion',
  'Infiltration',
  'Mass',
  'Nodule',
  'Pneumonia',
  'Pneumothorax',
  'Consolidation',
  'Edema',
  'Emphysema',
  'Fibrosis',
  'Pleural_Thickening',
  'Hernia',
];

/** The label file names of the release, looked for when the location is a folder. */
export const NIH_CSV_NAMES: readonly string[] = [
  'Data_Entry_2017_v2020.csv',
  'Data_Entry_2017_v2020.csv.gz',
  'Data_Entry_2017.csv',
  'Data_Entry_2017.csv.gz',
];

/** The official split: which list beside the CSV names each part. */
export const NIH_SPLITS: Readonly<Record<string, string>> = { train: 'train_val_list.txt', test: 'test_list.txt' };

const NO_FINDING = 'No Finding';
const IMAGE_NAME = /^[^/\\]+\.[A-Za-z]+$/;

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() === true;
}

async function isFolder(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() === true;
}

/** The CSV: `location` itself, or the release's label file inside the folder `location`. */
async function labelFile(location: string): Promise<string> {
  if (!(await isFolder(location))) {
    await requireFile(location, 'nih');
    return location;
  }
  for (const name of NIH_CSV_NAMES) if (await isFile(join(location, name))) return join(location, name);
  throw new Error(`nih: ${location} is a folder without ${NIH_CSV_NAMES.join(', ')}; name the label file`);
}

/**
 * Where each image file is, by name: the folders of the release's layouts
 * under `root`, listed once (listing 112k names beats 112k `stat` calls).
 */
async function imageFolders(root: string): Promise<Map<string, string>> {
  const folders: string[] = [];
  const entries = (await readdir(root, { withFileTypes: true }).catch(() => [])).sort((a, b) =>
    compareText(a.name, b.name),
  );
  if (entries.some((entry) => entry.name === 'images' && entry.isDirectory())) folders.push(join(root, 'images'));
  for (const entry of entries) {
    if (!/^images_\d+$/.test(entry.name) || !entry.isDirectory()) continue;
    const inner = join(root, entry.name, 'images');
    folders.push((await isFolder(inner)) ? inner : join(root, entry.name));
  }
  folders.push(root);
  const where = new Map<string, string>();
  for (const folder of folders) {
    for (const name of await readdir(folder).catch(() => [])) if (!where.has(name)) where.set(name, folder);
  }
  return where;
}

/** The names in one of the split lists, with the file and line of any that is not an image name. */
async function splitNames(csv: string, split: string): Promise<Set<string>> {
  const listName = NIH_SPLITS[split];
  if (listName === undefined) {
    throw new Error(`nih: unknown split '${split}'; expected ${Object.keys(NIH_SPLITS).join(' or ')}`);
  }
  const file = join(dirname(csv), listName);
  const text = await readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) throw new Error(`nih: split '${split}' needs ${file}, which is not there`);
  const names = new Set<string>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const name = (lines[i] as string).trim();
    if (name === '') continue;
    if (!IMAGE_NAME.test(name)) throw new Error(`${file} line ${i + 1}: expected an image name, got '${name}'`);
    names.add(name);
  }
  return names;
}

/** Opens NIH ChestX-ray14's label file (see the module comment). */
export async function openNih(location: string, options: SourceOptions): Promise<Source> {
  const csv = await labelFile(location);
  const table = await readCsvTable(csv);
  table.checkLengths();
  const nameColumn = table.column('Image Index', 'image file names');
  const findingColumn = table.column('Finding Labels', 'the findings, joined by |');
  const followUpColumn = table.column('Follow-up #', 'the follow-up number');
  const patientColumn = table.column('Patient ID', 'patient ids');
  const viewColumn = table.column('View Position', 'the projection');
  const chosen = options.split === undefined ? undefined : await splitNames(csv, options.split);
  const root = resolve(options.imageRoot ?? dirname(csv));
  const where = await imageFolders(root);
  const fallback = (await isFolder(join(root, 'images'))) ? join(root, 'images') : root;
  const tasks = [...NIH_FINDINGS];
  const taskIndex = new Map(tasks.map((task, i) => [task, i]));

  const records: XrayRecord[] = [];
  const positive = new Array<boolean>(tasks.length);
  for (let row = 0; row < table.rows.length; row++) {
    const fields = table.rows[row] as string[];
    const id = fields[nameColumn] as string;
    if (!IMAGE_NAME.test(id) || id.includes('..')) {
      throw new Error(
        `${table.where(row, nameColumn)}: expected an image file name such as 00000001_000.png, got '${id}'`,
      );
    }
    positive.fill(false);
    const findings = fields[findingColumn] as string;
    if (findings !== NO_FINDING) {
      for (const finding of findings.split('|')) {
        const task = taskIndex.get(finding.trim());
        if (task === undefined) {
          throw new Error(
            `${table.where(row, findingColumn)}: unknown finding '${finding}' in '${findings}'; ` +
              `expected '${NO_FINDING}' or findings joined by | from: ${tasks.join(', ')}`,
          );
        }
        positive[task] = true;
      }
    }
    const followUp = fields[followUpColumn] as string;
    if (!/^\d+$/.test(followUp)) {
      throw new Error(`${table.where(row, followUpColumn)}: expected a follow-up number, got '${followUp}'`);
    }
    const patient = fields[patientColumn] as string;
    if (!/^\d+$/.test(patient)) {
      throw new Error(`${table.where(row, patientColumn)}: expected a numeric patient id, got '${patient}'`);
    }
    const projection = fields[viewColumn] as string;
    if (projection !== 'PA' && projection !== 'AP') {
      throw new Error(`${table.where(row, viewColumn)}: expected PA or AP, got '${projection}'`);
    }
    if (chosen !== undefined && !chosen.has(id)) continue;
    if (!passesFilters('frontal', projection, options)) continue;
    const labels: Record<string, LabelValue> = {};
    for (let task = 0; task < tasks.length; task++) labels[tasks[task] as string] = positive[task] === true ? 1 : 0;
    // Padded as in the file names (00000001_000.png), so that these ids and a folder's agree.
    const patientId = patient.padStart(8, '0');
    records.push({
      id,
      path: join(where.get(id) ?? fallback, id),
      labels,
      patientId,
      studyId: `${patientId}_${followUp.padStart(3, '0')}`,
      view: 'frontal',
      projection,
    });
  }
  return {
    kind: 'nih',
    location,
    tasks,
    records,
    patientRule: "column 'Patient ID', studies by 'Follow-up #'",
  };
}
