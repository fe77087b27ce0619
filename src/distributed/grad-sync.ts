/**
 * How a data-parallel step reduces its gradients across ranks, in one of two
 * ways that compute the same numbers:
 *
 * - `overlap` (as PyTorch's DistributedDataParallel): libtorch's own c10d
 *   Reducer hooks every parameter's gradient accumulator; as backward fills a
 *   bucket (25 MB, the first 1 MB), that bucket's allreduce starts while
 *   backward goes on with the earlier layers. Backward runs on a worker
 *   thread (native/grad_reducer.cc) and the promise resolves with every
 *   `.grad` reduced.
 * - `after-backward`: backward on the JavaScript thread, then the gradients in
 *   flat buckets, one allreduce after another ({@link reduceGradients}).
 *
 * Both sum the same gradients with one Gloo allreduce per bucket and divide
 * the sum by the world size for 'avg' (the Reducer's default would divide
 * each gradient before summing; ours is a communication hook that sums). With
 * two ranks each element is one addition `a + b`, so both paths give the same
 * bits whatever the buckets; with more ranks Gloo's summation order follows
 * the bucket's size, and the two paths may differ by float rounding.
 *
 * The Reducer holds a second copy of the gradients in its buckets (the size
 * of the parameters) for the life of the sync. Every parameter given must
 * receive a gradient in every step (the Reducer's `find_unused_parameters` is
 * off): MoCo's query encoder and a fine-tuned backbone use all of theirs, and
 * parameters that do not require grad (the key encoder) are left out.
 */
import { type Setting } from '../config/settings.js';
import * as torch from '../torch/index.js';
import { type ProcessGroup } from './group.js';
import { type NativeGradReducer } from './native.js';
import { bucketsOf, DEFAULT_BUCKET_BYTES, reduceGradients } from './sync.js';

/** The ways of reducing gradients: during backward, or after it. */
export const GRAD_SYNC_MODES = ['overlap', 'after-backward'] as const;
export type GradSyncMode = (typeof GRAD_SYNC_MODES)[number];

/** The `gradSync` setting of the data-parallel entry points (pretraining, fine-tuning). */
export const GRAD_SYNC_SETTING = {
  key: 'gradSync',
  type: 'string',
  oneOf: GRAD_SYNC_MODES,
  default: 'overlap',
  resumable: true,
  help: "data-parallel gradient allreduce: overlap (bucket by bucket during backward, c10d's Reducer as DDP) | after-backward",
} as const satisfies Setting;

/** DDP's first, smaller bucket: the last layers' gradients go out as soon as they are ready. */
export const FIRST_BUCKET_BYTES = 1024 * 1024;

/** What one step's backward and reduction took. */
export interface GradSyncStep {
  mode: GradSyncMode;
  /** Buckets reduced. */
  buckets: number;
  /** Buckets whose allreduce started while backward still had gradients to compute (0 after backward). */
  launchedEarly: number;
  /** Backward's own time (with the overlap, the gradient computation with the buckets' copies and launches). */
  backwardMs: number;
  /** Reduction time that backward did not hide: all of it after backward, the wait for the last buckets with the overlap. */
  exposedMs: number;
}

/** Options of a {@link GradientSync}. */
export interface GradientSyncOptions {
  mode?: GradSyncMode;
  /** 'avg' (DDP) or 'sum' (each rank's loss already divided by a global count). Default 'avg'. */
  op?: 'avg' | 'sum';
  bucketBytes?: number;
}

/** Backward and the gradient allreduce of a data-parallel step, over fixed parameters. */
export class GradientSync {
  readonly mode: GradSyncMode;
  readonly op: 'avg' | 'sum';
  private readonly parameters: torch.Tensor[];
  private readonly bucketBytes: number;
  /** The after-backward path's bucket count: fixed by the parameters' sizes, so counted once. */
  private readonly flatBuckets: number;
  private reducer: NativeGradReducer | undefined;

  /**
   * Builds the sync of `parameters` (in the model's order; those that do not
   * require grad are left out) across `group`. Every rank builds it with the
   * same parameters, and then calls {@link GradientSync.backward} in every step.
   */
  constructor(
    readonly group: ProcessGroup,
    parameters: torch.Tensor[],
    options: GradientSyncOptions = {},
  ) {
    this.mode = options.mode ?? GRAD_SYNC_SETTING.default;
    this.op = options.op ?? 'avg';
    this.bucketBytes = options.bucketBytes ?? DEFAULT_BUCKET_BYTES;
    this.parameters = parameters.filter((p) => p.requiresGrad);
    this.flatBuckets = group.size === 1 ? 0 : bucketsOf(this.parameters, this.bucketBytes).length;
    if (this.mode === 'overlap' && group.size > 1 && this.parameters.length > 0) {
      this.reducer = group.gradReducer(this.parameters, {
        op: this.op,
        bucketBytes: this.bucketBytes,
        firstBucketBytes: Math.min(FIRST_BUCKET_BYTES, this.bucketBytes),
      });
    }
  }

  /**
   * Backward from `loss` and the reduction of every parameter's gradient
   * across ranks; resolves when each `.grad` holds the reduced gradient.
   * A rank without a loss this step (none of its rows labelled) passes
   * `undefined` and takes part with zero gradients.
   */
  async backward(loss: torch.Tensor | undefined): Promise<GradSyncStep> {
    const started = performance.now();
    if (this.reducer === undefined) {
      if (loss !== undefined) loss.backward();
      const backwardEnd = performance.now();
      await reduceGradients(this.group, this.parameters, this.op, this.bucketBytes);
      return {
        mode: this.mode,
        buckets: this.flatBuckets,
        launchedEarly: 0,
        backwardMs: backwardEnd - started,
        exposedMs: performance.now() - backwardEnd,
      };
    }
    // Without a loss, the Reducer still needs each parameter's hook to fire:
    // a zero loss over all of them gives zero gradients, exactly.
    const zero = loss === undefined ? torch.tidy(() => zeroLoss(this.parameters)) : undefined;
    try {
      const stats = await this.group.reducerBackward(this.reducer, [loss ?? zero!]);
      return {
        mode: this.mode,
        buckets: stats.buckets,
        launchedEarly: stats.launchedEarly,
        backwardMs: stats.computeMs,
        exposedMs: stats.exposedMs,
      };
    } finally {
      zero?.dispose();
    }
  }

  /** Removes the Reducer's hooks and frees its buckets. */
  dispose(): void {
    if (this.reducer !== undefined) this.group.destroyGradReducer(this.reducer);
    this.reducer = undefined;
  }
}

/** 0 × the sum of every parameter: a loss whose gradient is zero for each. */
function zeroLoss(parameters: torch.Tensor[]): torch.Tensor {
  return parameters
    .map((p) => p.sum())
    .reduce((a, b) => a.add(b))
    .mul(0);
}
