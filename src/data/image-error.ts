/** The error every image decoder throws: the file, and what was wrong with it. */

/** An image file that could not be decoded; `reason` says what was expected, without the file name. */
export class ImageDecodeError extends Error {
  constructor(
    /** The file (or the name given for a buffer). */
    readonly file: string,
    /** What was wrong, e.g. `not found`, `DICOM pixel data is truncated (…)`. */
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${reason}`, options);
    this.name = 'ImageDecodeError';
  }
}

/** The reason a missing file is reported with. */
export const NOT_FOUND = 'not found';

/**
 * The text of anything thrown. Libraries throw strings, and dicom-parser
 * throws plain objects carrying an `exception` string; none of them should
 * reach a user as `[object Object]`.
 */
export function errorText(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === 'string') return error;
  if (typeof error === 'object' && error !== null) {
    const fields = error as { exception?: unknown; message?: unknown };
    if (typeof fields.exception === 'string') return fields.exception;
    if (typeof fields.message === 'string') return fields.message;
    try {
      return JSON.stringify(error);
    } catch {
      // A cyclic object: fall through to its type.
    }
  }
  return String(error);
}

/** The reason for a file-system error while reading `file`: `not found`, or the system's words. */
export function readFailure(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return NOT_FOUND;
  if (code === 'EISDIR') return 'is a folder, expected an image file';
  return `cannot be read (${errorText(error)})`;
}
