/**
 * Decoders of compressed DICOM pixel data, one per transfer syntax: JPEG
 * baseline and extended (sharp's libjpeg-turbo), JPEG Lossless
 * (jpeg-lossless-decoder-js), JPEG-LS (CharLS) and JPEG 2000 (OpenJPEG), both
 * as the cornerstone project's WebAssembly builds, and RLE Lossless (PS3.5
 * Annex G, a byte-plane framing around PackBits). Each returns the frame's
 * stored samples, before any rescale or window.
 */
import { createRequire } from 'node:module';

import { Decoder as LosslessDecoder } from 'jpeg-lossless-decoder-js';
import sharp from 'sharp';

import { errorText } from './image-error.js';

/** Transfer syntax UIDs read here. */
export const TRANSFER_SYNTAX = {
  implicitLittle: '1.2.840.10008.1.2',
  explicitLittle: '1.2.840.10008.1.2.1',
  deflatedExplicitLittle: '1.2.840.10008.1.2.1.99',
  explicitBig: '1.2.840.10008.1.2.2',
  jpegBaseline: '1.2.840.10008.1.2.4.50',
  jpegExtended: '1.2.840.10008.1.2.4.51',
  jpegLossless: '1.2.840.10008.1.2.4.57',
  jpegLosslessSV1: '1.2.840.10008.1.2.4.70',
  jpegLs: '1.2.840.10008.1.2.4.80',
  jpegLsNearLossless: '1.2.840.10008.1.2.4.81',
  jpeg2000Lossless: '1.2.840.10008.1.2.4.90',
  jpeg2000: '1.2.840.10008.1.2.4.91',
  rle: '1.2.840.10008.1.2.5',
} as const;

/** What a frame decoder needs to know of the image. */
export interface FrameLayout {
  width: number;
  height: number;
  bitsAllocated: number;
}

/** A compressed frame's samples, as stored (sign and high bits are sorted out by the caller). */
export type FrameSamples = ArrayLike<number>;

type FrameDecoder = (frame: Uint8Array, layout: FrameLayout) => Promise<FrameSamples>;

/** The compressed transfer syntaxes, with a short name for messages. */
const COMPRESSED: Record<string, { name: string; decode: FrameDecoder }> = {
  [TRANSFER_SYNTAX.jpegBaseline]: { name: 'JPEG baseline', decode: decodeJpeg },
  [TRANSFER_SYNTAX.jpegExtended]: { name: 'JPEG extended', decode: decodeJpeg },
  [TRANSFER_SYNTAX.jpegLossless]: { name: 'JPEG Lossless', decode: decodeJpegLossless },
  [TRANSFER_SYNTAX.jpegLosslessSV1]: { name: 'JPEG Lossless', decode: decodeJpegLossless },
  [TRANSFER_SYNTAX.jpegLs]: { name: 'JPEG-LS', decode: decodeJpegLs },
  [TRANSFER_SYNTAX.jpegLsNearLossless]: { name: 'JPEG-LS', decode: decodeJpegLs },
  [TRANSFER_SYNTAX.jpeg2000Lossless]: { name: 'JPEG 2000', decode: decodeJpeg2000 },
  [TRANSFER_SYNTAX.jpeg2000]: { name: 'JPEG 2000', decode: decodeJpeg2000 },
  [TRANSFER_SYNTAX.rle]: { name: 'RLE Lossless', decode: decodeRle },
};

/** The compressed transfer syntax's name, or undefined when this module has no decoder for it. */
export function compressedSyntaxName(syntax: string): string | undefined {
  return COMPRESSED[syntax]?.name;
}

/** Every transfer syntax read, for messages that list them. */
export const SUPPORTED_SYNTAXES: readonly string[] = Object.values(TRANSFER_SYNTAX);

/** Decodes one compressed frame; throws (with the codec's words) when it cannot. */
export async function decodeCompressedFrame(
  syntax: string,
  frame: Uint8Array,
  layout: FrameLayout,
): Promise<FrameSamples> {
  const codec = COMPRESSED[syntax];
  if (codec === undefined) throw new Error(`no decoder for transfer syntax ${syntax}`);
  return codec.decode(frame, layout);
}

// ---- JPEG (sharp) and JPEG Lossless -------------------------------------------

async function decodeJpeg(frame: Uint8Array): Promise<FrameSamples> {
  try {
    // A monochrome frame has one component; sharp would otherwise hand back sRGB.
    const { data } = await sharp(frame, { failOn: 'error' })
      .toColourspace('b-w')
      .raw()
      .toBuffer({ resolveWithObject: true });
    return data;
  } catch (error) {
    if (/precision 12/.test(errorText(error))) {
      throw new Error(
        '12-bit JPEG (extended, process 4) is not read here, only 8-bit JPEG; decompress the file first ' +
          '(dcmdjpeg IN OUT, or gdcmconv --raw IN OUT)',
        { cause: error },
      );
    }
    throw error;
  }
}

function decodeJpegLossless(frame: Uint8Array, layout: FrameLayout): Promise<FrameSamples> {
  const copy = new Uint8Array(frame);
  return Promise.resolve(new LosslessDecoder().decode(copy.buffer, 0, copy.length, layout.bitsAllocated <= 8 ? 1 : 2));
}

// ---- JPEG-LS and JPEG 2000 (WebAssembly) --------------------------------------

/** The part of an Emscripten-built decoder class both codecs share. */
interface WasmDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  decode(): void;
  getDecodedBuffer(): Uint8Array;
  getFrameInfo(): { width: number; height: number; bitsPerSample: number; componentCount: number; isSigned?: boolean };
  delete(): void;
}

type WasmModule = Record<string, new () => WasmDecoder>;
type WasmFactory = (options: {
  print: (text: string) => void;
  printErr: (text: string) => void;
}) => Promise<WasmModule>;

const require = createRequire(import.meta.url);
const modules = new Map<string, Promise<WasmModule>>();

/** Loads a codec once per thread; its console output is dropped (OpenJPEG prints progress lines). */
function wasmModule(specifier: string): Promise<WasmModule> {
  let loaded = modules.get(specifier);
  if (loaded === undefined) {
    const factory = require(specifier) as WasmFactory;
    loaded = factory({ print: () => undefined, printErr: () => undefined });
    modules.set(specifier, loaded);
  }
  return loaded;
}

async function decodeWasm(specifier: string, className: string, frame: Uint8Array, layout: FrameLayout) {
  const codec = await wasmModule(specifier);
  const Decoder = codec[className];
  if (Decoder === undefined) throw new Error(`${specifier} has no ${className}`);
  const decoder = new Decoder();
  try {
    decoder.getEncodedBuffer(frame.length).set(frame);
    decoder.decode();
    const info = decoder.getFrameInfo();
    if (info.width !== layout.width || info.height !== layout.height || info.componentCount !== 1) {
      throw new Error(
        `the stream holds ${info.width}x${info.height} with ${info.componentCount} components, ` +
          `expected ${layout.width}x${layout.height} with 1 (from Rows, Columns, Samples per Pixel)`,
      );
    }
    // The decoded buffer lives in the module's memory, freed by delete(): copy it out first.
    const bytes = new Uint8Array(decoder.getDecodedBuffer());
    if (info.bitsPerSample <= 8) return info.isSigned === true ? new Int8Array(bytes.buffer) : bytes;
    return info.isSigned === true ? new Int16Array(bytes.buffer) : new Uint16Array(bytes.buffer);
  } finally {
    decoder.delete();
  }
}

function decodeJpegLs(frame: Uint8Array, layout: FrameLayout): Promise<FrameSamples> {
  return decodeWasm('@cornerstonejs/codec-charls/decodewasmjs', 'JpegLSDecoder', frame, layout);
}

function decodeJpeg2000(frame: Uint8Array, layout: FrameLayout): Promise<FrameSamples> {
  return decodeWasm('@cornerstonejs/codec-openjpeg/decodewasmjs', 'J2KDecoder', frame, layout);
}

// ---- RLE Lossless (PS3.5 Annex G) ----------------------------------------------

/**
 * RLE Lossless: a 64-byte header (segment count, then 15 offsets, uint32 LE)
 * and one PackBits segment per byte of a sample, most significant byte first.
 * No maintained npm package decodes it outside a browser image loader, and the
 * format is this small.
 */
function decodeRle(frame: Uint8Array, layout: FrameLayout): Promise<FrameSamples> {
  return Promise.resolve(rleSamples(frame, layout));
}

function rleSamples(frame: Uint8Array, layout: FrameLayout): FrameSamples {
  const count = layout.width * layout.height;
  const bytesPerSample = layout.bitsAllocated / 8;
  if (frame.length < 64) throw new Error(`RLE header is ${frame.length} bytes, expected 64`);
  const view = new DataView(frame.buffer, frame.byteOffset, frame.length);
  const segments = view.getUint32(0, true);
  if (segments !== bytesPerSample) {
    throw new Error(
      `RLE frame has ${segments} segments, expected ${bytesPerSample} for ${layout.bitsAllocated}-bit samples`,
    );
  }
  const planes = Array.from({ length: segments }, (_, s) => {
    const start = view.getUint32(4 + 4 * s, true);
    const end = s + 1 < segments ? view.getUint32(8 + 4 * s, true) : frame.length;
    if (start < 64 || end > frame.length || end < start) throw new Error(`RLE segment ${s + 1} lies outside the frame`);
    return unpackBits(frame.subarray(start, end), count, s + 1);
  });
  if (bytesPerSample === 1) return planes[0] as Uint8Array;
  const samples = new Uint32Array(count);
  for (const plane of planes) {
    for (let i = 0; i < count; i++) samples[i] = (samples[i]! << 8) | plane[i]!;
  }
  return samples;
}

/** PackBits: a header byte n ≥ 0 copies n + 1 bytes, −127..−1 repeats the next byte 1 − n times, −128 is padding. */
function unpackBits(segment: Uint8Array, count: number, index: number): Uint8Array {
  const out = new Uint8Array(count);
  let read = 0;
  let written = 0;
  while (written < count && read < segment.length) {
    const header = (segment[read++]! << 24) >> 24;
    if (header >= 0) {
      const run = Math.min(header + 1, count - written, segment.length - read);
      out.set(segment.subarray(read, read + run), written);
      read += header + 1;
      written += run;
    } else if (header !== -128) {
      const run = Math.min(1 - header, count - written);
      out.fill(segment[read++] ?? 0, written, written + run);
      written += run;
    }
  }
  if (written < count) throw new Error(`RLE segment ${index} holds ${written} bytes, expected ${count}`);
  return out;
}
