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

/** An opaque handle of a c10d Reducer over a list of parameters (native/grad_reducer.cc). */
export type NativeGradReducer = { readonly __nativeGradReducer: unique symbol };

/** What one overlapped backward pass did (native/grad_reducer.cc). */
export interface NativeBackwardStats {
  /** Buckets reduced. */
  buckets: number;
  /** Buckets whose allreduce started while some gradient was still to be computed. */
  launchedEarly: number;
  /** Buckets whose allreduce had finished when the graph's last node had run. */
  reducedBeforeEnd: number;
  /** From the start of backward to the end of the graph (gradient computation, bucket copies and launches). */
  computeMs: number;
  /** From the end of the graph to the reduced gradients in `.grad`: the reduction time backward did not hide. */
  exposedMs: number;
}

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
  createGradReducer(
    group: NativeGroup,
    params: Tensor[],
    options: { op: 'avg' | 'sum'; bucketBytes?: number; firstBucketBytes?: number },
  ): NativeGradReducer;
  destroyGradReducer(reducer: NativeGradReducer): void;
  reducerBackward(reducer: NativeGradReducer, losses: Tensor[]): Promise<NativeBackwardStats>;
}

/** The addon's distributed half. */
export const c10d: NativeDistributed = (native as unknown as { distributed: NativeDistributed }).distributed;
