/**
 * What `predict` scores: the images named on its command line, each a file, a
 * folder (every image file under it) or a `KIND:PATH` source (its records,
 * with their study ids).
 */
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';

import { isImageFile, listFolder, openSource, sourceKinds } from '../data/sources/index.js';

/** One image to score. */
export interface PredictInput {
  /** How the output names it: the path as given, a path relative to a given folder, or the source's id. */
  id: string;
  /** The file to decode. */
  path: string;
  /** The study the image belongs to, when a source says so (a study is scored by its images' max). */
  studyId?: string;
}

/** What the arguments name: the images, and folder entries passed over (not image files). */
export interface ResolvedInputs {
  inputs: PredictInput[];
  /** Files inside given folders that are not images by their ending, or hidden. */
  passedOver: string[];
}

function sourceKind(arg: string): boolean {
  const match = /^([a-z][a-z0-9-]*):(.+)$/.exec(arg);
  return match !== null && sourceKinds().some((entry) => entry.kind === match[1]);
}

/**
 * Turns `args` into the images to score, in the order given (a folder's files
 * sorted). A path that does not exist stays in the list: it is reported as a
 * bad file when read, with the others still scored. A source that cannot be
 * opened is an error naming it.
 */
export async function resolveInputs(args: readonly string[]): Promise<ResolvedInputs> {
  const inputs: PredictInput[] = [];
  const passedOver: string[] = [];
  for (const arg of args) {
    if (sourceKind(arg)) {
      const source = await openSource(arg);
      for (const record of source.records) inputs.push({ id: record.id, path: record.path, studyId: record.studyId });
      continue;
    }
    const info = await stat(arg).catch(() => undefined);
    if (info?.isDirectory() === true) {
      const listing = await listFolder(arg);
      for (const file of listing.files) {
        if (isImageFile(file)) inputs.push({ id: `${arg.replace(/\/+$/, '')}/${file}`, path: resolve(arg, file) });
        else passedOver.push(`${arg}/${file}`);
      }
      passedOver.push(...listing.ignored.map((entry) => `${arg}/${entry.path} (${entry.reason})`));
      continue;
    }
    inputs.push({ id: arg, path: resolve(arg) });
  }
  return { inputs, passedOver };
}
