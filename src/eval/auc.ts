/**
 * Area under the ROC curve, computed exactly: the probability that a random
 * positive scores above a random negative, ties counting one half — the
 * Mann–Whitney U statistic divided by (positives × negatives).
 */

/** Scores and 0/1 labels, equally long. */
export interface ScoredLabels {
  scores: ArrayLike<number>;
  labels: ArrayLike<number>;
}

function check(scores: ArrayLike<number>, labels: ArrayLike<number>): void {
  if (scores.length !== labels.length) {
    throw new RangeError(`auc: ${scores.length} scores but ${labels.length} labels`);
  }
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i];
    if (y !== 0 && y !== 1) throw new RangeError(`auc: label ${i} is ${String(y)}; labels must be 0 or 1`);
    if (Number.isNaN(scores[i])) throw new RangeError(`auc: score ${i} is NaN`);
  }
}

/**
 * AUC of `scores` for binary `labels` in O(n log n): ranks with ties averaged,
 * then U = (rank sum of positives − P(P+1)/2). Throws when a class is absent,
 * since the AUC is undefined there.
 */
export function auc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  check(scores, labels);
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => (scores[a] as number) - (scores[b] as number));
  let positives = 0;
  let positiveRankSum = 0;
  let i = 0;
  while (i < n) {
    let j = i;
    const value = scores[order[i] as number] as number;
    while (j + 1 < n && scores[order[j + 1] as number] === value) j++;
    // Ranks i+1..j+1 are tied: each gets their mean.
    const meanRank = (i + j + 2) / 2;
    for (let k = i; k <= j; k++) {
      if (labels[order[k] as number] === 1) {
        positives++;
        positiveRankSum += meanRank;
      }
    }
    i = j + 1;
  }
  const negatives = n - positives;
  if (positives === 0 || negatives === 0) {
    throw new RangeError(`auc: undefined with only one class present (${positives} positive, ${negatives} negative)`);
  }
  return (positiveRankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

/** One point of a ROC curve. */
export interface RocPoint {
  threshold: number;
  falsePositiveRate: number;
  truePositiveRate: number;
}

/**
 * ROC curve points from the highest threshold down, one point per distinct
 * score, starting at (0, 0) and ending at (1, 1).
 */
export function rocCurve(scores: ArrayLike<number>, labels: ArrayLike<number>): RocPoint[] {
  check(scores, labels);
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => (scores[b] as number) - (scores[a] as number));
  let positives = 0;
  for (let k = 0; k < n; k++) positives += labels[k] as number;
  const negatives = n - positives;
  if (positives === 0 || negatives === 0) throw new RangeError('rocCurve: both classes must be present');
  const points: RocPoint[] = [{ threshold: Infinity, falsePositiveRate: 0, truePositiveRate: 0 }];
  let tp = 0;
  let fp = 0;
  let i = 0;
  while (i < n) {
    const value = scores[order[i] as number] as number;
    while (i < n && scores[order[i] as number] === value) {
      if (labels[order[i] as number] === 1) tp++;
      else fp++;
      i++;
    }
    points.push({ threshold: value, falsePositiveRate: fp / negatives, truePositiveRate: tp / positives });
  }
  return points;
}
