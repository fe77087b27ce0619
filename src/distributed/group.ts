/**
 * A process group over libtorch's c10d (Gloo), joined the way PyTorch 1.13's
 * `init_process_group("gloo")` joins one, so Python ranks and ours can share a
 * group. Collectives are promises: they run on a worker thread and the event
 * loop keeps turning. A collective that fails (a peer died, a timeout) rejects
 * with an error that names this rank and the rank that stopped answering.
 */
import * as torch from '../torch/index.js';
import { isDistributedEnv, type LaunchEnv, readLaunchEnv } from './env.js';
import { c10d, type NativeBackwardStats, type NativeGradReducer, type NativeGroup, type ReduceOp } from './native.js';

/** Default time a rendezvous or a collective may take (PyTorch's is 30 minutes). */
export const DEFAULT_TIMEOUT_MS = 30 * 60 * 1000;

/**
 * How long the other ranks wait at a barrier while rank 0 alone prepares what
 * they then share (an image cache, frozen features): a day, since decoding a
 * large collection takes hours.
 */
export const SETUP_TIMEOUT_MS = 24 * 3600 * 1000;

/** How to join a group. */
export interface GroupOptions {
  rank: number;
  worldSize: number;
  /** 'gloo' (CPU; the default) or 'nccl' (only in a build against a CUDA libtorch). */
  backend?: 'gloo' | 'nccl';
  /** Rendezvous through a TCP store at `host:port` (rank 0 serves it unless `agentStore`). */
  host?: string;
  port?: number;
  /** Rendezvous through a file every rank can reach instead of TCP. */
  file?: string;
  /** torchelastic's agent serves the store: all ranks are clients under `/worker/attempt_<restartCount>`. */
  agentStore?: boolean;
  restartCount?: number;
  /** Network interface for Gloo's connections (GLOO_SOCKET_IFNAME); default: the host name's address. */
  socketInterface?: string;
  /** Address Gloo binds to, when no interface is named (e.g. 127.0.0.1 in tests). */
  deviceHost?: string;
  /** Time the rendezvous and each collective may take. */
  timeoutMs?: number;
}

/** A collective's failure, naming the ranks involved. */
export class CollectiveError extends Error {
  constructor(
    message: string,
    readonly rank: number,
    readonly suspects: number[],
  ) {
    super(message);
    this.name = 'CollectiveError';
  }
}

/** A joined process group. */
export class ProcessGroup {
  private handle: NativeGroup | undefined;

  private constructor(
    handle: NativeGroup,
    readonly rank: number,
    readonly size: number,
    readonly backend: 'gloo' | 'nccl',
    readonly timeoutMs: number,
  ) {
    this.handle = handle;
  }

  /** True when this addon was built with c10d. */
  static get available(): boolean {
    return c10d.available;
  }

  /** Joins a group; resolves once every rank has joined (PyTorch's store barrier) or rejects on timeout. */
  static async init(options: GroupOptions): Promise<ProcessGroup> {
    const backend = options.backend ?? 'gloo';
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const { rank, worldSize } = options;
    if (!Number.isInteger(worldSize) || worldSize < 1) throw new RangeError(`worldSize must be >= 1, got ${worldSize}`);
    if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) {
      throw new RangeError(`rank must be in [0, ${worldSize - 1}], got ${rank}`);
    }
    const agentStore = options.agentStore === true;
    let handle: NativeGroup;
    try {
      handle = await c10d.initProcessGroup({
        backend,
        store: options.file === undefined ? 'tcp' : 'file',
        host: options.host ?? '127.0.0.1',
        port: options.port ?? 29500,
        path: options.file,
        rank,
        worldSize,
        isServer: !agentStore && rank === 0,
        storePrefix: agentStore ? `/worker/attempt_${options.restartCount ?? 0}` : undefined,
        timeoutMs,
        interface: options.socketInterface,
        deviceHost: options.deviceHost,
      });
    } catch (error) {
      throw new Error(
        `distributed: rank ${rank} of ${worldSize} could not join the group: ${(error as Error).message}`,
      );
    }
    return new ProcessGroup(handle, rank, worldSize, backend, timeoutMs);
  }

  /** Joins the group the launch environment describes (torchrun's or `moco-cxr launch`'s variables). */
  static async fromEnv(
    env: NodeJS.ProcessEnv = process.env,
    options: { timeoutMs?: number } = {},
  ): Promise<ProcessGroup> {
    const launch: LaunchEnv = readLaunchEnv(env);
    const timeoutMs =
      options.timeoutMs ?? (env.MOCO_CXR_DIST_TIMEOUT_MS ? Number(env.MOCO_CXR_DIST_TIMEOUT_MS) : undefined);
    if (timeoutMs !== undefined && !(timeoutMs > 0)) {
      throw new Error(
        `distributed: MOCO_CXR_DIST_TIMEOUT_MS='${env.MOCO_CXR_DIST_TIMEOUT_MS}' is not a positive number`,
      );
    }
    return ProcessGroup.init({
      rank: launch.rank,
      worldSize: launch.worldSize,
      host: launch.masterAddr,
      port: launch.masterPort,
      agentStore: launch.agentStore,
      restartCount: launch.restartCount,
      socketInterface: launch.socketInterface,
      timeoutMs,
    });
  }

  private get live(): NativeGroup {
    if (this.handle === undefined) throw new Error(`distributed: rank ${this.rank}: the process group was destroyed`);
    return this.handle;
  }

  /**
   * Reduces `tensor` (dense, contiguous) in place across ranks. Leave it
   * untouched until the promise settles; several tensors go flat through
   * {@link allreduceFlat}.
   */
  allreduce(tensor: torch.Tensor, op: ReduceOp = 'sum'): Promise<void> {
    return this.guard('allreduce', c10d.allreduce(this.live, [tensor], op));
  }

  /** Overwrites `tensor` (dense, contiguous) on every rank with `root`'s. */
  broadcast(tensor: torch.Tensor, root = 0): Promise<void> {
    return this.guard('broadcast', c10d.broadcast(this.live, [tensor], root));
  }

  /** Every rank's `input`, in rank order (new tensors, the caller's to free). */
  async allgather(input: torch.Tensor): Promise<torch.Tensor[]> {
    const source = input.isContiguous() ? input : input.contiguous();
    const outputs = Array.from({ length: this.size }, () =>
      torch.empty(source.shape, { dtype: source.dtype, device: source.device }),
    );
    try {
      await this.guard('allgather', c10d.allgather(this.live, [source], outputs));
    } catch (error) {
      torch.dispose(outputs);
      throw error;
    } finally {
      if (source !== input) source.dispose();
    }
    return outputs;
  }

  /** Waits until every rank has reached this point (at most `timeoutMs`, default the group's timeout). */
  barrier(timeoutMs?: number): Promise<void> {
    return this.guard('barrier', c10d.barrier(this.live, timeoutMs));
  }

  /**
   * A c10d Reducer over `parameters` (in the model's order, each a leaf that
   * requires grad) on this group; `GradientSync` (grad-sync.ts) drives it.
   */
  gradReducer(
    parameters: torch.Tensor[],
    options: { op: 'avg' | 'sum'; bucketBytes?: number; firstBucketBytes?: number },
  ): NativeGradReducer {
    return c10d.createGradReducer(this.live, parameters, options);
  }

  /** Backward from `losses` through `reducer`, its buckets reduced across the group as they fill. */
  async reducerBackward(reducer: NativeGradReducer, losses: torch.Tensor[]): Promise<NativeBackwardStats> {
    try {
      return await c10d.reducerBackward(reducer, losses);
    } catch (error) {
      const message = (error as Error).message;
      // This rank's own mistake (a parameter without a gradient) is no peer's failure.
      if (message.startsWith('reducerBackward:')) throw new Error(`distributed: rank ${this.rank}: ${message}`);
      return this.guard('gradient allreduce during backward', Promise.reject(error as Error));
    }
  }

  /** Frees a reducer made by {@link ProcessGroup.gradReducer} (its hooks go once no backward holds it). */
  destroyGradReducer(reducer: NativeGradReducer): void {
    c10d.destroyGradReducer(reducer);
  }

  /** Leaves the group (the native group closes once no collective holds it). */
  destroy(): void {
    if (this.handle !== undefined) c10d.destroyProcessGroup(this.handle);
    this.handle = undefined;
  }

  /**
   * Turns a collective's failure into a message naming the ranks: each rank
   * that sees a failure writes a key to the store, waits a moment, and names
   * the ranks that wrote none (they died or hang). If the store itself is gone,
   * rank 0, which serves it, is the one that died.
   */
  private async guard<T>(what: string, work: Promise<T>): Promise<T> {
    try {
      return await work;
    } catch (error) {
      const reason = (error as Error).message;
      const suspects = await this.silentRanks();
      const named =
        suspects === 'store-gone'
          ? 'rank 0 (which serves the rendezvous store) is gone'
          : suspects.length === 0
            ? 'every rank reported the failure'
            : `rank ${suspects.join(', rank ')} stopped answering (died or hung)`;
      throw new CollectiveError(
        `distributed: ${what} failed on rank ${this.rank} of ${this.size}: ${named}. ${reason}`,
        this.rank,
        suspects === 'store-gone' ? [0] : suspects,
      );
    }
  }

  private async silentRanks(): Promise<number[] | 'store-gone'> {
    const handle = this.handle;
    if (handle === undefined) return [];
    const others = Array.from({ length: this.size }, (_, r) => r).filter((r) => r !== this.rank);
    if (this.size === 2 && this.rank !== 0) {
      // Two ranks: the other is the only suspect; the store tells whether it is gone.
      try {
        await c10d.storeSet(handle, `moco_cxr_failed/${this.rank}`, '1');
      } catch {
        return 'store-gone';
      }
      return others;
    }
    try {
      await c10d.storeSet(handle, `moco_cxr_failed/${this.rank}`, '1');
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const seen = await c10d.storeCheck(
        handle,
        others.map((r) => `moco_cxr_failed/${r}`),
      );
      return others.filter((_, i) => seen[i] !== true);
    } catch {
      return this.rank === 0 ? others : 'store-gone';
    }
  }
}

/**
 * Runs `work` as a rank of `given`; without one, as a rank of the group the
 * launch environment describes when it asks for one (WORLD_SIZE > 1, as under
 * torchrun or `moco-cxr launch`), joined before `work` and left after it;
 * otherwise as one process (`undefined`).
 */
export async function inLaunchGroup<T>(
  given: ProcessGroup | undefined,
  work: (group: ProcessGroup | undefined) => Promise<T>,
): Promise<T> {
  if (given !== undefined || !isDistributedEnv()) return work(given);
  const group = await ProcessGroup.fromEnv();
  try {
    return await work(group);
  } finally {
    group.destroy();
  }
}
