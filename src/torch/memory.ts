/**
 * Tensor lifetimes. Node's garbage collector does not see native memory, so a
 * loop that drops tensors without freeing them grows without bound. Tensors are
 * freed explicitly with `dispose()`, or by a `tidy()` scope that frees every
 * tensor made inside it except what it returns or `keep()`s.
 *
 * Disposing frees a tensor's data at once; the small native record behind
 * each tensor object is freed when the garbage collector takes the object.
 */

/** Anything that can be freed; the Tensor class satisfies it. */
export interface Disposable {
  dispose(): void;
}

const scopes: Set<Disposable>[] = [];

/** Registers a newly made tensor with the innermost tidy scope, if any. */
export function track(tensor: Disposable): void {
  const scope = scopes[scopes.length - 1];
  if (scope !== undefined) scope.add(tensor);
}

/**
 * Registers the tensors of a native result (a tensor, null, a number, or arrays
 * of these) with the innermost tidy scope, if any. Tensors made in C++ do not
 * run the Tensor constructor, so whoever receives one from the addon calls this.
 */
export function trackResult(value: unknown): void {
  if (scopes.length === 0 || value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    for (const item of value as unknown[]) trackResult(item);
    return;
  }
  (scopes[scopes.length - 1] as Set<Disposable>).add(value as Disposable);
}

/** Exempts a tensor from every enclosing tidy scope; the caller now owns it. */
export function keep<T extends Disposable>(tensor: T): T {
  for (const scope of scopes) scope.delete(tensor);
  return tensor;
}

/**
 * Finds the tensors in a value: the value itself, or anything reachable through
 * arrays, Maps, Sets and plain objects, at any depth and through cycles. With
 * `instances`, the properties of class instances are searched too. Typed arrays
 * and buffers hold numbers only and are not walked.
 */
function collect(value: unknown, into: Set<Disposable>, instances: boolean): void {
  const seen = new Set<object>();
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const item = pending.pop();
    if (item === null || typeof item !== 'object' || seen.has(item)) continue;
    seen.add(item);
    if (isDisposable(item)) {
      into.add(item);
    } else if (Array.isArray(item)) {
      for (const entry of item as unknown[]) pending.push(entry);
    } else if (item instanceof Map) {
      for (const [key, entry] of item) pending.push(key, entry);
    } else if (item instanceof Set) {
      for (const entry of item) pending.push(entry);
    } else if (isPlainObject(item) || (instances && !isOpaque(item))) {
      for (const entry of Object.values(item)) pending.push(entry);
    }
  }
}

function isPlainObject(value: object): boolean {
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

function isOpaque(value: object): boolean {
  return ArrayBuffer.isView(value) || value instanceof ArrayBuffer || value instanceof Promise;
}

let disposableCheck: (value: object) => value is Disposable = (_value): _value is Disposable => false;

function isDisposable(value: object): value is Disposable {
  return disposableCheck(value);
}

/** Tells the scopes how to recognise a tensor (set once by the Tensor module). */
export function setDisposableCheck(check: (value: object) => value is Disposable): void {
  disposableCheck = check;
}

const ASYNC_MESSAGE = 'tidy(fn): fn must be synchronous; tensors cannot be tracked across await';

/**
 * Runs `fn` and frees every tensor created while it ran, except the tensors in
 * its result (a tensor, or arrays, Maps, Sets, plain objects or class instances
 * holding tensors at any depth), which move to the enclosing scope. If `fn` throws, everything it made is freed.
 */
export function tidy<T>(fn: () => T): T {
  if (typeof fn !== 'function') throw new TypeError('tidy(fn): fn must be a function');
  // Refused before it runs: an async body would make tensors after the scope closed.
  if (fn.constructor.name === 'AsyncFunction') throw new TypeError(ASYNC_MESSAGE);
  const scope = new Set<Disposable>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (error) {
    scopes.pop();
    for (const tensor of scope) tensor.dispose();
    throw error;
  }
  scopes.pop();
  if (result instanceof Promise) {
    for (const tensor of scope) tensor.dispose();
    // The caller gets the TypeError; a later rejection of the promise it never sees must not crash the process.
    result.catch(() => undefined);
    throw new TypeError(ASYNC_MESSAGE);
  }
  const returned = new Set<Disposable>();
  collect(result, returned, true);
  const parent = scopes[scopes.length - 1];
  for (const tensor of scope) {
    if (returned.has(tensor)) {
      if (parent !== undefined) parent.add(tensor);
    } else {
      tensor.dispose();
    }
  }
  return result;
}

/**
 * Frees every tensor found in a value: a tensor, or arrays, Maps, Sets and plain
 * objects holding tensors at any depth. Class instances are not searched, since
 * they may refer to tensors owned elsewhere; they free their own.
 */
export function dispose(value: unknown): void {
  const found = new Set<Disposable>();
  collect(value, found, false);
  for (const tensor of found) tensor.dispose();
}
