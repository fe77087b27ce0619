/**
 * Parity with PyTorch: every case runs here and in Debian's PyTorch (same
 * libtorch) on the same seeded inputs. Forward outputs (shape, dtype, values,
 * whether they require grad) and the gradient of `sum(out * g)` for a random `g`
 * with respect to each float input must agree within float rounding error:
 * k · eps · (largest magnitude of the tensor) · sqrt(roundings per value), the
 * roundings bounded by the number of input elements (no single operator here
 * reduces over more), eps that of the output's dtype (test/helpers/tolerance.ts).
 * Exactly for integer, bool and random outputs.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import * as torch from '../../src/torch/index.js';
import { oracleMissing, runPython } from '../helpers/oracle.js';
import { EPSILON, tolerance } from '../helpers/tolerance.js';

type Tensor = torch.Tensor;
type DType = torch.DType;

interface InputSpec {
  shape: number[];
  dtype: DType;
  /** Values are drawn from [low, high) (integers for integer dtypes) unless given. */
  low?: number;
  high?: number;
  values?: number[];
  /** Whether the gradient w.r.t. this input is compared; default: float inputs. */
  grad?: boolean;
}

interface Case {
  group: string;
  name: string;
  inputs: InputSpec[];
  js: (...inputs: Tensor[]) => Tensor | Tensor[];
  /** A Python expression (`lambda ...: ...`) or a `def f(...)` block, over `torch` and `F`. */
  py: string;
  /** Seeds both generators right before the op runs. */
  seed?: number;
  /** Float outputs must match bit for bit. */
  exact?: boolean;
  /** Roundings feeding one value; default the number of input elements. */
  ops?: number;
}

/** One tensor as both sides describe it. Non-finite floats travel as 'nan', 'inf', '-inf'. */
interface Described {
  shape: number[];
  dtype: string;
  requiresGrad: boolean;
  values: (number | string)[];
}

interface CaseResult {
  outputs: Described[];
  grads: (Described | null)[];
  error?: string;
}

interface Prepared {
  case: Case;
  inputs: { spec: InputSpec; values: number[]; grad: boolean }[];
  gs: (number[] | null)[];
  js: CaseResult;
}

const FLOAT_TYPES = new Set(['float16', 'bfloat16', 'float32', 'float64']);

/** Seeded uniform floats in [0, 1): the same inputs on every run. */
function generator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0) / 4294967296;
  };
}

const random = generator(20210301);

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function draw(spec: InputSpec): number[] {
  if (spec.values !== undefined) return spec.values;
  const n = product(spec.shape);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    if (spec.dtype === 'bool') out.push(random() < 0.5 ? 0 : 1);
    else if (FLOAT_TYPES.has(spec.dtype)) {
      const low = spec.low ?? -2;
      const high = spec.high ?? 2;
      out.push(Math.fround(low + (high - low) * random()));
    } else {
      const low = spec.low ?? 0;
      const high = spec.high ?? 10;
      out.push(low + Math.floor((high - low) * random()));
    }
  }
  return out;
}

function makeTensor(spec: InputSpec, values: number[]): Tensor {
  switch (spec.dtype) {
    case 'float64':
      return torch.tensor(Float64Array.from(values), spec.shape);
    case 'int64':
      return torch.tensor(
        BigInt64Array.from(values, (v) => BigInt(v)),
        spec.shape,
      );
    case 'int32':
      return torch.tensor(Int32Array.from(values), spec.shape);
    case 'uint8':
      return torch.tensor(Uint8Array.from(values), spec.shape);
    case 'bool':
      return torch.tensor(Uint8Array.from(values), spec.shape, { dtype: 'bool' });
    default:
      return torch.tensor(Float32Array.from(values), spec.shape, { dtype: spec.dtype });
  }
}

function describeTensor(t: Tensor): Described {
  const values = t.toArray().map((v) => (Number.isFinite(v) ? v : String(v).toLowerCase().replace('infinity', 'inf')));
  return { shape: t.shape, dtype: t.dtype, requiresGrad: t.requiresGrad, values };
}

function asList(value: Tensor | Tensor[]): Tensor[] {
  return Array.isArray(value) ? value : [value];
}

function prepare(c: Case): Prepared {
  const inputs = c.inputs.map((spec) => ({
    spec,
    values: draw(spec),
    grad: spec.grad ?? (FLOAT_TYPES.has(spec.dtype) && spec.dtype !== 'float16' && spec.dtype !== 'bfloat16'),
  }));
  const gs: (number[] | null)[] = [];
  let js: CaseResult;
  try {
    js = torch.tidy(() => {
      const tensors = inputs.map(({ spec, values, grad }) => {
        const t = makeTensor(spec, values);
        return grad ? t.requiresGrad_(true) : t;
      });
      if (c.seed !== undefined) torch.manualSeed(c.seed);
      const outputs = asList(c.js(...tensors));
      let loss: Tensor | null = null;
      for (const out of outputs) {
        if (!out.requiresGrad) {
          gs.push(null);
          continue;
        }
        const g = Array.from({ length: out.numel() }, () => Math.fround(2 * random() - 1));
        gs.push(g);
        const term = out.mul(torch.tensor(Float32Array.from(g), out.shape, { dtype: out.dtype })).sum();
        loss = loss === null ? term : loss.add(term);
      }
      if (loss !== null) loss.backward();
      return {
        outputs: outputs.map(describeTensor),
        grads: tensors.map((t) => {
          if (!t.requiresGrad) return null;
          const grad = t.grad;
          return grad === null ? null : describeTensor(grad);
        }),
      };
    });
  } catch (error) {
    js = { outputs: [], grads: [], error: (error as Error).message };
  }
  return { case: c, inputs, gs, js };
}

const PYTHON_RUNNER = `
import math
import torch
import torch.nn.functional as F

DTYPES = {name: getattr(torch, name) for name in
          ['float32', 'float16', 'bfloat16', 'float64', 'uint8', 'int8', 'int16', 'int32', 'int64', 'bool']}

def make(spec):
    t = torch.tensor(spec['values'], dtype=DTYPES[spec['dtype']]).reshape(spec['shape'])
    return t.requires_grad_(True) if spec['grad'] else t

def describe(t):
    values = (t.float() if t.dtype in (torch.float16, torch.bfloat16) else t).detach().reshape(-1).tolist()
    if t.dtype.is_floating_point:
        values = [v if math.isfinite(v) else str(v) for v in values]
    elif t.dtype == torch.bool:
        values = [int(v) for v in values]
    return {'shape': list(t.shape), 'dtype': str(t.dtype).replace('torch.', ''),
            'requiresGrad': t.requires_grad, 'values': values}

def run(case):
    scope = {'torch': torch, 'F': F}
    code = case['py']
    if code.startswith('def '):
        exec(code, scope)
        fn = scope['f']
    else:
        fn = eval(code, scope)
    inputs = [make(spec) for spec in case['inputs']]
    if case['seed'] is not None:
        torch.manual_seed(case['seed'])
    outputs = fn(*inputs)
    outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    loss = None
    for out, g in zip(outputs, case['gs']):
        if g is None:
            continue
        term = (out * torch.tensor(g, dtype=out.dtype).reshape(out.shape)).sum()
        loss = term if loss is None else loss + term
    if loss is not None:
        loss.backward()
    return {'outputs': [describe(o) for o in outputs],
            'grads': [describe(t.grad) if t.requires_grad and t.grad is not None else None for t in inputs]}

results = []
for case in INPUT:
    try:
        results.append(run(case))
    except Exception as error:
        results.append({'outputs': [], 'grads': [], 'error': repr(error)})
OUTPUT = results
`;

// ---- the cases ----------------------------------------------------------------

const cases: Case[] = [];
let group = '';

function op(name: string, inputs: InputSpec[], js: Case['js'], py: string, options: Partial<Case> = {}): void {
  cases.push({ group, name, inputs, js, py, ...options });
}

const f32 = (shape: number[], low = -2, high = 2): InputSpec => ({ shape, dtype: 'float32', low, high });
const f64 = (shape: number[], low = -2, high = 2): InputSpec => ({ shape, dtype: 'float64', low, high });
const i64 = (shape: number[], low = 0, high = 10): InputSpec => ({ shape, dtype: 'int64', low, high });
const bool = (shape: number[]): InputSpec => ({ shape, dtype: 'bool' });
/** An input whose gradient is not asked for (labels, masks, running statistics). */
const fixed = (spec: InputSpec): InputSpec => ({ ...spec, grad: false });

group = 'creation';
op('zeros', [], () => torch.zeros([2, 3]), 'lambda: torch.zeros(2, 3)');
op('zeros int64', [], () => torch.zeros([4], { dtype: 'int64' }), 'lambda: torch.zeros(4, dtype=torch.int64)');
op('ones float64', [], () => torch.ones([3, 2], { dtype: 'float64' }), 'lambda: torch.ones(3, 2, dtype=torch.float64)');
op('full', [], () => torch.full([2, 2], 3.5), 'lambda: torch.full((2, 2), 3.5)');
op('full int32', [], () => torch.full([3], 7, { dtype: 'int32' }), 'lambda: torch.full((3,), 7, dtype=torch.int32)');
op('arange end', [], () => torch.arange(5), 'lambda: torch.arange(5)');
op('arange float step', [], () => torch.arange(0, 1, 0.1), 'lambda: torch.arange(0, 1, 0.1)');
op('arange negative step', [], () => torch.arange(10, 0, -3), 'lambda: torch.arange(10, 0, -3)');
op(
  'arange float64',
  [],
  () => torch.arange(1, 2, 0.25, { dtype: 'float64' }),
  'lambda: torch.arange(1, 2, 0.25, dtype=torch.float64)',
);
op('eye', [], () => torch.eye(3), 'lambda: torch.eye(3)');
op('eye int64', [], () => torch.eye(4, { dtype: 'int64' }), 'lambda: torch.eye(4, dtype=torch.int64)');
op('linspace', [], () => torch.linspace(0, 1, 5), 'lambda: torch.linspace(0, 1, 5)');
op('linspace fractional', [], () => torch.linspace(-2, 3.5, 7), 'lambda: torch.linspace(-2, 3.5, 7)');
op('scalar', [], () => torch.scalar(2.5), 'lambda: torch.tensor(2.5)');
op(
  'nested arrays',
  [],
  () =>
    torch.tensor([
      [1, 2.5],
      [3, 4],
    ]),
  'lambda: torch.tensor([[1, 2.5], [3, 4]])',
);
op(
  'nested arrays int64',
  [],
  () =>
    torch.tensor(
      [
        [1, -2],
        [3, 4],
      ],
      undefined,
      { dtype: 'int64' },
    ),
  'lambda: torch.tensor([[1, -2], [3, 4]])',
);

// Each typed array in, the same values and dtype out.
{
  const floats = Array.from({ length: 6 }, () => Math.fround(8 * random() - 4));
  const doubles = Array.from({ length: 6 }, () => 8 * random() - 4);
  const arrays: [string, () => Tensor, string][] = [
    ['float32', () => torch.tensor(Float32Array.from(floats), [2, 3]), `torch.tensor(${JSON.stringify(floats)})`],
    [
      'float16',
      () => torch.tensor(Float32Array.from(floats), [2, 3], { dtype: 'float16' }),
      `torch.tensor(${JSON.stringify(floats)}, dtype=torch.float16)`,
    ],
    [
      'bfloat16',
      () => torch.tensor(Float32Array.from(floats), [2, 3], { dtype: 'bfloat16' }),
      `torch.tensor(${JSON.stringify(floats)}, dtype=torch.bfloat16)`,
    ],
    [
      'float64',
      () => torch.tensor(Float64Array.from(doubles), [2, 3]),
      `torch.tensor(${JSON.stringify(doubles)}, dtype=torch.float64)`,
    ],
    [
      'uint8',
      () => torch.tensor(Uint8Array.from([0, 1, 127, 128, 200, 255]), [2, 3]),
      'torch.tensor([0, 1, 127, 128, 200, 255], dtype=torch.uint8)',
    ],
    [
      'int64',
      () => torch.tensor(BigInt64Array.from([0n, -1n, 2n ** 40n + 3n, -(2n ** 52n), 7n, 9007199254740991n]), [2, 3]),
      `torch.tensor([0, -1, ${2 ** 40 + 3}, ${-(2 ** 52)}, 7, 9007199254740991], dtype=torch.int64)`,
    ],
    [
      'bool',
      () => torch.tensor(Uint8Array.from([0, 1, 1, 0, 2, 0]), [2, 3], { dtype: 'bool' }),
      'torch.tensor([0, 1, 1, 0, 2, 0], dtype=torch.bool)',
    ],
    [
      'int32',
      () => torch.tensor(Int32Array.from([0, -1, 2147483647, -2147483648, 42, -7]), [2, 3]),
      'torch.tensor([0, -1, 2147483647, -2147483648, 42, -7], dtype=torch.int32)',
    ],
  ];
  for (const [name, js, py] of arrays) op(`from typed array ${name}`, [], js, `lambda: ${py}.reshape(2, 3)`);
}

group = 'conversion';
op('to float64', [f32([2, 3])], (x) => x.to('float64'), 'lambda x: x.to(torch.float64)');
op('to float16', [f32([2, 3])], (x) => x.to('float16'), 'lambda x: x.to(torch.float16)');
op('to bfloat16', [f32([2, 3])], (x) => x.to('bfloat16'), 'lambda x: x.to(torch.bfloat16)');
op('to int32 truncates', [f32([2, 3], -50, 50)], (x) => x.to('int32'), 'lambda x: x.to(torch.int32)');
op('to int64', [f32([2, 3], -50, 50)], (x) => x.long(), 'lambda x: x.long()');
op('to uint8', [f32([2, 3], 0, 255)], (x) => x.to('uint8'), 'lambda x: x.to(torch.uint8)');
op('to bool', [{ shape: [4], dtype: 'float32', values: [0, 1.5, -0.25, 0] }], (x) => x.bool(), 'lambda x: x.bool()');
op('int64 to float32', [i64([5], -100, 100)], (x) => x.float(), 'lambda x: x.float()');
op('bool to float32', [bool([5])], (x) => x.float(), 'lambda x: x.float()');
op('float16 to float32', [{ ...f32([4]), dtype: 'float16' }], (x) => x.float(), 'lambda x: x.float()');
op('contiguous', [f32([3, 4])], (x) => x.t().contiguous(), 'lambda x: x.t().contiguous()');

group = 'shape';
op('view', [f32([2, 3, 4])], (x) => x.view(6, 4), 'lambda x: x.view(6, 4)');
op('view -1', [f32([2, 3, 4])], (x) => x.view(-1), 'lambda x: x.view(-1)');
op(
  'reshape non-contiguous',
  [f32([2, 3, 4])],
  (x) => x.transpose(0, 2).reshape(4, 6),
  'lambda x: x.transpose(0, 2).reshape(4, 6)',
);
op('permute', [f32([2, 3, 4])], (x) => x.permute(2, 0, 1), 'lambda x: x.permute(2, 0, 1)');
op('transpose', [f32([2, 3, 4])], (x) => x.transpose(0, 2), 'lambda x: x.transpose(0, 2)');
op('flatten from 1', [f32([2, 3, 4])], (x) => x.flatten(1), 'lambda x: x.flatten(1)');
op('flatten all', [f32([2, 3, 4])], (x) => x.flatten(), 'lambda x: x.flatten()');
op('squeeze all', [f32([2, 1, 3, 1])], (x) => x.squeeze(), 'lambda x: x.squeeze()');
op('squeeze dim', [f32([2, 1, 3, 1])], (x) => x.squeeze(1), 'lambda x: x.squeeze(1)');
op('squeeze -1', [f32([2, 1, 3, 1])], (x) => x.squeeze(-1), 'lambda x: x.squeeze(-1)');
op('unsqueeze 0', [f32([2, 3])], (x) => x.unsqueeze(0), 'lambda x: x.unsqueeze(0)');
op('unsqueeze -1', [f32([2, 3])], (x) => x.unsqueeze(-1), 'lambda x: x.unsqueeze(-1)');
op('expand', [f32([1, 3, 1])], (x) => x.expand(2, 3, 4), 'lambda x: x.expand(2, 3, 4)');
op('expand -1', [f32([1, 3, 1])], (x) => x.expand(2, -1, 5), 'lambda x: x.expand(2, -1, 5)');
op('expandAs', [f32([3, 1]), fixed(f32([2, 3, 4]))], (x, y) => x.expandAs(y), 'lambda x, y: x.expand_as(y)');

group = 'indexing';
op('select', [f32([2, 3, 4])], (x) => x.select(1, 2), 'lambda x: x.select(1, 2)');
op('select negative', [f32([2, 3, 4])], (x) => x.select(0, -1), 'lambda x: x.select(0, -1)');
op('narrow', [f32([2, 3, 4])], (x) => x.narrow(2, 1, 2), 'lambda x: x.narrow(2, 1, 2)');
op('indexSelect', [f32([5, 3]), i64([7], 0, 5)], (x, i) => x.indexSelect(0, i), 'lambda x, i: x.index_select(0, i)');
op(
  'indexSelect dim 1',
  [f32([2, 5]), i64([3], 0, 5)],
  (x, i) => x.indexSelect(1, i),
  'lambda x, i: x.index_select(1, i)',
);
op('gather', [f32([3, 4]), i64([3, 5], 0, 4)], (x, i) => x.gather(1, i), 'lambda x, i: x.gather(1, i)');
op('gather dim 0', [f32([3, 4]), i64([2, 4], 0, 3)], (x, i) => x.gather(0, i), 'lambda x, i: x.gather(0, i)');
op('maskedFill', [f32([3, 4]), bool([3, 4])], (x, m) => x.maskedFill(m, -1.5), 'lambda x, m: x.masked_fill(m, -1.5)');
op(
  'maskedFill broadcast mask',
  [f32([3, 4]), bool([1, 4])],
  (x, m) => x.maskedFill(m, 2),
  'lambda x, m: x.masked_fill(m, 2)',
);
op(
  'maskedFill tensor value',
  [f32([3, 4]), bool([3, 4]), fixed(f32([]))],
  (x, m, v) => x.maskedFill(m, v),
  'lambda x, m, v: x.masked_fill(m, v)',
);
op(
  'where broadcast',
  [bool([3, 1]), f32([3, 4]), f32([4])],
  (c, a, b) => torch.where(c, a, b),
  'lambda c, a, b: torch.where(c, a, b)',
);
op(
  'cat dim 0',
  [f32([2, 3]), f32([1, 3]), f32([4, 3])],
  (a, b, c) => torch.cat([a, b, c]),
  'lambda a, b, c: torch.cat([a, b, c])',
);
op('cat dim -1', [f32([2, 1]), f32([2, 3])], (a, b) => torch.cat([a, b], -1), 'lambda a, b: torch.cat([a, b], -1)');
op(
  'stack',
  [f32([2, 3]), f32([2, 3]), f32([2, 3])],
  (a, b, c) => torch.stack([a, b, c]),
  'lambda a, b, c: torch.stack([a, b, c])',
);
op('stack dim 2', [f32([2, 3]), f32([2, 3])], (a, b) => torch.stack([a, b], 2), 'lambda a, b: torch.stack([a, b], 2)');
op('split size', [f32([5, 4])], (x) => x.split(2), 'lambda x: x.split(2)');
op('split sizes', [f32([5, 4])], (x) => x.split([1, 3], 1), 'lambda x: x.split([1, 3], 1)');
op('chunk', [f32([5, 4])], (x) => x.chunk(3), 'lambda x: x.chunk(3)');
op('chunk dim 1', [f32([5, 4])], (x) => x.chunk(2, 1), 'lambda x: x.chunk(2, 1)');
op(
  'index with a skipped dimension',
  [f32([3, 5]), i64([4], 0, 5)],
  (x, i) => x.index([null, i]),
  'lambda x, i: x[:, i]',
);
op(
  'scatter',
  [f32([3, 5]), { shape: [3, 2], dtype: 'int64', values: [0, 4, 1, 2, 3, 0] }, f32([3, 2])],
  (x, i, src) => x.scatter(1, i, src),
  'lambda x, i, src: x.scatter(1, i, src)',
);
op('repeat', [f32([2, 3])], (x) => x.repeat(2, 1, 2), 'lambda x: x.repeat(2, 1, 2)');
op('flip', [f32([2, 3, 4])], (x) => x.flip(0, 2), 'lambda x: x.flip(0, 2)');
op('flip function', [f32([2, 3, 4])], (x) => torch.flip(x, [1]), 'lambda x: torch.flip(x, [1])');

group = 'elementwise';
const a = f32([3, 1, 4]);
const b = f32([2, 4]);
const positive = (shape: number[]): InputSpec => f32(shape, 0.25, 3);
op('add broadcast', [a, b], (x, y) => x.add(y), 'lambda x, y: x + y');
op('add alpha', [a, b], (x, y) => x.add(y, 0.5), 'lambda x, y: torch.add(x, y, alpha=0.5)');
op('add scalar', [a], (x) => x.add(1.25), 'lambda x: x + 1.25');
op('sub broadcast', [a, b], (x, y) => x.sub(y), 'lambda x, y: x - y');
op('sub scalar', [a], (x) => x.sub(3), 'lambda x: x - 3');
op('rsub scalar', [a], (x) => x.rsub(2), 'lambda x: 2 - x');
op('mul broadcast', [a, b], (x, y) => x.mul(y), 'lambda x, y: x * y');
op('mul scalar', [a], (x) => x.mul(-2.5), 'lambda x: x * -2.5');
op('div broadcast', [a, positive([2, 4])], (x, y) => x.div(y), 'lambda x, y: x / y');
op('div scalar', [a], (x) => x.div(3), 'lambda x: x / 3');
op('neg', [a], (x) => x.neg(), 'lambda x: -x');
op('exp', [a], (x) => x.exp(), 'lambda x: x.exp()');
op('log', [positive([3, 4])], (x) => x.log(), 'lambda x: x.log()');
op('pow integer', [a], (x) => x.pow(3), 'lambda x: x.pow(3)');
op('pow fractional', [positive([3, 4])], (x) => x.pow(0.5), 'lambda x: x.pow(0.5)');
op('pow tensor', [positive([3, 4]), f32([4])], (x, y) => x.pow(y), 'lambda x, y: x.pow(y)');
op('sqrt', [positive([3, 4])], (x) => x.sqrt(), 'lambda x: x.sqrt()');
op('abs', [a], (x) => x.abs(), 'lambda x: x.abs()');
op('clamp', [a], (x) => x.clamp(-0.5, 0.75), 'lambda x: x.clamp(-0.5, 0.75)');
op('clamp max only', [a], (x) => x.clamp(null, 0.3), 'lambda x: x.clamp(max=0.3)');
op('clamp min integer', [a], (x) => x.clamp(0), 'lambda x: x.clamp(0)');
op('sigmoid', [a], (x) => x.sigmoid(), 'lambda x: x.sigmoid()');
op('relu', [a], (x) => x.relu(), 'lambda x: x.relu()');
op('relu function', [a], (x) => torch.relu(x), 'lambda x: F.relu(x)');
op('tanh', [a], (x) => x.tanh(), 'lambda x: x.tanh()');
op('rsqrt', [positive([3, 4])], (x) => x.rsqrt(), 'lambda x: x.rsqrt()');
op('log1p', [positive([3, 4])], (x) => x.log1p(), 'lambda x: x.log1p()');
op('maximum', [a, b], (x, y) => x.maximum(y), 'lambda x, y: torch.maximum(x, y)');
op('float64 mul', [f64([3]), f64([3])], (x, y) => x.mul(y).exp(), 'lambda x, y: (x * y).exp()');
op('int64 add scalar', [i64([5], -50, 50)], (x) => x.add(3), 'lambda x: x + 3');
op('int64 mul fractional scalar', [i64([5], -50, 50)], (x) => x.mul(2.5), 'lambda x: x * 2.5');
op('int64 div is true division', [i64([5], -50, 50)], (x) => x.div(4), 'lambda x: x / 4');
op('int64 plus float32 promotes', [i64([3]), f32([3])], (x, y) => x.add(y), 'lambda x, y: x + y');
op('gt scalar', [a], (x) => x.gt(0.5), 'lambda x: x > 0.5');
op('eq tensor', [i64([6], 0, 3), i64([6], 0, 3)], (x, y) => x.eq(y), 'lambda x, y: x == y');

group = 'reductions';
const r = f32([3, 4, 5]);
op('sum all', [r], (x) => x.sum(), 'lambda x: x.sum()');
op('sum dim', [r], (x) => x.sum(1), 'lambda x: x.sum(1)');
op('sum dims keepdim', [r], (x) => x.sum([0, 2], true), 'lambda x: x.sum((0, 2), keepdim=True)');
op('sum int64', [i64([4, 3], -20, 20)], (x) => x.sum(0), 'lambda x: x.sum(0)');
op('mean all', [r], (x) => x.mean(), 'lambda x: x.mean()');
op('mean dim keepdim', [r], (x) => x.mean(1, true), 'lambda x: x.mean(1, keepdim=True)');
op('mean dims', [r], (x) => x.mean([0, 1]), 'lambda x: x.mean((0, 1))');
op('mean float64', [f64([4, 5])], (x) => x.mean(1), 'lambda x: x.mean(1)');
op('max all', [r], (x) => x.max(), 'lambda x: x.max()');
op(
  'max dim',
  [r],
  (x) => {
    const { values, indices } = x.max(1);
    return [values, indices];
  },
  'lambda x: list(x.max(1))',
);
op(
  'max dim keepdim',
  [r],
  (x) => {
    const { values, indices } = x.max(-1, true);
    return [values, indices];
  },
  'lambda x: list(x.max(-1, keepdim=True))',
);
op('min all', [r], (x) => x.min(), 'lambda x: x.min()');
op(
  'min dim',
  [r],
  (x) => {
    const { values, indices } = x.min(0);
    return [values, indices];
  },
  'lambda x: list(x.min(0))',
);
op('argmax all', [r], (x) => x.argmax(), 'lambda x: x.argmax()');
op('argmax dim', [r], (x) => x.argmax(1), 'lambda x: x.argmax(1)');
op('argmax keepdim', [r], (x) => x.argmax(2, true), 'lambda x: x.argmax(2, keepdim=True)');
op('argmin dim', [r], (x) => x.argmin(1), 'lambda x: x.argmin(1)');
op('std all', [r], (x) => x.std(), 'lambda x: x.std()');
op('std dim', [r], (x) => x.std(1), 'lambda x: x.std(1)');
op(
  'std biased keepdim',
  [r],
  (x) => x.std([0, 2], { unbiased: false, keepdim: true }),
  'lambda x: x.std((0, 2), unbiased=False, keepdim=True)',
);
op('var all', [r], (x) => x.var(), 'lambda x: x.var()');
op('var dim', [r], (x) => x.var(0), 'lambda x: x.var(0)');
op('var biased', [r], (x) => x.var(1, { unbiased: false }), 'lambda x: x.var(1, unbiased=False)');
op('norm', [r], (x) => x.norm(), 'lambda x: x.norm()');
op('norm p=1 dim', [r], (x) => x.norm(1, 2, true), 'lambda x: x.norm(1, 2, keepdim=True)');
op('cumsum', [r], (x) => x.cumsum(1), 'lambda x: x.cumsum(1)');
op(
  'sort descending',
  [r],
  (x) => {
    const { values, indices } = x.sort(1, true);
    return [values, indices];
  },
  'lambda x: list(x.sort(1, descending=True))',
);
op(
  'topk',
  [r],
  (x) => {
    const { values, indices } = x.topk(2);
    return [values, indices];
  },
  'lambda x: list(x.topk(2))',
);

group = 'linear algebra';
op('matmul broadcast', [f32([2, 3, 4]), f32([4, 5])], (x, y) => x.matmul(y), 'lambda x, y: x @ y');
op('matmul vector', [f32([3, 4]), f32([4])], (x, y) => x.matmul(y), 'lambda x, y: x @ y');
op('matmul batch broadcast', [f32([2, 1, 3, 4]), f32([3, 4, 2])], (x, y) => x.matmul(y), 'lambda x, y: x @ y');
op('mm', [f32([3, 4]), f32([4, 5])], (x, y) => x.mm(y), 'lambda x, y: x.mm(y)');
op('bmm', [f32([2, 3, 4]), f32([2, 4, 5])], (x, y) => x.bmm(y), 'lambda x, y: x.bmm(y)');
op(
  'einsum batch matmul',
  [f32([2, 3, 4]), f32([2, 4, 5])],
  (x, y) => torch.einsum('bij,bjk->bik', x, y),
  'lambda x, y: torch.einsum("bij,bjk->bik", x, y)',
);
op(
  'einsum rowwise dot',
  [f32([4, 6]), f32([4, 6])],
  (x, y) => torch.einsum('nc,nc->n', x, y),
  'lambda x, y: torch.einsum("nc,nc->n", x, y)',
);
op(
  'einsum logits against a queue',
  [f32([4, 6]), f32([6, 9])],
  (x, y) => torch.einsum('nc,ck->nk', x, y),
  'lambda x, y: torch.einsum("nc,ck->nk", x, y)',
);
op('einsum transpose', [f32([3, 5])], (x) => torch.einsum('ij->ji', x), 'lambda x: torch.einsum("ij->ji", x)');

group = 'neural network functions';
const image = f32([2, 4, 7, 7]);
op(
  'conv2d stride padding bias',
  [image, f32([6, 4, 3, 3], -0.5, 0.5), f32([6])],
  (x, w, bias) => torch.conv2d(x, w, bias, { stride: 2, padding: 1 }),
  'lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1)',
);
op(
  'conv2d groups asymmetric',
  [image, f32([6, 2, 3, 3], -0.5, 0.5)],
  (x, w) => torch.conv2d(x, w, null, { stride: [1, 2], padding: [1, 0], groups: 2 }),
  'lambda x, w: F.conv2d(x, w, None, stride=(1, 2), padding=(1, 0), groups=2)',
);
op(
  'conv2d dilation depthwise',
  [image, f32([4, 1, 3, 3], -0.5, 0.5), f32([4])],
  (x, w, bias) => torch.conv2d(x, w, bias, { dilation: 2, groups: 4 }),
  'lambda x, w, b: F.conv2d(x, w, b, dilation=2, groups=4)',
);
const bnInput = f32([4, 3, 5, 5], -1, 3);
op(
  'batchNorm training updates running stats',
  [bnInput, f32([3]), f32([3]), fixed(f32([3])), fixed(f32([3], 0.5, 2))],
  (x, w, bias, mean, variance) => [
    torch.batchNorm(x, mean, variance, { weight: w, bias, training: true, momentum: 0.2 }),
    mean,
    variance,
  ],
  'lambda x, w, b, m, v: [F.batch_norm(x, m, v, w, b, training=True, momentum=0.2), m, v]',
);
op(
  'batchNorm eval',
  [bnInput, f32([3]), f32([3]), fixed(f32([3])), fixed(f32([3], 0.5, 2))],
  (x, w, bias, mean, variance) => [torch.batchNorm(x, mean, variance, { weight: w, bias }), mean, variance],
  'lambda x, w, b, m, v: [F.batch_norm(x, m, v, w, b), m, v]',
);
op(
  'batchNorm training without running stats or affine',
  [bnInput],
  (x) => torch.batchNorm(x, null, null, { training: true }),
  'lambda x: F.batch_norm(x, None, None, training=True)',
);
const pooled = f32([2, 3, 8, 8]);
op('maxPool2d', [pooled], (x) => torch.maxPool2d(x, 2), 'lambda x: F.max_pool2d(x, 2)');
op(
  'maxPool2d stride padding',
  [pooled],
  (x) => torch.maxPool2d(x, 3, { stride: 2, padding: 1 }),
  'lambda x: F.max_pool2d(x, 3, stride=2, padding=1)',
);
op(
  'maxPool2d ceil mode',
  [f32([1, 2, 7, 7])],
  (x) => torch.maxPool2d(x, 2, { ceilMode: true }),
  'lambda x: F.max_pool2d(x, 2, ceil_mode=True)',
);
op('avgPool2d', [pooled], (x) => torch.avgPool2d(x, 2), 'lambda x: F.avg_pool2d(x, 2)');
op(
  'avgPool2d padding counted',
  [pooled],
  (x) => torch.avgPool2d(x, 3, { stride: 2, padding: 1 }),
  'lambda x: F.avg_pool2d(x, 3, stride=2, padding=1)',
);
op(
  'avgPool2d padding not counted',
  [pooled],
  (x) => torch.avgPool2d(x, 3, { stride: 2, padding: 1, countIncludePad: false }),
  'lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)',
);
op(
  'adaptiveAvgPool2d 1',
  [f32([2, 3, 7, 5])],
  (x) => torch.adaptiveAvgPool2d(x, 1),
  'lambda x: F.adaptive_avg_pool2d(x, 1)',
);
op(
  'adaptiveAvgPool2d uneven',
  [f32([2, 3, 7, 5])],
  (x) => torch.adaptiveAvgPool2d(x, [3, 2]),
  'lambda x: F.adaptive_avg_pool2d(x, (3, 2))',
);
op(
  'linear',
  [f32([4, 5]), f32([3, 5]), f32([3])],
  (x, w, bias) => torch.linear(x, w, bias),
  'lambda x, w, b: F.linear(x, w, b)',
);
op('linear no bias 3-d', [f32([2, 4, 5]), f32([3, 5])], (x, w) => torch.linear(x, w), 'lambda x, w: F.linear(x, w)');
op('dropout p=0', [f32([4, 5])], (x) => torch.dropout(x, 0), 'lambda x: F.dropout(x, 0.0)');
op('dropout p=1', [f32([4, 5])], (x) => torch.dropout(x, 1), 'lambda x: F.dropout(x, 1.0)');
op('dropout eval', [f32([4, 5])], (x) => torch.dropout(x, 0.5, false), 'lambda x: F.dropout(x, 0.5, training=False)');
op('normalize', [f32([4, 6])], (x) => torch.normalize(x), 'lambda x: F.normalize(x)');
op(
  'normalize dim 0 p 1',
  [f32([4, 6])],
  (x) => torch.normalize(x, { p: 1, dim: 0 }),
  'lambda x: F.normalize(x, p=1, dim=0)',
);
op(
  'normalize zero row',
  [{ shape: [2, 3], dtype: 'float32', values: [0, 0, 0, 0.5, -1, 2] }],
  (x) => torch.normalize(x),
  'lambda x: F.normalize(x)',
);
op('logSoftmax', [f32([4, 6], -5, 5)], (x) => torch.logSoftmax(x, 1), 'lambda x: F.log_softmax(x, 1)');
op('logSoftmax dim 0', [f32([4, 6], -5, 5)], (x) => torch.logSoftmax(x, 0), 'lambda x: F.log_softmax(x, 0)');
op('softmax', [f32([4, 6], -5, 5)], (x) => torch.softmax(x, -1), 'lambda x: F.softmax(x, -1)');
const logits = f32([5, 4], -3, 3);
const classes = i64([5], 0, 4);
op('crossEntropy', [logits, classes], (x, t) => torch.crossEntropy(x, t), 'lambda x, t: F.cross_entropy(x, t)');
op(
  'crossEntropy sum',
  [logits, classes],
  (x, t) => torch.crossEntropy(x, t, { reduction: 'sum' }),
  'lambda x, t: F.cross_entropy(x, t, reduction="sum")',
);
op(
  'crossEntropy none weighted',
  [logits, classes, fixed(f32([4], 0.5, 2))],
  (x, t, w) => torch.crossEntropy(x, t, { weight: w, reduction: 'none' }),
  'lambda x, t, w: F.cross_entropy(x, t, weight=w, reduction="none")',
);
op(
  'crossEntropy ignoreIndex labelSmoothing',
  [logits, { shape: [5], dtype: 'int64', values: [0, -100, 3, 2, -100] }],
  (x, t) => torch.crossEntropy(x, t, { labelSmoothing: 0.1 }),
  'lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1)',
);
const bceTarget = fixed(f32([4, 3], 0, 1));
const bceMask: InputSpec = {
  shape: [4, 3],
  dtype: 'float32',
  values: [1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 1],
  grad: false,
};
op(
  'binaryCrossEntropyWithLogits',
  [f32([4, 3], -4, 4), bceTarget],
  (x, t) => torch.binaryCrossEntropyWithLogits(x, t),
  'lambda x, t: F.binary_cross_entropy_with_logits(x, t)',
);
op(
  'binaryCrossEntropyWithLogits weight mask',
  [f32([4, 3], -4, 4), bceTarget, bceMask],
  (x, t, w) => torch.binaryCrossEntropyWithLogits(x, t, { weight: w }),
  'lambda x, t, w: F.binary_cross_entropy_with_logits(x, t, weight=w)',
);
op(
  'binaryCrossEntropyWithLogits sum posWeight',
  [f32([4, 3], -4, 4), bceTarget, fixed(f32([3], 0.5, 3))],
  (x, t, pw) => torch.binaryCrossEntropyWithLogits(x, t, { posWeight: pw, reduction: 'sum' }),
  'lambda x, t, pw: F.binary_cross_entropy_with_logits(x, t, pos_weight=pw, reduction="sum")',
);
op('mseLoss', [f32([4, 3]), fixed(f32([4, 3]))], (x, t) => torch.mseLoss(x, t), 'lambda x, t: F.mse_loss(x, t)');
const theta = f32([2, 2, 3], -1, 1);
for (const align of [false, true]) {
  const pyAlign = align ? 'True' : 'False';
  op(
    `affineGrid alignCorners=${align}`,
    [theta],
    (t) => torch.affineGrid(t, [2, 3, 5, 4], align),
    `lambda t: F.affine_grid(t, [2, 3, 5, 4], align_corners=${pyAlign})`,
  );
  for (const padding of ['zeros', 'border'] as const) {
    op(
      `gridSample bilinear ${padding} alignCorners=${align}`,
      [f32([2, 3, 5, 6]), f32([2, 4, 3, 2], -1.2, 1.2)],
      (x, grid) => torch.gridSample(x, grid, { mode: 'bilinear', paddingMode: padding, alignCorners: align }),
      `lambda x, g: F.grid_sample(x, g, mode="bilinear", padding_mode="${padding}", align_corners=${pyAlign})`,
    );
  }
}
op(
  'gridSample nearest',
  [f32([2, 3, 5, 6]), fixed(f32([2, 4, 3, 2], -1, 1))],
  (x, grid) => torch.gridSample(x, grid, { mode: 'nearest' }),
  'lambda x, g: F.grid_sample(x, g, mode="nearest", align_corners=False)',
);
op(
  'affineGrid then gridSample (a rotation)',
  [f32([1, 2, 6, 6]), fixed({ shape: [1, 2, 3], dtype: 'float32', values: [0.98, -0.17, 0.05, 0.17, 0.98, -0.1] })],
  (x, t) => torch.gridSample(x, torch.affineGrid(t, [1, 2, 6, 6])),
  'lambda x, t: F.grid_sample(x, F.affine_grid(t, [1, 2, 6, 6], align_corners=False), align_corners=False)',
);
const small = f32([2, 3, 4, 5]);
op(
  'interpolate bilinear size',
  [small],
  (x) => torch.interpolate(x, { size: [7, 9], mode: 'bilinear' }),
  'lambda x: F.interpolate(x, size=(7, 9), mode="bilinear", align_corners=False)',
);
op(
  'interpolate bilinear scale alignCorners',
  [small],
  (x) => torch.interpolate(x, { scaleFactor: 2, mode: 'bilinear', alignCorners: true }),
  'lambda x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)',
);
op(
  'interpolate bilinear downsample',
  [small],
  (x) => torch.interpolate(x, { size: [3, 2], mode: 'bilinear' }),
  'lambda x: F.interpolate(x, size=(3, 2), mode="bilinear", align_corners=False)',
);
op(
  'interpolate nearest size',
  [small],
  (x) => torch.interpolate(x, { size: [8, 3], mode: 'nearest' }),
  'lambda x: F.interpolate(x, size=(8, 3), mode="nearest")',
);
op(
  'interpolate nearest scale',
  [small],
  (x) => torch.interpolate(x, { scaleFactor: 2 }),
  'lambda x: F.interpolate(x, scale_factor=2)',
);

group = 'in place';
const base = f32([3, 4]);
op('add_ tensor', [base, f32([4])], (x, y) => x.clone().add_(y), 'lambda x, y: x.clone().add_(y)');
op('add_ scalar alpha', [base], (x) => x.clone().add_(2, 0.5), 'lambda x: x.clone().add_(2, alpha=0.5)');
op(
  'add_ tensor alpha',
  [base, f32([3, 4])],
  (x, y) => x.clone().add_(y, -3),
  'lambda x, y: x.clone().add_(y, alpha=-3)',
);
op('sub_ scalar alpha', [base], (x) => x.clone().sub_(1.5, 2), 'lambda x: x.clone().sub_(1.5, alpha=2)');
op('sub_ tensor', [base, f32([4])], (x, y) => x.clone().sub_(y), 'lambda x, y: x.clone().sub_(y)');
op('mul_ tensor', [base, f32([3, 1])], (x, y) => x.clone().mul_(y), 'lambda x, y: x.clone().mul_(y)');
op('mul_ scalar', [base], (x) => x.clone().mul_(0.75), 'lambda x: x.clone().mul_(0.75)');
op('copy_ broadcast', [base, f32([4])], (x, y) => x.clone().copy_(y), 'lambda x, y: x.clone().copy_(y)');
op('copy_ converts dtype', [base, f64([3, 4])], (x, y) => x.clone().copy_(y), 'lambda x, y: x.clone().copy_(y)');
op('zero_', [base], (x) => x.clone().zero_(), 'lambda x: x.clone().zero_()');
op('lerp_ scalar', [base, f32([3, 4])], (x, y) => x.clone().lerp_(y, 0.3), 'lambda x, y: x.clone().lerp_(y, 0.3)');
op(
  'lerp_ tensor weight',
  [base, f32([3, 4]), f32([4], 0, 1)],
  (x, y, w) => x.clone().lerp_(y, w),
  'lambda x, y, w: x.clone().lerp_(y, w)',
);
op(
  'addcmul_',
  [base, f32([3, 4]), f32([4])],
  (x, p, q) => x.clone().addcmul_(p, q, 0.5),
  'lambda x, p, q: x.clone().addcmul_(p, q, value=0.5)',
);
op(
  'addcdiv_',
  [base, f32([3, 4]), positive([3, 4])],
  (x, p, q) => x.clone().addcdiv_(p, q, -2),
  'lambda x, p, q: x.clone().addcdiv_(p, q, value=-2)',
);
op(
  'in-place chain on a fresh tensor',
  [base],
  (x) => x.mul(2).add_(1).mul_(x).sqrt_(),
  'lambda x: (x * 2).add_(1).mul_(x).sqrt_()',
);

group = 'autograd';
{
  const g = Array.from({ length: 6 }, () => Math.fround(2 * random() - 1));
  op(
    'backward(gradient)',
    [f32([2, 3])],
    (x) => {
      x.mul(x)
        .mul(3)
        .backward(torch.tensor(Float32Array.from(g), [2, 3]));
      return x.grad as Tensor;
    },
    `def f(x):
    (x * x * 3).backward(torch.tensor(${JSON.stringify(g)}).reshape(2, 3))
    return x.grad`,
  );
}
op(
  'retainGrad on an intermediate',
  [f32([2, 3])],
  (x) => {
    const h = x.mul(2).retainGrad();
    h.tanh().sum().backward();
    return [h.grad as Tensor, x.grad as Tensor];
  },
  `def f(x):
    h = x * 2
    h.retain_grad()
    h.tanh().sum().backward()
    return [h.grad, x.grad]`,
);
op(
  'gradients accumulate',
  [f32([4])],
  (x) => {
    x.mul(x).sum().backward();
    x.exp().sum().backward();
    return x.grad as Tensor;
  },
  `def f(x):
    (x * x).sum().backward()
    x.exp().sum().backward()
    return x.grad`,
);
op(
  'retainGraph',
  [f32([4])],
  (x) => {
    const y = x.exp().mul(x).sum();
    y.backward(undefined, { retainGraph: true });
    y.backward();
    return x.grad as Tensor;
  },
  `def f(x):
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    return x.grad`,
);
op(
  'detach cuts the graph',
  [f32([2, 3])],
  (x) => {
    const d = x.detach();
    x.mul(d).sum().backward();
    return [x.grad as Tensor, d];
  },
  `def f(x):
    d = x.detach()
    (x * d).sum().backward()
    return [x.grad, d]`,
);
op(
  'noGrad records no graph',
  [f32([2, 3])],
  (x) => [torch.noGrad(() => x.mul(2).exp()), x.mul(3)],
  `def f(x):
    with torch.no_grad():
        y = (x * 2).exp()
    return [y, x * 3]`,
);
op(
  'grad of a non-leaf is not kept',
  [f32([3])],
  (x) => {
    const y = x.mul(2);
    y.sum().backward();
    return [x.grad as Tensor, torch.scalar(y.grad === null ? 1 : 0, { dtype: 'bool' })];
  },
  `def f(x):
    y = x * 2
    y.sum().backward()
    return [x.grad, torch.tensor(y.grad is None)]`,
);

group = 'random';
const rnd = (name: string, seed: number, js: () => Tensor | Tensor[], py: string): void =>
  op(name, [], js, py, { seed, exact: true });
rnd('rand', 1, () => torch.rand([3, 4]), 'lambda: torch.rand(3, 4)');
rnd('rand float64', 11, () => torch.rand([40], { dtype: 'float64' }), 'lambda: torch.rand(40, dtype=torch.float64)');
rnd('randn short', 2, () => torch.randn([3]), 'lambda: torch.randn(3)');
rnd('randn long', 3, () => torch.randn([5, 7]), 'lambda: torch.randn(5, 7)');
rnd('randn float64', 12, () => torch.randn([33], { dtype: 'float64' }), 'lambda: torch.randn(33, dtype=torch.float64)');
rnd('randint', 4, () => torch.randint(0, 10, [20]), 'lambda: torch.randint(0, 10, (20,))');
rnd('randint negative low', 5, () => torch.randint(-5, 5, [4, 4]), 'lambda: torch.randint(-5, 5, (4, 4))');
rnd('randperm', 6, () => torch.randperm(10), 'lambda: torch.randperm(10)');
rnd('randperm long', 7, () => torch.randperm(300), 'lambda: torch.randperm(300)');
rnd(
  'one seed, a sequence of draws',
  9,
  () => [torch.rand([4]), torch.randn([20]), torch.randint(0, 100, [5]), torch.randperm(6)],
  'lambda: [torch.rand(4), torch.randn(20), torch.randint(0, 100, (5,)), torch.randperm(6)]',
);
rnd(
  'uniform_ normal_ bernoulli_',
  10,
  () => [torch.empty([50]).uniform_(-1, 2), torch.empty([50]).normal_(1, 0.5), torch.empty([50]).bernoulli_(0.3)],
  'lambda: [torch.empty(50).uniform_(-1, 2), torch.empty(50).normal_(1, 0.5), torch.empty(50).bernoulli_(0.3)]',
);
op('dropout p=0.3 (seeded)', [f32([8, 16])], (x) => torch.dropout(x, 0.3), 'lambda x: F.dropout(x, 0.3)', {
  seed: 8,
  exact: true,
});

// ---- running and comparing ----------------------------------------------------

function sameValue(js: number | string, py: number | string, tol: number): boolean {
  if (typeof py === 'string' || typeof js === 'string') return String(js) === String(py);
  if (tol === 0) return Object.is(js, py) || js === py;
  return Math.abs(js - py) <= tol;
}

/** Compares one tensor; `ops` is undefined for an exact comparison. */
function compareTensor(label: string, js: Described, py: Described, ops: number | undefined): number {
  assert.deepEqual(js.shape, py.shape, `${label}: shape`);
  assert.equal(js.dtype, py.dtype, `${label}: dtype`);
  assert.equal(js.requiresGrad, py.requiresGrad, `${label}: requiresGrad`);
  const exact = ops === undefined || !FLOAT_TYPES.has(py.dtype);
  const finite = py.values.filter((v): v is number => typeof v === 'number');
  const tol = exact ? 0 : tolerance(finite, { ops, epsilon: EPSILON[py.dtype] });
  let worst = 0;
  for (let i = 0; i < py.values.length; i++) {
    const [u, v] = [js.values[i] as number | string, py.values[i] as number | string];
    if (!sameValue(u, v, tol)) {
      assert.fail(`${label}: element ${i} is ${String(u)} here and ${String(v)} in PyTorch`);
    }
    if (typeof u === 'number' && typeof v === 'number') worst = Math.max(worst, Math.abs(u - v));
  }
  if (process.env['TOLERANCE_REPORT'] === '1' && tol > 0) {
    process.stderr.write(`tolerance ${label}: diff/tol ${(worst / tol).toFixed(4)}\n`);
  }
  return worst;
}

const skip = oracleMissing();
const prepared = skip === undefined ? cases.map(prepare) : [];
const python =
  skip === undefined
    ? runPython<CaseResult[]>(
        PYTHON_RUNNER,
        prepared.map((p) => ({
          py: p.case.py,
          seed: p.case.seed ?? null,
          inputs: p.inputs.map(({ spec, values, grad }) => ({ shape: spec.shape, dtype: spec.dtype, values, grad })),
          gs: p.gs,
        })),
      )
    : [];

const groups = [...new Set(cases.map((c) => c.group))];
for (const name of groups) {
  describe(`parity with PyTorch: ${name}`, { skip }, () => {
    prepared.forEach((p, index) => {
      if (p.case.group !== name) return;
      it(p.case.name, () => {
        const py = python[index] as CaseResult;
        assert.equal(p.js.error, undefined, `here: ${p.js.error ?? ''}`);
        assert.equal(py.error, undefined, `PyTorch: ${py.error ?? ''}`);
        const ops =
          p.case.exact === true ? undefined : (p.case.ops ?? p.inputs.reduce((n, input) => n + input.values.length, 0));
        assert.equal(p.js.outputs.length, py.outputs.length, 'number of outputs');
        p.js.outputs.forEach((out, i) => compareTensor(`output ${i}`, out, py.outputs[i] as Described, ops));
        p.js.grads.forEach((grad, i) => {
          const expected = py.grads[i] ?? null;
          if (grad === null || expected === null) {
            assert.equal(grad, expected, `gradient of input ${i}: present on one side only`);
            return;
          }
          compareTensor(`gradient of input ${i}`, grad, expected, ops);
        });
      });
    });
  });
}

describe('dropout between 0 and 1', () => {
  it('zeroes some elements and scales the rest by 1/(1-p), in value and in gradient', () => {
    torch.tidy(() => {
      const p = 0.25;
      torch.manualSeed(123);
      const x = torch.rand([4000]).add(0.5).requiresGrad_();
      const y = torch.dropout(x, p);
      y.sum().backward();
      const [xs, ys, gs] = [x.toArray(), y.toArray(), (x.grad as Tensor).toArray()];
      let zeros = 0;
      ys.forEach((v, i) => {
        const kept = v !== 0;
        if (!kept) zeros++;
        const expected = kept ? (xs[i] as number) / (1 - p) : 0;
        assert.ok(Math.abs(v - expected) <= 1e-6 * Math.max(1, expected), `element ${i}: ${v} vs ${expected}`);
        assert.equal(gs[i], kept ? Math.fround(1 / (1 - p)) : 0, `gradient ${i}`);
      });
      const fraction = zeros / xs.length;
      assert.ok(fraction > 0.2 && fraction < 0.3, `fraction dropped ${fraction}`);
    });
  });
});

describe('noGrad', () => {
  it('records no graph and restores grad mode, even after a throw', () => {
    torch.tidy(() => {
      const x = torch.ones([3]).requiresGrad_();
      const y = torch.noGrad(() => {
        assert.equal(torch.isGradEnabled(), false);
        return x.mul(2);
      });
      assert.equal(y.requiresGrad, false);
      assert.equal(y.gradFn, null);
      assert.equal(torch.isGradEnabled(), true);
      assert.throws(() =>
        torch.noGrad(() => {
          throw new Error('inside');
        }),
      );
      assert.equal(torch.isGradEnabled(), true);
      assert.match(x.mul(2).gradFn ?? '', /^MulBackward/);
    });
  });
});
