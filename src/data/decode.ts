/**
 * Image decoding: PNG (8- and 16-bit), JPEG and the other formats sharp reads,
 * and DICOM (`dicom.ts`), to one grey image; and the cache's decode-and-resize.
 * This module does not touch libtorch, so the cache's worker threads can load it.
 * Every failure is an {@link ImageDecodeError} naming the file.
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';

import sharp from 'sharp';

import { dicomToGrey, readDicom } from './dicom.js';
import { errorText, ImageDecodeError, readFailure } from './image-error.js';

export { applyWindow, dicomToGrey, readDicom, type DicomImage, type DicomWindow } from './dicom.js';
export { ImageDecodeError, NOT_FOUND } from './image-error.js';

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

async function bytesOf(input: string | Uint8Array, name: string): Promise<Uint8Array> {
  if (typeof input !== 'string') return input;
  try {
    return await readFile(input);
  } catch (error) {
    throw new ImageDecodeError(name, readFailure(error), { cause: error });
  }
}

/** Why sharp refused an image, for a user who may not know which formats it reads. */
function sharpFailure(name: string, error: unknown): ImageDecodeError {
  // libvips's error buffer is one for the process: a failure at the same moment elsewhere can leave its
  // line in this message too. The first line is this decode's own.
  const reason = errorText(error).split('\n')[0];
  return new ImageDecodeError(name, `could not decode image (${reason}); expected PNG, JPEG, TIFF, WebP or DICOM`, {
    cause: error,
  });
}

function nameOf(input: string | Uint8Array, name: string | undefined): string {
  return name ?? (typeof input === 'string' ? input : '<buffer>');
}

// ---- PNG, JPEG and the rest (sharp) -------------------------------------------

/** Whether sharp's header says more than 8 bits per sample (16-bit PNG and TIFF). */
function isWide(meta: sharp.Metadata): boolean {
  return meta.depth === 'ushort' || (meta.bitsPerSample ?? 8) > 8;
}

async function decodeWithSharp(bytes: Uint8Array, name: string): Promise<GreyImage> {
  try {
    const image = sharp(bytes, { failOn: 'error' }).autoOrient().removeAlpha();
    const wide = isWide(await image.metadata());
    const { data, info } = await (
      wide ? image.toColourspace('grey16').raw({ depth: 'ushort' }) : image.toColourspace('b-w').raw()
    ).toBuffer({ resolveWithObject: true });
    const pixels = wide
      ? new Uint16Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.length))
      : new Uint8Array(data.buffer, data.byteOffset, data.length);
    return { width: info.width, height: info.height, pixels, white: wide ? 65535 : 255 };
  } catch (error) {
    throw sharpFailure(name, error);
  }
}

/**
 * Decodes an image file (or its bytes) to grey. 8-bit formats come out as
 * uint8 (white 255), 16-bit PNG/TIFF as uint16 (white 65535), DICOM as float32
 * in [0, 1] after rescale, windowing and MONOCHROME1 inversion. Colour images
 * are converted to luminance.
 */
export async function decodeImage(input: string | Uint8Array, options: { name?: string } = {}): Promise<GreyImage> {
  const name = nameOf(input, options.name);
  const bytes = await bytesOf(input, name);
  if (bytes.length === 0) throw new ImageDecodeError(name, 'file is empty');
  if (detectFormat(bytes, name) === 'dicom') return dicomToGrey(await readDicom(bytes, name));
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

/** Python's round(): halves go to the even neighbour. */
function roundHalfEven(value: number): number {
  const floor = Math.floor(value);
  const fraction = value - floor;
  if (fraction !== 0.5) return Math.round(value);
  return floor % 2 === 0 ? floor : floor + 1;
}

/** Where a `width`×`height` image is scaled to and cut, so that a `size` square comes out. */
export interface ResizePlan {
  width: number;
  height: number;
  left: number;
  top: number;
}

/**
 * The geometry of torchvision's `Resize(size)` then `CenterCrop(size)`, which
 * MoCo-CXR's transforms use: the shorter side becomes `size`, the longer one
 * `floor(size × long / short)`, and the crop starts at `round((side − size) / 2)`
 * (Python's rounding). `squash` scales both sides to `size`.
 */
export function resizePlan(width: number, height: number, size: number, fit: FitMode = 'crop'): ResizePlan {
  if (fit === 'squash') return { width: size, height: size, left: 0, top: 0 };
  const tall = width <= height;
  const long = Math.max(size, Math.floor((size * (tall ? height : width)) / (tall ? width : height)));
  const scaled = tall ? { width: size, height: long } : { width: long, height: size };
  return {
    ...scaled,
    left: roundHalfEven((scaled.width - size) / 2),
    top: roundHalfEven((scaled.height - size) / 2),
  };
}

/**
 * Decodes an image and resizes it to a `size`×`size` uint8 grey square
 * (bilinear, antialiased when shrinking, as PIL's and torchvision's resize,
 * with torchvision's geometry: {@link resizePlan}). This is the decode the
 * image cache runs, and the one `moco-cxr data` checks files with.
 */
export async function decodeResized(
  input: string | Uint8Array,
  options: ResizeOptions & { name?: string },
): Promise<Uint8Array> {
  const name = nameOf(input, options.name);
  const { size } = options;
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`size must be a positive integer, got ${size}`);
  const bytes = await bytesOf(input, name);
  if (bytes.length === 0) throw new ImageDecodeError(name, 'file is empty');
  let pipeline: sharp.Sharp;
  let width: number;
  let height: number;
  let shrinkOnLoad = false;
  if (detectFormat(bytes, name) === 'dicom') {
    ({ pipeline, width, height } = rawGrey(dicomToGrey(await readDicom(bytes, name))));
  } else {
    let meta: sharp.Metadata;
    try {
      meta = await sharp(bytes).metadata();
    } catch (error) {
      throw sharpFailure(name, error);
    }
    if (isWide(meta) || meta.hasAlpha) {
      // 16-bit images become 8-bit first, as the cache stores them. Alpha is dropped before resizing:
      // libvips would resize alpha-weighted (premultiplied) grey, darkening pixels next to transparent ones.
      ({ pipeline, width, height } = rawGrey(await decodeWithSharp(bytes, name)));
    } else {
      // 8-bit images go straight through libvips, which shrinks JPEGs while decoding them (by 2, 4 or 8
      // in the DCT, when the image is that much larger). libwebp's scaled decode would shrink by any
      // factor without the antialiased filter, so WebP images are decoded whole.
      pipeline = sharp(bytes, { failOn: 'error' }).autoOrient().removeAlpha();
      ({ width, height } = meta.autoOrient);
      shrinkOnLoad = meta.format !== 'webp';
    }
  }
  const plan = resizePlan(width, height, size, options.fit);
  try {
    // sharp's output is sRGB unless told otherwise, even from one-channel input: keep it one grey channel.
    const { data, info } = await pipeline
      .toColourspace('b-w')
      .resize(plan.width, plan.height, { fit: 'fill', kernel: 'linear', fastShrinkOnLoad: shrinkOnLoad })
      .extract({ left: plan.left, top: plan.top, width: size, height: size })
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 1 || data.length !== size * size) {
      throw new Error(`resized to ${info.width}x${info.height}x${info.channels}, expected ${size}x${size}x1`);
    }
    return new Uint8Array(data.buffer, data.byteOffset, data.length);
  } catch (error) {
    throw sharpFailure(name, error);
  }
}

/** A decoded grey image as a one-channel sharp input (8-bit, as the cache stores it). */
function rawGrey(image: GreyImage): { pipeline: sharp.Sharp; width: number; height: number } {
  const { width, height } = image;
  return { pipeline: sharp(toUint8(image), { raw: { width, height, channels: 1 } }), width, height };
}
