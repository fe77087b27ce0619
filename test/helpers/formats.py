"""Writes folders of small radiograph-like images made by encoders other than
moco-cxr's (PIL, pydicom, GDCM's gdcmconv, DCMTK), and what each should look
like once cached: the reference pixels, decoded by PIL / pydicom (compressed
DICOM files decompressed by gdcmconv or dcmdjpeg first) and resized as
MoCo-CXR's torchvision transforms do.

    python3 formats.py OUT SIZE

OUT gets one folder per encoder family (pil/, pydicom/, compressed/), each
with one class sub-folder per variant, and reference.json: the relative path
of each image -> {"pixels": its SIZE x SIZE uint8 pixels, row-major, "step":
the largest difference between neighbouring pixels of its 8-bit image before
the resize}.

The 8-bit conversion is the one the README states: 8-bit images as they are,
colour and palette images as luma, 16-bit PNGs stretched over their own
range; DICOM through the modality LUT (rescale), then the VOI window where
the file has one, else stretched over the values' range, MONOCHROME1
inverted.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)
from torchvision import transforms

WIDTH, HEIGHT = 40, 56


def pattern(seed):
    """A non-flat image in [0, 1]: a diagonal gradient, a bright disc, ribs
    (horizontal bands) and a little seeded noise, HEIGHT x WIDTH."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    rng = np.random.default_rng(seed)
    cx, cy = WIDTH * (0.3 + 0.4 * rng.random()), HEIGHT * (0.3 + 0.4 * rng.random())
    disc = ((x - cx) ** 2 + (y - cy) ** 2 < (WIDTH / 5) ** 2).astype(np.float64)
    ribs = 0.5 + 0.5 * np.sin(y / (2.0 + seed % 3) + x / 17.0)
    value = 0.45 * (x / WIDTH + y / HEIGHT) / 2 + 0.25 * disc + 0.2 * ribs + 0.1 * rng.random((HEIGHT, WIDTH))
    return (value - value.min()) / (value.max() - value.min())


def resize_reference(grey8, size):
    """MoCo-CXR's resize: shorter side to `size` (PIL bilinear, antialiased), centre crop."""
    image = Image.fromarray(grey8, mode="L")
    image = transforms.CenterCrop(size)(transforms.Resize(size, transforms.InterpolationMode.BILINEAR)(image))
    values = grey8.astype(np.int64)
    step = max(np.abs(np.diff(values, axis=0)).max(), np.abs(np.diff(values, axis=1)).max())
    return {"pixels": np.asarray(image, dtype=np.uint8).reshape(-1).tolist(), "step": int(step)}


def stretch(values):
    low, high = float(values.min()), float(values.max())
    return (values - low) / (high - low if high > low else 1.0)


def to8(unit):
    return np.clip(np.rint(unit * 255.0), 0, 255).astype(np.uint8)


# ---- PIL --------------------------------------------------------------------


def write_pil(out, references, size):
    root = os.path.join(out, "pil")
    for seed in range(2):
        unit = pattern(seed)
        grey16 = np.rint(unit * 50000 + 3000).astype(np.uint16)  # not the full range: the stretch matters
        grey8 = to8(unit)
        variants = {
            "grey16/%d.png": (Image.fromarray(grey16.astype(np.int32), mode="I").convert("I;16"), None),
            "grey8/%d.png": (Image.fromarray(grey8, mode="L"), None),
            "rgba/%d.png": (rgba_of(grey8, seed), None),
            "palette/%d.png": (palette_of(grey8), None),
            "jpeg/%d.jpg": (Image.fromarray(grey8, mode="L"), {"quality": 90}),
            "tiff/%d.tif": (Image.fromarray(grey8, mode="L"), {"compression": "tiff_deflate"}),
            "webp/%d.webp": (Image.fromarray(grey8, mode="L").convert("RGB"), {"lossless": True}),
        }
        for pattern_path, (image, options) in variants.items():
            relative = os.path.join("pil", pattern_path % seed)
            path = os.path.join(out, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            image.save(path, **(options or {}))
            # The reference reads the file back with PIL, as a user's Python would.
            with Image.open(path) as written:
                if written.mode in ("I;16", "I;16B", "I"):
                    pixels = to8(stretch(np.asarray(written, dtype=np.float64)))
                else:
                    pixels = np.asarray(written.convert("L"), dtype=np.uint8)
            references[relative] = resize_reference(pixels, size)
    return root


def rgba_of(grey8, seed):
    """Grey content in an RGBA container, alpha varying (the decoder drops it)."""
    alpha = np.full(grey8.shape, 255 - 40 * seed, dtype=np.uint8)
    alpha[:, : WIDTH // 4] = 128
    return Image.fromarray(np.dstack([grey8, grey8, grey8, alpha]), mode="RGBA")


def palette_of(grey8):
    """A palette image whose index order is not the grey order: index i shows grey 255 - i."""
    image = Image.fromarray((255 - grey8).astype(np.uint8), mode="P")
    image.putpalette([v for i in range(256) for v in (255 - i,) * 3])
    return image


# ---- pydicom ----------------------------------------------------------------


def dicom_dataset(
    path, stored, *, bits_stored, signed=False, photometric="MONOCHROME2", implicit=False, big=False, extra=None
):
    """A Secondary Capture file holding `stored` (integers) as 16-bit pixel data."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRBigEndian if big else ExplicitVRLittleEndian
    ds = FileDataset(path, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.PatientID = "P1"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    for key, value in (extra or {}).items():
        setattr(ds, key, value)
    ds.PixelData = stored.astype((">" if big else "<") + ("i2" if signed else "u2")).tobytes()
    ds.is_little_endian = not big
    ds.is_implicit_VR = implicit
    ds.save_as(path, write_like_original=False)


def dicom_unit(path):
    """A DICOM file's grey in [0, 1], by pydicom: modality LUT, VOI window or
    the values' range, MONOCHROME1 inverted."""
    ds = pydicom.dcmread(path)
    values = pydicom.pixel_data_handlers.util.apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    if "WindowCenter" in ds and "WindowWidth" in ds:
        center, width = float(ds.WindowCenter), float(ds.WindowWidth)
        if ds.get("VOILUTFunction", "LINEAR") == "SIGMOID":
            # PS3.3 C.11.2.1.3.1, onto [0, 1].
            unit = 1 / (1 + np.exp(-4 * (values - center) / width))
        else:
            # PS3.3 C.11.2.1.2.1, LINEAR, onto [0, 1].
            c, w = center - 0.5, width - 1
            unit = np.clip((values - c) / w + 0.5, 0, 1)
            unit[values <= c - w / 2] = 0
            unit[values > c + w / 2] = 1
    else:
        unit = stretch(values)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        unit = 1 - unit
    return unit


def write_pydicom(out, references, size):
    for seed in range(2):
        unit = pattern(seed + 10)
        v12 = np.rint(unit * 3800 + 100).astype(np.int64)
        v16 = np.rint(unit * 60000 + 2000).astype(np.int64)
        variants = {
            "mono2-12bit": dict(stored=v12, bits_stored=12),
            "mono2-16bit": dict(stored=v16, bits_stored=16),
            "mono1-12bit": dict(stored=v12, bits_stored=12, photometric="MONOCHROME1"),
            "mono1-16bit": dict(stored=v16, bits_stored=16, photometric="MONOCHROME1"),
            "signed": dict(stored=v12 - 2048, bits_stored=12, signed=True),
            "rescale": dict(
                stored=v12, bits_stored=12, extra={"RescaleSlope": "0.5", "RescaleIntercept": "-1024", "RescaleType": "US"}
            ),
            # A window narrower than the values: both ends clip.
            "window": dict(
                stored=v12,
                bits_stored=12,
                extra={"RescaleSlope": "2", "RescaleIntercept": "-100", "WindowCenter": "4000", "WindowWidth": "3000"},
            ),
            "mono1-window": dict(
                stored=v12,
                bits_stored=12,
                photometric="MONOCHROME1",
                extra={"WindowCenter": "1800", "WindowWidth": "2400"},
            ),
            "window-sigmoid": dict(
                stored=v12,
                bits_stored=12,
                extra={"WindowCenter": "2000", "WindowWidth": "1500", "VOILUTFunction": "SIGMOID"},
            ),
            "implicit-vr": dict(stored=v12, bits_stored=12, implicit=True),
            "big-endian": dict(stored=v12 - 2048, bits_stored=12, signed=True, big=True),
        }
        for name, spec in variants.items():
            relative = os.path.join("pydicom", name, "%d.dcm" % seed)
            path = os.path.join(out, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            dicom_dataset(path, **spec)
            references[relative] = resize_reference(to8(dicom_unit(path)), size)


# ---- GDCM and DCMTK (compressed transfer syntaxes) ------------------------------

# class folder -> (command making it from a source file, expected transfer syntax, whether the source is 8-bit)
COMPRESSIONS = {
    "jpeg-baseline": (["dcmcjpeg", "+eb"], "1.2.840.10008.1.2.4.50", True),
    "jpeg-lossless": (["gdcmconv", "--jpeg"], "1.2.840.10008.1.2.4.70", False),
    "jpeg-lossless-dcmtk": (["dcmcjpeg", "+el"], "1.2.840.10008.1.2.4.57", False),
    "jpeg-ls": (["gdcmconv", "--jpegls"], "1.2.840.10008.1.2.4.80", False),
    "jpeg-ls-near": (["gdcmconv", "--jpegls", "--lossy", "-e", "2"], "1.2.840.10008.1.2.4.81", False),
    "jpeg-2000": (["gdcmconv", "--j2k"], "1.2.840.10008.1.2.4.90", False),
    "jpeg-2000-lossy": (["gdcmconv", "--j2k", "--lossy", "-r", "5"], "1.2.840.10008.1.2.4.91", False),
    "rle": (["gdcmconv", "--rle"], "1.2.840.10008.1.2.5", False),
    "rle-mono1": (["dcmcrle"], "1.2.840.10008.1.2.5", False),
    "deflated": (["dcmconv", "+td"], "1.2.840.10008.1.2.1.99", False),
}


def write_compressed(out, references, size, scratch):
    for seed in range(2):
        unit = pattern(seed + 20)
        source16 = os.path.join(scratch, "source16-%d.dcm" % seed)
        dicom_dataset(source16, np.rint(unit * 3800 + 100).astype(np.int64), bits_stored=12)
        source16m1 = os.path.join(scratch, "source16m1-%d.dcm" % seed)
        dicom_dataset(
            source16m1,
            np.rint(unit * 3800 + 100).astype(np.int64),
            bits_stored=12,
            photometric="MONOCHROME1",
            extra={"RescaleSlope": "1", "RescaleIntercept": "-1024"},
        )
        source8 = os.path.join(scratch, "source8-%d.dcm" % seed)
        write_8bit(source8, to8(unit))
        for name, (command, syntax, eight_bit) in COMPRESSIONS.items():
            relative = os.path.join("compressed", name, "%d.dcm" % seed)
            path = os.path.join(out, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            source = source8 if eight_bit else source16m1 if "mono1" in name else source16
            subprocess.run(command + [source, path], check=True, capture_output=True)
            written = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
            if written != syntax:
                raise SystemExit("%s wrote %s, expected transfer syntax %s" % (" ".join(command), written, syntax))
            # The reference decoder is the other toolkit's: decompressed by it, read by pydicom.
            plain = os.path.join(scratch, "plain.dcm")
            decompress = ["dcmdjpeg"] if name.startswith("jpeg-baseline") else ["gdcmconv", "--raw"]
            subprocess.run(decompress + [path, plain], check=True, capture_output=True)
            references[relative] = resize_reference(to8(dicom_unit(plain)), size)


def write_8bit(path, grey8):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(path, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = grey8.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = grey8.tobytes()
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    ds.save_as(path, write_like_original=False)


def main():
    out, size = sys.argv[1], int(sys.argv[2])
    scratch = os.path.join(out, ".scratch")
    os.makedirs(scratch, exist_ok=True)
    references = {}
    write_pil(out, references, size)
    write_pydicom(out, references, size)
    write_compressed(out, references, size, scratch)
    for name in os.listdir(scratch):
        os.remove(os.path.join(scratch, name))
    os.rmdir(scratch)
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(references, f)


if __name__ == "__main__":
    main()
