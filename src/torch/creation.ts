/** Making tensors: from JavaScript data, filled, random, ranges. */
import { aten } from './aten.js';
import { checkDevice, type Device } from './device.js';
import { dtypeCode, dtypeOfArray, type AnyTypedArray, type DType } from './dtype.js';
import { trackResult } from './memory.js';
import { native } from './native.js';
import type { Tensor } from './tensor.js';

/** dtype and device of a new tensor. */
export interface TensorOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

function checkShape(shape: readonly number[], fn: string): number[] {
  if (!Array.isArray(shape as unknown)) throw new TypeError(`${fn}: shape must be an array of integers`);
  for (const size of shape) {
    if (!Number.isInteger(size) || size < 0) {
      throw new TypeError(`${fn}: shape must hold non-negative integers, got [${shape.join(', ')}]`);
    }
  }
  return [...shape];
}

// Frees the new tensor when a last step fails (an integer dtype cannot require grad).
function finish(t: Tensor, options: TensorOptions): Tensor {
  if (options.requiresGrad === true) {
    try {
      t.requiresGrad_(true);
    } catch (error) {
      t.dispose();
      throw error;
    }
  }
  return t;
}

/** `step(t)`, with `t` freed afterwards whether or not the step succeeded. */
function replace(t: Tensor, step: (t: Tensor) => Tensor): Tensor {
  try {
    return step(t);
  } finally {
    t.dispose();
  }
}

function factoryArgs(options: TensorOptions, defaultDtype: DType | undefined): unknown[] {
  const dtype = options.dtype ?? defaultDtype;
  return [
    dtype === undefined ? undefined : dtypeCode(dtype),
    undefined,
    options.device === undefined ? undefined : checkDevice(options.device),
  ];
}

function productOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function flatten(data: unknown, out: number[], shape: number[], depth: number): void {
  if (Array.isArray(data)) {
    if (shape.length <= depth) shape.push(data.length);
    else if (shape[depth] !== data.length) throw new TypeError('tensor(data): nested arrays are ragged');
    for (const item of data) flatten(item, out, shape, depth + 1);
    return;
  }
  if (typeof data === 'boolean') {
    out.push(data ? 1 : 0);
    return;
  }
  if (typeof data !== 'number') throw new TypeError(`tensor(data): expected numbers, got ${typeof data}`);
  if (depth !== shape.length) throw new TypeError('tensor(data): nested arrays are ragged');
  out.push(data);
}

type NestedNumbers = number | boolean | NestedNumbers[];

/**
 * A tensor holding a copy of `data`: a typed array (its dtype is kept, shape
 * defaults to 1-d), or nested arrays of numbers (float32 unless `dtype` says).
 */
export function tensor(
  data: AnyTypedArray | NestedNumbers,
  shape?: readonly number[],
  options: TensorOptions = {},
): Tensor {
  let t: Tensor;
  if (ArrayBuffer.isView(data)) {
    const array = data;
    const arrayDtype = dtypeOfArray(array);
    const size = shape === undefined ? [array.length] : checkShape(shape, 'tensor');
    if (productOf(size) !== array.length) {
      throw new TypeError(
        `tensor: shape [${size.join(', ')}] holds ${productOf(size)} elements but the array has ${array.length}`,
      );
    }
    t = adopt(native.fromBytes(array, dtypeCode(arrayDtype), size));
    const dtype = options.dtype;
    if (dtype !== undefined && dtype !== arrayDtype) t = replace(t, (raw) => raw.to(dtype));
  } else {
    const values: number[] = [];
    const inferred: number[] = [];
    flatten(data, values, inferred, 0);
    const size = shape === undefined ? inferred : checkShape(shape, 'tensor');
    if (productOf(size) !== values.length) {
      throw new TypeError(
        `tensor: shape [${size.join(', ')}] holds ${productOf(size)} elements but ${values.length} were given`,
      );
    }
    const base = adopt(native.fromBytes(new Float64Array(values), dtypeCode('float64'), size));
    t = replace(base, (raw) => raw.to(options.dtype ?? 'float32'));
  }
  const device = options.device;
  if (device !== undefined && device !== 'cpu') t = replace(t, (here) => here.to(device));
  return finish(t, options);
}

/** A scalar (0-d) tensor. */
export function scalar(value: number, options: TensorOptions = {}): Tensor {
  return tensor([value], [], options);
}

export function zeros(shape: readonly number[], options: TensorOptions = {}): Tensor {
  return finish(aten.zeros([checkShape(shape, 'zeros'), ...factoryArgs(options, 'float32')]) as Tensor, options);
}

export function ones(shape: readonly number[], options: TensorOptions = {}): Tensor {
  return finish(aten.ones([checkShape(shape, 'ones'), ...factoryArgs(options, 'float32')]) as Tensor, options);
}

/** Uninitialized memory of the given shape. */
export function empty(shape: readonly number[], options: TensorOptions = {}): Tensor {
  return finish(aten.empty([checkShape(shape, 'empty'), ...factoryArgs(options, 'float32')]) as Tensor, options);
}

/** A tensor filled with `value` (float32 unless `dtype` says, since JavaScript cannot tell 1 from 1.0). */
export function full(shape: readonly number[], value: number, options: TensorOptions = {}): Tensor {
  return finish(aten.full([checkShape(shape, 'full'), value, ...factoryArgs(options, 'float32')]) as Tensor, options);
}

/** Uniform samples in [0, 1). */
export function rand(shape: readonly number[], options: TensorOptions = {}): Tensor {
  return finish(aten.rand([checkShape(shape, 'rand'), ...factoryArgs(options, 'float32')]) as Tensor, options);
}

/** Standard normal samples. */
export function randn(shape: readonly number[], options: TensorOptions = {}): Tensor {
  return finish(aten.randn([checkShape(shape, 'randn'), ...factoryArgs(options, 'float32')]) as Tensor, options);
}

/** Integers drawn uniformly from [low, high) (int64 unless `dtype` says). */
export function randint(low: number, high: number, shape: readonly number[], options: TensorOptions = {}): Tensor {
  return finish(
    aten.randintLow([low, high, checkShape(shape, 'randint'), ...factoryArgs(options, 'int64')]) as Tensor,
    options,
  );
}

/** A random permutation of 0..n-1 (int64). */
export function randperm(n: number, options: TensorOptions = {}): Tensor {
  return finish(aten.randperm([n, ...factoryArgs(options, 'int64')]) as Tensor, options);
}

/**
 * Values from `start` to `end` (exclusive) by `step`. As in PyTorch, the dtype is
 * int64 when all three are integers and float32 otherwise, unless `dtype` says.
 */
export function arange(start: number, end?: number, step = 1, options: TensorOptions = {}): Tensor {
  const [from, to] = end === undefined ? [0, start] : [start, end];
  const integral = Number.isInteger(from) && Number.isInteger(to) && Number.isInteger(step);
  return finish(
    aten.arange([from, to, step, ...factoryArgs(options, integral ? 'int64' : 'float32')]) as Tensor,
    options,
  );
}

export function linspace(start: number, end: number, steps: number, options: TensorOptions = {}): Tensor {
  return finish(aten.linspace([start, end, steps, ...factoryArgs(options, 'float32')]) as Tensor, options);
}

export function eye(n: number, options: TensorOptions = {}): Tensor {
  return finish(aten.eye([n, ...factoryArgs(options, 'float32')]) as Tensor, options);
}

export function zerosLike(t: Tensor): Tensor {
  return aten.zerosLike([t]) as Tensor;
}

export function onesLike(t: Tensor): Tensor {
  return aten.onesLike([t]) as Tensor;
}

/** Makes a tensor from raw little-endian bytes laid out as in a PyTorch storage. */
export function fromBytes(
  bytes: ArrayBufferView,
  dtype: DType,
  shape: readonly number[],
  strides?: readonly number[],
  offset = 0,
): Tensor {
  return adopt(
    native.fromBytes(bytes, dtypeCode(dtype), [...shape], strides === undefined ? undefined : [...strides], offset),
  );
}

/** A tensor fresh from the addon, registered with the open tidy scope (C++ runs no constructor). */
function adopt(made: unknown): Tensor {
  trackResult(made);
  return made as Tensor;
}
