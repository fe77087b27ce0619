import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { Prng } from '../../src/data/prng.js';
import {
  aggregateByStudy,
  auc,
  bootstrapAuc,
  bootstrapAucDifference,
  quantile,
  rocCurve,
} from '../../src/eval/index.js';

/** The textbook O(n²) Mann–Whitney count: pairs ordered right, ties one half. */
function mannWhitney(scores: number[], labels: number[]): number {
  let wins = 0;
  let pairs = 0;
  for (let i = 0; i < scores.length; i++) {
    if (labels[i] !== 1) continue;
    for (let j = 0; j < scores.length; j++) {
      if (labels[j] !== 0) continue;
      pairs++;
      const a = scores[i] as number;
      const b = scores[j] as number;
      wins += a > b ? 1 : a === b ? 0.5 : 0;
    }
  }
  return wins / pairs;
}

describe('auc', () => {
  test('hand-worked cases', () => {
    assert.equal(auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]), 0.75);
    assert.equal(auc([1, 2, 3, 4], [0, 0, 1, 1]), 1);
    assert.equal(auc([4, 3, 2, 1], [0, 0, 1, 1]), 0);
    // All tied: every pair counts one half.
    assert.equal(auc([5, 5, 5, 5], [0, 1, 0, 1]), 0.5);
    // One tie across classes among 2×2 pairs: (1 + 1 + 0.5 + 1) / 4.
    assert.equal(auc([0.2, 0.5, 0.5, 0.9], [0, 0, 1, 1]), 0.875);
  });

  test('equals the O(n²) Mann–Whitney count on random data with ties', () => {
    const random = new Prng(7);
    for (let trial = 0; trial < 20; trial++) {
      const n = 5 + random.below(200);
      const scores = Array.from({ length: n }, () => Math.round(random.next() * 20) / 20);
      const labels = Array.from({ length: n }, (_, i) => (i < 2 ? i : random.below(2)));
      assert.ok(Math.abs(auc(scores, labels) - mannWhitney(scores, labels)) < 1e-12);
    }
  });

  test('one class only is a clear error', () => {
    assert.throws(() => auc([0.1, 0.2], [1, 1]), /only one class present \(2 positive, 0 negative\)/);
    assert.throws(() => auc([0.1, 0.2], [0, 0]), /only one class/);
  });

  test('bad input is rejected', () => {
    assert.throws(() => auc([0.1], [0, 1]), /1 scores but 2 labels/);
    assert.throws(() => auc([0.1, 0.2], [0, 2]), /labels must be 0 or 1/);
    assert.throws(() => auc([NaN, 0.2], [0, 1]), /NaN/);
  });
});

describe('rocCurve', () => {
  test('runs from (0,0) to (1,1) with one point per distinct score', () => {
    const points = rocCurve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]);
    assert.deepEqual(
      points.map((p) => [p.falsePositiveRate, p.truePositiveRate]),
      [
        [0, 0],
        [0, 0.5],
        [0.5, 0.5],
        [0.5, 1],
        [1, 1],
      ],
    );
    // The trapezoid area under the points is the AUC.
    let area = 0;
    for (let i = 1; i < points.length; i++) {
      const a = points[i - 1]!;
      const b = points[i]!;
      area += ((b.falsePositiveRate - a.falsePositiveRate) * (a.truePositiveRate + b.truePositiveRate)) / 2;
    }
    assert.equal(area, 0.75);
  });
});

describe('bootstrap', () => {
  function noisyPredictions(n: number, separation: number, seed: number): { scores: number[]; labels: number[] } {
    const random = new Prng(seed);
    const labels = Array.from({ length: n }, (_, i) => i % 2);
    const scores = labels.map((y) => y * separation + random.next());
    return { scores, labels };
  }

  test('quantile interpolates linearly', () => {
    assert.equal(quantile([1, 2, 3, 4], 0.5), 2.5);
    assert.equal(quantile([1, 2, 3, 4], 0), 1);
    assert.equal(quantile([1, 2, 3, 4], 1), 4);
  });

  test('is reproducible for a seed, contains the estimate, and narrows with n', () => {
    const small = noisyPredictions(60, 0.5, 1);
    const a = bootstrapAuc([small.scores], small.labels, { replicates: 300, seed: 3 });
    const b = bootstrapAuc([small.scores], small.labels, { replicates: 300, seed: 3 });
    assert.deepEqual(a, b);
    assert.ok(a.lower <= a.estimate && a.estimate <= a.upper);
    assert.equal(a.estimate, auc(small.scores, small.labels));
    const large = noisyPredictions(2000, 0.5, 1);
    const wide = a.upper - a.lower;
    const c = bootstrapAuc([large.scores], large.labels, { replicates: 300, seed: 3 });
    assert.ok(c.upper - c.lower < wide / 3, `${c.upper - c.lower} vs ${wide}`);
    const other = bootstrapAuc([small.scores], small.labels, { replicates: 300, seed: 4 });
    assert.notDeepEqual(a, other);
  });

  test('averages draws inside each resample', () => {
    const d1 = noisyPredictions(100, 0.3, 1);
    const d2 = noisyPredictions(100, 0.8, 2);
    const ci = bootstrapAuc([d1.scores, d2.scores], d1.labels, { replicates: 200 });
    const mean = (auc(d1.scores, d1.labels) + auc(d2.scores, d1.labels)) / 2;
    assert.ok(Math.abs(ci.estimate - mean) < 1e-12);
  });

  test('paired difference: identical models give exactly zero, a better model a CI above zero', () => {
    const base = noisyPredictions(400, 0.3, 5);
    const same = bootstrapAucDifference([base.scores], [base.scores], base.labels, { replicates: 200 });
    assert.deepEqual([same.estimate, same.lower, same.upper], [0, 0, 0]);
    // The better model sees the same noise plus a stronger signal.
    const better = base.scores.map((s, i) => s + 0.5 * (base.labels[i] as number));
    const diff = bootstrapAucDifference([better], [base.scores], base.labels, { replicates: 300 });
    assert.ok(diff.estimate > 0 && diff.lower > 0, JSON.stringify(diff));
    // Pairing cancels the noise both models share: the paired CI is narrower than an
    // unpaired one built from the two separate widths.
    const ciBetter = bootstrapAuc([better], base.labels, { replicates: 300 });
    const ciBase = bootstrapAuc([base.scores], base.labels, { replicates: 300, seed: 1 });
    const unpaired = Math.hypot(ciBetter.upper - ciBetter.lower, ciBase.upper - ciBase.lower);
    assert.ok(diff.upper - diff.lower < unpaired, `${diff.upper - diff.lower} vs ${unpaired}`);
    assert.ok(Math.abs(diff.estimate - (auc(better, base.labels) - auc(base.scores, base.labels))) < 1e-12);
  });
});

describe('aggregateByStudy', () => {
  test('takes the max over a study and keeps its label', () => {
    const out = aggregateByStudy(['a', 'a', 'b', 'c', 'c'], [0.2, 0.7, 0.4, 0.1, 0.3], [1, 1, 0, 0, 0]);
    assert.deepEqual(out.studyIds, ['a', 'b', 'c']);
    assert.deepEqual(Array.from(out.scores), [0.7, 0.4, 0.3]);
    assert.deepEqual(Array.from(out.labels), [1, 0, 0]);
    assert.throws(() => aggregateByStudy(['a', 'a'], [0, 1], [0, 1]), /different labels/);
  });
});
