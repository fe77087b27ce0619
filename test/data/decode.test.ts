import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import sharp from 'sharp';

import { decodeImage, decodeResized, detectFormat, dicomToGrey, readDicom, toUint8 } from '../../src/data/decode.js';
import { maxAbsDiff, oracleMissing, runPython, tempDir } from '../helpers/oracle.js';

const pydicomMissing = (): string | undefined => {
  const reason = oracleMissing();
  if (reason !== undefined) return reason;
  try {
    runPython('import pydicom');
    return undefined;
  } catch {
    return 'pydicom is not installed in /usr/bin/python3 (Debian package python3-pydicom)';
  }
};

// Writes DICOM files with pydicom and records, for each, the modality values
// (apply_modality_lut) and the displayed grey in [0, 1] (apply_voi_lut, scaled
// by pydicom's own output range, MONOCHROME1 inverted) as the expected values.
// The JPEG Lossless file is encoded here (process 14, selection value 1, one
// Huffman table); pydicom cannot decode it without plugins, so its expected
// values come from the array that was encoded.
const WRITE_DICOMS = String.raw`
import numpy as np, pydicom, warnings
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian, JPEGLosslessSV1, generate_uid
warnings.simplefilter('ignore')

def lossless_jpeg(arr, precision):
    rows, cols = arr.shape
    lengths = [0] * 16
    lengths[4] = 17  # the 17 difference categories, all with 5-bit codes
    codes = {s: s for s in range(17)}
    bits = []
    def put(value, n):
        for k in range(n - 1, -1, -1):
            bits.append((value >> k) & 1)
    a = arr.astype(np.int64)
    for y in range(rows):
        for x in range(cols):
            if x == 0 and y == 0: pred = 1 << (precision - 1)
            elif y == 0: pred = a[y, x - 1]
            elif x == 0: pred = a[y - 1, x]
            else: pred = a[y, x - 1]
            diff = (int(a[y, x]) - int(pred)) % 65536
            if diff >= 32768: diff -= 65536
            ssss = 0 if diff == 0 else int(abs(diff)).bit_length()
            put(codes[ssss], 5)
            if 0 < ssss < 16:
                put(diff if diff > 0 else diff - 1 + (1 << ssss), ssss)
    while len(bits) % 8: bits.append(1)
    data = bytearray()
    for i in range(0, len(bits), 8):
        byte = int(''.join(map(str, bits[i:i + 8])), 2)
        data.append(byte)
        if byte == 0xFF: data.append(0)
    out = bytearray(b'\xff\xd8')
    out += b'\xff\xc3' + (11).to_bytes(2, 'big') + bytes([precision]) + rows.to_bytes(2, 'big') + cols.to_bytes(2, 'big') + bytes([1, 1, 0x11, 0])
    out += b'\xff\xc4' + (3 + 16 + 17).to_bytes(2, 'big') + bytes([0x00]) + bytes(lengths) + bytes(range(17))
    out += b'\xff\xda' + (8).to_bytes(2, 'big') + bytes([1, 1, 0x00, 1, 0, 0])
    out += data + b'\xff\xd9'
    return bytes(out)

def make(path, arr, syntax, photometric, bits_stored, signed, slope=None, intercept=None, window=None, fn=None, jpeg=False):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.1.1'
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = FileDataset(path, {}, file_meta=meta, preamble=b'\0' * 128)
    ds.is_little_endian = syntax != ExplicitVRBigEndian
    ds.is_implicit_VR = syntax == ImplicitVRLittleEndian
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = 'DX'
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = arr.dtype.itemsize * 8
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    if slope is not None:
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if fn is not None:
        ds.VOILUTFunction = fn
    if jpeg:
        ds.PixelData = encapsulate([lossless_jpeg(arr, bits_stored)])
        ds['PixelData'].is_undefined_length = True
        ds['PixelData'].VR = 'OB'
    elif syntax == ExplicitVRBigEndian:
        ds.PixelData = arr.astype(arr.dtype.newbyteorder('>')).tobytes()
    else:
        ds.PixelData = arr.tobytes()
    ds.save_as(path, write_like_original=False)
    # Expected values from the dataset as pydicom reads it back.
    twin = pydicom.dcmread(path, stop_before_pixels=True)
    stored = arr
    if not jpeg:
        stored = pydicom.dcmread(path).pixel_array
        assert np.array_equal(stored, arr), 'pydicom reads back what it wrote'
    modality = apply_modality_lut(stored, twin).astype(np.float64)
    if window is not None:
        shown = apply_voi_lut(modality, twin)
        y_min, y_max = (-2 ** (bits_stored - 1), 2 ** (bits_stored - 1) - 1) if signed else (0, 2 ** bits_stored - 1)
        if slope is not None:
            y_min, y_max = y_min * slope + intercept, y_max * slope + intercept
        grey = (shown - y_min) / (y_max - y_min)
    else:
        grey = (modality - modality.min()) / (modality.max() - modality.min())
    if photometric == 'MONOCHROME1':
        grey = 1 - grey
    return {'path': path, 'modality': modality.ravel().tolist(), 'grey': grey.ravel().tolist(), 'shape': list(arr.shape)}

def make_baseline(path, arr):
    # An 8-bit JPEG (baseline) frame shown inverted (MONOCHROME1); expected: PIL's decode of the same stream.
    import io
    from PIL import Image
    stream = io.BytesIO()
    Image.fromarray(arr).save(stream, format='JPEG', quality=90)
    jpeg = stream.getvalue()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.1.1'
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = '1.2.840.10008.1.2.4.50'
    ds = FileDataset(path, {}, file_meta=meta, preamble=b'\0' * 128)
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, 'MONOCHROME1'
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = encapsulate([jpeg])
    ds['PixelData'].is_undefined_length = True
    ds['PixelData'].VR = 'OB'
    ds.save_as(path, write_like_original=False)
    shown = 255 - np.array(Image.open(io.BytesIO(jpeg))).astype(np.int64)
    return {'path': path, 'pixels': shown.ravel().tolist(), 'shape': list(arr.shape)}

rng = np.random.default_rng(7)
ramp = (np.add.outer(np.arange(24) * 150, np.arange(20) * 7) % 4096).astype(np.uint16)
signed = (rng.integers(-2000, 2000, size=(18, 22))).astype(np.int16)
small = rng.integers(0, 256, size=(16, 16)).astype(np.uint8)
lossless = (rng.integers(0, 4096, size=(21, 19)) // 3 + np.arange(19) * 50).clip(0, 4095).astype(np.uint16)
OUTPUT = {
  'mono2_window': make(WORKDIR + '/mono2_window.dcm', ramp, ExplicitVRLittleEndian, 'MONOCHROME2', 12, False, 2.0, -100.0, (3000.0, 4000.0)),
  'mono1_signed': make(WORKDIR + '/mono1_signed.dcm', signed, ImplicitVRLittleEndian, 'MONOCHROME1', 16, True, 1.5, 20.0),
  'mono2_8bit_sigmoid': make(WORKDIR + '/mono2_8bit.dcm', small, ExplicitVRLittleEndian, 'MONOCHROME2', 8, False, None, None, (120.0, 90.0), 'SIGMOID'),
  'big_endian': make(WORKDIR + '/big_endian.dcm', ramp, ExplicitVRBigEndian, 'MONOCHROME1', 12, False, None, None, (2000.0, 1000.0)),
  'jpeg_lossless': make(WORKDIR + '/lossless.dcm', lossless, JPEGLosslessSV1, 'MONOCHROME2', 12, False, 1.0, -1024.0, (500.0, 3000.0), None, True),
  'jpeg_baseline': make_baseline(WORKDIR + '/baseline.dcm', (np.add.outer(np.arange(30) * 6, np.arange(26) * 3) % 256).astype(np.uint8)),
}
`;

interface Expected {
  path: string;
  modality: number[];
  grey: number[];
  shape: [number, number];
}

describe('DICOM decoding against pydicom', { skip: pydicomMissing() }, () => {
  let dir: { path: string; cleanup: () => void };
  let cases: Record<string, Expected>;
  before(() => {
    dir = tempDir();
    cases = runPython<Record<string, Expected>>(WRITE_DICOMS, null, dir.path);
  });
  after(() => dir.cleanup());

  for (const name of ['mono2_window', 'mono1_signed', 'mono2_8bit_sigmoid', 'big_endian', 'jpeg_lossless']) {
    it(`${name}: modality values and displayed grey match`, async () => {
      const expected = cases[name]!;
      const bytes = readFileSync(expected.path);
      assert.equal(detectFormat(bytes, expected.path), 'dicom');
      const dicom = await readDicom(bytes, expected.path);
      assert.deepEqual([dicom.height, dicom.width], expected.shape);
      assert.equal(maxAbsDiff(dicom.values, expected.modality), 0);
      const grey = dicomToGrey(dicom);
      assert.ok(
        maxAbsDiff(grey.pixels, expected.grey) < 1e-6,
        `grey differs by ${maxAbsDiff(grey.pixels, expected.grey)}`,
      );
      const viaDecode = await decodeImage(expected.path);
      assert.ok(viaDecode.pixels instanceof Float32Array);
      assert.equal(viaDecode.white, 1);
      assert.equal(maxAbsDiff(viaDecode.pixels, grey.pixels), 0);
    });
  }

  it('jpeg_baseline: the 8-bit JPEG frame decodes as PIL decodes it, then stretches and inverts as any DICOM', async () => {
    const expected = cases.jpeg_baseline as unknown as { path: string; pixels: number[]; shape: [number, number] };
    const dicom = await readDicom(readFileSync(expected.path), expected.path);
    assert.deepEqual([dicom.height, dicom.width], expected.shape);
    // The stored values are PIL's decode of the same stream (one level for the inverse DCT's rounding).
    const stored = expected.pixels.map((shown) => 255 - shown);
    assert.ok(maxAbsDiff(dicom.values, stored) <= 1, `differs by ${maxAbsDiff(dicom.values, stored)}`);
    const image = await decodeImage(expected.path);
    assert.ok(image.pixels instanceof Float32Array);
    assert.equal(maxAbsDiff(image.pixels, dicomToGrey(dicom).pixels), 0);
  });

  it('a DICOM file with its pixel data cut short is an error naming the file', async () => {
    const path = cases.mono2_window!.path;
    const bytes = readFileSync(path);
    const cut = join(dir.path, 'cut.dcm');
    writeFileSync(cut, bytes.subarray(0, bytes.length - 300));
    await assert.rejects(readDicom(readFileSync(cut), cut), new RegExp(cut.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  });
});

describe('PNG and JPEG decoding', () => {
  it('reads a 16-bit grey PNG exactly and stretches it to 8 bits', { skip: oracleMissing() }, async () => {
    const dir = tempDir();
    try {
      // PIL writes the 16-bit PNG, so the file comes from another encoder than the one that reads it.
      const values = runPython<number[]>(
        String.raw`
import numpy as np
from PIL import Image
a = (np.arange(7 * 9).reshape(7, 9) * 811 + 13) % 4096 + 100
Image.fromarray(a.astype(np.uint16)).save(WORKDIR + '/deep.png')
OUTPUT = a.ravel().tolist()`,
        null,
        dir.path,
      );
      const image = await decodeImage(join(dir.path, 'deep.png'));
      assert.ok(image.pixels instanceof Uint16Array);
      assert.deepEqual([image.width, image.height, image.white], [9, 7, 65535]);
      assert.deepEqual(Array.from(image.pixels), values);
      const low = Math.min(...values);
      const high = Math.max(...values);
      const expected = values.map((v) => Math.round(((v - low) * 255) / (high - low)));
      assert.deepEqual(Array.from(toUint8(image)), expected);
    } finally {
      dir.cleanup();
    }
  });

  it('reads an 8-bit grey PNG and an RGB JPEG of identical channels as uint8', async () => {
    const grey = Uint8Array.from({ length: 12 * 10 }, (_, i) => (i * 37) % 256);
    const png = await sharp(grey, { raw: { width: 12, height: 10, channels: 1 } })
      .png()
      .toBuffer();
    const decoded = await decodeImage(png);
    assert.ok(decoded.pixels instanceof Uint8Array);
    assert.deepEqual(Array.from(decoded.pixels), Array.from(grey));

    const rgb = new Uint8Array(12 * 10 * 3);
    for (let i = 0; i < grey.length; i++) rgb.fill(grey[i]!, i * 3, i * 3 + 3);
    const rgbPng = await sharp(rgb, { raw: { width: 12, height: 10, channels: 3 } })
      .png()
      .toBuffer();
    assert.deepEqual(Array.from((await decodeImage(rgbPng)).pixels), Array.from(grey));

    const jpeg = await sharp(rgb, { raw: { width: 12, height: 10, channels: 3 } })
      .jpeg({ quality: 100 })
      .toBuffer();
    const fromJpeg = await decodeImage(jpeg);
    assert.deepEqual([fromJpeg.width, fromJpeg.height], [12, 10]);
    assert.ok(maxAbsDiff(fromJpeg.pixels, grey) < 40, 'JPEG is lossy but close');
  });

  it('resizes: crop keeps the aspect ratio and cuts the centre, squash keeps the whole field', async () => {
    // Left third black, middle white, right third black: 60 wide, 20 high.
    const wide = new Uint8Array(60 * 20);
    for (let y = 0; y < 20; y++) wide.fill(255, y * 60 + 20, y * 60 + 40);
    const png = await sharp(wide, { raw: { width: 60, height: 20, channels: 1 } })
      .png()
      .toBuffer();
    const cropped = await decodeResized(png, { size: 10, fit: 'crop' });
    assert.equal(cropped.length, 100);
    for (let y = 0; y < 10; y++) {
      const row = Array.from(cropped.subarray(y * 10, y * 10 + 10));
      // The filter at the crop's edges reaches into the black thirds; the inside is the white centre.
      assert.ok(
        row.slice(1, 9).every((v) => v === 255) && row[0]! > 128 && row[9]! > 128,
        `row ${y}: ${row.join(' ')}`,
      );
    }
    const squashed = await decodeResized(png, { size: 12, fit: 'squash' });
    assert.equal(squashed[6 * 12 + 0], 0);
    assert.equal(squashed[6 * 12 + 6], 255);
    assert.equal(squashed[6 * 12 + 11], 0);
  });

  it('the resized path reads a 16-bit PNG as one grey channel, as its 8-bit rendering', async () => {
    const values = Uint16Array.from({ length: 30 * 20 }, (_, i) => 1000 + ((i * 97) % 3000));
    const deep = await sharp(values, { raw: { width: 30, height: 20, channels: 1 } })
      .toColourspace('grey16')
      .png()
      .toBuffer();
    const eight = await sharp(toUint8(await decodeImage(deep)), { raw: { width: 30, height: 20, channels: 1 } })
      .png()
      .toBuffer();
    const resized = await decodeResized(deep, { size: 8 });
    assert.equal(resized.length, 64);
    assert.deepEqual(Array.from(resized), Array.from(await decodeResized(eight, { size: 8 })));
  });

  it('a truncated or non-image file is an error naming it', async () => {
    const grey = Uint8Array.from({ length: 64 * 64 }, (_, i) => i % 251);
    const jpeg = await sharp(grey, { raw: { width: 64, height: 64, channels: 1 } })
      .jpeg()
      .toBuffer();
    await assert.rejects(decodeImage(jpeg.subarray(0, 200), { name: 'cut.jpeg' }), /cut\.jpeg/);
    await assert.rejects(decodeResized(Buffer.from('not an image'), { size: 8, name: 'notes.txt' }), /notes\.txt/);
    await assert.rejects(decodeImage(new Uint8Array(0), { name: 'empty.png' }), /empty\.png: file is empty/);
  });
});
