/**
 * DICOM images: parsing (dicom-parser; deflated datasets are inflated by it),
 * the first frame's stored values through the codecs of `dicom-codecs.ts`,
 * and the displayed grey: modality LUT (rescale), then the VOI window where
 * the file has one, else the values' own range, MONOCHROME1 inverted.
 */
import dicomParser from 'dicom-parser';

import { compressedSyntaxName, decodeCompressedFrame, SUPPORTED_SYNTAXES, TRANSFER_SYNTAX } from './dicom-codecs.js';
import { errorText, ImageDecodeError } from './image-error.js';

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

/** A DICOM image's displayed grey: float pixels in [0, 1], 1 white (a `GreyImage` of `decode.ts`). */
export interface DicomGrey {
  width: number;
  height: number;
  pixels: Float32Array;
  white: 1;
}

const UNCOMPRESSED = new Set<string>([
  TRANSFER_SYNTAX.implicitLittle,
  TRANSFER_SYNTAX.explicitLittle,
  // dicom-parser inflates the dataset of a deflated file; its pixel data is then explicit little endian.
  TRANSFER_SYNTAX.deflatedExplicitLittle,
  TRANSFER_SYNTAX.explicitBig,
]);

/** Reads a stored pixel value's `bits` low bits, sign-extended when `signed`. */
function storedValue(raw: number, bits: number, signed: boolean): number {
  const masked = bits >= 32 ? raw : raw & ((1 << bits) - 1);
  if (signed && bits < 32 && masked & (1 << (bits - 1))) return masked - (1 << bits);
  return masked;
}

/**
 * Parses a DICOM file (Part 10, or a bare dataset in implicit little endian).
 * dicom-parser throws strings and plain objects; a file cut short shows up as
 * one of those, so every failure here is re-thrown naming the file.
 */
export function parseDicom(bytes: Uint8Array, name: string, options: dicomParser.ParseDicomOptions = {}) {
  try {
    return dicomParser.parseDicom(bytes, { TransferSyntaxUID: TRANSFER_SYNTAX.implicitLittle, ...options });
  } catch (error) {
    const reason = errorText(error);
    const cut =
      /overrun|overread|end of (buffer|file)|past (the )?end|greater than or equal to 'byteArray' length/i.test(reason);
    throw new ImageDecodeError(
      name,
      cut
        ? `DICOM file is truncated (${bytes.length} bytes; the dataset runs past its end: ${reason})`
        : `not a readable DICOM file (${reason}); expected a DICOM Part 10 file or an implicit VR dataset`,
      { cause: error },
    );
  }
}

function frameBytes(dataSet: dicomParser.DataSet, element: dicomParser.Element, name: string): Uint8Array {
  if (element.encapsulatedPixelData === true) {
    const fragments = element.fragments ?? [];
    if (fragments.length === 0) {
      throw new ImageDecodeError(name, 'DICOM pixel data is encapsulated but holds no fragments (truncated?)');
    }
    const frames = Math.max(1, dataSet.intString('x00280008') ?? 1);
    try {
      // A single frame may span several fragments; with several frames, the offset table splits them.
      if (frames === 1) {
        return dicomParser.readEncapsulatedPixelDataFromFragments(dataSet, element, 0, fragments.length);
      }
      const table = element.basicOffsetTable?.length
        ? element.basicOffsetTable
        : dicomParser.createJPEGBasicOffsetTable(dataSet, element);
      return dicomParser.readEncapsulatedImageFrame(dataSet, element, 0, table);
    } catch (error) {
      throw new ImageDecodeError(name, `DICOM pixel data fragments cannot be read (${errorText(error)})`, {
        cause: error,
      });
    }
  }
  const available = dataSet.byteArray.length - element.dataOffset;
  return new Uint8Array(
    dataSet.byteArray.buffer,
    dataSet.byteArray.byteOffset + element.dataOffset,
    Math.max(0, Math.min(element.length, available)),
  );
}

/**
 * Parses a DICOM file and decodes its first frame's modality values, in any of
 * the transfer syntaxes listed in `dicom-codecs.ts`.
 */
export async function readDicom(bytes: Uint8Array, name = '<buffer>'): Promise<DicomImage> {
  const dataSet = parseDicom(bytes, name);
  const width = dataSet.uint16('x00280011');
  const height = dataSet.uint16('x00280010');
  const pixelElement = dataSet.elements.x7fe00010;
  if (width === undefined || height === undefined || pixelElement === undefined) {
    throw new ImageDecodeError(name, 'DICOM file has no image (Rows, Columns or Pixel Data missing)');
  }
  const samples = dataSet.uint16('x00280002') ?? 1;
  const photometric = (dataSet.string('x00280004') ?? 'MONOCHROME2').trim();
  if (samples !== 1 || (photometric !== 'MONOCHROME1' && photometric !== 'MONOCHROME2')) {
    throw new ImageDecodeError(
      name,
      `DICOM photometric interpretation ${photometric} with ${samples} samples per pixel; ` +
        'expected a grey image (MONOCHROME1 or MONOCHROME2)',
    );
  }
  const bitsAllocated = dataSet.uint16('x00280100') ?? 16;
  const bitsStored = dataSet.uint16('x00280101') ?? bitsAllocated;
  const signed = (dataSet.uint16('x00280103') ?? 0) === 1;
  if (bitsAllocated !== 8 && bitsAllocated !== 16 && bitsAllocated !== 32) {
    throw new ImageDecodeError(name, `DICOM Bits Allocated ${bitsAllocated}; expected 8, 16 or 32`);
  }
  const syntax = (dataSet.string('x00020010') ?? TRANSFER_SYNTAX.implicitLittle).replace(/\0/g, '').trim();
  const count = width * height;
  const frame = frameBytes(dataSet, pixelElement, name);

  const raw = new Float64Array(count);
  if (UNCOMPRESSED.has(syntax)) {
    const bytesPerSample = bitsAllocated / 8;
    if (frame.length < count * bytesPerSample) {
      throw new ImageDecodeError(
        name,
        `DICOM pixel data is truncated (${frame.length} bytes, expected ${count * bytesPerSample} ` +
          `for ${width}x${height} ${bitsAllocated}-bit samples)`,
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
  } else {
    const codec = compressedSyntaxName(syntax);
    if (codec === undefined) {
      throw new ImageDecodeError(
        name,
        `DICOM transfer syntax ${syntax} is not supported; supported: ${SUPPORTED_SYNTAXES.join(', ')}`,
      );
    }
    let decoded;
    try {
      decoded = await decodeCompressedFrame(syntax, frame, { width, height, bitsAllocated });
    } catch (error) {
      throw new ImageDecodeError(name, `${codec} pixel data could not be decoded (${errorText(error)})`, {
        cause: error,
      });
    }
    if (decoded.length < count) {
      throw new ImageDecodeError(name, `${codec} frame holds ${decoded.length} samples, expected ${count}`);
    }
    for (let i = 0; i < count; i++) raw[i] = storedValue(decoded[i]!, bitsStored, signed);
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
export function dicomToGrey(image: DicomImage): DicomGrey {
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
