/**
 * The score of a cell trained several times (draws) on one test set, as
 * MoCo-CXR reports it: each draw's test AUC, their mean, and the percentile
 * bootstrap CI of that mean; optionally per study (max over a study's images).
 */
import { auc } from './auc.js';
import { bootstrapAuc, type BootstrapOptions, type Interval } from './bootstrap.js';
import { aggregateByStudy } from './studies.js';

/** The draws of one cell on one test set. */
export interface DrawScores {
  /** One array of image scores per draw, in test-set order. */
  scores: readonly ArrayLike<number>[];
  /** Test labels (0 or 1), one per image. */
  labels: ArrayLike<number>;
  /** The study of each image: with it, each draw's images collapse to studies (max score) before scoring. */
  studyIds?: readonly string[];
}

/** What {@link scoreOverDraws} computes. */
export interface ScoredDraws {
  /** Scores per scored unit (study, or image without study ids), one array per draw. */
  scores: Float64Array[];
  /** Labels per scored unit. */
  labels: Float64Array;
  /** Test AUC of each draw (NaN where the test set holds one class). */
  aucs: number[];
  /** Mean over draws: the interval's estimate with a bootstrap, else the mean of `aucs`. */
  meanAuc: number;
  /** Bootstrap CI of the mean over draws (the test set resampled); absent without `bootstrap`. */
  ci?: Interval;
}

function aucOrNaN(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  try {
    return auc(scores, labels);
  } catch {
    return NaN;
  }
}

/**
 * Scores the draws of one cell: per-draw AUCs, their mean and, given
 * `bootstrap`, the CI of the mean with the test set resampled once for all
 * draws.
 */
export function scoreOverDraws(draws: DrawScores, bootstrap?: BootstrapOptions): ScoredDraws {
  const { studyIds } = draws;
  let labels: Float64Array = Float64Array.from(draws.labels);
  let scores: Float64Array[] = draws.scores.map((s) => Float64Array.from(s));
  if (studyIds !== undefined) {
    const perStudy = draws.scores.map((s) => aggregateByStudy(studyIds, s, draws.labels));
    labels = perStudy[0]?.labels ?? aggregateByStudy(studyIds, draws.labels, draws.labels).labels;
    scores = perStudy.map((s) => s.scores);
  }
  const aucs = scores.map((s) => aucOrNaN(s, labels));
  const scored: ScoredDraws = { scores, labels, aucs, meanAuc: aucs.reduce((a, b) => a + b, 0) / aucs.length };
  if (bootstrap !== undefined) {
    scored.ci = bootstrapAuc(scores, labels, bootstrap);
    scored.meanAuc = scored.ci.estimate;
  }
  return scored;
}
