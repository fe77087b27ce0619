/**
 * Shared inputs of the optimizer tests: parameters and gradient sequences
 * made from a seeded generator, the same on both sides of the PyTorch oracle.
 */
import { torch } from '../../src/index.js';
import type { Tensor } from '../../src/torch/index.js';
import { optim } from '../../src/index.js';

/** Shapes of the test parameters. Parameter 3 gets gradients only from step 3 on; parameter 4 never does. */
export const SHAPES = [[3, 4], [5], [2, 3, 2], [4], [2]];
export const LATE_PARAM = 3;
export const LATE_FROM_STEP = 2;
export const FROZEN_PARAM = 4;

/** float32 values from a seeded generator (mulberry32), in [-scale, scale). */
export function seededValues(seed: number, count: number, scale = 1): number[] {
  let a = seed >>> 0;
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    out.push(Math.fround((u * 2 - 1) * scale));
  }
  return out;
}

function sizeOf(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Initial parameter values, one flat list per parameter. */
export function initialValues(): number[][] {
  return SHAPES.map((shape, i) => seededValues(100 + i, sizeOf(shape)));
}

/**
 * Gradients for `steps` steps: grads[step][param] is a flat list, or null when
 * that parameter has no gradient at that step. Magnitudes vary by step so that
 * AMSGrad's running maximum matters.
 */
export function gradientSequence(steps: number, seed = 7): (number[] | null)[][] {
  const grads: (number[] | null)[][] = [];
  for (let s = 0; s < steps; s++) {
    const scale = [1, 0.2, 3, 0.5, 1.5, 0.1, 2, 0.7][s % 8] as number;
    grads.push(
      SHAPES.map((shape, i) => {
        if (i === FROZEN_PARAM || (i === LATE_PARAM && s < LATE_FROM_STEP)) return null;
        return seededValues(seed * 1000 + s * 10 + i, sizeOf(shape), scale);
      }),
    );
  }
  return grads;
}

/** Leaf tensors holding `values`, requiring grad. */
export function makeParams(values: number[][]): Tensor[] {
  return values.map((v, i) => torch.tensor(new Float32Array(v), SHAPES[i]).requiresGrad_(true));
}

/** Sets each parameter's gradient for one step (null clears it). */
export function setGrads(params: Tensor[], grads: (number[] | null)[]): void {
  params.forEach((param, i) => {
    const g = grads[i];
    if (g === null || g === undefined) {
      param.grad = null;
      return;
    }
    const t = torch.tensor(new Float32Array(g), SHAPES[i]);
    param.grad = t;
    t.dispose();
  });
}

/** One optimizer configuration, with options under this library's names. */
export interface OptimizerCase {
  name: string;
  kind: 'SGD' | 'Adam' | 'AdamW';
  options: Record<string, unknown>;
  /** When set, parameters 0-1 form group 0 and the rest group 1 with these extra options. */
  secondGroup?: Record<string, unknown>;
}

export const CASES: OptimizerCase[] = [
  { name: 'SGD plain', kind: 'SGD', options: { lr: 0.1 } },
  { name: 'SGD momentum', kind: 'SGD', options: { lr: 0.1, momentum: 0.9 } },
  {
    name: 'SGD nesterov + decay',
    kind: 'SGD',
    options: { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.01 },
  },
  {
    name: 'SGD dampening + decay + maximize',
    kind: 'SGD',
    options: { lr: 0.1, momentum: 0.8, dampening: 0.3, weightDecay: 0.1, maximize: true },
  },
  { name: 'SGD two groups', kind: 'SGD', options: { lr: 0.1, momentum: 0.9 }, secondGroup: { lr: 0.01 } },
  { name: 'Adam defaults', kind: 'Adam', options: { lr: 0.01 } },
  { name: 'Adam MoCo-CXR', kind: 'Adam', options: { lr: 1e-4, weightDecay: 1e-4 } },
  { name: 'Adam amsgrad + decay', kind: 'Adam', options: { lr: 0.01, amsgrad: true, weightDecay: 0.1 } },
  {
    name: 'Adam betas eps maximize decay',
    kind: 'Adam',
    options: { lr: 0.02, betas: [0.8, 0.95], eps: 1e-6, maximize: true, weightDecay: 0.05 },
  },
  { name: 'Adam two groups', kind: 'Adam', options: { lr: 0.01 }, secondGroup: { lr: 0.001, amsgrad: true } },
  { name: 'AdamW defaults', kind: 'AdamW', options: { lr: 0.01 } },
  { name: 'AdamW amsgrad', kind: 'AdamW', options: { lr: 0.01, weightDecay: 0.1, amsgrad: true } },
  { name: 'AdamW maximize', kind: 'AdamW', options: { lr: 0.005, weightDecay: 0.2, maximize: true } },
];

/** Builds this library's optimizer for a case. */
export function makeOptimizer(c: OptimizerCase, params: Tensor[]): optim.SGD | optim.Adam | optim.AdamW {
  const input =
    c.secondGroup === undefined
      ? params
      : [{ params: params.slice(0, 2) }, { params: params.slice(2), ...c.secondGroup }];
  switch (c.kind) {
    case 'SGD':
      return new optim.SGD(input as optim.ParamsInput<optim.SGDGroup>, c.options);
    case 'Adam':
      return new optim.Adam(input as optim.ParamsInput<optim.AdamGroup>, c.options);
    case 'AdamW':
      return new optim.AdamW(input as optim.ParamsInput<optim.AdamGroup>, c.options);
  }
}

/** Python code defining `make_optimizer(case, params)` for the same cases. */
export const PYTHON_MAKE_OPTIMIZER = `
import torch
NAMES = {'weightDecay': 'weight_decay'}
def py_options(options):
    out = {}
    for k, v in options.items():
        out[NAMES.get(k, k)] = tuple(v) if isinstance(v, list) else v
    return out
def make_optimizer(case, params):
    cls = getattr(torch.optim, case['kind'])
    if case.get('secondGroup') is None:
        groups = params
    else:
        groups = [{'params': params[:2]}, dict(params=params[2:], **py_options(case['secondGroup']))]
    return cls(groups, **py_options(case['options']))
def make_params(values, shapes):
    return [torch.nn.Parameter(torch.tensor(v, dtype=torch.float32).reshape(s)) for v, s in zip(values, shapes)]
def set_grads(params, grads, shapes):
    for p, g, s in zip(params, grads, shapes):
        p.grad = None if g is None else torch.tensor(g, dtype=torch.float32).reshape(s)
`;
