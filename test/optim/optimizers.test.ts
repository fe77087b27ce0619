import assert from 'node:assert/strict';
import { test } from 'node:test';

import { optim, torch } from '../../src/index.js';
import type { Tensor } from '../../src/torch/index.js';
import { oracleMissing, runPython } from '../helpers/oracle.js';
import { assertClose } from '../helpers/tolerance.js';
import {
  CASES,
  FROZEN_PARAM,
  LATE_PARAM,
  PYTHON_MAKE_OPTIMIZER,
  SHAPES,
  gradientSequence,
  initialValues,
  makeOptimizer,
  makeParams,
  setGrads,
} from './fixtures.js';

const STEPS = 5;
/** A few ulps per rounding: enough for another order of elementwise operations, far below any wrong hyperparameter. */
const ELEMENTWISE_K = 4;

/** Runs `steps` steps of a case here and returns the parameters after each step. */
function runHere(c: (typeof CASES)[number], grads: (number[] | null)[][]): number[][][] {
  const params = makeParams(initialValues());
  const opt = makeOptimizer(c, params);
  const trajectory: number[][][] = [];
  for (const stepGrads of grads) {
    setGrads(params, stepGrads);
    opt.step();
    trajectory.push(params.map((p) => p.toArray()));
  }
  opt.dispose();
  torch.dispose(params);
  return trajectory;
}

test('SGD, Adam and AdamW match PyTorch 1.13 step for step', { skip: oracleMissing() }, () => {
  const grads = gradientSequence(STEPS);
  const expected = runPython<number[][][][]>(
    `${PYTHON_MAKE_OPTIMIZER}
OUTPUT = []
for case in INPUT['cases']:
    params = make_params(INPUT['init'], INPUT['shapes'])
    opt = make_optimizer(case, params)
    trajectory = []
    for step_grads in INPUT['grads']:
        set_grads(params, step_grads, INPUT['shapes'])
        opt.step()
        trajectory.append([p.detach().reshape(-1).tolist() for p in params])
    OUTPUT.append(trajectory)
`,
    { cases: CASES, init: initialValues(), shapes: SHAPES, grads },
  );
  for (const [ci, c] of CASES.entries()) {
    const here = runHere(c, grads);
    for (let s = 0; s < STEPS; s++) {
      for (let p = 0; p < SHAPES.length; p++) {
        // Elementwise updates from the same gradients: each step may round the
        // parameter differently (FMA or not, vector width), by an ulp or two of its size.
        assertClose(here[s]?.[p] ?? [], expected[ci]?.[s]?.[p] ?? [], `${c.name}: step ${s + 1}, param ${p}`, {
          ops: s + 1,
          k: ELEMENTWISE_K,
        });
      }
    }
    // The frozen parameter never had a gradient and must not move.
    assert.deepEqual(here[STEPS - 1]?.[FROZEN_PARAM], initialValues()[FROZEN_PARAM], c.name);
  }
});

test('a parameter without a gradient gets no state; a late one counts its own steps', () => {
  const params = makeParams(initialValues());
  const opt = new optim.Adam(params, { lr: 0.01 });
  const grads = gradientSequence(4);
  for (const stepGrads of grads) {
    setGrads(params, stepGrads);
    opt.step();
  }
  assert.equal(opt.state.has(params[FROZEN_PARAM] as Tensor), false);
  assert.equal(opt.state.get(params[0] as Tensor)?.step, 4);
  assert.equal(opt.state.get(params[LATE_PARAM] as Tensor)?.step, 2);
  opt.dispose();
  torch.dispose(params);
});

test('zeroGrad zeroes gradients in place, or drops them with setToNone', () => {
  const params = makeParams(initialValues());
  const opt = new optim.SGD(params, { lr: 0.1 });
  setGrads(params, gradientSequence(1)[0] as (number[] | null)[]);
  opt.zeroGrad();
  const zeroed = torch.tidy(() => params.map((p) => p.grad?.abs().sum().item() ?? null));
  assert.deepEqual(zeroed, [0, 0, 0, null, null]);
  opt.zeroGrad(true);
  assert.ok(params.every((p) => p.grad === null));
  torch.dispose(params);
});

test('a resumed optimizer continues exactly where the first left off', () => {
  const grads = gradientSequence(6);
  for (const c of CASES) {
    const params = makeParams(initialValues());
    const opt = makeOptimizer(c, params);
    for (const stepGrads of grads.slice(0, 3)) {
      setGrads(params, stepGrads);
      opt.step();
    }
    const saved = opt.stateDict();
    const resumedParams = params.map((p) => p.detach().clone().requiresGrad_(true));
    const resumed = makeOptimizer(c, resumedParams);
    resumed.loadStateDict(saved);
    torch.dispose(saved);
    for (const stepGrads of grads.slice(3)) {
      setGrads(params, stepGrads);
      opt.step();
      setGrads(resumedParams, stepGrads);
      resumed.step();
    }
    params.forEach((p, i) => {
      assert.deepEqual(resumedParams[i]?.toArray(), p.toArray(), `${c.name}: param ${i}`);
    });
    opt.dispose();
    resumed.dispose();
    torch.dispose([params, resumedParams]);
  }
});

test('stateDict has PyTorch 1.13 layout: keys, order, index-keyed state, float32 0-d step', () => {
  const params = makeParams(initialValues());
  const opt = new optim.Adam([{ params: params.slice(0, 2) }, { params: params.slice(2), lr: 0.5 }], {
    lr: 0.01,
    amsgrad: true,
  });
  setGrads(params, gradientSequence(1)[0] as (number[] | null)[]);
  opt.step();
  const dict = opt.stateDict();
  assert.deepEqual(
    dict.param_groups.map((g) => Object.keys(g)),
    [
      [
        'lr',
        'betas',
        'eps',
        'weight_decay',
        'amsgrad',
        'maximize',
        'foreach',
        'capturable',
        'differentiable',
        'fused',
        'params',
      ],
      [
        'lr',
        'betas',
        'eps',
        'weight_decay',
        'amsgrad',
        'maximize',
        'foreach',
        'capturable',
        'differentiable',
        'fused',
        'params',
      ],
    ],
  );
  assert.deepEqual(dict.param_groups[0]?.params, [0, 1]);
  assert.deepEqual(dict.param_groups[1]?.params, [2, 3, 4]);
  assert.equal(dict.param_groups[1]?.lr, 0.5);
  assert.deepEqual(dict.param_groups[0]?.betas, torch.tuple(0.9, 0.999));
  // Parameters 3 (late) and 4 (frozen) had no gradient at step 1: no state.
  assert.deepEqual([...dict.state.keys()], [0, 1, 2]);
  const first = dict.state.get(0) ?? {};
  assert.deepEqual(Object.keys(first), ['step', 'exp_avg', 'exp_avg_sq', 'max_exp_avg_sq']);
  assert.equal(first.step?.dtype, 'float32');
  assert.deepEqual(first.step?.shape, []);
  assert.equal(first.step?.item(), 1);
  // The dict's tensors are copies: freeing them leaves the optimizer intact.
  torch.dispose(dict);
  opt.step();
  opt.dispose();
  torch.dispose(params);
});

test('loadStateDict names what does not fit', () => {
  const params = makeParams(initialValues());
  const opt = new optim.Adam(params, { lr: 0.01 });
  setGrads(params, gradientSequence(1)[0] as (number[] | null)[]);
  opt.step();
  const dict = opt.stateDict();
  const other = new optim.Adam(params.slice(0, 3), { lr: 0.01 });
  assert.throws(
    () => other.loadStateDict(dict),
    /param_groups\[0\]: it lists 5 parameters but this Adam's group has 3/,
  );
  const twoGroups = new optim.Adam([{ params: params.slice(0, 2) }, { params: params.slice(2) }]);
  assert.throws(() => twoGroups.loadStateDict(dict), /it has 1 parameter group\(s\) but this Adam has 2/);
  const wrongShape = new optim.Adam([params[1], params[0], ...params.slice(2)] as Tensor[]);
  assert.throws(
    () => wrongShape.loadStateDict(dict),
    /state\[0\]\.exp_avg: shape \[3, 4\] does not match its parameter's \[5\]/,
  );
  assert.equal(wrongShape.state.size, 0);
  assert.throws(
    () => opt.loadStateDict({ state: new Map(), param_groups: [{ lr: 'fast', params: [0, 1, 2, 3, 4] }] }),
    /param_groups\[0\]\.lr: expected a number, got 'fast'/,
  );
  assert.equal(opt.paramGroups[0]?.lr, 0.01);
  torch.dispose(dict);
  opt.dispose();
  torch.dispose(params);
});

test('optimizer checks its options and its parameters', () => {
  const params = makeParams(initialValues());
  assert.throws(() => new optim.Adam(params, { betas: [0.9, 1] }), /betas\[1\] must be in \[0, 1\)/);
  assert.throws(() => new optim.SGD(params, { lr: -1 }), /lr must be >= 0/);
  assert.throws(() => new optim.SGD(params, { nesterov: true }), /Nesterov momentum needs momentum > 0/);
  assert.throws(() => new optim.SGD([params[0], params[0]] as Tensor[]), /params\[1\] appears in more than one place/);
  const nonLeaf = torch.tidy(() => (params[0] as Tensor).mul(2));
  assert.throws(() => new optim.SGD([nonLeaf]), /not a leaf tensor/);
  nonLeaf.dispose();
  torch.dispose(params);
});

test('state tensors survive the tidy scope the step runs in', () => {
  const params = makeParams(initialValues());
  const opt = new optim.Adam(params, { lr: 0.01, amsgrad: true });
  const grads = gradientSequence(2);
  torch.tidy(() => {
    setGrads(params, grads[0] as (number[] | null)[]);
    opt.step();
  });
  const state = opt.state.get(params[0] as Tensor);
  assert.ok(state !== undefined && !state.expAvg.isDisposed && !state.maxExpAvgSq?.isDisposed);
  setGrads(params, grads[1] as (number[] | null)[]);
  opt.step();
  opt.dispose();
  assert.ok(state.expAvg.isDisposed);
  torch.dispose(params);
});
