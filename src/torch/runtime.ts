/** Engine-wide settings: threads, seeds, grad mode, build facts. */
import { availableParallelism } from 'node:os';

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

/** Runs `fn` with autograd recording off (as `torch.no_grad()`). */
export function noGrad<T>(fn: () => T): T {
  const previous = native.setGradEnabled(false);
  try {
    return fn();
  } finally {
    native.setGradEnabled(previous);
  }
}

/** Runs `fn` with autograd recording on, inside a noGrad scope for example. */
export function enableGrad<T>(fn: () => T): T {
  const previous = native.setGradEnabled(true);
  try {
    return fn();
  } finally {
    native.setGradEnabled(previous);
  }
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
