/**
 * Reading state dicts that come from files: PyTorch's dicts arrive as Maps or
 * plain objects, tuples as arrays, and every value must be checked before use.
 * Errors name the path of the offending key so a user can find it.
 */
import { PyTuple } from '../torch/serialization.js';
import { isTensor, type Tensor } from '../torch/tensor.js';

/** A dict read from a file or made here: a Map, or a plain object. */
export type DictLike = Map<unknown, unknown> | Record<string, unknown>;

/** Whether a value is a Map or a plain object. */
export function isDict(value: unknown): value is DictLike {
  if (value instanceof Map) return true;
  if (value === null || typeof value !== 'object') return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** The dict at `where`, or an error saying what was found instead. */
export function expectDict(value: unknown, where: string): DictLike {
  if (!isDict(value)) throw new TypeError(`${where}: expected a dict, got ${describe(value)}`);
  return value;
}

/** The entries of a dict, in order. */
export function entriesOf(dict: DictLike): [unknown, unknown][] {
  return dict instanceof Map ? [...dict.entries()] : Object.entries(dict);
}

/** Whether a dict holds `key`. */
export function hasKey(dict: DictLike, key: string): boolean {
  return dict instanceof Map ? dict.has(key) : Object.prototype.hasOwnProperty.call(dict, key);
}

/** The value under `key`, or undefined when absent. */
export function getKey(dict: DictLike, key: string): unknown {
  if (dict instanceof Map) return dict.get(key);
  return Object.prototype.hasOwnProperty.call(dict, key) ? dict[key] : undefined;
}

/** The value under `key`; an error naming `where.key` when it is absent. */
export function requireKey(dict: DictLike, key: string, where: string): unknown {
  if (!hasKey(dict, key)) throw new TypeError(`${where}: missing key '${key}'`);
  return getKey(dict, key);
}

/** An integer key (PyTorch's int dict keys arrive as numbers, or as strings from objects). */
export function integerKey(key: unknown, where: string): number {
  const n = typeof key === 'string' && /^\d+$/.test(key) ? Number(key) : key;
  if (typeof n === 'number' && Number.isInteger(n) && n >= 0) return n;
  if (typeof n === 'bigint' && n >= 0n) return Number(n);
  throw new TypeError(`${where}: expected a non-negative integer key, got ${describe(key)}`);
}

/** A finite number; a 0-d or one-element tensor also counts. */
export function expectNumber(value: unknown, where: string): number {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value === 'bigint') return Number(value);
  if (isTensor(value) && value.numel() === 1) return value.item();
  throw new TypeError(`${where}: expected a number, got ${describe(value)}`);
}

/** A boolean. */
export function expectBoolean(value: unknown, where: string): boolean {
  if (typeof value === 'boolean') return value;
  throw new TypeError(`${where}: expected true or false, got ${describe(value)}`);
}

/** A pair of numbers (PyTorch's tuple `(a, b)`). */
export function expectPair(value: unknown, where: string): [number, number] {
  const items = tupleItems(value);
  if (items === undefined || items.length !== 2) {
    throw new TypeError(`${where}: expected a pair of numbers, got ${describe(value)}`);
  }
  return [expectNumber(items[0], `${where}[0]`), expectNumber(items[1], `${where}[1]`)];
}

/** A list of integers. */
export function expectIntegers(value: unknown, where: string): number[] {
  const items = tupleItems(value);
  if (items === undefined) throw new TypeError(`${where}: expected a list of integers, got ${describe(value)}`);
  return items.map((item, i) => {
    const n = expectNumber(item, `${where}[${i}]`);
    if (!Number.isInteger(n)) throw new TypeError(`${where}[${i}]: expected an integer, got ${n}`);
    return n;
  });
}

/** A tensor. */
export function expectTensor(value: unknown, where: string): Tensor {
  if (isTensor(value)) return value;
  throw new TypeError(`${where}: expected a tensor, got ${describe(value)}`);
}

/** The items of an array, a tuple made for saving, or another iterable that is not a dict. */
function tupleItems(value: unknown): unknown[] | undefined {
  if (Array.isArray(value)) return value as unknown[];
  if (value instanceof PyTuple) return [...value.items];
  if (value !== null && typeof value === 'object' && Symbol.iterator in value && !isDict(value)) {
    return [...(value as Iterable<unknown>)];
  }
  return undefined;
}

/** A short description of a value for error messages. */
export function describe(value: unknown): string {
  if (value === null) return 'None';
  if (value === undefined) return 'nothing';
  if (isTensor(value)) return `a tensor of shape [${value.shape.join(', ')}]`;
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (value instanceof Map) return 'a dict';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return `'${value}'`;
  if (typeof value === 'function' || typeof value === 'symbol') return typeof value;
  return `${typeof value} ${String(value as number | boolean | bigint)}`;
}
