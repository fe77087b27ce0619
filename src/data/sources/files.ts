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

/**
 * Every file under `folder` (recursively), as paths relative to it with `/`
 * separators, sorted so that the order, and so every seeded draw over it, is
 * the same on every file system. Hidden files and folders are left out.
 */
export async function listFiles(folder: string): Promise<string[]> {
  const entries = await readdir(folder, { recursive: true, withFileTypes: true });
  const files: string[] = [];
  for (const entry of entries) {
    const full = join(entry.parentPath, entry.name);
    if (!entry.isFile() && !(entry.isSymbolicLink() && (await stat(full).catch(() => undefined))?.isFile() === true)) {
      continue;
    }
    const parts = relative(folder, full).split(sep);
    if (parts.some((part) => part.startsWith('.'))) continue;
    files.push(parts.join('/'));
  }
  return files.sort(compareText);
}

/** Code-unit order: the same on every machine, unlike `localeCompare`. */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
