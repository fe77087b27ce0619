/**
 * Calls ATen operators by schema name. Each operator is resolved once, on first
 * use, to a numeric id; later calls pass only the id and the arguments, in the
 * schema's order (`undefined` takes the schema's default).
 */
import { native } from './native.js';

/** A callable ATen operator, e.g. `operator('aten::add', 'Tensor')`. */
export interface Operator {
  /** Runs the operator and returns its result (tensors, arrays of them, numbers). */
  (args: unknown[]): unknown;
  /** Runs an in-place operator, discarding the result its caller already holds. */
  inPlace(args: unknown[]): void;
  /** The operator's schema text, as libtorch prints it. */
  schema(): string;
}

// One handle per operator: each resolution registers an entry in the addon for
// the life of the process, so a handle made inside a loop must not add one per call.
const handles = new Map<string, Operator>();

/** Returns a lazily resolved handle to the ATen operator `name.overload`. */
export function operator(name: string, overload = ''): Operator {
  const key = `${name}.${overload}`;
  const known = handles.get(key);
  if (known !== undefined) return known;
  const made = makeOperator(name, overload);
  handles.set(key, made);
  return made;
}

function makeOperator(name: string, overload: string): Operator {
  let id = -1;
  const resolve = (): number => {
    if (id < 0) id = native.resolve(name, overload).id;
    return id;
  };
  const call = ((args: unknown[]) => native.call(id < 0 ? resolve() : id, args)) as Operator;
  call.inPlace = (args: unknown[]) => {
    native.call(id < 0 ? resolve() : id, args, true);
  };
  call.schema = () => native.schema(resolve());
  return call;
}
