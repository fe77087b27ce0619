import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, test } from 'node:test';

import { Prng } from '../../src/data/prng.js';
import { auc } from '../../src/eval/auc.js';
import {
  fitLogistic,
  logisticObjective,
  type LogisticProblem,
  minimizeLbfgs,
  selectLogistic,
  standardize,
  standardizer,
} from '../../src/downstream/logistic.js';
import { PYTHON, runPython } from '../helpers/oracle.js';
import { type FeatureSet } from '../../src/downstream/features.js';
import { linearProbe } from '../../src/downstream/linear.js';
import { type XrayRecord } from '../../src/data/records.js';
import * as torch from '../../src/torch/index.js';

const EPS64 = 2 ** -52;

/** Rows from a noisy logistic model (so the classes overlap and the optimum is finite), some labels masked. */
function noisyProblem(n: number, d: number, seed: number): LogisticProblem {
  const rng = new Prng(seed);
  const truth = Array.from({ length: d }, (_, j) => (j % 3 === 0 ? 1.5 : -0.5) / Math.sqrt(d));
  const x = new Float64Array(n * d);
  const y = new Float64Array(n);
  const weight = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    let z = 0.3;
    for (let j = 0; j < d; j++) {
      // Columns on different scales and offsets, as raw backbone features are.
      const value = (2 * rng.next() - 1) * (1 + j) + 0.5 * j;
      x[r * d + j] = value;
      z += ((value - 0.5 * j) / (1 + j)) * (truth[j] as number) * 3;
    }
    y[r] = rng.next() < 1 / (1 + Math.exp(-z)) ? 1 : 0;
    weight[r] = r % 7 === 3 ? 0 : 1;
  }
  return { x, y, weight, n, d };
}

/** Newton's method in float64 (numpy) on the same objective, per L2 strength; also the Hessian's smallest eigenvalue. */
const NEWTON = `
import numpy as np
n, d = INPUT['n'], INPUT['d']
x = np.array(INPUT['x'], dtype=np.float64).reshape(n, d)
y = np.array(INPUT['y'], dtype=np.float64)
m = np.array(INPUT['weight'], dtype=np.float64)
known = m.sum()
xb = np.concatenate([x, np.ones((n, 1))], 1)
def softplus(z):
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))
OUTPUT = []
for l2 in INPUT['l2']:
    penalty = np.full(d + 1, l2); penalty[d] = 0
    theta = np.zeros(d + 1)
    for _ in range(100):
        p = 1 / (1 + np.exp(-(xb @ theta)))
        grad = xb.T @ (m * (p - y)) / known + penalty * theta
        hess = (xb.T * (m * p * (1 - p) / known)) @ xb + np.diag(penalty)
        theta = theta - np.linalg.solve(hess, grad)
    z = xb @ theta
    p = 1 / (1 + np.exp(-z))
    hess = (xb.T * (m * p * (1 - p) / known)) @ xb + np.diag(penalty)
    OUTPUT.append({'theta': theta.tolist(),
                   'loss': float((m * (softplus(z) - y * z)).sum() / known + 0.5 * (penalty * theta * theta).sum()),
                   'mu': float(np.linalg.eigvalsh(hess)[0]),
                   'grad': float(np.abs(xb.T @ (m * (p - y)) / known + penalty * theta).max())})
`;

/** Why the numpy reference cannot run, or undefined. */
function numpyMissing(): string | undefined {
  if (!existsSync(PYTHON)) return `${PYTHON} not found`;
  const probe = spawnSync(PYTHON, ['-c', 'import numpy'], { encoding: 'utf8' });
  return probe.status === 0 ? undefined : `numpy unavailable in ${PYTHON}`;
}

describe('L-BFGS', () => {
  test('minimizes a badly scaled quadratic to its known minimum', () => {
    // f(x) = ½ Σ cᵢ (xᵢ − i)², curvatures spread over four decades.
    const c = [1e-2, 1, 10, 100];
    const result = minimizeLbfgs(
      (x, grad) => {
        let value = 0;
        for (let i = 0; i < 4; i++) {
          const r = (x[i] as number) - i;
          value += 0.5 * (c[i] as number) * r * r;
          grad[i] = (c[i] as number) * r;
        }
        return value;
      },
      new Float64Array(4),
      { gradTol: 1e-12 },
    );
    assert.ok(result.converged, `stopped at gradient ${result.gradMax} after ${result.iterations} iterations`);
    // ‖x − x*‖∞ ≤ gradTol / min curvature.
    for (let i = 0; i < 4; i++) assert.ok(Math.abs((result.x[i] as number) - i) <= 1e-12 / 1e-2 + 4 * EPS64 * 3);
  });

  test('an objective that is not finite at the start is refused', () => {
    assert.throws(() => minimizeLbfgs(() => NaN, new Float64Array(2)), /L-BFGS: the objective is NaN at the start/);
  });
});

describe('logistic regression', () => {
  test('the gradient matches central differences', () => {
    const problem = noisyProblem(40, 5, 3);
    const params = Float64Array.from([0.3, -0.2, 0.1, 0.05, -0.4, 0.2]);
    const grad = new Float64Array(6);
    logisticObjective(problem, 0.1, params, grad);
    for (let j = 0; j < 6; j++) {
      const h = 1e-6;
      const up = Float64Array.from(params);
      const down = Float64Array.from(params);
      up[j] = (up[j] as number) + h;
      down[j] = (down[j] as number) - h;
      const numeric = (logisticObjective(problem, 0.1, up) - logisticObjective(problem, 0.1, down)) / (2 * h);
      // Central differences: O(h²·f''') truncation plus O(eps·f/h) rounding, f and its derivatives O(10).
      assert.ok(Math.abs(numeric - (grad[j] as number)) < 1e-6, `component ${j}: ${numeric} vs ${grad[j]}`);
    }
  });

  test('converges to the weights and loss of a float64 Newton solve in numpy', { skip: numpyMissing() }, () => {
    const raw = noisyProblem(240, 12, 11);
    const s = standardizer(raw.x, raw.n, raw.d, raw.weight);
    const problem = { ...raw, x: standardize(raw.x, raw.n, raw.d, s) };
    const strengths = [1e-3, 0.1];
    const references = runPython<{ theta: number[]; loss: number; mu: number; grad: number }[]>(NEWTON, {
      n: problem.n,
      d: problem.d,
      l2: strengths,
      x: Array.from(problem.x),
      y: Array.from(problem.y),
      weight: Array.from(problem.weight),
    });
    strengths.forEach((l2, k) => {
      const reference = references[k]!;
      const gradTol = 1e-10;
      const fit = fitLogistic(problem, l2, { gradTol });
      assert.ok(fit.converged, `λ=${l2}: stopped at gradient ${fit.gradMax} after ${fit.iterations} iterations`);
      assert.ok(reference.grad < 1e-13, `Newton reached gradient ${reference.grad}`);
      // Strong convexity (μ, the Hessian's smallest eigenvalue): ‖θ − θ*‖₂ ≤ ‖∇f(θ)‖₂ / μ ≤ √(d+1)·gradTol / μ
      // (×2 for the Hessian's change along the way); plus float64 rounding of a d-term dot product per row.
      const scale = Math.max(...reference.theta.map(Math.abs));
      const tolerance = (2 * Math.sqrt(problem.d + 1) * gradTol) / reference.mu + 16 * problem.d * EPS64 * scale;
      const theta = [...fit.weights, fit.bias];
      theta.forEach((value, j) =>
        assert.ok(
          Math.abs(value - reference.theta[j]!) <= tolerance,
          `λ=${l2}, θ[${j}]: ${value} vs ${reference.theta[j]} (tolerance ${tolerance})`,
        ),
      );
      // f − f* ≤ ‖∇f‖² / (2μ), and the sum over rows rounds by about n·eps relative.
      const lossTolerance = ((problem.d + 1) * gradTol ** 2) / reference.mu + 4 * problem.n * EPS64 * reference.loss;
      assert.ok(Math.abs(fit.value - reference.loss) <= lossTolerance, `λ=${l2}: ${fit.value} vs ${reference.loss}`);
    });
  });

  test('a tolerance below float64 rounding ends as a stall at the optimum, not at the iteration limit', () => {
    const problem = noisyProblem(300, 8, 9);
    const reference = fitLogistic(problem, 0.01, { gradTol: 1e-8 });
    assert.ok(reference.converged, `the reference fit reached gradient ${reference.gradMax}`);
    // No gradient is exactly 0: the only way out short of the limit is the objective going flat.
    const fit = fitLogistic(problem, 0.01, { gradTol: 0, maxIterations: 100_000 });
    assert.equal(fit.converged, false);
    assert.equal(fit.stalled, true);
    assert.ok(
      fit.iterations < reference.iterations + 100,
      `${fit.iterations} iterations against ${reference.iterations}`,
    );
    // Flat means at the optimum as far as float64 can tell: the value is the reference's to rounding
    // (a mean of 300 terms), and the gradient no larger than the reference's.
    assert.ok(fit.value <= reference.value + 300 * EPS64 * reference.value, `${fit.value} vs ${reference.value}`);
    assert.ok(fit.gradMax <= reference.gradMax, `gradient ${fit.gradMax} vs ${reference.gradMax}`);
    assert.equal(reference.stalled, false);
  });

  test('masked rows change nothing: the fit equals one without them', () => {
    const problem = noisyProblem(70, 4, 5);
    const keep = Array.from({ length: problem.n }, (_, r) => r).filter((r) => problem.weight[r] === 1);
    const dropped: LogisticProblem = {
      x: Float64Array.from(keep.flatMap((r) => Array.from(problem.x.subarray(r * 4, r * 4 + 4)))),
      y: Float64Array.from(keep.map((r) => problem.y[r] as number)),
      weight: new Float64Array(keep.length).fill(1),
      n: keep.length,
      d: 4,
    };
    const a = fitLogistic(problem, 0.01, { gradTol: 1e-12 });
    const b = fitLogistic(dropped, 0.01, { gradTol: 1e-12 });
    Array.from(a.x).forEach((value, j) => assert.ok(Math.abs(value - (b.x[j] as number)) < 1e-9));
  });

  test('the L2 strength is chosen on validation AUC, strongest first, and the scorer standardizes', () => {
    const train = noisyProblem(200, 6, 21);
    const val = noisyProblem(120, 6, 22);
    const grid = [10, 1, 0.1, 0.01];
    const selection = selectLogistic(
      { x: train.x, n: train.n, d: 6, labels: train.y, mask: train.weight },
      { x: val.x, n: val.n, d: 6, labels: val.y },
      { grid, auc: (scores, labels) => auc(scores, labels) },
    );
    assert.deepEqual(
      selection.path.map((point) => point.l2),
      grid,
    );
    assert.ok(selection.path.every((point) => point.converged));
    const bestAuc = Math.max(...selection.path.map((point) => point.valAuc));
    const first = selection.path.findIndex((point) => point.valAuc === bestAuc);
    assert.equal(selection.chosen, first);
    assert.equal(selection.fit.l2, grid[first]);
    // Scoring the raw validation rows reproduces the AUC it was chosen by.
    assert.equal(auc(selection.logits(val.x, val.n), val.y), bestAuc);
    // The data loss falls as the penalty weakens.
    for (let i = 1; i < grid.length; i++)
      assert.ok(selection.path[i]!.trainLoss <= selection.path[i - 1]!.trainLoss + 1e-12);
  });

  test('bad input is refused with what was expected', () => {
    const problem = noisyProblem(10, 3, 1);
    assert.throws(() => fitLogistic(problem, -1), /L2 strength must be non-negative, got -1/);
    assert.throws(() => fitLogistic({ ...problem, d: 4 }, 1), /30 values for 10 rows of 4/);
    assert.throws(
      () => logisticObjective({ ...problem, weight: new Float64Array(10) }, 1, new Float64Array(4)),
      /no row has a known label/,
    );
  });

  test("a linear-probe cell with probe 'lbfgs' fits the head, names its L2 strength and scores the test set", async () => {
    const split = (problem: LogisticProblem, name: string) => ({
      records: Array.from(
        { length: problem.n },
        (_, r): XrayRecord => ({
          id: `${name}${r}`,
          path: `/${name}${r}.png`,
          labels: { Finding: problem.weight[r] === 0 ? null : (problem.y[r] as number) },
          patientId: `${name}${r}`,
          studyId: `${name}${r}`,
        }),
      ),
      features: torch.tensor(Float32Array.from(problem.x), [problem.n, problem.d]),
    });
    const features: FeatureSet = {
      init: 'random',
      arch: 'resnet18',
      key: 'k',
      featureDim: 6,
      train: split(noisyProblem(150, 6, 31), 'a'),
      val: split(noisyProblem(60, 6, 32), 'b'),
      test: split(noisyProblem(90, 6, 33), 'c'),
      reused: false,
      dispose: () => torch.dispose([features.train.features, features.val.features, features.test.features]),
    };
    try {
      const cell = await linearProbe({ features, task: 'Finding', fraction: 1, draw: 0, seed: 0, probe: 'lbfgs' });
      assert.equal(cell.mode, 'linear');
      assert.ok(cell.l2 !== undefined && cell.l2 > 0);
      assert.equal(cell.history.epochs.length, 13, 'one entry per L2 strength of the default grid');
      // Masked test labels are left out of scoring, as in an Adam cell.
      assert.equal(cell.test.scores.length, features.test.records.filter((r) => r.labels.Finding !== null).length);
      assert.ok(cell.testAuc > 0.7, `test AUC ${cell.testAuc} on a learnable problem`);
    } finally {
      features.dispose();
    }
  });
});
