/**
 * The pickle side of reading PyTorch files: which Python names a checkpoint may
 * call (tensor rebuilders, storage types, OrderedDict, numpy scalars) and what
 * they become here. Unpickling yields placeholders for tensors; `materialize`
 * then turns the whole structure into plain JavaScript values and Tensors, once
 * every storage's bytes are known (in the legacy format they come after the pickle).
 */
import { fromBytes } from '../creation.js';
import { elementSize, isFloatingPoint, type DType } from '../dtype.js';
import type { Tensor } from '../tensor.js';
import { PickleMachine } from './machine.js';
import type { PythonObject } from './values.js';

/** What to do with a Python class the loader does not know. */
export type UnknownClassPolicy = 'error' | 'keep';

/** A `torch.*Storage` class named in a checkpoint. */
class StorageType {
  constructor(readonly dtype: DType) {}
}

/** A storage a checkpoint refers to; its bytes may arrive after the pickle (legacy format). */
export class StorageRef {
  bytes: Uint8Array | undefined;

  constructor(
    readonly key: string,
    readonly dtype: DType,
    /** For legacy views onto another storage: that storage and the first element of this one in it. */
    readonly base?: { storage: StorageRef; offset: number },
  ) {}
}

/** A tensor as the pickle describes it, before its storage's bytes are at hand. */
class TensorRef {
  requiresGrad: boolean;

  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: number[],
    readonly strides: number[],
    requiresGrad: boolean,
    readonly dtype: DType,
  ) {
    this.requiresGrad = requiresGrad;
  }
}

/** `numpy.dtype` as numpy pickles it: a type string, then its byte order through BUILD. */
class NumpyDType {
  byteOrder = '<';

  constructor(readonly typeString: string) {}

  __setstate__(state: unknown): void {
    if (Array.isArray(state) && typeof state[1] === 'string') this.byteOrder = state[1];
  }
}

/** An instance of a class the loader does not rebuild (kept only when asked to). */
class OpaqueObject {
  state: unknown = undefined;

  constructor(
    readonly pythonClass: string,
    readonly args: unknown[],
  ) {}

  __setstate__(state: unknown): void {
    this.state = state;
  }
}

const STORAGE_DTYPES: Record<string, DType> = {
  FloatStorage: 'float32',
  DoubleStorage: 'float64',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
  // Raw bytes; `_rebuild_tensor_v3` names the element type separately.
  UntypedStorage: 'uint8',
};

const TORCH_DTYPES: Record<string, DType> = {
  float32: 'float32',
  float: 'float32',
  float64: 'float64',
  double: 'float64',
  float16: 'float16',
  half: 'float16',
  bfloat16: 'bfloat16',
  int64: 'int64',
  long: 'int64',
  int32: 'int32',
  int: 'int32',
  int16: 'int16',
  short: 'int16',
  int8: 'int8',
  uint8: 'uint8',
  bool: 'bool',
};

function fail(message: string): never {
  throw new Error(message);
}

function integers(value: unknown, what: string): number[] {
  if (!Array.isArray(value)) fail(`${what} is not a tuple of integers`);
  return value.map((item: unknown) => {
    const n = typeof item === 'bigint' ? Number(item) : item;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) fail(`${what} holds ${String(item)}`);
    return n;
  });
}

function integer(value: unknown, what: string): number {
  return integers([value], what)[0] as number;
}

function asTensorRef(value: unknown, fn: string): TensorRef {
  if (!(value instanceof TensorRef)) fail(`${fn} was given something other than a tensor`);
  return value;
}

function rebuildTensor(
  storage: unknown,
  offset: unknown,
  size: unknown,
  stride: unknown,
  requiresGrad: unknown,
  dtype?: DType,
): TensorRef {
  if (!(storage instanceof StorageRef)) fail('a tensor refers to something other than a storage');
  const shape = integers(size, 'a tensor size');
  const strides = integers(stride, 'a tensor stride');
  if (shape.length !== strides.length)
    fail(`a tensor has size (${shape.join(', ')}) but stride (${strides.join(', ')})`);
  return new TensorRef(
    storage,
    integer(offset, 'a storage offset'),
    shape,
    strides,
    requiresGrad === true,
    dtype ?? storage.dtype,
  );
}

function decodeLatin1(text: unknown, encoding: unknown): Uint8Array {
  if (typeof text !== 'string' || (encoding !== 'latin1' && encoding !== 'latin-1')) {
    fail(`_codecs.encode called with encoding ${String(encoding)}; only latin1 (Python's bytes) is understood`);
  }
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

function numpyScalar(dtype: unknown, data: unknown): number | bigint | boolean {
  if (!(dtype instanceof NumpyDType) || !(data instanceof Uint8Array)) fail('a numpy scalar is malformed');
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const little = dtype.byteOrder !== '>';
  const width = Number(dtype.typeString.slice(1));
  if (data.byteLength < width) fail(`a numpy ${dtype.typeString} scalar holds ${data.byteLength} bytes`);
  const wide = (value: bigint): number | bigint => (Number.isSafeInteger(Number(value)) ? Number(value) : value);
  switch (dtype.typeString) {
    case 'f8':
      return view.getFloat64(0, little);
    case 'f4':
      return view.getFloat32(0, little);
    case 'i8':
      return wide(view.getBigInt64(0, little));
    case 'u8':
      return wide(view.getBigUint64(0, little));
    case 'i4':
      return view.getInt32(0, little);
    case 'u4':
      return view.getUint32(0, little);
    case 'i2':
      return view.getInt16(0, little);
    case 'u2':
      return view.getUint16(0, little);
    case 'i1':
      return view.getInt8(0);
    case 'u1':
      return view.getUint8(0);
    case 'b1':
      return view.getUint8(0) !== 0;
    default:
      return fail(`numpy scalars of type '${dtype.typeString}' are not supported`);
  }
}

/** The Python names a checkpoint may use, and what each becomes. */
function knownNames(): Map<string, unknown> {
  const names = new Map<string, unknown>();
  names.set('collections.OrderedDict', () => new Map());
  // A Counter (MultiStepLR's milestones) is pickled as a call with a plain dict of counts.
  names.set('collections.Counter', (counts?: unknown) => (counts instanceof Map ? new Map(counts) : new Map()));
  names.set('torch._utils._rebuild_tensor', (storage: unknown, offset: unknown, size: unknown, stride: unknown) =>
    rebuildTensor(storage, offset, size, stride, false),
  );
  names.set(
    'torch._utils._rebuild_tensor_v2',
    (storage: unknown, offset: unknown, size: unknown, stride: unknown, requiresGrad: unknown) =>
      rebuildTensor(storage, offset, size, stride, requiresGrad),
  );
  names.set(
    'torch._utils._rebuild_tensor_v3',
    (
      storage: unknown,
      offset: unknown,
      size: unknown,
      stride: unknown,
      requiresGrad: unknown,
      _h: unknown,
      dtype: unknown,
    ) => {
      if (typeof dtype !== 'string' || !Object.values(TORCH_DTYPES).includes(dtype as DType)) {
        fail(`a tensor has the element type ${String(dtype)}, which this library does not handle`);
      }
      return rebuildTensor(storage, offset, size, stride, requiresGrad, dtype as DType);
    },
  );
  const rebuildParameter = (data: unknown, requiresGrad: unknown): TensorRef => {
    const tensor = asTensorRef(data, '_rebuild_parameter');
    tensor.requiresGrad = requiresGrad === true;
    return tensor;
  };
  names.set('torch._utils._rebuild_parameter', rebuildParameter);
  names.set('torch._utils._rebuild_parameter_with_state', rebuildParameter);
  for (const [name, dtype] of Object.entries(STORAGE_DTYPES)) {
    names.set(`torch.${name}`, new StorageType(dtype));
    names.set(`torch.cuda.${name}`, new StorageType(dtype));
  }
  for (const [name, dtype] of Object.entries(TORCH_DTYPES)) names.set(`torch.${name}`, dtype);
  names.set('torch.Size', (dims: unknown) => integers(dims, 'a torch.Size'));
  names.set('torch.device', (type: unknown, index?: unknown) =>
    typeof index === 'number' ? `${String(type)}:${index}` : String(type),
  );
  // libtorch's own pickler wraps containers in type tags; the values are what matter.
  names.set('torch.jit._pickle.restore_type_tag', (value: unknown) => value);
  for (const kind of ['intlist', 'doublelist', 'boollist', 'tensorlist']) {
    names.set(`torch.jit._pickle.build_${kind}`, (value: unknown) => value);
  }
  names.set('_codecs.encode', decodeLatin1);
  for (const module of ['builtins', '__builtin__']) {
    names.set(`${module}.set`, (items: unknown = []) => [...(items as Iterable<unknown>)]);
    names.set(`${module}.frozenset`, (items: unknown = []) => [...(items as Iterable<unknown>)]);
    names.set(`${module}.bytearray`, (data: unknown = '', encoding: unknown = 'latin1') =>
      data instanceof Uint8Array ? data : decodeLatin1(data, encoding),
    );
  }
  names.set('numpy.dtype', (typeString: unknown) => new NumpyDType(String(typeString)));
  names.set('numpy.core.multiarray.scalar', numpyScalar);
  names.set('numpy._core.multiarray.scalar', numpyScalar);
  return names;
}

const KNOWN_NAMES = knownNames();

/** Where the tensors' bytes come from: the storage for a persistent id. */
export type StorageLookup = (key: string, type: DType, numel: number | undefined, view: unknown) => StorageRef;

function persistentStorage(pid: unknown, lookup: StorageLookup): StorageRef {
  if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) {
    const preview = JSON.stringify(pid, (_key, item: unknown) => (typeof item === 'bigint' ? String(item) : item));
    fail(`the pickle refers to an unknown kind of persistent object (${String(preview).slice(0, 120)})`);
  }
  // The location ('cpu', 'cuda:0', ...) is where the storage lived when saved; everything loads on the CPU.
  const [, type, key, , numel, view] = pid as unknown[];
  if (!(type instanceof StorageType)) {
    fail(`a storage has the type ${String(type)}, which this library does not handle`);
  }
  const count = typeof numel === 'number' ? numel : typeof numel === 'bigint' ? Number(numel) : undefined;
  return lookup(String(key), type.dtype, count, view);
}

/**
 * Reads the pickle that starts at byte `start` of `bytes`; returns its value and
 * the byte just past it. Python names outside the known set throw, or become
 * `PythonObject`s under `unknownClasses: 'keep'`.
 */
export function unpickle(
  bytes: Uint8Array,
  start: number,
  lookup: StorageLookup,
  unknownClasses: UnknownClassPolicy,
): { value: unknown; end: number } {
  const machine = new PickleMachine(
    bytes,
    {
      findClass(module: string, name: string): unknown {
        const qualified = `${module}.${name}`;
        const known = KNOWN_NAMES.get(qualified);
        if (known !== undefined) return known;
        if (unknownClasses === 'keep') return (...args: unknown[]) => new OpaqueObject(qualified, args);
        return fail(
          `it refers to the Python name '${qualified}', which the loader does not rebuild ` +
            '(it reads tensors, numbers, strings, bytes, lists, tuples, sets, dicts, OrderedDicts, Counters and numpy scalars; ' +
            "pass { unknownClasses: 'keep' } to keep such objects as data)",
        );
      },
      persistentLoad: (pid: unknown) => persistentStorage(pid, lookup),
    },
    start,
  );
  const value = machine.run();
  return { value, end: machine.position };
}

function describe(path: string): string {
  return path === '' ? 'the top level' : `'${path}'`;
}

/** Turns placeholders into Tensors and Maps into the documented shapes, in one pass. */
class Materializer {
  private readonly done = new Map<object, unknown>();
  readonly tensors: Tensor[] = [];

  run(value: unknown, path: string): unknown {
    if (value === null || value === undefined) return null;
    if (typeof value === 'function') fail(`${describe(path)} is a bare Python class or function`);
    if (typeof value !== 'object') return value;
    const seen = this.done.get(value);
    if (seen !== undefined) return seen;
    if (value instanceof TensorRef) return this.remember(value, this.tensor(value, path));
    if (value instanceof Uint8Array) return value;
    if (Array.isArray(value)) {
      const out: unknown[] = [];
      this.done.set(value, out);
      for (let i = 0; i < value.length; i++) out.push(this.run(value[i], `${path}[${i}]`));
      return out;
    }
    if (value instanceof Map) return this.dict(value as Map<unknown, unknown>, path);
    if (value instanceof OpaqueObject) {
      const out: PythonObject = { pythonClass: value.pythonClass, args: [], state: undefined };
      this.done.set(value, out);
      out.args = this.run(value.args, `${path}.args`) as unknown[];
      out.state = value.state === undefined ? undefined : this.run(value.state, `${path}.state`);
      return out;
    }
    if (value instanceof StorageRef) fail(`${describe(path)} is a bare storage, not a tensor`);
    return fail(`${describe(path)} is a Python object of an unsupported kind`);
  }

  private remember<T>(key: object, value: T): T {
    this.done.set(key, value);
    return value;
  }

  private dict(map: Map<unknown, unknown>, path: string): unknown {
    const stringKeys = [...map.keys()].every((key) => typeof key === 'string');
    const at = (key: unknown): string => (path === '' ? String(key) : `${path}.${String(key)}`);
    if (stringKeys) {
      const out: Record<string, unknown> = {};
      this.done.set(map, out);
      // defineProperty keeps keys such as '__proto__' as ordinary entries.
      for (const [key, item] of map) {
        Object.defineProperty(out, key as string, {
          value: this.run(item, at(key)),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return out;
    }
    const out = new Map<unknown, unknown>();
    this.done.set(map, out);
    for (const [key, item] of map) out.set(this.run(key, at(key)), this.run(item, at(key)));
    return out;
  }

  private tensor(ref: TensorRef, path: string): Tensor {
    const where = `the tensor at ${describe(path)}`;
    let storage = ref.storage;
    let offset = ref.offset;
    while (storage.base !== undefined) {
      offset += storage.base.offset;
      storage = storage.base.storage;
    }
    const bytes = storage.bytes ?? fail(`${where} refers to storage '${storage.key}', which the file does not hold`);
    const item = elementSize(ref.dtype);
    if (bytes.byteLength % item !== 0) {
      fail(
        `${where}: storage '${storage.key}' has ${bytes.byteLength} bytes, not a whole number of ${ref.dtype} elements`,
      );
    }
    const available = bytes.byteLength / item;
    const numel = ref.shape.reduce((a, b) => a * b, 1);
    let tensor: Tensor;
    if (numel === 0) {
      tensor = fromBytes(new Uint8Array(0), ref.dtype, ref.shape);
    } else {
      let last = offset;
      for (let d = 0; d < ref.shape.length; d++) last += ((ref.shape[d] as number) - 1) * (ref.strides[d] as number);
      if (last >= available) {
        fail(
          `${where} reaches element ${last} of storage '${storage.key}', which holds ${available} (truncated file?)`,
        );
      }
      tensor = isRowMajor(ref.shape, ref.strides)
        ? fromBytes(bytes.subarray(offset * item, (offset + numel) * item), ref.dtype, ref.shape)
        : fromBytes(bytes, ref.dtype, ref.shape, ref.strides, offset);
    }
    this.tensors.push(tensor);
    if (ref.requiresGrad && isFloatingPoint(ref.dtype)) tensor.requiresGrad_(true);
    return tensor;
  }
}

function isRowMajor(shape: readonly number[], strides: readonly number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    const size = shape[d] as number;
    if (size !== 1 && strides[d] !== expected) return false;
    expected *= size;
  }
  return true;
}

/**
 * The unpickled structure as plain values: str-keyed dicts (OrderedDict too) as
 * objects in order, other dicts as Maps, lists and tuples as arrays, tensors as
 * CPU Tensors. If one tensor cannot be made, those already made are freed.
 */
export function materialize(value: unknown): unknown {
  const materializer = new Materializer();
  try {
    return materializer.run(value, '');
  } catch (error) {
    for (const tensor of materializer.tensors) tensor.dispose();
    throw error;
  }
}
