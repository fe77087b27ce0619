/**
 * Lays out an uncompressed zip archive the way PyTorch's own writer does: each
 * entry's data starts on a 64-byte boundary (padding goes in an extra field),
 * so that readers may map storages straight from the file. The archive goes
 * to a sink piece by piece, and an entry's data may itself be streamed, so a
 * checkpoint never sits in memory whole.
 */
import * as zlib from 'node:zlib';

/** Data produced piece by piece, so that it never has to sit in memory whole. */
export interface StreamedData {
  byteLength: number;
  /** The data's bytes in order; each piece may be reused once the next is asked for. */
  pieces(): Iterable<Uint8Array>;
}

/** One file inside the archive. */
export interface ZipEntry {
  name: string;
  data: Uint8Array | StreamedData;
}

/** Where the archive goes: appended bytes, and a rewrite of bytes already written. */
export interface ZipSink {
  write(bytes: Uint8Array): void;
  /** Overwrites bytes at `position` (from the archive's start). */
  patch(position: number, bytes: Uint8Array): void;
}

const LOCAL_HEADER = 30;
const CENTRAL_HEADER = 46;
const END_RECORD = 22;
const EXTRA_HEADER = 4;
// PyTorch pads with this extra-field id ('FB').
const PADDING_FIELD = 0x4246;
// 1980-01-01 00:00 in DOS format: a fixed time keeps archives byte-identical across runs.
const DOS_DATE = (1 << 5) | 1;
const LIMIT = 0xffffffff;

let crcTable: Uint32Array | undefined;

function crc32Fallback(data: Uint8Array): number {
  if (crcTable === undefined) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < data.byteLength; i++) {
    crc = (crcTable[(crc ^ (data[i] as number)) & 0xff] as number) ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

// Node 20.15 and later compute CRC-32 natively, ten times faster than the table.
const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;
const crc32 = nativeCrc32 ?? crc32Fallback;

const encoder = new TextEncoder();

function crcOfPieces(pieces: Iterable<Uint8Array>, write: (piece: Uint8Array) => void): number {
  if (nativeCrc32 !== undefined) {
    let crc = 0;
    for (const piece of pieces) {
      crc = nativeCrc32(piece, crc);
      write(piece);
    }
    return crc;
  }
  // Without an incremental CRC, gather the pieces (Node before 20.15 only).
  const gathered: Uint8Array[] = [];
  for (const piece of pieces) {
    gathered.push(piece.slice());
    write(piece);
  }
  return crc32Fallback(Buffer.concat(gathered));
}

/**
 * Writes a stored zip holding `entries` in order to `sink`. Streamed entries
 * are written as they are produced and their CRC is patched into the local
 * header afterwards, so only one piece of them is in memory at a time. Throws
 * for archives of 4 GiB or more, which need the zip64 extensions this writer
 * does not produce.
 */
export function writeStoredZip(entries: readonly ZipEntry[], sink: ZipSink, alignment = 64): void {
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const { name, data } of entries) {
    const nameBytes = encoder.encode(name);
    const dataStart = offset + LOCAL_HEADER + nameBytes.byteLength + EXTRA_HEADER;
    const padding = (alignment - (dataStart % alignment)) % alignment;
    if (dataStart + padding + data.byteLength >= LIMIT) {
      throw new RangeError('the checkpoint would reach 4 GiB, beyond what this zip writer supports');
    }
    const inMemory = data instanceof Uint8Array;
    let crc = inMemory ? crc32(data) : 0;

    const local = new Uint8Array(LOCAL_HEADER + nameBytes.byteLength + EXTRA_HEADER + padding);
    const head = new DataView(local.buffer);
    head.setUint32(0, 0x04034b50, true);
    head.setUint16(4, 20, true); // version needed: 2.0
    head.setUint16(12, DOS_DATE, true);
    head.setUint32(14, crc, true);
    head.setUint32(18, data.byteLength, true);
    head.setUint32(22, data.byteLength, true);
    head.setUint16(26, nameBytes.byteLength, true);
    head.setUint16(28, EXTRA_HEADER + padding, true);
    local.set(nameBytes, LOCAL_HEADER);
    head.setUint16(LOCAL_HEADER + nameBytes.byteLength, PADDING_FIELD, true);
    head.setUint16(LOCAL_HEADER + nameBytes.byteLength + 2, padding, true);
    sink.write(local);
    if (inMemory) {
      sink.write(data);
    } else {
      let written = 0;
      crc = crcOfPieces(data.pieces(), (piece) => {
        written += piece.byteLength;
        sink.write(piece);
      });
      if (written !== data.byteLength) {
        throw new Error(`zip entry '${name}' produced ${written} bytes where ${data.byteLength} were announced`);
      }
      const crcBytes = new Uint8Array(4);
      new DataView(crcBytes.buffer).setUint32(0, crc >>> 0, true);
      sink.patch(offset + 14, crcBytes);
    }

    const record = new Uint8Array(CENTRAL_HEADER + nameBytes.byteLength);
    const entry = new DataView(record.buffer);
    entry.setUint32(0, 0x02014b50, true);
    entry.setUint16(4, 20, true); // made by: 2.0
    entry.setUint16(6, 20, true);
    entry.setUint16(14, DOS_DATE, true);
    entry.setUint32(16, crc >>> 0, true);
    entry.setUint32(20, data.byteLength, true);
    entry.setUint32(24, data.byteLength, true);
    entry.setUint16(28, nameBytes.byteLength, true);
    entry.setUint32(42, offset, true);
    record.set(nameBytes, CENTRAL_HEADER);
    central.push(record);

    offset = dataStart + padding + data.byteLength;
  }
  const centralSize = central.reduce((sum, record) => sum + record.byteLength, 0);
  if (entries.length > 0xffff || offset + centralSize >= LIMIT) {
    throw new RangeError('the checkpoint would reach 4 GiB, beyond what this zip writer supports');
  }
  const end = new Uint8Array(END_RECORD);
  const tail = new DataView(end.buffer);
  tail.setUint32(0, 0x06054b50, true);
  tail.setUint16(8, entries.length, true);
  tail.setUint16(10, entries.length, true);
  tail.setUint32(12, centralSize, true);
  tail.setUint32(16, offset, true);
  for (const record of central) sink.write(record);
  sink.write(end);
}
