import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { Prng } from '../../src/data/prng.js';
import { type XrayRecord } from '../../src/data/records.js';
import { auc } from '../../src/eval/auc.js';
import * as torch from '../../src/torch/index.js';
import {
  epochsForFraction,
  evaluationSteps,
  labelledRows,
  testPredictions,
  TopCheckpoints,
} from '../../src/downstream/cell.js';
import { fitLinearHead, predictLinear } from '../../src/downstream/linear.js';

/** Points in `dim` dimensions labelled by the side of a fixed hyperplane, kept off it by a margin. */
function separable(count: number, dim: number, seed: number): { x: Float32Array; y: Float32Array } {
  const rng = new Prng(seed);
  const normal = Array.from({ length: dim }, (_, i) => (i % 2 === 0 ? 1 : -0.5));
  const x = new Float32Array(count * dim);
  const y = new Float32Array(count);
  for (let n = 0; n < count; n++) {
    let side = 0;
    do {
      side = 0;
      for (let d = 0; d < dim; d++) {
        const value = 2 * rng.next() - 1;
        x[n * dim + d] = value;
        side += value * normal[d]!;
      }
    } while (Math.abs(side) < 0.3);
    y[n] = side > 0 ? 1 : 0;
  }
  return { x, y };
}

describe('epochs by label fraction', () => {
  test("MoCo-CXR's 5·4^(log8(1/f)): 500, 107, 23, 5 epochs for 0.1%, 1%, 10%, 100%", () => {
    assert.deepEqual([0.001, 0.01, 0.1, 1].map(epochsForFraction), [500, 107, 23, 5]);
    // The Shenzhen fractions: 5·16^(2/3) = 31.7, 5·4^(2/3) = 12.6.
    assert.deepEqual([0.0625, 0.25].map(epochsForFraction), [31, 12]);
  });

  test('fractions outside (0, 1] are refused', () => {
    for (const bad of [0, -0.1, 1.5, NaN]) assert.throws(() => epochsForFraction(bad), /fraction must be in \(0, 1\]/);
  });
});

describe('linear head', () => {
  test('reaches test AUC 1 on linearly separable features', async () => {
    const dim = 8;
    const train = separable(96, dim, 1);
    const val = separable(40, dim, 2);
    const test = separable(60, dim, 3);
    const trainX = torch.tensor(train.x, [96, dim]);
    const valX = torch.tensor(val.x, [40, dim]);
    const testX = torch.tensor(test.x, [60, dim]);
    const fit = await fitLinearHead(
      { features: trainX, labels: train.y, mask: new Float32Array(96).fill(1) },
      { features: valX, labels: Array.from(val.y) },
      { epochs: 40, lr: 0.05, seed: 7, ensemble: 3 },
    );
    try {
      assert.equal(fit.epochs.length, 40);
      assert.ok(fit.epochs[39]!.trainLoss < fit.epochs[0]!.trainLoss / 2, 'the training loss falls');
      assert.equal(fit.checkpoints.length, 3);
      assert.equal(fit.checkpoints[0]!.valAuc, 1);
      const scores = predictLinear(
        fit.checkpoints.map((c) => c.item),
        testX,
      );
      assert.equal(auc(scores, test.y), 1);
      assert.ok(scores.every((s) => s > 0 && s < 1));
    } finally {
      fit.dispose();
      torch.dispose([trainX, valX, testX]);
    }
  });

  test('masked labels stay out of the loss', async () => {
    const dim = 6;
    const train = separable(64, dim, 11);
    const val = separable(32, dim, 12);
    // Every third label is flipped and masked: with the mask the head still separates perfectly.
    const labels = Float32Array.from(train.y, (y, i) => (i % 3 === 0 ? 1 - y : y));
    const mask = Float32Array.from(train.y, (_, i) => (i % 3 === 0 ? 0 : 1));
    const trainX = torch.tensor(train.x, [64, dim]);
    const valX = torch.tensor(val.x, [32, dim]);
    const run = (m: Float32Array) =>
      fitLinearHead(
        { features: trainX, labels, mask: m },
        { features: valX, labels: Array.from(val.y) },
        { epochs: 60, lr: 0.05, seed: 3, ensemble: 1 },
      );
    const masked = await run(mask);
    const unmasked = await run(new Float32Array(64).fill(1));
    try {
      const scoresMasked = predictLinear([masked.checkpoints[0]!.item], trainX);
      const scoresAll = predictLinear([unmasked.checkpoints[0]!.item], trainX);
      assert.equal(auc(scoresMasked, train.y), 1);
      // The flipped labels pull the unmasked head: its training loss stays far higher.
      assert.ok(masked.epochs[59]!.trainLoss < unmasked.epochs[59]!.trainLoss / 2);
      assert.ok(auc(scoresAll, labels) < 1);
    } finally {
      masked.dispose();
      unmasked.dispose();
      torch.dispose([trainX, valX]);
    }
  });

  test('the same seed gives the same head; another seed another', async () => {
    const dim = 4;
    const data = separable(40, dim, 5);
    const x = torch.tensor(data.x, [40, dim]);
    const fit = (seed: number) =>
      fitLinearHead(
        { features: x, labels: data.y, mask: new Float32Array(40).fill(1) },
        { features: x, labels: Array.from(data.y) },
        { epochs: 3, seed, ensemble: 1 },
      );
    const [a, b, c] = [await fit(1), await fit(1), await fit(2)];
    try {
      const [pa, pb, pc] = [a, b, c].map((f) => predictLinear([f.checkpoints[0]!.item], x));
      assert.deepEqual(pa, pb);
      assert.notDeepEqual(pa, pc);
    } finally {
      [a, b, c].forEach((f) => f.dispose());
      x.dispose();
    }
  });
});

describe('model selection', () => {
  test('keeps the best checkpoints by validation AUC, the later on ties, and frees the rest', () => {
    const released: string[] = [];
    const top = new TopCheckpoints<string>(2, (item) => released.push(item));
    const snapshots: string[] = [];
    const offer = (epoch: number, valAuc: number) =>
      top.offer(epoch, epoch * 10, valAuc, () => {
        snapshots.push(`e${epoch}`);
        return `e${epoch}`;
      });
    assert.equal(offer(1, 0.6), true);
    assert.equal(offer(2, 0.8), true);
    assert.equal(offer(3, 0.6), true, 'a tie with the worst kept one replaces it');
    assert.deepEqual(released, ['e1']);
    assert.equal(offer(4, NaN), false, 'an undefined AUC never enters');
    assert.equal(offer(5, 0.5), false);
    assert.equal(offer(6, 0.8), true, 'a tie with the best ranks first');
    assert.deepEqual(
      top.entries.map((e) => [e.epoch, e.valAuc]),
      [
        [6, 0.8],
        [2, 0.8],
      ],
    );
    assert.deepEqual(snapshots, ['e1', 'e2', 'e3', 'e6'], 'only entering checkpoints are copied');
    assert.deepEqual(released, ['e1', 'e3']);
    top.dispose();
    assert.deepEqual(released, ['e1', 'e3', 'e6', 'e2']);
  });

  test('evaluations at each epoch end and every evalEvery images within it', () => {
    assert.deepEqual([...evaluationSteps(5, 16, 8192)], [5]);
    assert.deepEqual(
      [...evaluationSteps(10, 16, 64)].sort((a, b) => a - b),
      [4, 8, 10],
    );
    assert.deepEqual(
      [...evaluationSteps(3, 16, 1)].sort((a, b) => a - b),
      [1, 2, 3],
    );
  });

  test('test predictions leave out masked labels and keep study ids', () => {
    const record = (id: string, label: number | null, study: string): XrayRecord => ({
      id,
      path: `/x/${id}.png`,
      labels: { Effusion: label },
      patientId: id,
      studyId: study,
    });
    const records = [record('a', 1, 's1'), record('b', null, 's1'), record('c', 0, 's2'), record('d', 1, 's3')];
    assert.deepEqual(labelledRows(records, 'Effusion'), { rows: [0, 2, 3], labels: [1, 0, 1] });
    const { test: predictions, testAuc } = testPredictions(records, 'Effusion', [0.9, 0.2, 0.1]);
    assert.deepEqual(predictions, {
      ids: ['a', 'c', 'd'],
      studyIds: ['s1', 's2', 's3'],
      labels: [1, 0, 1],
      scores: [0.9, 0.2, 0.1],
    });
    assert.equal(testAuc, 0.5);
    assert.throws(() => testPredictions(records, 'Effusion', [0.5]), /1 test scores for 3 labelled test images/);
  });
});
