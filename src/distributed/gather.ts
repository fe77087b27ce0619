/**
 * Sharing small results between ranks over the group's own collectives:
 * which rows of a set a rank takes, arrays of different lengths gathered in
 * rank order, and JSON values gathered or sent from rank 0. Gloo's allgather
 * takes tensors of one shape, so each rank's part is padded to the longest
 * (its length travels first).
 */
import { shardRange } from '../data/loader.js';
import * as torch from '../torch/index.js';
import { type ProcessGroup } from './group.js';

export { shardRange };

/** Every rank's length, in rank order. */
async function allgatherLengths(group: ProcessGroup, length: number): Promise<number[]> {
  const mine = torch.tensor(new Float64Array([length]), [1]);
  try {
    const parts = await group.allgather(mine);
    try {
      return parts.map((part) => part.item());
    } finally {
      torch.dispose(parts);
    }
  } finally {
    mine.dispose();
  }
}

/** Every rank's `values` (any lengths), in rank order. */
async function allgatherArrays<T extends Float32Array | Uint8Array>(
  group: ProcessGroup,
  values: T,
  make: (length: number) => T,
): Promise<T[]> {
  if (group.size === 1) return [values];
  const lengths = await allgatherLengths(group, values.length);
  const longest = Math.max(1, ...lengths);
  const padded = make(longest);
  padded.set(values);
  const mine = torch.tensor(padded, [longest]);
  try {
    const parts = await group.allgather(mine);
    try {
      return parts.map((part, rank) => (part.data() as T).slice(0, lengths[rank]) as T);
    } finally {
      torch.dispose(parts);
    }
  } finally {
    mine.dispose();
  }
}

/** Every rank's float32 `values` (any lengths), in rank order. */
export function allgatherFloats(group: ProcessGroup, values: Float32Array): Promise<Float32Array[]> {
  return allgatherArrays(group, values, (length) => new Float32Array(length));
}

/** The float32 `values` of all ranks concatenated in rank order (each rank its shard of one array). */
export async function gatherShards(group: ProcessGroup, values: Float32Array): Promise<Float32Array> {
  const parts = await allgatherFloats(group, values);
  const out = new Float32Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** JSON has no NaN or infinities; results hold them (an AUC of a one-class set), so they travel tagged. */
const NON_FINITE = '\u0000number:';

function encodeNonFinite(_key: string, value: unknown): unknown {
  return typeof value === 'number' && !Number.isFinite(value) ? `${NON_FINITE}${value}` : value;
}

function decodeNonFinite(_key: string, value: unknown): unknown {
  return typeof value === 'string' && value.startsWith(NON_FINITE) ? Number(value.slice(NON_FINITE.length)) : value;
}

/** Every rank's JSON-serializable `value` (NaN and infinities kept), in rank order. */
export async function allgatherJson<T>(group: ProcessGroup, value: T): Promise<T[]> {
  const bytes = new TextEncoder().encode(JSON.stringify(value, encodeNonFinite) ?? 'null');
  const parts = await allgatherArrays(group, bytes, (length) => new Uint8Array(length));
  const decoder = new TextDecoder();
  return parts.map((part) => JSON.parse(decoder.decode(part), decodeNonFinite) as T);
}

/** Rank 0's JSON-serializable `value` on every rank (the others' `value` is ignored). */
export async function broadcastJson<T>(group: ProcessGroup, value: T): Promise<T> {
  if (group.size === 1) return value;
  const all = await allgatherJson(group, group.rank === 0 ? value : null);
  return all[0] as T;
}
