/**
 * Functions over tensors that are not methods in PyTorch either: joining,
 * selecting, and the neural-network functions (`torch.nn.functional`).
 */
import { aten } from './aten.js';
import { native } from './native.js';
import type { Tensor } from './tensor.js';
import { trackResult } from './memory.js';

const REDUCTION = { none: 0, mean: 1, sum: 2 } as const;
/** How a loss reduces over the batch. */
export type Reduction = keyof typeof REDUCTION;

function reductionCode(reduction: Reduction): number {
  const code = REDUCTION[reduction];
  if (code === undefined) throw new TypeError(`reduction must be 'none', 'mean' or 'sum', got '${String(reduction)}'`);
  return code;
}

function pair(value: number | [number, number]): [number, number] {
  return typeof value === 'number' ? [value, value] : value;
}

export function cat(tensors: Tensor[], dim = 0): Tensor {
  return aten.cat([tensors, dim]) as Tensor;
}

export function stack(tensors: Tensor[], dim = 0): Tensor {
  return aten.stack([tensors, dim]) as Tensor;
}

/** Elements of `a` where `condition` holds, else of `b`. */
export function where(condition: Tensor, a: Tensor, b: Tensor): Tensor {
  return aten.where([condition, a, b]) as Tensor;
}

/** Einstein summation, e.g. `einsum('nc,nc->n', q, k)`. */
export function einsum(equation: string, ...tensors: Tensor[]): Tensor {
  return aten.einsum([equation, tensors]) as Tensor;
}

export interface Conv2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
  groups?: number;
}

export function conv2d(input: Tensor, weight: Tensor, bias: Tensor | null = null, options: Conv2dOptions = {}): Tensor {
  return aten.conv2d([
    input,
    weight,
    bias,
    pair(options.stride ?? 1),
    pair(options.padding ?? 0),
    pair(options.dilation ?? 1),
    options.groups ?? 1,
  ]) as Tensor;
}

export interface BatchNormOptions {
  weight?: Tensor | null;
  bias?: Tensor | null;
  /** Normalize by batch statistics (and update the running ones) rather than the running ones. */
  training?: boolean;
  momentum?: number;
  eps?: number;
}

/**
 * Batch normalization. In training mode the running statistics (when given) are
 * updated in place with `momentum`, exactly as `torch.nn.functional.batch_norm`.
 */
export function batchNorm(
  input: Tensor,
  runningMean: Tensor | null,
  runningVar: Tensor | null,
  options: BatchNormOptions = {},
): Tensor {
  return aten.batchNorm([
    input,
    options.weight ?? null,
    options.bias ?? null,
    runningMean,
    runningVar,
    options.training ?? false,
    options.momentum ?? 0.1,
    options.eps ?? 1e-5,
    true,
  ]) as Tensor;
}

export interface Pool2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  ceilMode?: boolean;
}

export function maxPool2d(
  input: Tensor,
  kernelSize: number | [number, number],
  options: Pool2dOptions & { dilation?: number | [number, number] } = {},
): Tensor {
  return aten.maxPool2d([
    input,
    pair(kernelSize),
    options.stride === undefined ? pair(kernelSize) : pair(options.stride),
    pair(options.padding ?? 0),
    pair(options.dilation ?? 1),
    options.ceilMode ?? false,
  ]) as Tensor;
}

export function avgPool2d(
  input: Tensor,
  kernelSize: number | [number, number],
  options: Pool2dOptions & { countIncludePad?: boolean } = {},
): Tensor {
  return aten.avgPool2d([
    input,
    pair(kernelSize),
    options.stride === undefined ? pair(kernelSize) : pair(options.stride),
    pair(options.padding ?? 0),
    options.ceilMode ?? false,
    options.countIncludePad ?? true,
    null,
  ]) as Tensor;
}

export function adaptiveAvgPool2d(input: Tensor, outputSize: number | [number, number]): Tensor {
  return aten.adaptiveAvgPool2d([input, pair(outputSize)]) as Tensor;
}

/** `input @ weight.T + bias` */
export function linear(input: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  return aten.linear([input, weight, bias]) as Tensor;
}

/** Zeroes elements with probability p and scales the rest by 1/(1-p), in training only. */
export function dropout(input: Tensor, p = 0.5, training = true): Tensor {
  if (p < 0 || p > 1) throw new RangeError(`dropout: p must be in [0, 1], got ${p}`);
  return aten.dropout([input, p, training]) as Tensor;
}

export function relu(input: Tensor): Tensor {
  return aten.relu([input]) as Tensor;
}

/** `x / max(‖x‖_p, eps)` along `dim`, as `torch.nn.functional.normalize`. */
export function normalize(input: Tensor, options: { p?: number; dim?: number; eps?: number } = {}): Tensor {
  const p = options.p ?? 2;
  const dim = options.dim ?? 1;
  const eps = options.eps ?? 1e-12;
  const norm = input.norm(p, dim, true);
  const clamped = norm.clampMin(eps);
  const denominator = clamped.expandAs(input);
  const out = input.div(denominator);
  norm.dispose();
  clamped.dispose();
  denominator.dispose();
  return out;
}

export function logSoftmax(input: Tensor, dim: number): Tensor {
  return aten.logSoftmax([input, dim]) as Tensor;
}

export function softmax(input: Tensor, dim: number): Tensor {
  return aten.softmax([input, dim]) as Tensor;
}

/** Cross-entropy of logits `[N, C]` against class indices `[N]` (int64). */
export function crossEntropy(
  input: Tensor,
  target: Tensor,
  options: { weight?: Tensor | null; reduction?: Reduction; ignoreIndex?: number; labelSmoothing?: number } = {},
): Tensor {
  return aten.crossEntropy([
    input,
    target,
    options.weight ?? null,
    reductionCode(options.reduction ?? 'mean'),
    options.ignoreIndex ?? -100,
    options.labelSmoothing ?? 0,
  ]) as Tensor;
}

/** Binary cross-entropy on logits; `weight` masks or weights elements. */
export function binaryCrossEntropyWithLogits(
  input: Tensor,
  target: Tensor,
  options: { weight?: Tensor | null; posWeight?: Tensor | null; reduction?: Reduction } = {},
): Tensor {
  return aten.bceWithLogits([
    input,
    target,
    options.weight ?? null,
    options.posWeight ?? null,
    reductionCode(options.reduction ?? 'mean'),
  ]) as Tensor;
}

export function mseLoss(input: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  return aten.mseLoss([input, target, reductionCode(reduction)]) as Tensor;
}

/** Sampling grid `[N, H, W, 2]` for affine matrices `theta` `[N, 2, 3]`. */
export function affineGrid(theta: Tensor, size: number[], alignCorners = false): Tensor {
  return aten.affineGrid([theta, size, alignCorners]) as Tensor;
}

const INTERPOLATION = { bilinear: 0, nearest: 1, bicubic: 2 } as const;
const PADDING = { zeros: 0, border: 1, reflection: 2 } as const;

/** Samples `input` at the grid's points, as `torch.nn.functional.grid_sample`. */
export function gridSample(
  input: Tensor,
  grid: Tensor,
  options: {
    mode?: keyof typeof INTERPOLATION;
    paddingMode?: keyof typeof PADDING;
    alignCorners?: boolean;
  } = {},
): Tensor {
  const mode = INTERPOLATION[options.mode ?? 'bilinear'];
  const padding = PADDING[options.paddingMode ?? 'zeros'];
  if (mode === undefined) throw new TypeError(`gridSample: unknown mode '${String(options.mode)}'`);
  if (padding === undefined) throw new TypeError(`gridSample: unknown paddingMode '${String(options.paddingMode)}'`);
  return aten.gridSampler([input, grid, mode, padding, options.alignCorners ?? false]) as Tensor;
}

/**
 * Samples each grey uint8 image of `[N, 1, H, W]` through its affine matrix
 * (`theta`, N × 6 values laid out as `affineGrid`'s `[N, 2, 3]`) into a
 * `size` window, bilinear with zero fill, and writes output channel c as
 * `sample · scale[c] + bias[c]` (pixel levels 0–255 in): float `[N, C, h, w]`.
 * Equal, to float rounding, to `gridSample(images.float(), affineGrid(theta,
 * [N, 1, h, w]), { alignCorners: false })` followed by the per-channel scale
 * and shift, in one pass instead of five (CPU only). With `out` (contiguous
 * float, the result's shape) the result is written there and `out` returned.
 */
export function affineSampleGrey(
  images: Tensor,
  theta: Float32Array,
  size: [number, number],
  scale: Float32Array,
  bias: Float32Array,
  out?: Tensor,
): Tensor {
  if (out === undefined) {
    // Made in C++ without the Tensor constructor: the open tidy scope is told here.
    const made = native.affineSampleGrey(images, theta, size[0], size[1], scale, bias) as Tensor;
    trackResult(made);
    return made;
  }
  native.affineSampleGrey(images, theta, size[0], size[1], scale, bias, out);
  return out;
}

/**
 * How many tensors (views and aliases included) share `t`'s storage: 1 when
 * `t` is its only user, so that its memory may be written again without
 * changing any other tensor (one autograd saved, say).
 */
export function storageUseCount(t: Tensor): number {
  return native.storageUseCount(t);
}

/** Resizes `[N, C, H, W]` to `size` or by `scaleFactor`, as `torch.nn.functional.interpolate`. */
export function interpolate(
  input: Tensor,
  options: {
    size?: [number, number];
    scaleFactor?: number | [number, number];
    mode?: 'bilinear' | 'nearest';
    alignCorners?: boolean;
    antialias?: boolean;
  },
): Tensor {
  const size = options.size ?? null;
  const scales = options.scaleFactor === undefined ? null : pair(options.scaleFactor);
  if (size === null && scales === null) throw new TypeError('interpolate: give either size or scaleFactor');
  if ((options.mode ?? 'nearest') === 'nearest') {
    return aten.upsampleNearest([input, size, scales]) as Tensor;
  }
  const op = options.antialias === true ? aten.upsampleBilinearAA : aten.upsampleBilinear;
  return op([input, size, options.alignCorners ?? false, scales]) as Tensor;
}

/** Reverses the order of elements along the given dimensions. */
export function flip(input: Tensor, dims: number[]): Tensor {
  return aten.flip([input, dims]) as Tensor;
}
