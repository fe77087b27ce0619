/**
 * Augmentations as batched libtorch operations on a whole batch `[B, C, H, W]`
 * of float images in [0, 1]: horizontal flip, rotation, random crop, resize
 * and normalization, each image with its own random parameters.
 *
 * The random part (flip, rotation, crop) is one affine map per image, so an
 * {@link Augmentation} samples the batch once with `affineGrid` + `gridSample`
 * instead of three passes; the separate functions ({@link hflip},
 * {@link rotate}, {@link crop}) do each step alone and exactly.
 */
import * as torch from '../torch/index.js';
import { type Prng } from './prng.js';

type Tensor = torch.Tensor;

const addcmul = torch.operator('aten::addcmul');

/** Mean and standard deviation per output channel (one value: the same for all). */
export interface NormalizeStats {
  mean: readonly number[];
  std: readonly number[];
}

/** Named normalizations: MoCo-CXR's grey statistics, ImageNet's RGB ones, or none. */
export const NORMALIZATIONS = {
  /** MoCo-CXR's chest X-ray statistics, the grey value replicated to 3 channels. */
  'moco-cxr': { mean: [0.502], std: [0.085585] },
  imagenet: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
  none: { mean: [0], std: [1] },
} as const satisfies Record<string, NormalizeStats>;

export type NormalizationName = keyof typeof NORMALIZATIONS;

function checkBatch(images: Tensor, fn: string): [number, number, number, number] {
  const shape = images.shape;
  if (shape.length !== 4) throw new TypeError(`${fn}: expected images [B, C, H, W], got [${shape.join(', ')}]`);
  if (!images.isFloatingPoint()) throw new TypeError(`${fn}: expected float images, got ${images.dtype}`);
  return shape as [number, number, number, number];
}

function checkCount(values: readonly unknown[], batch: number, fn: string, what: string): void {
  if (values.length !== batch) throw new RangeError(`${fn}: ${values.length} ${what} for a batch of ${batch}`);
}

/** Mirrors left-right the images whose flag is set (exact: a copy of pixels). */
export function hflip(images: Tensor, flags: readonly boolean[]): Tensor {
  const [batch] = checkBatch(images, 'hflip');
  checkCount(flags, batch, 'hflip', 'flags');
  return torch.tidy(() => {
    const mask = torch.tensor(Uint8Array.from(flags, Number), [batch, 1, 1, 1], { device: images.device }).bool();
    return torch.where(mask, images.flip(3), images);
  });
}

/**
 * Cuts a `height`×`width` window out of each image at its own offset
 * (`[x, y]`, the window's top-left pixel). Exact: one gather of pixels.
 */
export function crop(
  images: Tensor,
  offsets: readonly (readonly [number, number])[],
  size: number | [number, number],
): Tensor {
  const [batch, channels, height, width] = checkBatch(images, 'crop');
  const [outHeight, outWidth] = typeof size === 'number' ? [size, size] : size;
  checkCount(offsets, batch, 'crop', 'offsets');
  const rows = new BigInt64Array(batch * outHeight);
  const cols = new BigInt64Array(batch * outWidth);
  offsets.forEach(([x, y], b) => {
    if (!(x >= 0 && y >= 0 && x + outWidth <= width && y + outHeight <= height)) {
      throw new RangeError(
        `crop: a ${outWidth}x${outHeight} window at (${x}, ${y}) leaves the ${width}x${height} image ${b}`,
      );
    }
    for (let i = 0; i < outHeight; i++) rows[b * outHeight + i] = BigInt(y + i);
    for (let j = 0; j < outWidth; j++) cols[b * outWidth + j] = BigInt(x + j);
  });
  const on = { device: images.device };
  return torch.tidy(() =>
    images.index([
      torch.arange(0, batch, 1, on).view(batch, 1, 1, 1),
      torch.arange(0, channels, 1, on).view(1, channels, 1, 1),
      torch.tensor(rows, [batch, 1, outHeight, 1], on),
      torch.tensor(cols, [batch, 1, 1, outWidth], on),
    ]),
  );
}

/** The per-image parameters of the affine part of an augmentation. */
export interface AffineParams {
  /** Mirror left-right before rotating. */
  flip: readonly boolean[];
  /** Counter-clockwise rotation about the image centre, in degrees. */
  angle: readonly number[];
  /** Top-left pixel `[x, y]` of the output window in the rotated image. */
  offset: readonly (readonly [number, number])[];
  /** Output height and width (the window's size). */
  size: [number, number];
}

/**
 * The `affineGrid` matrices mapping each output window's normalized
 * coordinates to the source image's: window → full image, then the inverse
 * rotation, then the mirror. The rotation is torchvision's `rotate`: about the
 * centre, y pointing down, positive angles counter-clockwise on screen.
 */
export function affineMatrices(params: AffineParams, height: number, width: number): Float32Array {
  const [outHeight, outWidth] = params.size;
  const batch = params.angle.length;
  const theta = new Float32Array(batch * 6);
  for (let b = 0; b < batch; b++) {
    const radians = (params.angle[b]! * Math.PI) / 180;
    const cos = Math.cos(radians);
    const sin = Math.sin(radians);
    const [x, y] = params.offset[b]!;
    // Window normalized coordinates → full-image normalized coordinates (align_corners = false).
    const sx = outWidth / width;
    const sy = outHeight / height;
    const tx = (2 * x + outWidth) / width - 1;
    const ty = (2 * y + outHeight) / height - 1;
    // Output → input rotation in normalized coordinates; the aspect ratio enters off the diagonal.
    const r00 = cos;
    const r01 = (-sin * height) / width;
    const r10 = (sin * width) / height;
    const r11 = cos;
    const mirror = params.flip[b] === true ? -1 : 1;
    const row = b * 6;
    theta[row] = mirror * r00 * sx;
    theta[row + 1] = mirror * r01 * sy;
    theta[row + 2] = mirror * (r00 * tx + r01 * ty);
    theta[row + 3] = r10 * sx;
    theta[row + 4] = r11 * sy;
    theta[row + 5] = r10 * tx + r11 * ty;
  }
  return theta;
}

/**
 * Mirrors, rotates and crops every image in one bilinear resampling pass,
 * zero outside the image. Equal to `crop(rotate(hflip(images)))` up to float
 * rounding of the sampling coordinates.
 */
export function affineAugment(images: Tensor, params: AffineParams): Tensor {
  const [batch, , height, width] = checkBatch(images, 'affineAugment');
  checkCount(params.angle, batch, 'affineAugment', 'angles');
  checkCount(params.flip, batch, 'affineAugment', 'flip flags');
  checkCount(params.offset, batch, 'affineAugment', 'offsets');
  const theta = affineMatrices(params, height, width);
  return torch.tidy(() => {
    const grid = samplingGrid(theta, batch, params.size, images.device);
    return torch.gridSample(images, grid, { mode: 'bilinear', paddingMode: 'zeros', alignCorners: false });
  });
}

/**
 * `affineGrid(theta, size, alignCorners = false)` as one broadcast sum of a
 * per-column and a per-row term: libtorch's version multiplies a [B, H·W, 3]
 * grid by [B, 3, 2] matrices, which BLAS does slowly for so thin a product.
 */
function samplingGrid(
  theta: Float32Array,
  batch: number,
  [height, width]: [number, number],
  device: torch.Device,
): Tensor {
  const columns = new Float32Array(batch * width * 2);
  const rows = new Float32Array(batch * height * 2);
  for (let b = 0; b < batch; b++) {
    const t = theta.subarray(b * 6, b * 6 + 6);
    for (let j = 0; j < width; j++) {
      const x = (2 * j + 1) / width - 1;
      columns[(b * width + j) * 2] = t[0]! * x + t[2]!;
      columns[(b * width + j) * 2 + 1] = t[3]! * x + t[5]!;
    }
    for (let i = 0; i < height; i++) {
      const y = (2 * i + 1) / height - 1;
      rows[(b * height + i) * 2] = t[1]! * y;
      rows[(b * height + i) * 2 + 1] = t[4]! * y;
    }
  }
  return torch.tidy(() =>
    torch.tensor(columns, [batch, 1, width, 2], { device }).add(torch.tensor(rows, [batch, height, 1, 2], { device })),
  );
}

/**
 * Rotates each image by its angle (degrees, counter-clockwise) about its
 * centre, bilinear, zero fill: torchvision's `rotate(img, angle,
 * InterpolationMode.BILINEAR)` on each image of the batch.
 */
export function rotate(images: Tensor, angles: readonly number[]): Tensor {
  const [batch, , height, width] = checkBatch(images, 'rotate');
  checkCount(angles, batch, 'rotate', 'angles');
  return affineAugment(images, {
    flip: angles.map(() => false),
    angle: angles,
    offset: angles.map(() => [0, 0] as const),
    size: [height, width],
  });
}

/** Resizes to `size`×`size` (bilinear, antialiased when shrinking, as torchvision's `Resize`). */
export function resize(images: Tensor, size: number | [number, number]): Tensor {
  const [, , height, width] = checkBatch(images, 'resize');
  const target: [number, number] = typeof size === 'number' ? [size, size] : size;
  if (target[0] === height && target[1] === width) return images.clone();
  return torch.interpolate(images, { size: target, mode: 'bilinear', alignCorners: false, antialias: true });
}

/**
 * `(x - mean) / std` per channel. One-channel (grey) images become `channels`
 * channels: MoCo-CXR's networks take the grey value replicated to RGB.
 */
export function normalize(
  images: Tensor,
  stats: NormalizationName | NormalizeStats = 'moco-cxr',
  channels: 1 | 3 = 3,
): Tensor {
  const [, inChannels] = checkBatch(images, 'normalize');
  const { mean, std } = normalizationOf(stats, channels);
  if (inChannels !== 1 && inChannels !== channels) {
    throw new RangeError(`normalize: cannot make ${channels} channels from ${inChannels}`);
  }
  const { scale, bias } = normalizationTerms(mean, std, channels, 1);
  // One broadcasting op: bias + images · scale, straight into the [B, channels, H, W] result.
  return torch.tidy(() => {
    const on = { device: images.device };
    return addcmul([
      torch.tensor(bias, [1, channels, 1, 1], on),
      images,
      torch.tensor(scale, [1, channels, 1, 1], on),
    ]) as Tensor;
  });
}

/** The means and standard deviations of a normalization, checked against the channels they make. */
function normalizationOf(stats: NormalizationName | NormalizeStats, channels: number): NormalizeStats {
  const { mean, std } = typeof stats === 'string' ? NORMALIZATIONS[stats] : stats;
  if (mean.length !== std.length || (mean.length !== 1 && mean.length !== channels)) {
    throw new RangeError(`normalize: ${mean.length} means and ${std.length} stds for ${channels} channels`);
  }
  return { mean, std };
}

/**
 * `(x · input - mean) / std` per output channel as `x · scale + bias`: with
 * `input` = 1/255, of pixel levels 0–255.
 */
function normalizationTerms(
  mean: readonly number[],
  std: readonly number[],
  channels: number,
  input: number,
): { scale: Float32Array; bias: Float32Array } {
  const at = (values: readonly number[], c: number): number => values[values.length === 1 ? 0 : c]!;
  return {
    scale: Float32Array.from({ length: channels }, (_, c) => input / at(std, c)),
    bias: Float32Array.from({ length: channels }, (_, c) => -at(mean, c) / at(std, c)),
  };
}

/** Options of an {@link Augmentation}. */
export interface AugmentationOptions {
  /** Probability of a horizontal flip per image (default 0). */
  flip?: number;
  /** Largest rotation in degrees; each image draws its angle uniformly in ±rotate (default 0). */
  rotate?: number;
  /** Side of the random crop (default: no crop, the input size). */
  crop?: number;
  /** Side after cropping, when it should differ from the crop (default: unchanged). */
  resize?: number;
  /** Normalization (default `moco-cxr`). */
  normalize?: NormalizationName | NormalizeStats;
  /** Output channels: 3 for ImageNet-shaped networks (default), 1 to keep grey. */
  channels?: 1 | 3;
}

/**
 * A random augmentation of a batch: flip (p per image), rotation (±deg per
 * image), random crop (per-image offsets) in one resampling pass, then resize
 * and normalize. Parameters are drawn from the given generator, so that a
 * batch's augmentation is fixed by its seed.
 */
export class Augmentation {
  readonly options: Readonly<Required<Omit<AugmentationOptions, 'crop' | 'resize'>>> &
    Pick<AugmentationOptions, 'crop' | 'resize'>;

  constructor(options: AugmentationOptions = {}) {
    const flip = options.flip ?? 0;
    const degrees = options.rotate ?? 0;
    if (!(flip >= 0 && flip <= 1)) throw new RangeError(`augmentation: flip must be a probability, got ${flip}`);
    if (!(degrees >= 0 && degrees <= 180))
      throw new RangeError(`augmentation: rotate must be in [0, 180], got ${degrees}`);
    for (const key of ['crop', 'resize'] as const) {
      const value = options[key];
      if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
        throw new RangeError(`augmentation: ${key} must be a positive integer, got ${value}`);
      }
    }
    this.options = {
      flip,
      rotate: degrees,
      crop: options.crop,
      resize: options.resize,
      normalize: options.normalize ?? 'moco-cxr',
      channels: options.channels ?? 3,
    };
  }

  /** Draws each image's flip, angle and crop offset, in that order per image. */
  sample(batch: number, height: number, width: number, rng: Prng): AffineParams {
    const side = this.options.crop;
    const [outHeight, outWidth] = side === undefined ? [height, width] : [side, side];
    if (outHeight > height || outWidth > width) {
      throw new RangeError(`augmentation: crop ${side} is larger than the ${width}x${height} images`);
    }
    const flip: boolean[] = [];
    const angle: number[] = [];
    const offset: [number, number][] = [];
    const { flip: p, rotate: degrees } = this.options;
    for (let b = 0; b < batch; b++) {
      flip.push(p > 0 && rng.next() < p);
      angle.push(degrees > 0 ? (2 * rng.next() - 1) * degrees : 0);
      offset.push([rng.below(width - outWidth + 1), rng.below(height - outHeight + 1)]);
    }
    return { flip, angle, offset, size: [outHeight, outWidth] };
  }

  /** Draws what {@link apply} would draw for `count` images, and drops it (a sharded loader's other rows). */
  skip(count: number, height: number, width: number, rng: Prng): void {
    this.sample(count, height, width, rng);
  }

  /** One random view of the batch. */
  apply(images: Tensor, rng: Prng): Tensor {
    const [batch, , height, width] = checkBatch(images, 'augmentation');
    const params = this.sample(batch, height, width, rng);
    return this.finish(() => this.geometric(images, params));
  }

  /** Flip, rotation and crop: the exact crop when nothing turns, else one resampling pass. */
  private geometric(images: Tensor, params: AffineParams): Tensor {
    const [, , height, width] = images.shape as [number, number, number, number];
    const identity = params.flip.every((f) => !f) && params.angle.every((a) => a === 0);
    if (identity && params.size[0] === height && params.size[1] === width) return images;
    return identity ? crop(images, params.offset, params.size) : affineAugment(images, params);
  }

  /**
   * One random view of grey uint8 pixels `[B, 1, H, W]` (levels 0–255): the
   * same draws as {@link apply}, and its view of `pixels / 255` to float
   * rounding. On the CPU without a resize, flip, rotation, crop, normalization
   * and grey → channels are one native pass that reads the uint8 pixels
   * (`affineSampleGrey`), written into `allocate(shape)` when given (a
   * loader's reused buffer); otherwise the pixels go through {@link apply}.
   */
  applyToPixels(pixels: Tensor, rng: Prng, allocate?: (shape: readonly number[]) => Tensor): Tensor {
    const shape = pixels.shape;
    if (shape.length !== 4 || pixels.dtype !== 'uint8') {
      throw new TypeError(
        `augmentation: expected uint8 pixels [B, 1, H, W], got ${pixels.dtype} [${shape.join(', ')}]`,
      );
    }
    const [batch, channels, height, width] = shape as [number, number, number, number];
    const params = this.sample(batch, height, width, rng);
    const target = this.options.resize;
    const resized = target !== undefined && (params.size[0] !== target || params.size[1] !== target);
    if (pixels.device !== 'cpu' || channels !== 1 || resized) {
      return torch.tidy(() => this.finish(() => this.geometric(pixels.float().div_(255), params)));
    }
    const { mean, std } = normalizationOf(this.options.normalize, this.options.channels);
    const { scale, bias } = normalizationTerms(mean, std, this.options.channels, 1 / 255);
    const theta = affineMatrices(params, height, width);
    const out = allocate?.([batch, this.options.channels, params.size[0], params.size[1]]);
    return torch.affineSampleGrey(pixels, theta, params.size, scale, bias, out);
  }

  /** Two independent random views of the same images (MoCo's query and key). */
  twoViews(images: Tensor, rng: Prng): [Tensor, Tensor] {
    const first = this.apply(images, rng);
    try {
      return [first, this.apply(images, rng)];
    } catch (error) {
      first.dispose();
      throw error;
    }
  }

  /** The deterministic evaluation view: the centred crop, resize, normalize. */
  evaluate(images: Tensor): Tensor {
    const [batch, , height, width] = checkBatch(images, 'augmentation');
    const side = this.options.crop;
    return this.finish(() => {
      if (side === undefined || (side === height && side === width)) return images;
      const x = Math.floor((width - side) / 2);
      const y = Math.floor((height - side) / 2);
      return crop(
        images,
        Array.from({ length: batch }, () => [x, y] as const),
        side,
      );
    });
  }

  private finish(geometric: () => Tensor): Tensor {
    return torch.tidy(() => {
      let out = geometric();
      const target = this.options.resize;
      if (target !== undefined && (out.size(2) !== target || out.size(3) !== target)) out = resize(out, target);
      return normalize(out, this.options.normalize, this.options.channels);
    });
  }
}

/**
 * MoCo-CXR's pretraining augmentation: flip (p = 0.5), rotation (±10°), random
 * crop of `size`, grey replicated to 3 channels and normalized with mean
 * 0.5020, std 0.085585.
 */
export function mocoCxrAugmentation(size = 320, overrides: AugmentationOptions = {}): Augmentation {
  return new Augmentation({ flip: 0.5, rotate: 10, crop: size, normalize: 'moco-cxr', channels: 3, ...overrides });
}
