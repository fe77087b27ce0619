/**
 * A pickle virtual machine (protocols 0 to 5) that reads Python's pickles into
 * plain values: None → null, bool, int → number (bigint beyond 2^53), float,
 * str, bytes → Uint8Array, list and tuple → array, dict → Map, set → array.
 * What Python names mean (GLOBAL) and how persistent ids resolve is up to the
 * caller, so that nothing outside an explicit list of names is ever called.
 *
 * Integers are read exactly, negative and wide ones included; a general
 * purpose JavaScript unpickler we tried read negative 64-bit integers as
 * unsigned and threw on 2^63 and beyond, which are ordinary in checkpoints
 * (seeds, counters).
 */

/** How the machine turns names and persistent ids into values. */
export interface PickleHooks {
  /** The value of the Python name `module.name` (a function when the pickle calls it). */
  findClass(module: string, name: string): unknown;
  /** The value a persistent id stands for. */
  persistentLoad(pid: unknown): unknown;
}

/** An object whose state BUILD may set; other targets of BUILD are refused. */
export interface Stateful {
  __setstate__(state: unknown): void;
}

function isStateful(value: unknown): value is Stateful {
  return typeof value === 'object' && value !== null && typeof (value as Stateful).__setstate__ === 'function';
}

type Callable = (...args: unknown[]) => unknown;

const utf8 = new TextDecoder('utf-8', { fatal: true });
const latin1 = new TextDecoder('latin1');

/** Decodes the escapes of a Python 2 `repr` of a str, as protocol 0's STRING carries it. */
function unescapeRepr(text: string): string {
  return text.replace(/\\(x[0-9a-fA-F]{2}|[\\'"nrt])/g, (_match, code: string) => {
    switch (code[0]) {
      case 'x':
        return String.fromCharCode(parseInt(code.slice(1), 16));
      case 'n':
        return '\n';
      case 'r':
        return '\r';
      case 't':
        return '\t';
      default:
        return code;
    }
  });
}

/** Decodes `raw-unicode-escape` text, as protocol 0's UNICODE carries it (read as latin1). */
function unescapeRawUnicode(text: string): string {
  return text.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_match, short?: string, long?: string) =>
    String.fromCodePoint(parseInt(short ?? long ?? '0', 16)),
  );
}

/** A protocol-0 FLOAT: Python's repr of a float, including inf and nan. */
function parseFloatRepr(text: string): number {
  switch (text) {
    case 'inf':
      return Infinity;
    case '-inf':
      return -Infinity;
    case 'nan':
      return NaN;
    default:
      return Number(text);
  }
}

/** Two's-complement little-endian integer, as LONG1 and LONG4 carry it. */
function decodeLong(bytes: Uint8Array): number | bigint {
  if (bytes.byteLength === 0) return 0;
  let value = 0n;
  for (let i = bytes.byteLength - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i] as number);
  if (((bytes[bytes.byteLength - 1] as number) & 0x80) !== 0) value -= 1n << BigInt(8 * bytes.byteLength);
  return narrow(value);
}

function narrow(value: bigint): number | bigint {
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

/** Reads one pickle from `bytes` starting at `position`; `position` afterwards is just past its STOP. */
export class PickleMachine {
  private readonly view: DataView;
  position: number;
  private stack: unknown[] = [];
  private readonly marks: unknown[][] = [];
  private readonly memo = new Map<number, unknown>();

  constructor(
    private readonly bytes: Uint8Array,
    private readonly hooks: PickleHooks,
    start = 0,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.position = start;
  }

  private need(count: number): number {
    const at = this.position;
    if (count < 0 || at + count > this.bytes.byteLength) {
      throw new Error(`the pickle ends early (wanted ${count} bytes at byte ${at} of ${this.bytes.byteLength})`);
    }
    this.position += count;
    return at;
  }

  private u8(): number {
    return this.bytes[this.need(1)] as number;
  }

  private u16(): number {
    return this.view.getUint16(this.need(2), true);
  }

  private i32(): number {
    return this.view.getInt32(this.need(4), true);
  }

  private u32(): number {
    return this.view.getUint32(this.need(4), true);
  }

  private u64(): number {
    const at = this.need(8);
    const value = this.view.getBigUint64(at, true);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`a length of ${value} bytes at byte ${at}`);
    return Number(value);
  }

  private take(count: number): Uint8Array {
    const at = this.need(count);
    return this.bytes.subarray(at, at + count);
  }

  private line(): string {
    const end = this.bytes.indexOf(0x0a, this.position);
    if (end < 0) throw new Error(`the pickle ends inside a text line at byte ${this.position}`);
    const text = latin1.decode(this.bytes.subarray(this.position, end));
    this.position = end + 1;
    return text;
  }

  private text(count: number): string {
    const at = this.position;
    const bytes = this.take(count);
    try {
      return utf8.decode(bytes);
    } catch {
      throw new Error(`invalid UTF-8 in a string at byte ${at}`);
    }
  }

  private push(value: unknown): void {
    this.stack.push(value);
  }

  private pop(): unknown {
    if (this.stack.length === 0) throw new Error(`the pickle pops an empty stack at byte ${this.position - 1}`);
    return this.stack.pop();
  }

  private top(): unknown {
    if (this.stack.length === 0) throw new Error(`the pickle reads an empty stack at byte ${this.position - 1}`);
    return this.stack[this.stack.length - 1];
  }

  /** The items pushed since the last MARK, which is removed. */
  private popMark(): unknown[] {
    const items = this.stack;
    const previous = this.marks.pop();
    if (previous === undefined)
      throw new Error(`the pickle closes a MARK it never opened at byte ${this.position - 1}`);
    this.stack = previous;
    return items;
  }

  private memoGet(index: number): void {
    if (!this.memo.has(index)) throw new Error(`the pickle refers to memo entry ${index}, which it never stored`);
    this.push(this.memo.get(index));
  }

  private call(callable: unknown, args: unknown, what: string): unknown {
    if (typeof callable !== 'function') throw new Error(`${what} something that is not callable`);
    if (!Array.isArray(args)) throw new Error(`${what} something with arguments that are not a tuple`);
    return (callable as Callable)(...(args as unknown[]));
  }

  private setItems(target: unknown, items: unknown[]): void {
    if (!(target instanceof Map)) throw new Error('the pickle sets items on something that is not a dict');
    for (let i = 0; i + 1 < items.length; i += 2) target.set(items[i], items[i + 1]);
  }

  private appendItems(target: unknown, items: unknown[]): void {
    if (!Array.isArray(target)) throw new Error('the pickle appends to something that is not a list');
    for (const item of items) target.push(item);
  }

  private build(state: unknown, target: unknown): void {
    if (isStateful(target)) {
      target.__setstate__(state);
      return;
    }
    // An OrderedDict's attributes (torchvision's `_metadata`, version numbers for
    // old-format layers) describe the saving code, not the values; they are dropped.
    if (target instanceof Map) return;
    throw new Error('the pickle sets the state of an object that does not take one');
  }

  /** Runs until STOP and returns the pickled value. */
  run(): unknown {
    for (;;) {
      const at = this.position;
      const op = this.u8();
      switch (op) {
        case 0x80: // PROTO
          if (this.u8() > 5) throw new Error(`pickle protocol ${this.bytes[at + 1]} is newer than 5`);
          break;
        case 0x95: // FRAME
          this.need(8);
          break;
        case 0x2e: // STOP
          return this.pop();
        case 0x28: // MARK
          this.marks.push(this.stack);
          this.stack = [];
          break;
        case 0x30: // POP
          this.pop();
          break;
        case 0x31: // POP_MARK
          this.popMark();
          break;
        case 0x32: // DUP
          this.push(this.top());
          break;

        case 0x70: // PUT
          this.memo.set(parseInt(this.line(), 10), this.top());
          break;
        case 0x71: // BINPUT
          this.memo.set(this.u8(), this.top());
          break;
        case 0x72: // LONG_BINPUT
          this.memo.set(this.u32(), this.top());
          break;
        case 0x94: // MEMOIZE
          this.memo.set(this.memo.size, this.top());
          break;
        case 0x67: // GET
          this.memoGet(parseInt(this.line(), 10));
          break;
        case 0x68: // BINGET
          this.memoGet(this.u8());
          break;
        case 0x6a: // LONG_BINGET
          this.memoGet(this.u32());
          break;

        case 0x4e: // NONE
          this.push(null);
          break;
        case 0x88: // NEWTRUE
          this.push(true);
          break;
        case 0x89: // NEWFALSE
          this.push(false);
          break;
        case 0x49: {
          // INT: protocol 0 also spells booleans this way.
          const text = this.line();
          this.push(text === '01' ? true : text === '00' ? false : narrow(BigInt(text)));
          break;
        }
        case 0x4c: // LONG
          this.push(narrow(BigInt(this.line().replace(/L$/, ''))));
          break;
        case 0x46: // FLOAT
          this.push(parseFloatRepr(this.line()));
          break;
        case 0x4a: // BININT
          this.push(this.i32());
          break;
        case 0x4b: // BININT1
          this.push(this.u8());
          break;
        case 0x4d: // BININT2
          this.push(this.u16());
          break;
        case 0x8a: // LONG1
          this.push(decodeLong(this.take(this.u8())));
          break;
        case 0x8b: {
          // LONG4
          const length = this.i32();
          this.push(decodeLong(this.take(length)));
          break;
        }
        case 0x47: // BINFLOAT (big-endian)
          this.push(this.view.getFloat64(this.need(8), false));
          break;

        case 0x53: {
          // STRING: a quoted Python 2 repr.
          const text = this.line();
          const quote = text[0];
          if (text.length < 2 || (quote !== "'" && quote !== '"') || text[text.length - 1] !== quote) {
            throw new Error(`a malformed STRING at byte ${at}`);
          }
          // A Python 2 str is bytes; torch.load decodes it as UTF-8, falling back to latin1 here.
          const raw = Uint8Array.from(unescapeRepr(text.slice(1, -1)), (char) => char.charCodeAt(0) & 0xff);
          try {
            this.push(utf8.decode(raw));
          } catch {
            this.push(latin1.decode(raw));
          }
          break;
        }
        case 0x56: // UNICODE (raw-unicode-escape)
          this.push(unescapeRawUnicode(this.line()));
          break;
        case 0x54: // BINSTRING (Python 2 str: torch.load decodes it as UTF-8)
          this.push(this.text(this.i32()));
          break;
        case 0x55: // SHORT_BINSTRING
          this.push(this.text(this.u8()));
          break;
        case 0x58: // BINUNICODE
          this.push(this.text(this.u32()));
          break;
        case 0x8c: // SHORT_BINUNICODE
          this.push(this.text(this.u8()));
          break;
        case 0x8d: // BINUNICODE8
          this.push(this.text(this.u64()));
          break;
        case 0x42: // BINBYTES
          this.push(this.take(this.u32()).slice());
          break;
        case 0x43: // SHORT_BINBYTES
          this.push(this.take(this.u8()).slice());
          break;
        case 0x8e: // BINBYTES8
        case 0x96: // BYTEARRAY8
          this.push(this.take(this.u64()).slice());
          break;

        case 0x29: // EMPTY_TUPLE
          this.push([]);
          break;
        case 0x74: // TUPLE
          this.push(this.popMark());
          break;
        case 0x85: // TUPLE1
          this.push([this.pop()]);
          break;
        case 0x86: {
          // TUPLE2
          const b = this.pop();
          this.push([this.pop(), b]);
          break;
        }
        case 0x87: {
          // TUPLE3
          const c = this.pop();
          const b = this.pop();
          this.push([this.pop(), b, c]);
          break;
        }
        case 0x5d: // EMPTY_LIST
          this.push([]);
          break;
        case 0x6c: // LIST
          this.push(this.popMark());
          break;
        case 0x61: {
          // APPEND
          const item = this.pop();
          this.appendItems(this.top(), [item]);
          break;
        }
        case 0x65: {
          // APPENDS
          const items = this.popMark();
          this.appendItems(this.top(), items);
          break;
        }
        case 0x7d: // EMPTY_DICT
          this.push(new Map());
          break;
        case 0x64: {
          // DICT
          const dict = new Map();
          this.setItems(dict, this.popMark());
          this.push(dict);
          break;
        }
        case 0x73: {
          // SETITEM
          const value = this.pop();
          const key = this.pop();
          this.setItems(this.top(), [key, value]);
          break;
        }
        case 0x75: {
          // SETITEMS
          const items = this.popMark();
          this.setItems(this.top(), items);
          break;
        }
        case 0x8f: // EMPTY_SET
          this.push([]);
          break;
        case 0x90: {
          // ADDITEMS
          const items = this.popMark();
          this.appendItems(this.top(), items);
          break;
        }
        case 0x91: // FROZENSET
          this.push(this.popMark());
          break;

        case 0x63: {
          // GLOBAL
          const module = this.line();
          const name = this.line();
          this.push(this.hooks.findClass(module, name));
          break;
        }
        case 0x93: {
          // STACK_GLOBAL
          const name = this.pop();
          const module = this.pop();
          if (typeof module !== 'string' || typeof name !== 'string')
            throw new Error(`a malformed STACK_GLOBAL at byte ${at}`);
          this.push(this.hooks.findClass(module, name));
          break;
        }
        case 0x52: {
          // REDUCE
          const args = this.pop();
          const callable = this.pop();
          this.push(this.call(callable, args, 'the pickle calls'));
          break;
        }
        case 0x81: {
          // NEWOBJ
          const args = this.pop();
          const cls = this.pop();
          this.push(this.call(cls, args, 'the pickle instantiates'));
          break;
        }
        case 0x92: {
          // NEWOBJ_EX: keyword arguments are not passed on.
          this.pop();
          const args = this.pop();
          const cls = this.pop();
          this.push(this.call(cls, args, 'the pickle instantiates'));
          break;
        }
        case 0x6f: {
          // OBJ
          const items = this.popMark();
          const cls = items.shift();
          this.push(this.call(cls, items, 'the pickle instantiates'));
          break;
        }
        case 0x69: {
          // INST
          const module = this.line();
          const name = this.line();
          const args = this.popMark();
          this.push(this.call(this.hooks.findClass(module, name), args, 'the pickle instantiates'));
          break;
        }
        case 0x62: {
          // BUILD
          const state = this.pop();
          this.build(state, this.top());
          break;
        }
        case 0x50: // PERSID
          this.push(this.hooks.persistentLoad(this.line()));
          break;
        case 0x51: // BINPERSID
          this.push(this.hooks.persistentLoad(this.pop()));
          break;
        case 0x82: // EXT1
        case 0x83: // EXT2
        case 0x84: // EXT4
          throw new Error(`the pickle uses the extension registry (opcode 0x${op.toString(16)} at byte ${at})`);
        case 0x97: // NEXT_BUFFER
        case 0x98: // READONLY_BUFFER
          throw new Error(`the pickle uses out-of-band buffers (opcode 0x${op.toString(16)} at byte ${at})`);
        default:
          throw new Error(`unknown pickle opcode 0x${op.toString(16)} at byte ${at} (corrupt data?)`);
      }
    }
  }
}
