/**
 * Image decoding: PNG (8- and 16-bit), JPEG and the other formats sharp reads,
 * and DICOM (uncompressed, JPEG Lossless, JPEG baseline), to one grey image.
 * This module does not touch libtorch, so the cache's worker threads can load it.
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';

import dicomParser from 'dicom-parser';
import { Decoder as LosslessDecoder } from 'jpeg-lossless-decoder-js';
import sharp from 'sharp';

/** A single-channel image, row-major, 0 = black. */
export interface GreyImage {
  width: number;
  height: number;
  pixels: Uint8Array | Uint16Array | Float32Array;
  /** The value that stands for white: 255, 65535, or 1 for float images. */
  white: number;
}

/** How a non-square image becomes a square one. */
export type FitMode = 'crop' | 'squash';

/** The container formats told apart by their first bytes. */
export type ImageFormat = 'png' | 'jpeg' | 'dicom' | 'other';

/** Tells a file's format from its magic bytes (and, for a DICOM file without preamble, its name). */
export function detectFormat(bytes: Uint8Array, name = ''): ImageFormat {
  if (bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) {
    return 'png';
  }
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (bytes.length >= 132 && String.fromCharCode(bytes[128]!, bytes[129]!, bytes[130]!, bytes[131]!) === 'DICM') {
    return 'dicom';
  }
  const extension = extname(name).toLowerCase();
  if (extension === '.dcm' || extension === '.dicom') return 'dicom';
  return 'other';
}

async function bytesOf(input: string | Uint8Array): Promise<Uint8Array> {
  return typeof input === 'string' ? await readFile(input) : input;
}

function nameOf(input: string | Uint8Array, name: string | undefined): string {
  return name ?? (typeof input === 'string' ? input : '<buffer>');
}

// ---- DICOM ------------------------------------------------------------------

const TRANSFER_SYNTAX = {
  implicitLittle: '1.2.840.10008.1.2',
  explicitLittle: '1.2.840.10008.1.2.1',
  explicitBig: '1.2.840.10008.1.2.2',
  jpegBaseline: '1.2.840.10008.1.2.4.50',
  jpegExtended: '1.2.840.10008.1.2.4.51',
  jpegLossless: '1.2.840.10008.1.2.4.57',
  jpegLosslessSV1: '1.2.840.10008.1.2.4.70',
} as const;

/** A DICOM VOI window: which stored (modality) values map onto black..white. */
export interface DicomWindow {
  center: number;
  width: number;
  /** (0028,1056) VOI LUT Function; LINEAR when absent. */
  fn: 'LINEAR' | 'LINEAR_EXACT' | 'SIGMOID';
}

/** The pixel values and display facts of a DICOM image's first frame. */
export interface DicomImage {
  width: number;
  height: number;
  /** Modality values: stored values × RescaleSlope + RescaleIntercept. */
  values: Float32Array;
  /** MONOCHROME1 shows low values as white; MONOCHROME2 as black. */
  photometric: 'MONOCHROME1' | 'MONOCHROME2';
  window: DicomWindow | undefined;
  transferSyntax: string;
  bitsStored: number;
}

/** Reads a stored pixel value's `bits` low bits, sign-extended when `signed`. */
function storedValue(raw: number, bits: number, signed: boolean): number {
  const masked = bits >= 32 ? raw : raw & ((1 << bits) - 1);
  if (signed && bits < 32 && masked & (1 << (bits - 1))) return masked - (1 << bits);
  return masked;
}

function dicomFrameBytes(dataSet: dicomParser.DataSet, element: dicomParser.Element, name: string): Uint8Array {
  if (element.encapsulatedPixelData === true) {
    const fragments = element.fragments ?? [];
    if (fragments.length === 0) throw new Error(`${name}: DICOM pixel data is encapsulated but has no fragments`);
    const frames = Math.max(1, dataSet.intString('x00280008') ?? 1);
    // A single frame may span several fragments; with several frames, the offset table splits them.
    if (frames === 1) return dicomParser.readEncapsulatedPixelDataFromFragments(dataSet, element, 0, fragments.length);
    const table = element.basicOffsetTable?.length
      ? element.basicOffsetTable
      : dicomParser.createJPEGBasicOffsetTable(dataSet, element);
    return dicomParser.readEncapsulatedImageFrame(dataSet, element, 0, table);
  }
  return new Uint8Array(dataSet.byteArray.buffer, dataSet.byteArray.byteOffset + element.dataOffset, element.length);
}

/**
 * Parses a DICOM file (Part 10, or a bare dataset in implicit little endian)
 * and decodes its first frame's grey values.
 */
export function readDicom(bytes: Uint8Array, name = '<buffer>'): DicomImage {
  let dataSet: dicomParser.DataSet;
  try {
    dataSet = dicomParser.parseDicom(bytes, { TransferSyntaxUID: TRANSFER_SYNTAX.implicitLittle });
  } catch (error) {
    throw new Error(`${name}: not a readable DICOM file (${describe(error)})`);
  }
  const width = dataSet.uint16('x00280011');
  const height = dataSet.uint16('x00280010');
  const pixelElement = dataSet.elements.x7fe00010;
  if (width === undefined || height === undefined || pixelElement === undefined) {
    throw new Error(`${name}: DICOM file has no image (Rows, Columns or Pixel Data missing)`);
  }
  const samples = dataSet.uint16('x00280002') ?? 1;
  const photometric = (dataSet.string('x00280004') ?? 'MONOCHROME2').trim();
  if (samples !== 1 || (photometric !== 'MONOCHROME1' && photometric !== 'MONOCHROME2')) {
    throw new Error(
      `${name}: DICOM photometric interpretation ${photometric} with ${samples} samples per pixel; ` +
        'expected a grey image (MONOCHROME1 or MONOCHROME2)',
    );
  }
  const bitsAllocated = dataSet.uint16('x00280100') ?? 16;
  const bitsStored = dataSet.uint16('x00280101') ?? bitsAllocated;
  const signed = (dataSet.uint16('x00280103') ?? 0) === 1;
  const syntax = (dataSet.string('x00020010') ?? TRANSFER_SYNTAX.implicitLittle).replace(/\0/g, '').trim();
  const count = width * height;
  const frame = dicomFrameBytes(dataSet, pixelElement, name);

  const raw = new Float64Array(count);
  if (
    syntax === TRANSFER_SYNTAX.implicitLittle ||
    syntax === TRANSFER_SYNTAX.explicitLittle ||
    syntax === TRANSFER_SYNTAX.explicitBig
  ) {
    const bytesPerSample = bitsAllocated / 8;
    if (bitsAllocated !== 8 && bitsAllocated !== 16 && bitsAllocated !== 32) {
      throw new Error(`${name}: DICOM Bits Allocated ${bitsAllocated}; expected 8, 16 or 32`);
    }
    if (frame.length < count * bytesPerSample) {
      throw new Error(
        `${name}: DICOM pixel data is truncated (${frame.length} bytes, expected ${count * bytesPerSample})`,
      );
    }
    const view = new DataView(frame.buffer, frame.byteOffset, frame.length);
    const little = syntax !== TRANSFER_SYNTAX.explicitBig;
    for (let i = 0; i < count; i++) {
      const value =
        bitsAllocated === 8
          ? view.getUint8(i)
          : bitsAllocated === 16
            ? view.getUint16(i * 2, little)
            : view.getUint32(i * 4, little);
      raw[i] = storedValue(value, bitsStored, signed);
    }
  } else if (syntax === TRANSFER_SYNTAX.jpegLossless || syntax === TRANSFER_SYNTAX.jpegLosslessSV1) {
    const decoder = new LosslessDecoder();
    let decoded: Uint8Array | Uint16Array;
    try {
      const copy = new Uint8Array(frame);
      decoded = decoder.decode(copy.buffer, 0, copy.length, bitsAllocated <= 8 ? 1 : 2);
    } catch (error) {
      throw new Error(`${name}: JPEG Lossless pixel data could not be decoded (${describe(error)})`);
    }
    if (decoded.length < count) {
      throw new Error(`${name}: JPEG Lossless frame holds ${decoded.length} samples, expected ${count}`);
    }
    for (let i = 0; i < count; i++) raw[i] = storedValue(decoded[i]!, bitsStored, signed);
  } else {
    throw new Error(
      `${name}: DICOM transfer syntax ${syntax} is not supported here; supported: uncompressed ` +
        `(${TRANSFER_SYNTAX.implicitLittle}, ${TRANSFER_SYNTAX.explicitLittle}, ${TRANSFER_SYNTAX.explicitBig}) ` +
        `and JPEG Lossless (${TRANSFER_SYNTAX.jpegLossless}, ${TRANSFER_SYNTAX.jpegLosslessSV1}); ` +
        `JPEG baseline (${TRANSFER_SYNTAX.jpegBaseline}) goes through decodeImage`,
    );
  }

  const slope = dataSet.floatString('x00281053') ?? 1;
  const intercept = dataSet.floatString('x00281052') ?? 0;
  const values = new Float32Array(count);
  for (let i = 0; i < count; i++) values[i] = raw[i]! * slope + intercept;

  return {
    width,
    height,
    values,
    photometric,
    window: readWindow(dataSet),
    transferSyntax: syntax,
    bitsStored,
  };
}

function readWindow(dataSet: dicomParser.DataSet): DicomWindow | undefined {
  const center = dataSet.floatString('x00281050', 0);
  const width = dataSet.floatString('x00281051', 0);
  if (center === undefined || width === undefined || !Number.isFinite(center) || !Number.isFinite(width)) {
    return undefined;
  }
  const fn = (dataSet.string('x00281056') ?? 'LINEAR').trim().toUpperCase();
  if (fn === 'SIGMOID' || fn === 'LINEAR_EXACT') return { center, width, fn };
  // LINEAR's formula needs width >= 1; a smaller one is read as a hard threshold at the centre.
  return { center, width: Math.max(width, 1), fn: 'LINEAR' };
}

/** Maps a modality value through a VOI window onto [0, 1] (DICOM PS3.3 C.11.2.1.2). */
export function applyWindow(value: number, window: DicomWindow): number {
  const { center, width, fn } = window;
  if (fn === 'SIGMOID') return 1 / (1 + Math.exp((-4 * (value - center)) / width));
  const c = fn === 'LINEAR' ? center - 0.5 : center;
  const w = fn === 'LINEAR' ? width - 1 : width;
  if (value <= c - w / 2) return 0;
  if (value > c + w / 2) return 1;
  return (value - c) / w + 0.5;
}

/**
 * The displayed grey of a DICOM image in [0, 1]: through its VOI window when
 * the file gives one, else stretched over the image's own value range;
 * MONOCHROME1 inverted so that 1 is always white.
 */
export function dicomToGrey(image: DicomImage): GreyImage {
  const { values, window } = image;
  const out = new Float32Array(values.length);
  if (window !== undefined) {
    for (let i = 0; i < values.length; i++) out[i] = applyWindow(values[i]!, window);
  } else {
    let low = Infinity;
    let high = -Infinity;
    for (const v of values) {
      if (v < low) low = v;
      if (v > high) high = v;
    }
    const span = high > low ? high - low : 1;
    for (let i = 0; i < values.length; i++) out[i] = (values[i]! - low) / span;
  }
  if (image.photometric === 'MONOCHROME1') {
    for (let i = 0; i < out.length; i++) out[i] = 1 - out[i]!;
  }
  return { width: image.width, height: image.height, pixels: out, white: 1 };
}

// ---- PNG, JPEG and the rest (sharp) -------------------------------------------

async function decodeWithSharp(bytes: Uint8Array, name: string): Promise<GreyImage> {
  try {
    const image = sharp(bytes, { failOn: 'error' }).autoOrient().removeAlpha();
    const meta = await image.metadata();
    const wide = meta.depth === 'ushort' || (meta.bitsPerSample ?? 8) > 8;
    const { data, info } = await (
      wide ? image.toColourspace('grey16').raw({ depth: 'ushort' }) : image.toColourspace('b-w').raw()
    ).toBuffer({ resolveWithObject: true });
    const pixels = wide
      ? new Uint16Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.length))
      : new Uint8Array(data.buffer, data.byteOffset, data.length);
    return { width: info.width, height: info.height, pixels, white: wide ? 65535 : 255 };
  } catch (error) {
    throw new Error(`${name}: could not decode image (${describe(error)})`);
  }
}

// JPEG baseline inside DICOM: the fragment is an ordinary JPEG stream.
async function decodeDicomJpeg(bytes: Uint8Array, name: string): Promise<GreyImage | undefined> {
  let dataSet: dicomParser.DataSet;
  try {
    dataSet = dicomParser.parseDicom(bytes, { TransferSyntaxUID: TRANSFER_SYNTAX.implicitLittle });
  } catch (error) {
    throw new Error(`${name}: not a readable DICOM file (${describe(error)})`);
  }
  const syntax = (dataSet.string('x00020010') ?? '').replace(/\0/g, '').trim();
  if (syntax !== TRANSFER_SYNTAX.jpegBaseline && syntax !== TRANSFER_SYNTAX.jpegExtended) return undefined;
  const element = dataSet.elements.x7fe00010;
  if (element === undefined) throw new Error(`${name}: DICOM file has no Pixel Data`);
  const grey = await decodeWithSharp(dicomFrameBytes(dataSet, element, name), name);
  if ((dataSet.string('x00280004') ?? '').trim() === 'MONOCHROME1') {
    const pixels = grey.pixels;
    for (let i = 0; i < pixels.length; i++) pixels[i] = grey.white - pixels[i]!;
  }
  return grey;
}

/**
 * Decodes an image file (or its bytes) to grey. 8-bit formats come out as
 * uint8 (white 255), 16-bit PNG/TIFF as uint16 (white 65535), DICOM as float32
 * in [0, 1] after rescale, windowing and MONOCHROME1 inversion. Colour images
 * are converted to luminance.
 */
export async function decodeImage(input: string | Uint8Array, options: { name?: string } = {}): Promise<GreyImage> {
  const name = nameOf(input, options.name);
  const bytes = await bytesOf(input);
  if (bytes.length === 0) throw new Error(`${name}: file is empty`);
  if (detectFormat(bytes, name) === 'dicom') {
    const jpeg = await decodeDicomJpeg(bytes, name);
    return jpeg ?? dicomToGrey(readDicom(bytes, name));
  }
  return decodeWithSharp(bytes, name);
}

/**
 * The image as 8-bit grey. uint8 is kept; float images in [0, 1] are scaled;
 * uint16 images are stretched over their own min..max, because 12- and 14-bit
 * radiographs are commonly stored in 16-bit containers and would otherwise be
 * nearly black.
 */
export function toUint8(image: GreyImage): Uint8Array {
  const { pixels } = image;
  if (pixels instanceof Uint8Array) return pixels;
  const out = new Uint8Array(pixels.length);
  let low = 0;
  let scale = 255;
  if (pixels instanceof Uint16Array) {
    let min = 65535;
    let max = 0;
    for (const v of pixels) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
    low = min;
    scale = max > min ? 255 / (max - min) : 0;
  } else {
    scale = 255 / image.white;
  }
  for (let i = 0; i < pixels.length; i++) {
    const v = Math.round((pixels[i]! - low) * scale);
    out[i] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
  return out;
}

/** Options of {@link decodeResized}. */
export interface ResizeOptions {
  /** Side of the square output, in pixels. */
  size: number;
  /**
   * `crop`: scale the shorter side to `size` keeping the aspect ratio, then cut
   * the centred square (MoCo-CXR's resize of the shorter side). `squash`: scale
   * each axis to `size`, distorting the aspect ratio but keeping the whole field.
   */
  fit?: FitMode;
}

/**
 * Decodes an image and resizes it to a `size`×`size` uint8 grey square
 * (bilinear, antialiased when shrinking, as PIL's and torchvision's resize).
 */
export async function decodeResized(
  input: string | Uint8Array,
  options: ResizeOptions & { name?: string },
): Promise<Uint8Array> {
  const name = nameOf(input, options.name);
  const { size } = options;
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`size must be a positive integer, got ${size}`);
  const bytes = await bytesOf(input);
  if (bytes.length === 0) throw new Error(`${name}: file is empty`);
  const resize = { fit: options.fit === 'squash' ? ('fill' as const) : ('cover' as const), kernel: 'linear' as const };
  const format = detectFormat(bytes, name);
  let pipeline: sharp.Sharp;
  if (format === 'png' || format === 'jpeg' || format === 'other') {
    let wide: boolean;
    try {
      const meta = await sharp(bytes).metadata();
      wide = meta.depth === 'ushort' || (meta.bitsPerSample ?? 8) > 8;
    } catch (error) {
      throw new Error(`${name}: could not decode image (${describe(error)})`);
    }
    // 8-bit images go straight through libvips, which shrinks JPEGs while decoding them.
    pipeline = wide
      ? rawGrey(await decodeWithSharp(bytes, name))
      : sharp(bytes, { failOn: 'error' }).autoOrient().removeAlpha().toColourspace('b-w');
  } else {
    pipeline = rawGrey(await decodeImage(bytes, { name }));
  }
  try {
    const { data, info } = await pipeline.resize(size, size, resize).raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 1 || data.length !== size * size) {
      throw new Error(`resized to ${info.width}x${info.height}x${info.channels}, expected ${size}x${size}x1`);
    }
    return new Uint8Array(data.buffer, data.byteOffset, data.length);
  } catch (error) {
    throw new Error(`${name}: could not decode image (${describe(error)})`);
  }
}

function rawGrey(image: GreyImage): sharp.Sharp {
  return sharp(toUint8(image), { raw: { width: image.width, height: image.height, channels: 1 } });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
