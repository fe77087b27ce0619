/**
 * Typed access to ATen's `_foreach_*` list kernels: one native call applies an
 * operation to every tensor of a list, so an optimizer step over a whole
 * network costs a handful of calls instead of several per parameter. On CPU
 * each kernel runs the same per-tensor operation PyTorch's own single-tensor
 * optimizer code runs, so the results agree bit for bit.
 *
 * The binding passes one Scalar per call (not a Scalar list), so callers that
 * need per-tensor scalars group their tensors by that scalar first.
 */
import { aten } from './aten.js';
import type { Tensor } from './tensor.js';

/** `xs[i] *= scalar` */
export function mulScalar_(xs: Tensor[], scalar: number): void {
  if (xs.length > 0) aten.foreachMulScalar_.inPlace([xs, scalar]);
}

/** `xs[i] += scalar` */
export function addScalar_(xs: Tensor[], scalar: number): void {
  if (xs.length > 0) aten.foreachAddScalar_.inPlace([xs, scalar]);
}

/** `xs[i] /= scalar` */
export function divScalar_(xs: Tensor[], scalar: number): void {
  if (xs.length > 0) aten.foreachDivScalar_.inPlace([xs, scalar]);
}

/** `xs[i] += alpha * ys[i]` */
export function addList_(xs: Tensor[], ys: Tensor[], alpha = 1): void {
  if (xs.length > 0) aten.foreachAddList_.inPlace([xs, ys, alpha]);
}

/** New tensors `xs[i] + alpha * ys[i]`. */
export function addList(xs: Tensor[], ys: Tensor[], alpha = 1): Tensor[] {
  return xs.length > 0 ? (aten.foreachAddList([xs, ys, alpha]) as Tensor[]) : [];
}

/** New tensors `-xs[i]`. */
export function neg(xs: Tensor[]): Tensor[] {
  return xs.length > 0 ? (aten.foreachNeg([xs]) as Tensor[]) : [];
}

/** New tensors `sqrt(xs[i])`. */
export function sqrt(xs: Tensor[]): Tensor[] {
  return xs.length > 0 ? (aten.foreachSqrt([xs]) as Tensor[]) : [];
}

/** `xs[i] += value * a[i] * b[i]` */
export function addcmul_(xs: Tensor[], a: Tensor[], b: Tensor[], value: number): void {
  if (xs.length > 0) aten.foreachAddcmulScalar_.inPlace([xs, a, b, value]);
}

/** `xs[i] += value * a[i] / b[i]` */
export function addcdiv_(xs: Tensor[], a: Tensor[], b: Tensor[], value: number): void {
  if (xs.length > 0) aten.foreachAddcdivScalar_.inPlace([xs, a, b, value]);
}

/** `xs[i] = max(xs[i], ys[i])` elementwise. */
export function maximum_(xs: Tensor[], ys: Tensor[]): void {
  if (xs.length > 0) aten.foreachMaximum_.inPlace([xs, ys]);
}

/** `xs[i] = 0` */
export function zero_(xs: Tensor[]): void {
  if (xs.length > 0) aten.foreachZero_.inPlace([xs]);
}
