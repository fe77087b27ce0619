import assert from 'node:assert/strict';
import { test } from 'node:test';

import { aggregateByStudy, auc, bootstrapAuc, scoreOverDraws } from '../../src/eval/index.js';

// Six images in five studies; two draws.
const labels = [1, 1, 0, 0, 1, 0];
const studyIds = ['a', 'a', 'b', 'c', 'd', 'e'];
const draws = [
  [0.9, 0.2, 0.3, 0.6, 0.4, 0.5],
  [0.7, 0.8, 0.1, 0.2, 0.6, 0.65],
];

test('scores draws per image: each AUC, their mean, and the bootstrap CI of the mean', () => {
  const boot = { replicates: 200, seed: 3 };
  const scored = scoreOverDraws({ scores: draws, labels }, boot);
  assert.deepEqual(
    scored.aucs,
    draws.map((d) => auc(d, labels)),
  );
  assert.deepEqual(scored.ci, bootstrapAuc(draws, labels, boot));
  assert.equal(scored.meanAuc, scored.ci?.estimate);
  const unbooted = scoreOverDraws({ scores: draws, labels });
  assert.equal(unbooted.ci, undefined);
  assert.equal(unbooted.meanAuc, (scored.aucs[0]! + scored.aucs[1]!) / 2);
});

test('scores draws per study by the max over each study’s images', () => {
  const scored = scoreOverDraws({ scores: draws, labels, studyIds }, { replicates: 100, seed: 1 });
  const perStudy = draws.map((d) => aggregateByStudy(studyIds, d, labels));
  assert.deepEqual(Array.from(scored.labels), [1, 0, 0, 1, 0]);
  assert.deepEqual(
    scored.scores.map((s) => Array.from(s)),
    perStudy.map((s) => Array.from(s.scores)),
  );
  assert.deepEqual(
    scored.aucs,
    perStudy.map((s) => auc(s.scores, s.labels)),
  );
});

test('a draw on a one-class test set has AUC NaN instead of throwing', () => {
  assert.ok(Number.isNaN(scoreOverDraws({ scores: [[0.1, 0.2]], labels: [1, 1] }).aucs[0]));
});
