/**
 * Upper bounds on image sides, checked wherever an image or cache size is
 * configured, so that a slip of the keyboard (`--image-size 100000`) is an
 * error that says why rather than a run that fills the disk and the memory.
 */

/**
 * The largest side, in pixels, of a cached image and of a training input:
 * 2048.
 *
 * Chest X-ray models train at 224 to 512 px (MoCo-CXR: 320), and detectors
 * deliver about 2000 to 3000 px, so 2048 keeps nearly the full resolution of
 * the film. Above it nothing fits: at 2048 px one image already needs about 80
 * times the activation memory of a 224 px one (gigabytes per image for a
 * ResNet-18 step), one cached slot is 4 MiB, and a cache of 100,000 images 400 GiB.
 * Much above it, the decoder's output (size² bytes per channel) passes the
 * 4 GiB a Node.js buffer can hold, where sharp corrupts the heap and the
 * process aborts ("free(): double free detected") instead of failing cleanly.
 */
export const MAX_IMAGE_SIZE = 2048;

/** Why sizes stop at {@link MAX_IMAGE_SIZE}, in a few words for error messages. */
export const IMAGE_SIZE_LIMIT_REASON =
  `chest X-ray models train at 224 to 512 px and detectors deliver about 2000 to 3000 px; ` +
  `above ${MAX_IMAGE_SIZE} px no batch fits in memory and the cache grows by size² bytes per image`;

/**
 * Checks an image side: a positive integer no larger than
 * {@link MAX_IMAGE_SIZE}. Throws a RangeError naming `name` otherwise.
 */
export function checkImageSize(name: string, value: unknown): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a positive integer, got ${String(value)}`);
  }
  if (value > MAX_IMAGE_SIZE) {
    throw new RangeError(`${name} ${value} is above the limit of ${MAX_IMAGE_SIZE} px (${IMAGE_SIZE_LIMIT_REASON})`);
  }
}

/** The bound of every image-side setting (image and cache sizes), with its reason. */
export const IMAGE_SIDE_SETTING = { max: MAX_IMAGE_SIZE, maxReason: IMAGE_SIZE_LIMIT_REASON } as const;

/** The cache side setting, shared by every entry point that builds a cache (0: the image size). */
export const CACHE_SIZE_SETTING = {
  key: 'cacheSize',
  type: 'int',
  range: 'non-negative',
  ...IMAGE_SIDE_SETTING,
  default: 0,
  defaultHelp: 'the image size',
  help: 'side of the cached images',
} as const;
