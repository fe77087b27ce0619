/**
 * Bootstrap confidence intervals for AUC, as MoCo-CXR reports them: resample
 * the test set with replacement (same size), recompute, and take percentiles.
 * Several draws (models trained on different label subsets) are averaged
 * inside each resample; the difference CI uses the same resampled indices for
 * both models, so the test-set noise they share cancels.
 */
import { auc } from './auc.js';
import { Prng } from '../data/prng.js';

export interface BootstrapOptions {
  /** Number of resamples (default 1000). */
  replicates?: number;
  /** Seed of the resampling (default 0). */
  seed?: number;
  /** Confidence level (default 0.95). */
  level?: number;
}

/** A point estimate with its percentile interval. */
export interface Interval {
  estimate: number;
  lower: number;
  upper: number;
  /** Resamples that contained only one class and were drawn again. */
  redrawn: number;
  replicates: number;
}

/** The q-quantile (0..1) of sorted values, linearly interpolated (NumPy's default). */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) throw new RangeError('quantile of an empty list');
  const position = (sorted.length - 1) * q;
  const below = Math.floor(position);
  const above = Math.ceil(position);
  const low = sorted[below] as number;
  const high = sorted[above] as number;
  return low + (high - low) * (position - below);
}

function meanAuc(predictions: readonly ArrayLike<number>[], labels: ArrayLike<number>, index?: Int32Array): number {
  let total = 0;
  for (const scores of predictions) {
    if (index === undefined) {
      total += auc(scores, labels);
    } else {
      const s = new Float64Array(index.length);
      const y = new Float64Array(index.length);
      for (let k = 0; k < index.length; k++) {
        s[k] = scores[index[k] as number] as number;
        y[k] = labels[index[k] as number] as number;
      }
      total += auc(s, y);
    }
  }
  return total / predictions.length;
}

function resample(n: number, labels: ArrayLike<number>, random: Prng): { index: Int32Array; tries: number } {
  // A resample with one class has no AUC; draw it again (counted and reported).
  for (let tries = 1; ; tries++) {
    const index = new Int32Array(n);
    let positives = 0;
    for (let k = 0; k < n; k++) {
      const i = random.below(n);
      index[k] = i;
      positives += labels[i] as number;
    }
    if (positives > 0 && positives < n) return { index, tries };
    if (tries > 1000) throw new RangeError('bootstrap: resamples keep missing a class; the test set is too small');
  }
}

function checkDraws(name: string, draws: readonly ArrayLike<number>[], n: number): void {
  if (draws.length === 0) throw new RangeError(`${name}: at least one set of predictions is needed`);
  for (const [d, scores] of draws.entries()) {
    if (scores.length !== n) throw new RangeError(`${name}: draw ${d} has ${scores.length} scores for ${n} labels`);
  }
}

/**
 * Resamples the test set `replicates` times and returns the percentile
 * interval of `statistic` (computed on the resampled indices) around its value
 * on the whole set.
 */
function percentileBootstrap(
  labels: ArrayLike<number>,
  options: BootstrapOptions,
  statistic: (index?: Int32Array) => number,
): Interval {
  const replicates = options.replicates ?? 1000;
  const level = options.level ?? 0.95;
  const random = new Prng(options.seed ?? 0);
  const values: number[] = [];
  let redrawn = 0;
  for (let r = 0; r < replicates; r++) {
    const { index, tries } = resample(labels.length, labels, random);
    redrawn += tries - 1;
    values.push(statistic(index));
  }
  values.sort((a, b) => a - b);
  return {
    estimate: statistic(),
    lower: quantile(values, (1 - level) / 2),
    upper: quantile(values, 1 - (1 - level) / 2),
    redrawn,
    replicates,
  };
}

/**
 * AUC (mean over draws) with a bootstrap percentile CI. `predictions` holds one
 * score array per draw, all on the same test set.
 */
export function bootstrapAuc(
  predictions: readonly ArrayLike<number>[],
  labels: ArrayLike<number>,
  options: BootstrapOptions = {},
): Interval {
  checkDraws('bootstrapAuc', predictions, labels.length);
  return percentileBootstrap(labels, options, (index) => meanAuc(predictions, labels, index));
}

/**
 * Paired bootstrap CI of mean-over-draws AUC(a) − AUC(b): both models are scored
 * on the same resampled indices in each replicate.
 */
export function bootstrapAucDifference(
  a: readonly ArrayLike<number>[],
  b: readonly ArrayLike<number>[],
  labels: ArrayLike<number>,
  options: BootstrapOptions = {},
): Interval {
  checkDraws('bootstrapAucDifference (first model)', a, labels.length);
  checkDraws('bootstrapAucDifference (second model)', b, labels.length);
  return percentileBootstrap(labels, options, (index) => meanAuc(a, labels, index) - meanAuc(b, labels, index));
}
