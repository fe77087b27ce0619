/** Element types, named as in PyTorch (`torch.float32` is `'float32'`). */
export type DType =
  | 'uint8'
  | 'int8'
  | 'int16'
  | 'int32'
  | 'int64'
  | 'float16'
  | 'float32'
  | 'float64'
  | 'bool'
  | 'bfloat16';

// c10::ScalarType's numbering, which the native side speaks.
const CODES: Record<DType, number> = {
  uint8: 0,
  int8: 1,
  int16: 2,
  int32: 3,
  int64: 4,
  float16: 5,
  float32: 6,
  float64: 7,
  bool: 11,
  bfloat16: 15,
};

/** Every dtype name this library handles. */
export const DTYPES = Object.keys(CODES) as readonly DType[];

const NAMES = new Map<number, DType>(Object.entries(CODES).map(([name, code]) => [code, name as DType]));

/** The typed array a dtype's elements come out as (half types come out as float32). */
export type TypedArrayOf<D extends DType> = D extends 'float64'
  ? Float64Array
  : D extends 'int64'
    ? BigInt64Array
    : D extends 'int32'
      ? Int32Array
      : D extends 'int16'
        ? Int16Array
        : D extends 'int8'
          ? Int8Array
          : D extends 'uint8' | 'bool'
            ? Uint8Array
            : Float32Array;

export type AnyTypedArray =
  | Float32Array
  | Float64Array
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array;

/** The native code of a dtype; throws a TypeError for an unknown name. */
export function dtypeCode(dtype: DType): number {
  const code = CODES[dtype];
  if (code === undefined) {
    throw new TypeError(`unknown dtype '${String(dtype)}': expected one of ${DTYPES.join(', ')}`);
  }
  return code;
}

/** Whether a string names a dtype. */
export function isDType(name: string): name is DType {
  return Object.prototype.hasOwnProperty.call(CODES, name);
}

/** The dtype name of a native code. */
export function dtypeName(code: number): DType {
  const name = NAMES.get(code);
  if (name === undefined) throw new Error(`tensor has a dtype (code ${code}) this library does not handle`);
  return name;
}

/** Bytes per element. */
export function elementSize(dtype: DType): number {
  switch (dtype) {
    case 'uint8':
    case 'int8':
    case 'bool':
      return 1;
    case 'int16':
    case 'float16':
    case 'bfloat16':
      return 2;
    case 'int32':
    case 'float32':
      return 4;
    case 'int64':
    case 'float64':
      return 8;
  }
}

export function isFloatingPoint(dtype: DType): boolean {
  return dtype === 'float16' || dtype === 'float32' || dtype === 'float64' || dtype === 'bfloat16';
}

/**
 * The dtype a typed array holds. Arrays with no matching dtype (Uint16Array,
 * Uint32Array, BigUint64Array, DataView) are refused rather than reinterpreted.
 */
export function dtypeOfArray(array: ArrayBufferView): DType {
  if (array instanceof Float32Array) return 'float32';
  if (array instanceof Float64Array) return 'float64';
  if (array instanceof BigInt64Array) return 'int64';
  if (array instanceof Int32Array) return 'int32';
  if (array instanceof Int16Array) return 'int16';
  if (array instanceof Int8Array) return 'int8';
  if (array instanceof Uint8Array || array instanceof Uint8ClampedArray) return 'uint8';
  throw new TypeError(
    `${array.constructor.name} has no matching dtype: use Float32Array, Float64Array, BigInt64Array, ` +
      'Int32Array, Int16Array, Int8Array or Uint8Array (and options.dtype to convert)',
  );
}

/** Views raw bytes as the typed array of a dtype (no copy). */
export function viewBytes(buffer: ArrayBuffer, dtype: DType): AnyTypedArray {
  switch (dtype) {
    case 'float32':
      return new Float32Array(buffer);
    case 'float64':
      return new Float64Array(buffer);
    case 'int64':
      return new BigInt64Array(buffer);
    case 'int32':
      return new Int32Array(buffer);
    case 'int16':
      return new Int16Array(buffer);
    case 'int8':
      return new Int8Array(buffer);
    case 'uint8':
    case 'bool':
      return new Uint8Array(buffer);
    case 'float16':
    case 'bfloat16':
      throw new Error(`viewBytes: ${dtype} has no typed array; convert to float32 first`);
  }
}
