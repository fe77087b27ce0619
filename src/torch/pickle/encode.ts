/**
 * Turns JavaScript values into a tagged tree of Python values, making every
 * choice JavaScript leaves open (int or float, list or tuple, key types) here,
 * where the path to a bad value can still be named.
 */
import { isTensor } from '../tensor.js';
import { PyFloat, PyTuple } from './values.js';

/** The kinds of node. */
export const Tag = { None: 0, Bool: 1, Int: 2, Float: 3, String: 4, Tensor: 5, List: 6, Tuple: 7, Dict: 8 } as const;

/** One node of the tree: `[tag, payload]`. */
export type ValueNode = [number, unknown];

// libtorch refuses deeper nesting, and a cycle would otherwise recurse forever.
const MAX_DEPTH = 64;

// Integers beyond 2^63 do not fit Python's pickled int64 the native side writes.
const INT64_LIMIT = 2 ** 63;

function describe(path: string): string {
  return path === '' ? 'the value' : `'${path}'`;
}

function child(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return path === '' ? key : `${path}.${key}`;
}

function encodeInteger(value: number, path: string): ValueNode {
  if (Math.abs(value) >= INT64_LIMIT) {
    throw new RangeError(`save: ${describe(path)} is ${value}, outside the int64 range; wrap it in pyFloat()`);
  }
  return [Tag.Int, value];
}

function encodeBigInt(value: bigint, path: string): ValueNode {
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new RangeError(`save: ${describe(path)} is the bigint ${value}, which cannot be written exactly`);
  }
  return [Tag.Int, Number(value)];
}

function encodeMap(map: Map<unknown, unknown>, path: string, depth: number): ValueNode {
  let stringKeys = 0;
  let intKeys = 0;
  const entries: [string | number, ValueNode][] = [];
  for (const [key, item] of map) {
    if (typeof key === 'string') stringKeys++;
    else if (typeof key === 'number' && Number.isInteger(key) && Math.abs(key) < INT64_LIMIT) intKeys++;
    else {
      throw new TypeError(
        `save: ${describe(path)} is a Map with the key ${String(key)}; keys must be all strings or all integers`,
      );
    }
    entries.push([key, encodeNode(item, child(path, String(key)), depth + 1)]);
  }
  if (stringKeys > 0 && intKeys > 0) {
    throw new TypeError(`save: ${describe(path)} is a Map mixing string and integer keys; Python would not load it`);
  }
  return [Tag.Dict, entries];
}

function encodeObject(object: object, path: string, depth: number): ValueNode {
  const entries: [string, ValueNode][] = [];
  for (const [key, item] of Object.entries(object)) {
    entries.push([key, encodeNode(item, child(path, key), depth + 1)]);
  }
  return [Tag.Dict, entries];
}

function encodeNode(value: unknown, path: string, depth: number): ValueNode {
  if (depth > MAX_DEPTH) {
    throw new RangeError(`save: ${describe(path)} nests deeper than ${MAX_DEPTH} levels (is there a cycle?)`);
  }
  switch (typeof value) {
    case 'undefined':
      return [Tag.None, null];
    case 'boolean':
      return [Tag.Bool, value];
    case 'number':
      return Number.isInteger(value) ? encodeInteger(value, path) : [Tag.Float, value];
    case 'bigint':
      return encodeBigInt(value, path);
    case 'string':
      return [Tag.String, value];
    case 'object':
      break;
    default:
      throw new TypeError(`save: ${describe(path)} is a ${typeof value}, which a PyTorch file cannot hold`);
  }
  if (value === null) return [Tag.None, null];
  if (isTensor(value)) {
    if (value.isDisposed) throw new Error(`save: ${describe(path)} is a disposed tensor`);
    return [Tag.Tensor, value];
  }
  if (value instanceof PyFloat) return [Tag.Float, value.value];
  if (value instanceof PyTuple) {
    return [Tag.Tuple, value.items.map((item, i) => encodeNode(item, child(path, i), depth + 1))];
  }
  if (Array.isArray(value)) {
    return [Tag.List, value.map((item: unknown, i) => encodeNode(item, child(path, i), depth + 1))];
  }
  if (value instanceof Map) return encodeMap(value as Map<unknown, unknown>, path, depth);
  const prototype: unknown = Object.getPrototypeOf(value);
  if (prototype === Object.prototype || prototype === null) return encodeObject(value, path, depth);
  const kind = ArrayBuffer.isView(value) ? 'a typed array; wrap it with torch.tensor()' : 'not a plain object';
  throw new TypeError(`save: ${describe(path)} is ${kind} (${Object.prototype.toString.call(value)})`);
}

/**
 * The tagged tree for `value`: null/undefined → None, booleans, integral numbers
 * → int, other numbers and `PyFloat` → float, strings, tensors, arrays → list,
 * `PyTuple` → tuple, plain objects and string-keyed Maps → dict, integer-keyed
 * Maps → int-keyed dict. Throws naming the path to the first value it cannot write.
 */
export function encodeValue(value: unknown): ValueNode {
  return encodeNode(value, '', 0);
}
