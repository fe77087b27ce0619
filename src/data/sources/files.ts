/** Finding image files in folders, for the sources that list folders. */
import { readdir, stat } from 'node:fs/promises';
import { extname, join, relative, sep } from 'node:path';

/** File endings the decoder reads (sharp's formats, and DICOM). */
export const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set([
  '.png',
  '.jpg',
  '.jpeg',
  '.tif',
  '.tiff',
  '.webp',
  '.dcm',
  '.dicom',
]);

/** Whether a file name ends in one of {@link IMAGE_EXTENSIONS} (any case). */
export function isImageFile(name: string): boolean {
  return IMAGE_EXTENSIONS.has(extname(name).toLowerCase());
}

/** Throws unless `path` is an existing folder, naming it and the source kind. */
export async function requireFolder(path: string, kind: string): Promise<void> {
  const info = await stat(path).catch(() => undefined);
  if (info === undefined) throw new Error(`${kind}: no such folder: ${path}`);
  if (!info.isDirectory()) throw new Error(`${kind}: expected a folder, ${path} is a file`);
}

/** Throws unless `path` is an existing file, naming it and the source kind. */
export async function requireFile(path: string, kind: string): Promise<void> {
  const info = await stat(path).catch(() => undefined);
  if (info === undefined) throw new Error(`${kind}: no such file: ${path}`);
  if (info.isDirectory()) throw new Error(`${kind}: expected a file, ${path} is a folder`);
}

/** What {@link listFolder} found: the files, and the entries it did not take, with why. */
export interface FolderListing {
  /** Paths relative to the folder, `/`-separated, sorted. */
  files: string[];
  /** Hidden files and folders, broken links, links to folders: not listed, but counted so they can be reported. */
  ignored: { path: string; reason: string }[];
}

/**
 * Every file under `folder` (recursively; a symbolic link to a file counts as
 * the file), as paths relative to it with `/` separators, sorted so that the
 * order, and so every seeded draw over it, is the same on every file system.
 * Hidden entries (`.DS_Store`, `.git/`) and broken links are left out, and
 * listed in `ignored` so that a source can say what it passed over.
 */
export async function listFolder(folder: string): Promise<FolderListing> {
  const entries = await readdir(folder, { recursive: true, withFileTypes: true });
  const files: string[] = [];
  const ignored: FolderListing['ignored'] = [];
  for (const entry of entries) {
    const full = join(entry.parentPath, entry.name);
    const parts = relative(folder, full).split(sep);
    const path = parts.join('/');
    const hidden = parts.findIndex((part) => part.startsWith('.'));
    // Inside a hidden folder: the folder itself is reported once.
    if (hidden >= 0 && hidden < parts.length - 1) continue;
    if (entry.isDirectory()) {
      if (hidden >= 0) ignored.push({ path: `${path}/`, reason: 'hidden folder' });
      continue;
    }
    if (hidden >= 0) {
      ignored.push({ path, reason: 'hidden file' });
      continue;
    }
    if (entry.isFile()) {
      files.push(path);
      continue;
    }
    if (entry.isSymbolicLink()) {
      const target = await stat(full).catch(() => undefined);
      if (target === undefined) ignored.push({ path, reason: 'broken symbolic link' });
      else if (target.isFile()) files.push(path);
      else if (target.isDirectory()) ignored.push({ path, reason: 'symbolic link to a folder (not followed)' });
      else ignored.push({ path, reason: 'not a regular file' });
      continue;
    }
    ignored.push({ path, reason: 'not a regular file' });
  }
  const order = (a: { path: string }, b: { path: string }): number => compareText(a.path, b.path);
  return { files: files.sort(compareText), ignored: ignored.sort(order) };
}

/** The files of {@link listFolder}, without what it passed over. */
export async function listFiles(folder: string): Promise<string[]> {
  return (await listFolder(folder)).files;
}

/** Code-unit order: the same on every machine, unlike `localeCompare`. */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
