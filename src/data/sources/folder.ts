/**
 * A folder with one sub-folder per class (`NORMAL/`, `PNEUMONIA/`). Labels are
 * one-hot over the class names; with two classes one of which is normal, the
 * other names the binary task (`PNEUMONIA`). Patient ids come from file names
 * that carry one (Kermany's pneumonia set; NIH's `00001234_005.png`), else each
 * file is its own patient.
 */
import { basename, join, resolve } from 'node:path';
import { readdir, stat } from 'node:fs/promises';

import { type LabelValue, type XrayRecord } from '../records.js';
import { compareText, isImageFile, listFolder, requireFolder } from './files.js';
import { parseNihName } from './patients.js';
import { type SkippedFile, type Source, type SourceOptions } from './source.js';

const SPLIT_FOLDER = /^(train|training|test|testing|val|valid|validation)$/i;
const NORMAL_CLASS = /^(normal|negative|healthy|no[ _-]?finding)$/i;

/**
 * Patient and study from a Kermany file name, or undefined when the name
 * carries none:
 * - `person1000_bacteria_2931.jpeg` → patient `person1000`; the trailing
 *   number counts images, so each image is its own study.
 * - `IM-0115-0001.jpeg` → patient `IM-0115`, study `IM-0115-0001`; a fourth
 *   group (`IM-0429-0001-0002.jpeg`) is a further image of that study.
 * - `NORMAL2-IM-1427-0001.jpeg` → patient `NORMAL2-IM-1427` (the `NORMAL2`
 *   batch numbers its patients apart from the `IM-` batch).
 */
export function parseKermanyName(name: string): { patientId: string; studyId?: string } | undefined {
  const person = /^(person\d+)_/i.exec(name);
  if (person !== null) return { patientId: (person[1] as string).toLowerCase() };
  const normal = /^((?:NORMAL\d*-)?IM-\d+)-(\d+)(?:-\d+)?\.[a-z]+$/i.exec(name);
  if (normal !== null) {
    const patientId = (normal[1] as string).toUpperCase();
    return { patientId, studyId: `${patientId}-${normal[2]}` };
  }
  return undefined;
}

/** Opens a folder of class sub-folders. */
export async function openFolder(location: string, _options: SourceOptions): Promise<Source> {
  const folder = resolve(location);
  await requireFolder(folder, 'folder');
  const skipped: SkippedFile[] = [];
  const classes: string[] = [];
  const entries = (await readdir(folder, { withFileTypes: true })).sort((a, b) => compareText(a.name, b.name));
  for (const entry of entries) {
    if (entry.name.startsWith('.')) {
      skipped.push({ path: entry.name, reason: entry.isDirectory() ? 'hidden folder' : 'hidden file' });
      continue;
    }
    // A class folder may be a symbolic link to one elsewhere (a data set kept once, linked into several layouts).
    const info = entry.isSymbolicLink() ? await stat(join(folder, entry.name)).catch(() => undefined) : entry;
    if (info === undefined) skipped.push({ path: entry.name, reason: 'broken symbolic link' });
    else if (info.isDirectory()) classes.push(entry.name);
    else skipped.push({ path: entry.name, reason: 'a file beside the class folders, not in one' });
  }
  if (classes.length === 0) {
    throw new Error(`folder: ${location} has no sub-folders; expected one per class (e.g. NORMAL/, PNEUMONIA/)`);
  }
  if (classes.every((name) => SPLIT_FOLDER.test(name))) {
    throw new Error(
      `folder: ${location} holds split folders (${classes.join(', ')}), not class folders; ` +
        `name one of them, e.g. folder:${join(location, classes[classes.length - 1] as string)}`,
    );
  }
  const records: XrayRecord[] = [];
  const rules = { Kermany: 0, NIH: 0, none: 0 };
  for (const name of classes) {
    const labels: Record<string, LabelValue> = {};
    for (const other of classes) labels[other] = other === name ? 1 : 0;
    const listing = await listFolder(join(folder, name));
    for (const entry of listing.ignored) skipped.push({ path: `${name}/${entry.path}`, reason: entry.reason });
    for (const relative of listing.files) {
      const id = `${name}/${relative}`;
      if (!isImageFile(relative)) {
        skipped.push({ path: id, reason: 'not an image file' });
        continue;
      }
      const kermany = parseKermanyName(basename(relative));
      const parsed = kermany ?? parseNihName(basename(relative));
      rules[kermany !== undefined ? 'Kermany' : parsed !== undefined ? 'NIH' : 'none']++;
      records.push({
        id,
        path: join(folder, name, relative),
        labels: { ...labels },
        patientId: parsed?.patientId ?? id,
        studyId: parsed?.studyId ?? id,
      });
    }
  }
  if (records.length === 0) throw new Error(`folder: no image files under ${location}`);
  const normal = classes.filter((name) => NORMAL_CLASS.test(name));
  const defaultTask =
    classes.length === 2 && normal.length === 1 ? classes.find((name) => name !== normal[0]) : undefined;
  return { kind: 'folder', location, tasks: classes, defaultTask, records, skipped, patientRule: ruleWords(rules) };
}

/** How the folder's patients were found, in words: "file names (Kermany 5216)", "file names (NIH 10), one per image 2". */
function ruleWords(rules: { Kermany: number; NIH: number; none: number }): string {
  const names = [
    ...(rules.Kermany > 0 ? [`Kermany person123_/IM-0001-0001 ${rules.Kermany}`] : []),
    ...(rules.NIH > 0 ? [`NIH 00001234_005 ${rules.NIH}`] : []),
  ];
  const parts = [
    ...(names.length > 0 ? [`file names (${names.join(', ')})`] : []),
    ...(rules.none > 0 ? [`one per image ${rules.none}`] : []),
  ];
  return parts.join(', ');
}
