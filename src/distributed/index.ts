/**
 * Data-parallel training across processes and machines over libtorch's c10d
 * (Gloo; NCCL in a CUDA build): process groups joined as PyTorch joins them,
 * collectives as promises, and the replica upkeep of DDP.
 */
export { type LaunchEnv, isDistributedEnv, readLaunchEnv } from './env.js';
export {
  CollectiveError,
  DEFAULT_TIMEOUT_MS,
  type GroupOptions,
  inLaunchGroup,
  ProcessGroup,
  SETUP_TIMEOUT_MS,
} from './group.js';
export { type ReduceOp } from './native.js';
export {
  launch,
  LAUNCH_DEFAULTS,
  LAUNCH_SETTINGS,
  type LaunchConfig,
  type LaunchResult,
  resolveLaunchConfig,
  workerEnv,
} from './launch.js';
export {
  allreduceFlat,
  averageGradients,
  broadcastTensors,
  bucketsOf,
  DEFAULT_BUCKET_BYTES,
  reduceGradients,
} from './sync.js';
export {
  FIRST_BUCKET_BYTES,
  GRAD_SYNC_MODES,
  GRAD_SYNC_SETTING,
  GradientSync,
  type GradientSyncOptions,
  type GradSyncMode,
  type GradSyncStep,
} from './grad-sync.js';
export { allgatherFloats, allgatherJson, broadcastJson, gatherShards, shardRange } from './gather.js';
