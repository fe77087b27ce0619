/** Engine-wide settings: threads, seeds, grad mode, build facts. */
import { availableParallelism } from 'node:os';

import { dtypeCode } from './dtype.js';
import { native, type BuildInfo } from './native.js';

/** Seeds libtorch's global generators (CPU and CUDA). */
export function manualSeed(seed: number): void {
  native.manualSeed(seed);
}

/** Sets the number of threads libtorch's kernels use. */
export function setNumThreads(n: number): void {
  native.setNumThreads(n);
}

export function getNumThreads(): number {
  return native.getNumThreads();
}

/** Facts about the libtorch the addon was built against. */
export function buildInfo(): BuildInfo {
  return native.buildInfo();
}

// Grad mode and autocast are process-wide: after an await, an async body
// would run under whatever mode the rest of the program has set by then. So a
// mode is entered, `fn` runs, and the previous mode is restored, synchronously.
function inMode<T>(fn: () => T, message: string, enter: () => () => void): T {
  if (fn.constructor.name === 'AsyncFunction') throw new TypeError(message);
  const restore = enter();
  let result: T;
  try {
    result = fn();
  } finally {
    restore();
  }
  if (result instanceof Promise) {
    result.catch(() => undefined);
    throw new TypeError(message);
  }
  return result;
}

function withGradMode<T>(enabled: boolean, fn: () => T, name: string): T {
  return inMode(fn, `${name}(fn): fn must be synchronous; grad mode cannot follow it across await`, () => {
    const previous = native.setGradEnabled(enabled);
    return () => native.setGradEnabled(previous);
  });
}

/** Runs `fn` with autograd recording off (as `torch.no_grad()`); `fn` must be synchronous. */
export function noGrad<T>(fn: () => T): T {
  return withGradMode(false, fn, 'noGrad');
}

/** Runs `fn` with autograd recording on, inside a noGrad scope for example; `fn` must be synchronous. */
export function enableGrad<T>(fn: () => T): T {
  return withGradMode(true, fn, 'enableGrad');
}

/**
 * Runs `fn` with autocast (mixed precision) on `device`'s type, as
 * `torch.autocast`: ops that gain from lower precision (convolutions, matrix
 * products) run in `dtype`, the rest in float32. Run the backward pass outside.
 * CPU autocast takes bfloat16 only.
 */
export function autocast<T>(device: string, dtype: 'bfloat16' | 'float16', fn: () => T): T {
  const type = device.startsWith('cuda') ? 'cuda' : 'cpu';
  if (type === 'cpu' && dtype !== 'bfloat16') throw new TypeError('autocast on the CPU takes bfloat16 only');
  return inMode(fn, 'autocast(fn): fn must be synchronous; autocast cannot follow it across await', () => {
    const [wasEnabled, previousDtype] = native.setAutocast(type, true, dtypeCode(dtype));
    return () => native.setAutocast(type, wasEnabled, previousDtype);
  });
}

export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}

// libtorch starts with one thread here; use every core unless told otherwise.
function defaultThreads(): number {
  const fromEnv = process.env.MOCO_CXR_THREADS ?? process.env.OMP_NUM_THREADS;
  const parsed = fromEnv === undefined ? NaN : Number(fromEnv);
  return Number.isInteger(parsed) && parsed > 0 ? parsed : availableParallelism();
}

native.setNumThreads(defaultThreads());
