/**
 * Folders of images written by other encoders (PIL, pydicom, GDCM, DCMTK),
 * with the pixels each should have once cached: see `formats.py`.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { oracleMissing, PYTHON } from './oracle.js';

const SCRIPT = fileURLToPath(new URL('./formats.py', import.meta.url));

/** The encoder tools the fixtures need (Debian packages libgdcm-tools and dcmtk). */
const TOOLS = ['gdcmconv', 'dcmcjpeg', 'dcmdjpeg', 'dcmcrle', 'dcmconv'];

/** Why the fixtures cannot be built here, or undefined when they can. */
export function formatFixturesMissing(): string | undefined {
  const oracle = oracleMissing();
  if (oracle !== undefined) return oracle;
  const python = spawnSync(PYTHON, ['-c', 'import PIL, pydicom, numpy'], { encoding: 'utf8' });
  if (python.status !== 0) return `${PYTHON} lacks PIL, pydicom or numpy (python3-pil, python3-pydicom)`;
  for (const tool of TOOLS) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
      return `${tool} not found (Debian packages libgdcm-tools and dcmtk; scripts/setup.sh installs them)`;
    }
  }
  return undefined;
}

/** The encoder families: folder name under the fixture root, each with one class folder per variant. */
export const FAMILIES = ['pil', 'pydicom', 'compressed'] as const;

/**
 * Writes the fixture folders under `root` and returns, for each image (path
 * relative to `root`), its reference pixels at `size` (size×size uint8).
 * The images are 40×56: non-square, so the crop is exercised.
 */
export function buildFormatFixtures(root: string, size: number): Record<string, Reference> {
  const result = spawnSync(PYTHON, [SCRIPT, root, String(size)], {
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: '1' },
  });
  if (result.status !== 0) throw new Error(`formats.py failed (exit ${String(result.status)}):\n${result.stderr}`);
  return JSON.parse(readFileSync(join(root, 'reference.json'), 'utf8')) as Record<string, Reference>;
}

/** What an image should look like once cached, and the steepest step of its 8-bit image before resizing. */
export interface Reference {
  pixels: number[];
  step: number;
}

/**
 * How far a tap's weight in libvips's resize may stray from the exact
 * antialiased triangle's: libvips snaps each sample position to 1/64 pixel and
 * keeps its masks in fixed point. Measured on unit impulses through sharp's
 * vertical reduce at these shrink factors: 208/65535 ≈ 0.0032 at worst.
 */
const TAP_WEIGHT_ERROR = 0.0035;

/**
 * Checks cached pixels against PIL's. Both filter with the same antialiased
 * triangle at the same positions (torchvision's geometry) and round after each
 * of the two passes, so smooth content agrees within one level (PIL itself is
 * within one level of the exact filter). libvips's quantized masks add, per
 * pixel, up to (taps × TAP_WEIGHT_ERROR × the step between neighbouring input
 * pixels): within a level on smooth content, up to four levels on a full
 * black-to-white edge such as a VOI window's clip makes. A geometry or grey
 * conversion error moves every pixel of a structured image, so the mean
 * difference is held to half a level as well.
 */
export function resizeMismatch(actual: ArrayLike<number>, expected: Reference, shrink: number): string | undefined {
  const { pixels, step } = expected;
  if (actual.length !== pixels.length) return `${actual.length} pixels, expected ${pixels.length}`;
  const taps = Math.ceil(2 * shrink);
  const tolerance = 1 + Math.ceil(taps * TAP_WEIGHT_ERROR * step);
  let worst = 0;
  let total = 0;
  for (let i = 0; i < actual.length; i++) {
    const difference = Math.abs((actual[i] as number) - (pixels[i] as number));
    worst = Math.max(worst, difference);
    total += difference;
  }
  const mean = total / actual.length;
  if (worst > tolerance || mean > 0.5) {
    return `differs by up to ${worst} levels (tolerance ${tolerance} for steps of ${step}), mean ${mean.toFixed(3)}`;
  }
  return undefined;
}

/** The fixtures' width and height (see formats.py). */
export const FIXTURE_WIDTH = 40;
export const FIXTURE_HEIGHT = 56;

/** The larger of the two shrink factors when the fixtures are cached at `size`. */
export function shrinkAt(size: number): number {
  return FIXTURE_HEIGHT / Math.floor((size * FIXTURE_HEIGHT) / FIXTURE_WIDTH);
}
