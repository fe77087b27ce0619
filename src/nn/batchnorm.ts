/** Batch normalization over `[N, C, H, W]`, as `torch.nn.BatchNorm2d`. */
import { batchNorm, ones, scalar, zeros, type Tensor } from '../torch/index.js';
import { Module } from './module.js';

/** Settings of a BatchNorm2d. */
export interface BatchNormOptions {
  /** Added to the variance before the square root. Default 1e-5. */
  eps?: number;
  /**
   * Weight of the newest batch in the running statistics (default 0.1); null
   * keeps a cumulative average (weight 1 / number of batches seen).
   */
  momentum?: number | null;
  /** Learn a per-channel scale (`weight`) and shift (`bias`). Default true. */
  affine?: boolean;
  /** Keep running statistics for evaluation mode. Default true. */
  trackRunningStats?: boolean;
}

/**
 * Normalizes each channel by batch statistics in training mode (updating the
 * running mean, the unbiased running variance and `num_batches_tracked`) and
 * by the running statistics in evaluation mode.
 */
export class BatchNorm2d extends Module {
  readonly eps: number;
  readonly momentum: number | null;
  readonly affine: boolean;
  readonly trackRunningStats: boolean;

  constructor(
    readonly numFeatures: number,
    options: BatchNormOptions = {},
  ) {
    super();
    this.eps = options.eps ?? 1e-5;
    this.momentum = options.momentum === undefined ? 0.1 : options.momentum;
    this.affine = options.affine ?? true;
    this.trackRunningStats = options.trackRunningStats ?? true;
    this.registerParameter('weight', this.affine ? ones([numFeatures]) : null);
    this.registerParameter('bias', this.affine ? zeros([numFeatures]) : null);
    const track = this.trackRunningStats;
    this.registerBuffer('running_mean', track ? zeros([numFeatures]) : null);
    this.registerBuffer('running_var', track ? ones([numFeatures]) : null);
    this.registerBuffer('num_batches_tracked', track ? scalar(0, { dtype: 'int64' }) : null);
  }

  /** Per-channel scale (null without `affine`). */
  get weight(): Tensor | null {
    return this.optionalParam('weight');
  }

  /** Per-channel shift (null without `affine`). */
  get bias(): Tensor | null {
    return this.optionalParam('bias');
  }

  /** The `running_mean` buffer (null without `trackRunningStats`). */
  get runningMean(): Tensor | null {
    return this.optionalBuffer('running_mean');
  }

  /** The `running_var` buffer: the unbiased batch variance, averaged. */
  get runningVar(): Tensor | null {
    return this.optionalBuffer('running_var');
  }

  /** The `num_batches_tracked` buffer: an int64 scalar counting training batches. */
  get numBatchesTracked(): Tensor | null {
    return this.optionalBuffer('num_batches_tracked');
  }

  /** Sets the running statistics back to mean 0, variance 1, no batches seen. */
  resetRunningStats(): void {
    this.runningMean?.zero_();
    this.runningVar?.fill_(1);
    this.numBatchesTracked?.zero_();
  }

  override forward(input: Tensor): Tensor {
    if (input.ndim !== 4) throw new RangeError(`BatchNorm2d: expected 4D input, got ${input.ndim}D`);
    let factor = this.momentum ?? 0;
    const counter = this.numBatchesTracked;
    if (this.training && this.trackRunningStats && counter !== null) {
      counter.add_(1);
      if (this.momentum === null) factor = 1 / counter.item();
    }
    const runningMean = this.runningMean;
    const runningVar = this.runningVar;
    // Evaluation without running statistics falls back to batch statistics, as in PyTorch.
    const useBatchStats = this.training || (runningMean === null && runningVar === null);
    const useRunning = !this.training || this.trackRunningStats;
    return batchNorm(input, useRunning ? runningMean : null, useRunning ? runningVar : null, {
      weight: this.weight,
      bias: this.bias,
      training: useBatchStats,
      momentum: factor,
      eps: this.eps,
    });
  }

  // Files written before PyTorch 0.4.1 lack the counter; PyTorch resets it to 0.
  protected override defaultOnLoad(name: string): number | undefined {
    return name === 'num_batches_tracked' ? 0 : undefined;
  }

  override extraRepr(): string {
    return (
      `${this.numFeatures}, eps=${this.eps}, momentum=${this.momentum ?? 'None'}, ` +
      `affine=${this.affine ? 'True' : 'False'}, track_running_stats=${this.trackRunningStats ? 'True' : 'False'}`
    );
  }
}
