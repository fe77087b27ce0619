/**
 * Writes PyTorch's zip checkpoint format from a value tree, the way Python's
 * `torch.save` does: pickle protocol 2 in `archive/data.pkl`, tensors rebuilt by
 * `torch._utils._rebuild_tensor_v2` from storages kept in `archive/data/<key>`.
 * The pickle uses only the names Python's
 * `torch.load(weights_only=True)` (the default since PyTorch 2.6) accepts, which
 * libtorch's own pickler does not (it tags every container with
 * `torch.jit._pickle.restore_type_tag`).
 */
import { elementSize, type DType } from '../dtype.js';
import { empty } from '../creation.js';
import { keep, tidy } from '../memory.js';
import type { Tensor } from '../tensor.js';
import { Tag, type ValueNode } from './encode.js';
import { writeStoredZip, type StreamedData, type ZipSink } from './zip-writer.js';

const STORAGE_NAMES: Record<DType, string> = {
  float32: 'FloatStorage',
  float64: 'DoubleStorage',
  float16: 'HalfStorage',
  bfloat16: 'BFloat16Storage',
  int64: 'LongStorage',
  int32: 'IntStorage',
  int16: 'ShortStorage',
  int8: 'CharStorage',
  uint8: 'ByteStorage',
  bool: 'BoolStorage',
};

// Pickle opcodes (Python's Lib/pickle.py names).
const OP = {
  MARK: 0x28,
  STOP: 0x2e,
  BININT: 0x4a,
  BININT1: 0x4b,
  BININT2: 0x4d,
  NONE: 0x4e,
  BINPERSID: 0x51,
  REDUCE: 0x52,
  BINUNICODE: 0x58,
  EMPTY_LIST: 0x5d,
  APPENDS: 0x65,
  BINGET: 0x68,
  LONG_BINGET: 0x6a,
  BINPUT: 0x71,
  LONG_BINPUT: 0x72,
  TUPLE: 0x74,
  SETITEMS: 0x75,
  EMPTY_DICT: 0x7d,
  EMPTY_TUPLE: 0x29,
  GLOBAL: 0x63,
  BINFLOAT: 0x47,
  PROTO: 0x80,
  TUPLE1: 0x85,
  TUPLE2: 0x86,
  TUPLE3: 0x87,
  NEWTRUE: 0x88,
  NEWFALSE: 0x89,
  LONG1: 0x8a,
} as const;

// Python's pickler batches APPENDS/SETITEMS by this many items; readers expect nothing else.
const BATCH = 1000;

/** A growable byte buffer with the little encoders pickle needs. */
class ByteSink {
  private buffer = new Uint8Array(1 << 16);
  private view = new DataView(this.buffer.buffer);
  length = 0;

  private reserve(extra: number): void {
    if (this.length + extra <= this.buffer.byteLength) return;
    let size = this.buffer.byteLength * 2;
    while (size < this.length + extra) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.buffer.subarray(0, this.length));
    this.buffer = grown;
    this.view = new DataView(grown.buffer);
  }

  byte(value: number): void {
    this.reserve(1);
    this.buffer[this.length++] = value;
  }

  uint16(value: number): void {
    this.reserve(2);
    this.view.setUint16(this.length, value, true);
    this.length += 2;
  }

  int32(value: number): void {
    this.reserve(4);
    this.view.setInt32(this.length, value, true);
    this.length += 4;
  }

  uint32(value: number): void {
    this.reserve(4);
    this.view.setUint32(this.length, value, true);
    this.length += 4;
  }

  float64BigEndian(value: number): void {
    this.reserve(8);
    this.view.setFloat64(this.length, value, false);
    this.length += 8;
  }

  bytes(data: Uint8Array): void {
    this.reserve(data.byteLength);
    this.buffer.set(data, this.length);
    this.length += data.byteLength;
  }

  result(): Uint8Array {
    return this.buffer.slice(0, this.length);
  }
}

const encoder = new TextEncoder();

/** Minimal two's-complement little-endian bytes of an integer, as LONG1 wants them. */
function longBytes(value: number): number[] {
  let rest = BigInt(value);
  const out: number[] = [];
  for (;;) {
    const byte = Number(rest & 0xffn);
    out.push(byte);
    rest >>= 8n;
    const signSet = (byte & 0x80) !== 0;
    if ((rest === 0n && !signSet) || (rest === -1n && signSet)) return out;
  }
}

function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let step = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = step;
    step *= Math.max(shape[d] as number, 1);
  }
  return strides;
}

/** One storage to be written beside the pickle. */
interface StorageRecord {
  key: string;
  tensor: Tensor;
}

/** Bytes of a tensor are copied out through one buffer of this size at a time. */
const PIECE_BYTES = 4 << 20;

/**
 * Contiguous CPU tensors, one per dtype, that strided tensors are copied
 * through a few rows at a time. Allocated once per save: a fresh copy per
 * piece (or per tensor) would free a multi-MiB block each time, and the small
 * records allocated between those frees split the freed blocks, so that the
 * next copy takes new memory and RSS stays up after the save.
 */
class Staging {
  private readonly tensors = new Map<DType, Tensor>();

  constructor(private readonly bytes: number) {}

  /** A flat staging tensor of `dtype` with at least `numel` elements. */
  get(dtype: DType, numel: number): Tensor {
    const current = this.tensors.get(dtype);
    if (current !== undefined && current.numel() >= numel) return current;
    current?.dispose();
    const size = Math.max(numel, Math.floor(this.bytes / elementSize(dtype)));
    const fresh = keep(empty([size], { dtype }));
    this.tensors.set(dtype, fresh);
    return fresh;
  }

  dispose(): void {
    for (const t of this.tensors.values()) t.dispose();
    this.tensors.clear();
  }
}

/**
 * A tensor's element bytes as streamed zip data, copied piece by piece into
 * one reusable buffer: straight from a contiguous CPU tensor, and otherwise
 * (a channels-last weight, a CUDA tensor) through `staging`, a few of its
 * leading rows at a time, in row-major order.
 */
function tensorData(tensor: Tensor, buffer: Uint8Array, staging: Staging): StreamedData {
  const byteLength = tensor.numel() * elementSize(tensor.dtype);
  return {
    byteLength,
    *pieces() {
      if ((tensor.device === 'cpu' && tensor.isContiguous()) || byteLength === 0) {
        yield* copiedPieces(tensor, buffer);
        return;
      }
      const shape = tensor.shape;
      const rows = shape.length === 0 ? 1 : (shape[0] as number);
      const rowNumel = tensor.numel() / rows;
      const step = Math.max(1, Math.floor(buffer.byteLength / (rowNumel * elementSize(tensor.dtype))));
      const stage = staging.get(tensor.dtype, step * rowNumel);
      for (let start = 0; start < rows; start += step) {
        const count = Math.min(step, rows - start);
        tidy(() => {
          const source = shape.length === 0 ? tensor.detach() : tensor.detach().narrow(0, start, count);
          stage
            .narrow(0, 0, count * rowNumel)
            .view(...source.shape)
            .copy_(source);
        });
        const bytes = count * rowNumel * elementSize(tensor.dtype);
        yield* copiedPieces(stage, buffer, bytes);
      }
    },
  };
}

/** The first `limit` bytes (default all) of a contiguous CPU tensor, through `buffer`. */
function* copiedPieces(tensor: Tensor, buffer: Uint8Array, limit = Infinity): Generator<Uint8Array> {
  for (let offset = 0; offset < limit; ) {
    const room = Math.min(buffer.byteLength, limit - offset);
    const count = tensor._copyBytesTo(buffer.subarray(0, room), offset);
    if (count === 0) return;
    offset += count;
    yield buffer.subarray(0, count);
  }
}

class Pickler {
  readonly sink = new ByteSink();
  readonly storages: StorageRecord[] = [];
  private readonly memo = new Map<unknown, number>();

  private put(key: unknown): void {
    const index = this.memo.size;
    this.memo.set(key, index);
    if (index < 256) {
      this.sink.byte(OP.BINPUT);
      this.sink.byte(index);
    } else {
      this.sink.byte(OP.LONG_BINPUT);
      this.sink.uint32(index);
    }
  }

  /** Pushes a memoized value again; false when it was not memoized yet. */
  private get(key: unknown): boolean {
    const index = this.memo.get(key);
    if (index === undefined) return false;
    if (index < 256) {
      this.sink.byte(OP.BINGET);
      this.sink.byte(index);
    } else {
      this.sink.byte(OP.LONG_BINGET);
      this.sink.uint32(index);
    }
    return true;
  }

  private global(module: string, name: string): void {
    const key = `global:${module}.${name}`;
    if (this.get(key)) return;
    this.sink.byte(OP.GLOBAL);
    this.sink.bytes(encoder.encode(`${module}\n${name}\n`));
    this.put(key);
  }

  private int(value: number): void {
    const sink = this.sink;
    if (value >= 0 && value < 256) {
      sink.byte(OP.BININT1);
      sink.byte(value);
    } else if (value >= 0 && value < 65536) {
      sink.byte(OP.BININT2);
      sink.uint16(value);
    } else if (value >= -(2 ** 31) && value < 2 ** 31) {
      sink.byte(OP.BININT);
      sink.int32(value);
    } else {
      const bytes = longBytes(value);
      sink.byte(OP.LONG1);
      sink.byte(bytes.length);
      sink.bytes(Uint8Array.from(bytes));
    }
  }

  private string(value: string): void {
    const bytes = encoder.encode(value);
    this.sink.byte(OP.BINUNICODE);
    this.sink.uint32(bytes.byteLength);
    this.sink.bytes(bytes);
  }

  private tuple(items: readonly (() => void)[]): void {
    const opcodes = [OP.EMPTY_TUPLE, OP.TUPLE1, OP.TUPLE2, OP.TUPLE3];
    if (items.length > 3) this.sink.byte(OP.MARK);
    for (const item of items) item();
    this.sink.byte(items.length > 3 ? OP.TUPLE : (opcodes[items.length] as number));
  }

  private batched(items: readonly unknown[], write: (item: unknown) => void, closing: number): void {
    for (let start = 0; start < items.length; start += BATCH) {
      this.sink.byte(OP.MARK);
      for (const item of items.slice(start, start + BATCH)) write(item);
      this.sink.byte(closing);
    }
  }

  private tensor(tensor: Tensor): void {
    if (this.get(tensor)) return;
    const shape = tensor.shape;
    const key = String(this.storages.length);
    this.storages.push({ key, tensor });
    const numel = shape.reduce((a, b) => a * b, 1);
    this.global('torch._utils', '_rebuild_tensor_v2');
    this.sink.byte(OP.MARK);
    // The persistent id: ('storage', storage type, key, location, numel).
    this.tuple([
      () => this.string('storage'),
      () => this.global('torch', STORAGE_NAMES[tensor.dtype]),
      () => this.string(key),
      () => this.string('cpu'),
      () => this.int(numel),
    ]);
    this.sink.byte(OP.BINPERSID);
    this.int(0);
    this.tuple(shape.map((size) => () => this.int(size)));
    this.tuple(contiguousStrides(shape).map((stride) => () => this.int(stride)));
    this.sink.byte(tensor.requiresGrad ? OP.NEWTRUE : OP.NEWFALSE);
    // backward_hooks: an empty OrderedDict, as Python writes it.
    this.global('collections', 'OrderedDict');
    this.sink.byte(OP.EMPTY_TUPLE);
    this.sink.byte(OP.REDUCE);
    this.sink.byte(OP.TUPLE);
    this.sink.byte(OP.REDUCE);
    this.put(tensor);
  }

  value(node: ValueNode): void {
    const [tag, payload] = node;
    const sink = this.sink;
    switch (tag) {
      case Tag.None:
        sink.byte(OP.NONE);
        return;
      case Tag.Bool:
        sink.byte(payload === true ? OP.NEWTRUE : OP.NEWFALSE);
        return;
      case Tag.Int:
        this.int(payload as number);
        return;
      case Tag.Float:
        sink.byte(OP.BINFLOAT);
        sink.float64BigEndian(payload as number);
        return;
      case Tag.String:
        this.string(payload as string);
        return;
      case Tag.Tensor:
        this.tensor(payload as Tensor);
        return;
      case Tag.List:
        sink.byte(OP.EMPTY_LIST);
        this.batched(payload as ValueNode[], (item) => this.value(item as ValueNode), OP.APPENDS);
        return;
      case Tag.Tuple:
        this.tuple((payload as ValueNode[]).map((item) => () => this.value(item)));
        return;
      case Tag.Dict:
        sink.byte(OP.EMPTY_DICT);
        this.batched(
          payload as [string | number, ValueNode][],
          (entry) => {
            const [key, item] = entry as [string | number, ValueNode];
            if (typeof key === 'number') this.int(key);
            else this.string(key);
            this.value(item);
          },
          OP.SETITEMS,
        );
        return;
      default:
        throw new TypeError(`save: unknown value tag ${String(tag)}`);
    }
  }
}

/**
 * Writes the zip checkpoint holding `root` to `sink`, named `archive` inside
 * as Python's `torch.save` and libtorch name it. Tensors are written
 * contiguous, each with its own storage; the same Tensor object reached twice
 * is written once. Their bytes are streamed a few MiB at a time, so saving
 * needs no second copy of the model and its optimizer state in memory.
 */
export function writeCheckpoint(root: ValueNode, sink: ZipSink, archive = 'archive'): void {
  const pickler = new Pickler();
  pickler.sink.byte(OP.PROTO);
  pickler.sink.byte(2);
  pickler.value(root);
  pickler.sink.byte(OP.STOP);
  const largest = Math.max(0, ...pickler.storages.map((s) => s.tensor.numel() * elementSize(s.tensor.dtype)));
  const buffer = new Uint8Array(Math.min(PIECE_BYTES, Math.max(largest, 1)));
  const staging = new Staging(buffer.byteLength);
  try {
    writeStoredZip(
      [
        { name: `${archive}/data.pkl`, data: pickler.sink.result() },
        ...pickler.storages.map((s) => ({
          name: `${archive}/data/${s.key}`,
          data: tensorData(s.tensor, buffer, staging),
        })),
        { name: `${archive}/version`, data: encoder.encode('3\n') },
        { name: `${archive}/byteorder`, data: encoder.encode('little') },
      ],
      sink,
    );
  } finally {
    staging.dispose();
  }
}
