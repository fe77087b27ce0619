/**
 * Tolerances for comparing float32 results with PyTorch's, derived from the
 * size of the quantity and float32's rounding error instead of numbers tuned
 * on one CPU.
 *
 * Why: the addon and Debian's PyTorch run the same libtorch, but oneDNN and the
 * BLAS pick kernels by CPU (AVX2, AVX-512, AMX; different blockings and FMA
 * use), so a sum over n terms is added in another order on another machine.
 * Each rounding is off by at most half an ulp, eps32 / 2 relative to the
 * running value; independent roundings add up like a random walk, so the error
 * of a value fed by n roundings is about eps32 · scale · sqrt(n) (Higham &
 * Mary's probabilistic bound), where scale bounds the partial sums — the
 * largest magnitude of the quantity unless cancellation is expected. `k` covers
 * the constant of that bound and the tail of the distribution.
 *
 * A test that uses these must also compare single steps from a shared state
 * (not several steps of training in a row): training amplifies differences
 * of this size without bound, a tolerance cannot.
 */
import assert from 'node:assert/strict';

import { maxAbsDiff } from './oracle.js';

/** float32's machine epsilon, 2^-23: the gap between 1 and the next float32. */
export const EPS32 = 2 ** -23;

export interface ToleranceOptions {
  /**
   * How many float32 roundings feed one value along its longest chain: the
   * reduction length of a sum or dot product, and for a network the sum of its
   * layers' reduction lengths (see {@link chainLength}). Default 1: elementwise.
   */
  ops?: number;
  /** Safety factor over the probabilistic bound; default 16. */
  k?: number;
  /** Magnitude of the partial sums; default the largest magnitude in the reference. */
  scale?: number;
  /** The format's machine epsilon; default float32's (see {@link EPSILON} for the others). */
  epsilon?: number;
  /**
   * How much the quantity moved, here, when its input was nudged by an ulp:
   * its own sensitivity to float32 noise, which an ill-conditioned computation
   * (a gradient back through many train-mode BatchNorms, each dividing by a
   * batch's spread) amplifies beyond the bound above. The tolerance is at
   * least k times this.
   */
  measured?: number;
}

/** Machine epsilon of each floating-point dtype. */
export const EPSILON: Readonly<Record<string, number>> = {
  float64: 2 ** -52,
  float32: EPS32,
  bfloat16: 2 ** -7,
  float16: 2 ** -10,
};

/** Largest absolute value in `values` (Infinity when one is NaN). */
export function maxAbs(values: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < values.length; i++) {
    const v = Math.abs(values[i] as number);
    if (Number.isNaN(v)) return Infinity;
    if (v > worst) worst = v;
  }
  return worst;
}

/**
 * The largest difference two correct float32 computations of `reference` may
 * show: k · eps32 · scale · sqrt(ops) (another format's epsilon where given).
 */
export function tolerance(reference: ArrayLike<number> | number, options: ToleranceOptions = {}): number {
  const { ops = 1, k = 16, epsilon = EPS32 } = options;
  const scale = options.scale ?? (typeof reference === 'number' ? Math.abs(reference) : maxAbs(reference));
  return Math.max(k * epsilon * scale * Math.sqrt(Math.max(1, ops)), k * (options.measured ?? 0));
}

/**
 * The reduction length along a network's longest chain: the sum, over its
 * weight matrices and kernels (parameters with two or more dimensions), of each
 * one's fan-in (elements per output channel). Branches are counted too, which
 * errs on the loose side by a few percent.
 */
export function chainLength(shapes: Iterable<readonly number[]>): number {
  let total = 0;
  for (const shape of shapes) {
    if (shape.length < 2) continue;
    total += shape.slice(1).reduce((a, b) => a * b, 1);
  }
  return total;
}

/**
 * Asserts that `actual` equals `expected` within {@link tolerance}; the message
 * names `what`, the difference and the tolerance.
 */
export function assertClose(
  actual: ArrayLike<number> | number,
  expected: ArrayLike<number> | number,
  what: string,
  options: ToleranceOptions = {},
): void {
  const a = typeof actual === 'number' ? [actual] : actual;
  const e = typeof expected === 'number' ? [expected] : expected;
  const diff = maxAbsDiff(a, e);
  const tol = tolerance(e, options);
  // To see the margins on a new CPU: TOLERANCE_REPORT=1 prints each comparison.
  if (process.env['TOLERANCE_REPORT'] === '1') {
    process.stderr.write(`tolerance ${what}: diff/tol ${(diff / tol).toFixed(4)}\n`);
  }
  assert.ok(diff <= tol, `${what}: differs by ${diff.toExponential(3)}, tolerance ${tol.toExponential(3)}`);
}
