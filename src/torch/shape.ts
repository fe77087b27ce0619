/** Shapes in messages and comparisons. */

/** `[64, 3, 7, 7]`, as a message shows a shape. */
export function shapeText(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Whether two shapes have the same sizes. */
export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((size, i) => size === b[i]);
}
