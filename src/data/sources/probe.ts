/**
 * Reads image headers (size, bit depth, channels) without decoding pixels:
 * sharp's `metadata()` for PNG, JPEG, TIFF and WebP, the DICOM header for
 * DICOM files (told by their magic bytes or `.dcm` name). Used to describe a
 * source; whether a file decodes is the decoder's to say.
 */
import { open, readFile } from 'node:fs/promises';

import dicomParser from 'dicom-parser';
import sharp from 'sharp';

import { detectFormat } from '../decode.js';
import { errorText } from '../image-error.js';

/** What an image header says. */
export interface ImageHeader {
  format: string;
  width: number;
  height: number;
  /** Bits per sample as stored (8 or 16 for PNG; DICOM's Bits Stored, e.g. 12). */
  bits: number;
  channels: number;
}

const SHARP_DEPTH_BITS: Record<string, number> = {
  uchar: 8,
  char: 8,
  ushort: 16,
  short: 16,
  uint: 32,
  int: 32,
  float: 32,
  double: 64,
};

/** Enough of a DICOM file to hold its header in all but unusual files; the rest is pixel data. */
const DICOM_HEAD_BYTES = 1 << 18;

async function readHead(file: string, bytes: number): Promise<Uint8Array> {
  const handle = await open(file, 'r');
  try {
    const buffer = Buffer.alloc(bytes);
    const { bytesRead } = await handle.read(buffer, 0, bytes, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

function dicomHeader(bytes: Uint8Array): ImageHeader {
  const dataSet = dicomParser.parseDicom(bytes, { untilTag: 'x7fe00010' });
  const rows = dataSet.uint16('x00280010');
  const columns = dataSet.uint16('x00280011');
  if (rows === undefined || columns === undefined) throw new Error('DICOM file without Rows/Columns');
  return {
    format: 'dicom',
    width: columns,
    height: rows,
    bits: dataSet.uint16('x00280101') ?? dataSet.uint16('x00280100') ?? 0,
    channels: dataSet.uint16('x00280002') ?? 1,
  };
}

/** Reads the header of one image file; throws with the reader's message when it cannot. */
export async function readImageHeader(file: string): Promise<ImageHeader> {
  const head = await readHead(file, DICOM_HEAD_BYTES);
  if (detectFormat(head, file) === 'dicom') {
    try {
      return dicomHeader(head);
    } catch {
      // The header ran past the first bytes read: read it all.
      try {
        return dicomHeader(await readFile(file));
      } catch (error) {
        // dicom-parser throws strings and plain objects.
        throw new Error(errorText(error), { cause: error });
      }
    }
  }
  const meta = await sharp(file).metadata();
  return {
    format: meta.format,
    width: meta.width,
    height: meta.height,
    bits: meta.bitsPerSample ?? SHARP_DEPTH_BITS[meta.depth] ?? 0,
    channels: meta.channels,
  };
}
