/**
 * Lays out an uncompressed zip archive the way PyTorch's own writer does: each
 * entry's data starts on a 64-byte boundary (padding goes in an extra field),
 * so that readers may map storages straight from the file. The archive comes
 * back as pieces to be written in order, so large tensors are never copied
 * into one buffer.
 */
import * as zlib from 'node:zlib';

/** One file inside the archive. */
export interface ZipEntry {
  name: string;
  data: Uint8Array;
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
const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;
const crc32 = nativeCrc32 ?? crc32Fallback;

const encoder = new TextEncoder();

/**
 * The pieces of a stored zip holding `entries` in order. Throws for archives of
 * 4 GiB or more, which need the zip64 extensions this writer does not produce.
 */
export function storedZip(entries: readonly ZipEntry[], alignment = 64): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const { name, data } of entries) {
    const nameBytes = encoder.encode(name);
    const dataStart = offset + LOCAL_HEADER + nameBytes.byteLength + EXTRA_HEADER;
    const padding = (alignment - (dataStart % alignment)) % alignment;
    if (dataStart + padding + data.byteLength >= LIMIT) {
      throw new RangeError('the checkpoint would reach 4 GiB, beyond what this zip writer supports');
    }
    const crc = crc32(data);

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
    pieces.push(local, data);

    const record = new Uint8Array(CENTRAL_HEADER + nameBytes.byteLength);
    const entry = new DataView(record.buffer);
    entry.setUint32(0, 0x02014b50, true);
    entry.setUint16(4, 20, true); // made by: 2.0
    entry.setUint16(6, 20, true);
    entry.setUint16(14, DOS_DATE, true);
    entry.setUint32(16, crc, true);
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
  pieces.push(...central, end);
  return pieces;
}
