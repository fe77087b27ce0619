/**
 * Reads a CSV file (plain or gzip-compressed) into rows of strings, and finds
 * the line a row came from when something in it must be reported.
 */
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';

import { parse } from 'csv-parse/sync';

/** A CSV file's header and data rows. */
export class CsvTable {
  private lines: number[] | undefined;

  constructor(
    /** The file, as named to the user in messages. */
    readonly file: string,
    readonly header: string[],
    readonly rows: string[][],
    private readonly text: Buffer,
  ) {}

  /**
   * The 1-based line of the file on which data row `row` (0-based) ends. Only
   * wanted on the way to an error, so it re-reads the file then, with the
   * parser's line accounting on (which halves its speed), rather than always.
   */
  lineOf(row: number): number {
    if (this.lines === undefined || row >= this.lines.length) {
      const withInfo = parse(this.text, { ...PARSE_OPTIONS, info: true, to: row + 2 }) as unknown as {
        info: { lines: number };
      }[];
      this.lines = withInfo.slice(1).map((entry) => entry.info.lines);
    }
    return this.lines[row] ?? row + 2;
  }

  /** `file line N, column C (name)`: where a cell is, for messages. */
  where(row: number, column: number): string {
    const name = this.header[column];
    return `${this.file} line ${this.lineOf(row)}, column ${column + 1}${name === undefined ? '' : ` (${name})`}`;
  }

  /** Index of a header name, or an error listing the header. */
  column(name: string, purpose: string): number {
    const index = this.header.indexOf(name);
    if (index < 0) {
      throw new Error(
        `${this.file}: no column '${name}' (${purpose}); the header has: ${this.header.map((h) => `'${h}'`).join(', ')}`,
      );
    }
    return index;
  }

  /** Throws when a row's length differs from the header's. */
  checkLengths(): void {
    const expected = this.header.length;
    for (let row = 0; row < this.rows.length; row++) {
      const length = (this.rows[row] as string[]).length;
      if (length !== expected) {
        throw new Error(
          `${this.file} line ${this.lineOf(row)}: ${length} columns, expected ${expected} as in the header`,
        );
      }
    }
  }
}

const PARSE_OPTIONS = { bom: true, relax_column_count: true, skip_empty_lines: true } as const;

function isGzip(bytes: Buffer): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

function gunzip(file: string, bytes: Buffer): Buffer {
  try {
    return gunzipSync(bytes);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'Z_BUF_ERROR' ? 'cut short' : 'damaged';
    throw new Error(
      `${file}: the gzip data is ${reason} (${(error as Error).message}); expected a complete gzip-compressed CSV`,
    );
  }
}

/** Reads `file`; gzip is recognised by its magic bytes, whatever the name. */
export async function readCsvTable(file: string): Promise<CsvTable> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    throw new Error(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  const text = isGzip(bytes) ? gunzip(file, bytes) : bytes;
  let rows: string[][];
  try {
    rows = parse(text, PARSE_OPTIONS);
  } catch (error) {
    throw new Error(`${file}: not a readable CSV file: ${error instanceof Error ? error.message : String(error)}`);
  }
  const header = rows.shift();
  if (header === undefined) throw new Error(`${file}: empty file, expected a header line`);
  return new CsvTable(file, header, rows, text);
}
