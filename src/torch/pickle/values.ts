/**
 * Markers for the Python values JavaScript cannot tell apart on its own: a
 * float that happens to be integral (`1.0` vs `1`) and a tuple (vs a list).
 */

/** A number written to a PyTorch file as a Python `float` even when it is integral. */
export class PyFloat {
  constructor(readonly value: number) {
    if (typeof value !== 'number') throw new TypeError(`pyFloat(value): expected a number, got ${typeof value}`);
  }
}

/** A sequence written to a PyTorch file as a Python `tuple` rather than a `list`. */
export class PyTuple {
  readonly items: readonly unknown[];

  constructor(items: readonly unknown[]) {
    this.items = [...items];
  }
}

/**
 * Marks `value` to be saved as a Python float: `torch.save({ lr: pyFloat(1) }, f)`
 * gives Python `1.0`, where a bare `1` gives the int `1`.
 */
export function pyFloat(value: number): PyFloat {
  return new PyFloat(value);
}

/** Marks items to be saved as a Python tuple: `tuple(0.9, 0.999)` gives `(0.9, 0.999)`. */
export function tuple(...items: unknown[]): PyTuple {
  return new PyTuple(items);
}

/**
 * A Python object of a class the loader does not rebuild, kept as data when
 * `load(..., { unknownClasses: 'keep' })` asks for it.
 */
export interface PythonObject {
  /** The class's qualified name, e.g. `argparse.Namespace`. */
  pythonClass: string;
  /** Arguments the class was called with. */
  args: unknown[];
  /** What the pickle set as the object's state (usually its attribute dict), or undefined. */
  state: unknown;
}
