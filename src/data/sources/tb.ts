/**
 * The Shenzhen (`CHNCXR_0001_0.png`) and Montgomery (`MCUCXR_0001_0.png`)
 * tuberculosis sets: the label is the last digit of the name (0 normal, 1
 * tuberculosis), the patient the set's prefix with the number. PNGs are found
 * recursively; folders with `mask` in their name are passed over, since
 * Montgomery ships lung masks under the same file names as its images.
 */
import { basename, join, resolve } from 'node:path';

import { type XrayRecord } from '../records.js';
import { listFiles, requireFolder } from './files.js';
import { type SkippedFile, type Source, type SourceOptions } from './source.js';

const TB_NAME = /^((?:CHNCXR|MCUCXR)_\d+)_([01])\.png$/i;

/** The label name of the tuberculosis sets. */
export const TB_TASK = 'Tuberculosis';

/** Opens a folder of Shenzhen and/or Montgomery images. */
export async function openTb(location: string, _options: SourceOptions): Promise<Source> {
  const folder = resolve(location);
  await requireFolder(folder, 'tb');
  const records: XrayRecord[] = [];
  const skipped: SkippedFile[] = [];
  for (const relative of await listFiles(folder)) {
    if (!relative.toLowerCase().endsWith('.png')) continue;
    if (
      relative
        .split('/')
        .slice(0, -1)
        .some((part) => /mask/i.test(part))
    ) {
      skipped.push({ path: relative, reason: 'in a mask folder' });
      continue;
    }
    const match = TB_NAME.exec(basename(relative));
    if (match === null) {
      skipped.push({ path: relative, reason: 'not named CHNCXR_NNNN_L.png or MCUCXR_NNNN_L.png' });
      continue;
    }
    const patientId = (match[1] as string).toUpperCase();
    records.push({
      id: relative,
      path: join(folder, relative),
      labels: { [TB_TASK]: Number(match[2]) },
      patientId,
      studyId: patientId,
      // Both sets are posteroanterior chest films; the view is frontal throughout.
      view: 'frontal',
    });
  }
  if (records.length === 0) {
    throw new Error(`tb: no CHNCXR_NNNN_L.png or MCUCXR_NNNN_L.png images under ${location}`);
  }
  return {
    kind: 'tb',
    location,
    tasks: [TB_TASK],
    defaultTask: TB_TASK,
    records,
    skipped,
    patientRule: 'file names (CHNCXR_NNNN, MCUCXR_NNNN)',
  };
}
