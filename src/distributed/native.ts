/**
 * The addon's c10d functions (native/distributed.cc), typed. Every collective
 * runs on a worker thread and resolves a promise; tensors passed in must stay
 * alive and untouched until it settles.
 */
import { native } from '../torch/native.js';
import { type Tensor } from '../torch/index.js';

/** An opaque handle of a joined process group. */
export type NativeGroup = { readonly __nativeGroup: unique symbol };

/** What the addon's rendezvous takes (see native/distributed.cc). */
export interface NativeGroupOptions {
  backend: 'gloo' | 'nccl';
  store: 'tcp' | 'file';
  host?: string;
  port?: number;
  path?: string;
  rank: number;
  worldSize: number;
  isServer?: boolean;
  storePrefix?: string;
  timeoutMs: number;
  interface?: string;
  deviceHost?: string;
  threads?: number;
}

export type ReduceOp = 'sum' | 'avg' | 'max' | 'min' | 'product';

export interface NativeDistributed {
  /** False when the addon was built without c10d. */
  available: boolean;
  /** True when the addon was built with NCCL (a CUDA libtorch). */
  nccl: boolean;
  initProcessGroup(options: NativeGroupOptions): Promise<NativeGroup>;
  destroyProcessGroup(group: NativeGroup): void;
  allreduce(group: NativeGroup, tensors: Tensor[], op: ReduceOp, timeoutMs?: number): Promise<void>;
  broadcast(group: NativeGroup, tensors: Tensor[], root: number, timeoutMs?: number): Promise<void>;
  allgather(group: NativeGroup, input: Tensor[], outputs: Tensor[], timeoutMs?: number): Promise<void>;
  barrier(group: NativeGroup, timeoutMs?: number): Promise<void>;
  storeSet(group: NativeGroup, key: string, value: string): Promise<void>;
  storeCheck(group: NativeGroup, keys: string[]): Promise<boolean[]>;
}

/** The addon's distributed half. */
export const c10d: NativeDistributed = (native as unknown as { distributed: NativeDistributed }).distributed;
