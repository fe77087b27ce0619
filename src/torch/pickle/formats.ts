/**
 * The container formats `torch.save` has written: the zip archive (PyTorch 1.6
 * and later, and libtorch's `pickle_save`) and the older stream of consecutive
 * pickles followed by raw storages. Each returns the unpickled structure with
 * every storage's bytes attached, ready for `materialize`.
 */
import { unzipSync } from 'fflate';
import { elementSize } from '../dtype.js';
import { StorageRef, unpickle, type StorageLookup, type UnknownClassPolicy } from './unpickler.js';

/** The file formats recognised from their first bytes. */
export type CheckpointFormat = 'zip' | 'legacy' | 'tar' | 'unknown';

// pickle PROTO 2, LONG1 of 10 bytes: torch's legacy magic number 0x1950a86a20f9469cfc6c, STOP.
const LEGACY_MAGIC = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e];
const LEGACY_PROTOCOL = 1001;

function startsWith(bytes: Uint8Array, prefix: readonly number[], at = 0): boolean {
  if (bytes.byteLength < at + prefix.length) return false;
  return prefix.every((byte, i) => bytes[at + i] === byte);
}

/** Which format `bytes` is in, from its first bytes. */
export function detectFormat(bytes: Uint8Array): CheckpointFormat {
  if (startsWith(bytes, [0x50, 0x4b, 0x03, 0x04]) || startsWith(bytes, [0x50, 0x4b, 0x05, 0x06])) return 'zip';
  if (startsWith(bytes, LEGACY_MAGIC)) return 'legacy';
  // 'ustar' at offset 257: the tar container of PyTorch before 0.4.
  if (startsWith(bytes, [0x75, 0x73, 0x74, 0x61, 0x72], 257)) return 'tar';
  return 'unknown';
}

function unzip(bytes: Uint8Array): Record<string, Uint8Array> {
  try {
    return unzipSync(bytes);
  } catch (error) {
    throw new Error(`the zip archive is truncated or corrupt (${(error as Error).message})`);
  }
}

const decoder = new TextDecoder();

/** Reads a zip-format checkpoint. */
export function readZipCheckpoint(bytes: Uint8Array, unknownClasses: UnknownClassPolicy): unknown {
  const entries = unzip(bytes);
  const names = Object.keys(entries);
  const pickleName = names.find((name) => /^[^/]*\/?data\.pkl$/.test(name));
  if (pickleName === undefined) {
    throw new Error(
      `the zip archive holds no data.pkl, so it is not a torch.save file (it holds: ${names.slice(0, 5).join(', ')})`,
    );
  }
  const prefix = pickleName.slice(0, pickleName.length - 'data.pkl'.length);
  if (names.some((name) => name.startsWith(`${prefix}code/`))) {
    throw new Error('it is a TorchScript module (torch.jit.save); save its state_dict() with torch.save instead');
  }
  const byteOrder = entries[`${prefix}byteorder`];
  if (byteOrder !== undefined && decoder.decode(byteOrder).trim() !== 'little') {
    throw new Error(`its tensors are stored ${decoder.decode(byteOrder).trim()}-endian; only little-endian is read`);
  }
  const storages = new Map<string, StorageRef>();
  const lookup: StorageLookup = (key, dtype, numel) => {
    let storage = storages.get(key);
    if (storage === undefined) {
      storage = new StorageRef(key, dtype);
      const data = entries[`${prefix}data/${key}`];
      if (data === undefined) throw new Error(`the archive lacks the storage entry '${prefix}data/${key}'`);
      if (numel !== undefined && data.byteLength < numel * elementSize(dtype)) {
        throw new Error(
          `storage entry '${prefix}data/${key}' has ${data.byteLength} bytes but should hold ${numel} ${dtype} elements`,
        );
      }
      storage.bytes = data;
      storages.set(key, storage);
    }
    return storage;
  };
  return unpickle(entries[pickleName] as Uint8Array, 0, lookup, unknownClasses).value;
}

function readInt64(bytes: Uint8Array, at: number): number {
  if (at + 8 > bytes.byteLength) throw new Error('the file ends inside a storage header (truncated file?)');
  const value = new DataView(bytes.buffer, bytes.byteOffset + at, 8).getBigInt64(0, true);
  if (value < 0n || value > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`a storage claims ${value} elements`);
  return Number(value);
}

/** The storage a legacy persistent id names: the root storage, or a view into it (PyTorch before 0.4). */
function legacyView(view: unknown, root: StorageRef, views: Map<string, StorageRef>): StorageRef {
  if (view === null || view === undefined) return root;
  if (!Array.isArray(view) || view.length < 3) throw new Error('a storage has malformed view metadata');
  const [viewKey, offset] = view as unknown[];
  let storage = views.get(String(viewKey));
  if (storage === undefined) {
    storage = new StorageRef(String(viewKey), root.dtype, { storage: root, offset: Number(offset) });
    views.set(String(viewKey), storage);
  }
  return storage;
}

/**
 * Reads a legacy (PyTorch before 1.6, non-zip) checkpoint: consecutive pickles
 * of the magic number, the format version, system information, the value and
 * the storage keys, then each storage as an element count and raw bytes.
 */
export function readLegacyCheckpoint(bytes: Uint8Array, unknownClasses: UnknownClassPolicy): unknown {
  const noStorages: StorageLookup = () => {
    throw new Error('the legacy header refers to a storage');
  };
  const protocol = unpickle(bytes, LEGACY_MAGIC.length, noStorages, 'error');
  if (protocol.value !== LEGACY_PROTOCOL) {
    throw new Error(`the legacy format version is ${String(protocol.value)}, not ${LEGACY_PROTOCOL}`);
  }
  const systemInfo = unpickle(bytes, protocol.end, noStorages, 'error');
  if (systemInfo.value instanceof Map && systemInfo.value.get('little_endian') === false) {
    throw new Error('it was saved on a big-endian machine; only little-endian files are read');
  }
  const roots = new Map<string, StorageRef>();
  const views = new Map<string, StorageRef>();
  const lookup: StorageLookup = (key, dtype, _numel, view) => {
    let root = roots.get(key);
    if (root === undefined) {
      root = new StorageRef(key, dtype);
      roots.set(key, root);
    }
    return legacyView(view, root, views);
  };
  const main = unpickle(bytes, systemInfo.end, lookup, unknownClasses);
  const keys = unpickle(bytes, main.end, noStorages, 'error');
  if (!Array.isArray(keys.value)) throw new Error('the legacy storage key list is missing');
  let at = keys.end;
  for (const key of keys.value as unknown[]) {
    const storage = roots.get(String(key));
    if (storage === undefined) throw new Error(`the legacy storage list names '${String(key)}', which no tensor uses`);
    const numel = readInt64(bytes, at);
    const length = numel * elementSize(storage.dtype);
    at += 8;
    if (at + length > bytes.byteLength) throw new Error(`storage '${String(key)}' is cut short (truncated file?)`);
    storage.bytes = bytes.subarray(at, at + length);
    at += length;
  }
  return main.value;
}
