/**
 * Calls ATen operators by schema name. Each operator is resolved once, on first
 * use, to a numeric id; later calls pass only the id and the arguments, in the
 * schema's order (`undefined` takes the schema's default).
 */
import { trackResult } from './memory.js';
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

// Arguments go to the addon one by one for the common arities: reading them
// from an array costs the addon a property lookup each.
function invoke(id: number, args: unknown[]): unknown {
  switch (args.length) {
    case 1:
      return native.invoke(id, args[0]);
    case 2:
      return native.invoke(id, args[0], args[1]);
    case 3:
      return native.invoke(id, args[0], args[1], args[2]);
    case 4:
      return native.invoke(id, args[0], args[1], args[2], args[3]);
    case 5:
      return native.invoke(id, args[0], args[1], args[2], args[3], args[4]);
    default:
      return native.call(id, args);
  }
}

function invokeInPlace(id: number, args: unknown[]): void {
  switch (args.length) {
    case 1:
      native.invokeInPlace(id, args[0]);
      return;
    case 2:
      native.invokeInPlace(id, args[0], args[1]);
      return;
    case 3:
      native.invokeInPlace(id, args[0], args[1], args[2]);
      return;
    case 4:
      native.invokeInPlace(id, args[0], args[1], args[2], args[3]);
      return;
    default:
      native.call(id, args, true);
  }
}

function makeOperator(name: string, overload: string): Operator {
  let id = -1;
  const resolve = (): number => {
    if (id < 0) id = native.resolve(name, overload).id;
    return id;
  };
  // Results are made in C++ without running the Tensor constructor, so they
  // join the open tidy scope here.
  const call = ((args: unknown[]) => {
    const result = invoke(id < 0 ? resolve() : id, args);
    trackResult(result);
    return result;
  }) as Operator;
  call.inPlace = (args: unknown[]) => {
    invokeInPlace(id < 0 ? resolve() : id, args);
  };
  call.schema = () => native.schema(resolve());
  return call;
}
