/**
 * PyTorch's checkpoint files: `save` writes what Python's `torch.load` reads,
 * `load` reads what Python's `torch.save` writes (torchvision weights, MoCo
 * checkpoints with optimizer state, our own files).
 *
 * Both directions are done here, in TypeScript. libtorch 1.13's `pickle_load`
 * rejects the files users actually have (a torchvision state dict, an
 * OrderedDict carrying `_metadata`; any checkpoint holding an optimizer state),
 * and its `pickle_save` tags containers with a name that Python's
 * `torch.load(weights_only=True)`, the default since PyTorch 2.6, refuses.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { encodeValue } from './pickle/encode.js';
import { writeCheckpoint } from './pickle/pickler.js';
import { detectFormat, readLegacyCheckpoint, readZipCheckpoint } from './pickle/formats.js';
import { materialize, type UnknownClassPolicy } from './pickle/unpickler.js';

import type { Tensor } from './tensor.js';
import type { PythonObject } from './pickle/values.js';

export { PyFloat, PyTuple, pyFloat, tuple, type PythonObject } from './pickle/values.js';

/** What `load` returns: the Python value, mapped as `load` describes. */
export type LoadedValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | Tensor
  | PythonObject
  | LoadedValue[]
  | { [key: string]: LoadedValue }
  | Map<LoadedValue, LoadedValue>;

/** Options of `load`. */
export interface LoadOptions {
  /**
   * What to do with objects of Python classes other than tensors, containers,
   * OrderedDict, Counter (read as a dict) and numpy scalars (an `argparse.Namespace` of training
   * arguments, say): `'error'` (default) throws naming the class; `'keep'`
   * returns them as `PythonObject`s (`{ pythonClass, args, state }`).
   */
  unknownClasses?: UnknownClassPolicy;
  /** The name errors use for the source when it is given as bytes. */
  name?: string;
}

/**
 * Saves `value` to `path` in PyTorch's zip format, which Python's `torch.load`
 * reads, also under `weights_only=True` (PyTorch 2.6's default). Values map to Python as:
 * null/undefined → None; booleans; integral numbers → int, other numbers →
 * float (`pyFloat(1)` forces `1.0`); strings; Tensors; arrays → list
 * (`tuple(...)` for a tuple); plain objects and string-keyed Maps → dict;
 * integer-keyed Maps → int-keyed dict (an optimizer's `state`).
 *
 * Tensors are written as contiguous CPU tensors, each with its own storage
 * (views do not drag their whole base storage along); the same Tensor object
 * reached twice is written once and loads in Python as one tensor (tied
 * weights stay tied). Tensor bytes are streamed to the file a few MiB at a
 * time, so saving holds no second copy of them. The file is written to a
 * temporary file beside `path`, flushed, and renamed over it, so a crash never
 * leaves a half-written checkpoint.
 */
export function save(value: unknown, path: string): void {
  if (typeof path !== 'string' || path === '') throw new TypeError('save(value, path): path must be a file path');
  const root = encodeValue(value);
  writeAtomically(path, (fd) => {
    let position = 0;
    writeCheckpoint(root, {
      write: (bytes) => {
        writeFully(fd, bytes, position);
        position += bytes.byteLength;
      },
      patch: (at, bytes) => writeFully(fd, bytes, at),
    });
  });
}

function writeFully(fd: number, bytes: Uint8Array, position: number): void {
  let written = 0;
  while (written < bytes.byteLength) {
    written += writeSync(fd, bytes, written, bytes.byteLength - written, position + written);
  }
}

function writeAtomically(path: string, write: (fd: number) => void): void {
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(temporary, 'wx');
    write(fd);
    // The rename must not become visible before the data is on disk.
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(temporary, path);
  } catch (error) {
    if (fd !== undefined) closeSync(fd);
    rmSync(temporary, { force: true });
    throw new Error(`save: cannot write '${path}': ${(error as Error).message}`, { cause: error });
  }
}

function readSource(source: string | Uint8Array, name: string): Uint8Array {
  if (source instanceof Uint8Array) return source;
  if (typeof source !== 'string') throw new TypeError('load(source): source must be a file path or a Uint8Array');
  try {
    return readFileSync(source);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a folder' : (error as Error).message;
    throw new Error(`load: cannot read '${name}': ${reason}`, { cause: error });
  }
}

/**
 * Loads a file written by Python's `torch.save` (zip format, PyTorch 1.6 and
 * later, or the older non-zip format) or by `save`. `source` is a path or the
 * file's bytes. Everything loads on the CPU, whatever device it was saved from.
 *
 * The result mirrors the Python value: dicts whose keys are all strings
 * (OrderedDicts, state dicts) become plain objects with their keys in order
 * (but JavaScript lists integer-like keys such as '2' first); dicts with other
 * keys, such as an optimizer's `state` keyed by parameter index, become Maps;
 * lists, tuples and sets become arrays; ints and floats become numbers (ints
 * beyond 2^53 become bigints; `1.0` comes back as `1` and would be saved again
 * as an int, so wrap it in `pyFloat` where that matters); bytes become
 * Uint8Arrays; numpy scalars become numbers; tensors become CPU Tensors with
 * their dtype and shape (a transposed layout is kept), each owning its memory
 * (views that shared a storage no longer share it; the same tensor reached
 * twice is one Tensor) and owned by the caller: free them with
 * `torch.dispose(result)`. An OrderedDict's `_metadata` attribute is not kept.
 *
 * Throws an Error naming the file and what was wrong for a missing file, a
 * file in another format, a truncated or corrupt archive, or a Python class
 * the loader does not rebuild (see `LoadOptions.unknownClasses`).
 */
export function load(source: string | Uint8Array, options: LoadOptions = {}): LoadedValue {
  const name = typeof source === 'string' ? source : (options.name ?? '<bytes>');
  const bytes = readSource(source, name);
  const unknownClasses = options.unknownClasses ?? 'error';
  const format = detectFormat(bytes);
  try {
    switch (format) {
      case 'zip':
        return materialize(readZipCheckpoint(bytes, unknownClasses)) as LoadedValue;
      case 'legacy':
        return materialize(readLegacyCheckpoint(bytes, unknownClasses)) as LoadedValue;
      case 'tar':
        throw new Error('it is in the tar format of PyTorch before 0.4; load and re-save it with a newer PyTorch');
      case 'unknown':
        throw new Error(
          bytes.byteLength === 0
            ? 'the file is empty'
            : 'it is neither a zip archive nor a legacy torch.save stream (not a PyTorch checkpoint, or damaged)',
        );
    }
  } catch (error) {
    throw new Error(`load: cannot load '${name}': ${(error as Error).message}`, { cause: error });
  }
}
