/**
 * Bad calls fail with the right error class and a message a user can act on,
 * and never take the process down: after each one the engine still computes.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';

import * as torch from '../../src/torch/index.js';

type Tensor = torch.Tensor;
type ErrorClass = typeof Error | typeof TypeError | typeof RangeError;

interface BadCall {
  name: string;
  call: () => unknown;
  error: ErrorClass;
  message: RegExp;
  skip?: string;
}

const int64 = (values: number[]): Tensor =>
  torch.tensor(
    BigInt64Array.from(values, (v) => BigInt(v)),
    [values.length],
  );

function disposed(): Tensor {
  const t = torch.ones([2, 2]).requiresGrad_();
  t.dispose();
  return t;
}

const noCuda = torch.buildInfo().cudaCompiled ? 'this libtorch has CUDA' : undefined;

const badCalls: BadCall[] = [
  // shapes
  {
    name: 'add with mismatched shapes',
    call: () => torch.ones([2, 3]).add(torch.ones([4])),
    error: Error,
    message: /size of tensor a \(3\) must match the size of tensor b \(4\)/,
  },
  {
    name: 'matmul with mismatched inner sizes',
    call: () => torch.ones([2, 3]).matmul(torch.ones([4, 5])),
    error: Error,
    message: /2x3 and 4x5/,
  },
  {
    name: 'view to a size that does not fit',
    call: () => torch.ones([6]).view(4, 2),
    error: Error,
    message: /shape '\[4, 2\]' is invalid for input of size 6/,
  },
  {
    name: 'conv2d with the wrong channel count',
    call: () => torch.conv2d(torch.ones([1, 3, 5, 5]), torch.ones([2, 4, 3, 3])),
    error: Error,
    message: /expected input\[1, 3, 5, 5\] to have 4 channels, but got 3/,
  },
  // dtypes
  {
    name: 'mm of float32 and int64',
    call: () => torch.ones([2, 2]).mm(torch.ones([2, 2], { dtype: 'int64' })),
    error: Error,
    message: /scalar type Float but found Long|same dtype/,
  },
  {
    name: 'crossEntropy with float targets',
    call: () => torch.crossEntropy(torch.ones([2, 3]), torch.zeros([2])),
    error: Error,
    message: /Long/,
  },
  {
    name: 'unknown dtype',
    call: () => torch.zeros([2], { dtype: 'float8' as torch.DType }),
    error: TypeError,
    message: /unknown dtype 'float8': expected one of .*float32/,
  },
  {
    name: 'to() an unknown dtype or device',
    call: () => torch.ones([2]).to('complex64' as torch.DType),
    error: TypeError,
    message: /to\('complex64'\): expected a dtype .* or a device/,
  },
  {
    name: 'a typed array with no dtype',
    call: () => torch.tensor(new Uint16Array(3) as unknown as Float32Array),
    error: TypeError,
    message: /Uint16Array has no matching dtype/,
  },
  // indices
  {
    name: 'select past the end',
    call: () => torch.ones([4, 2]).select(0, 4),
    error: Error,
    message: /index 4 out of range for tensor of size \[4, 2\] at dimension 0/,
  },
  {
    name: 'select on a missing dimension',
    call: () => torch.ones([4]).select(2, 0),
    error: Error,
    message: /Dimension out of range/,
  },
  {
    name: 'indexSelect with an index past the end',
    call: () => torch.ones([4]).indexSelect(0, int64([1, 7])),
    error: Error,
    message: /index out of range/,
  },
  {
    name: 'gather with an index past the end',
    call: () => torch.ones([4]).gather(0, int64([9])),
    error: Error,
    message: /index 9 is out of bounds for dimension 0 with size 4/,
  },
  {
    name: 'crossEntropy with a class past the end',
    call: () => torch.crossEntropy(torch.ones([2, 3]), int64([0, 5])),
    error: Error,
    message: /Target 5 is out of bounds/,
  },
  {
    name: 'size() of a missing dimension',
    call: () => torch.ones([4]).size(3),
    error: RangeError,
    message: /size\(3\): tensor has 1 dimensions/,
  },
  // argument types
  {
    name: 'a string where a tensor is expected (method)',
    call: () => torch.ones([2]).add('x' as unknown as Tensor),
    error: TypeError,
    message: /aten::add\.Tensor: argument 'other' must be a Tensor/,
  },
  {
    name: 'a string where a tensor is expected (function)',
    call: () => torch.conv2d('image' as unknown as Tensor, torch.ones([1, 1, 1, 1])),
    error: TypeError,
    message: /aten::conv2d: argument 'input' must be a Tensor/,
  },
  {
    name: 'a non-tensor in a tensor list',
    call: () => torch.cat([torch.ones([2]), { shape: [2] } as unknown as Tensor]),
    error: TypeError,
    message: /aten::cat: argument 'tensors' must be an array of Tensors/,
  },
  {
    name: 'a missing tensor argument',
    call: () => torch.ones([2, 2]).matmul(null as unknown as Tensor),
    error: TypeError,
    message: /aten::matmul: argument 'other' is required/,
  },
  {
    name: 'an object that only pretends to be a Tensor',
    call: () => torch.ones([2]).mul(Object.create(torch.Tensor.prototype) as Tensor),
    error: TypeError,
    message: /expected a Tensor made by the torch functions/,
  },
  {
    name: 'a number where a dtype or device is expected',
    call: () => torch.ones([2]).to(5 as unknown as torch.DType),
    error: TypeError,
    message: /to\(target\): expected a dtype name or a device/,
  },
  {
    name: 'a string where a dimension is expected',
    call: () => torch.ones([2, 2]).select('0' as unknown as number, 0),
    error: TypeError,
    message: /aten::select\.int: argument 'dim' must be an integer/,
  },
  {
    name: 'too many operator arguments',
    call: () => torch.operator('aten::neg')([torch.ones([1]), 1]),
    error: TypeError,
    message: /aten::neg: takes 1 arguments, got 2/,
  },
  {
    name: 'an operator this libtorch lacks',
    call: () => torch.operator('aten::no_such_op')([]),
    error: Error,
    message: /no operator aten::no_such_op in this libtorch/,
  },
  {
    name: 'an unknown gridSample mode',
    call: () =>
      torch.gridSample(torch.ones([1, 1, 2, 2]), torch.zeros([1, 1, 1, 2]), {
        mode: 'cubic' as 'bilinear',
      }),
    error: TypeError,
    message: /gridSample: unknown mode 'cubic'/,
  },
  {
    name: 'an unknown loss reduction',
    call: () => torch.mseLoss(torch.ones([2]), torch.ones([2]), 'avg' as 'mean'),
    error: TypeError,
    message: /reduction must be 'none', 'mean' or 'sum', got 'avg'/,
  },
  {
    name: 'ragged nested arrays',
    call: () => torch.tensor([[1, 2], [3]]),
    error: TypeError,
    message: /nested arrays are ragged/,
  },
  // shapes that are not sizes
  {
    name: 'a fractional size',
    call: () => torch.zeros([2.5]),
    error: TypeError,
    message: /zeros: shape must hold non-negative integers, got \[2\.5\]/,
  },
  {
    name: 'a fractional view size',
    call: () => torch.ones([4]).view(2.5, 2),
    error: TypeError,
    message: /aten::view: argument 'size' must be an integer/,
  },
  {
    name: 'NaN as a size',
    call: () => torch.ones([NaN]),
    error: TypeError,
    message: /ones: shape must hold non-negative integers/,
  },
  {
    name: 'a shape that is not an array',
    call: () => torch.zeros(3 as unknown as number[]),
    error: TypeError,
    message: /zeros: shape must be an array of integers/,
  },
  {
    name: 'a shape that disagrees with the data',
    call: () => torch.tensor(new Float32Array(5), [2, 3]),
    error: TypeError,
    message: /shape \[2, 3\] holds 6 elements but the array has 5/,
  },
  {
    name: 'a negative size',
    call: () => torch.full([-1], 1),
    error: TypeError,
    message: /full: shape must hold non-negative integers, got \[-1\]/,
  },
  {
    name: 'a negative size through an operator',
    call: () => torch.randperm(-3),
    error: Error,
    message: /negative dimension -3/,
  },
  {
    name: 'a negative size in reshape',
    call: () => torch.ones([4]).reshape(-2, 2),
    error: Error,
    message: /invalid shape dimension -2/,
  },
  // lifetimes
  {
    name: 'using a disposed tensor',
    call: () => disposed().add(1),
    error: Error,
    message: /Tensor is disposed: it was freed by dispose\(\) or by a tidy\(\) scope/,
  },
  {
    name: 'passing a disposed tensor',
    call: () => torch.ones([2, 2]).add(disposed()),
    error: Error,
    message: /Tensor is disposed/,
  },
  {
    name: 'reading the data of a disposed tensor',
    call: () => disposed().data(),
    error: Error,
    message: /Tensor is disposed/,
  },
  {
    name: 'reading .grad of a disposed tensor',
    call: () => disposed().grad,
    error: Error,
    message: /Tensor is disposed/,
  },
  {
    name: 'using a tensor made with new Tensor()',
    call: () => new torch.Tensor().add(1),
    error: Error,
    message: /Tensor is empty: make tensors with the torch functions, not with new Tensor\(\)/,
  },
  {
    name: 'reading the shape of a tensor made with new Tensor()',
    call: () => new torch.Tensor().shape,
    error: Error,
    message: /Tensor is empty/,
  },
  // values
  {
    name: 'item() of a tensor with several elements',
    call: () => torch.ones([3]).item(),
    error: Error,
    message: /item\(\) needs a tensor with exactly one element, got 3/,
  },
  {
    name: 'dropout probability above 1',
    call: () => torch.dropout(torch.ones([2]), 1.5),
    error: RangeError,
    message: /dropout: p must be in \[0, 1\], got 1\.5/,
  },
  // devices
  {
    name: 'a CUDA tensor on a CPU-only build',
    call: () => torch.zeros([2], { device: 'cuda' }),
    error: Error,
    message: /device 'cuda' requested, but this libtorch \(.+\) was built without CUDA/,
    skip: noCuda,
  },
  {
    name: 'moving a tensor to CUDA on a CPU-only build',
    call: () => torch.ones([2]).cuda(),
    error: Error,
    message: /device 'cuda:0' requested, but this libtorch .* was built without CUDA/,
    skip: noCuda,
  },
  {
    name: 'a malformed device name',
    call: () => torch.ones([2]).to('cuda:x' as torch.Device),
    error: TypeError,
    message: /invalid device 'cuda:x': expected 'cpu', 'cuda' or 'cuda:N'/,
  },
  // autograd
  {
    name: 'backward on a tensor that does not require grad',
    call: () => torch.ones([2]).sum().backward(),
    error: Error,
    message: /does not require grad and does not have a grad_fn/,
  },
  {
    name: 'backward on a non-scalar without a gradient',
    call: () => torch.ones([2]).requiresGrad_().mul(2).backward(),
    error: Error,
    message: /grad can be implicitly created only for scalar outputs/,
  },
  {
    name: 'backward twice through a freed graph',
    call: () => {
      const y = torch.ones([2]).requiresGrad_().exp().sum();
      y.backward();
      y.backward();
    },
    error: Error,
    message: /backward through the graph a second time/,
  },
  {
    name: 'noGrad around an async function',
    call: () => torch.noGrad(async () => Promise.resolve(1)),
    error: TypeError,
    message: /noGrad\(fn\): fn must be synchronous/,
  },
  {
    name: 'requiresGrad on an integer tensor',
    call: () => torch.ones([2], { dtype: 'int64' }).requiresGrad_(),
    error: Error,
    message: /Only Tensors of floating point and complex dtype can require gradients/,
  },
  {
    name: 'requiresGrad_ with a non-boolean',
    call: () => torch.ones([2]).requiresGrad_('yes' as unknown as boolean),
    error: TypeError,
    message: /requiresGrad: expected a boolean/,
  },
  {
    name: 'an in-place op on a leaf that requires grad',
    call: () => torch.ones([2]).requiresGrad_().add_(1),
    error: Error,
    message: /a leaf Variable that requires grad is being used in an in-place operation/,
  },
  {
    name: 'a gradient of the wrong shape',
    call: () => {
      torch.ones([2]).grad = torch.ones([3]);
    },
    error: TypeError,
    message: /grad: assigned gradient has shape \[3\] but the tensor has shape \[2\]/,
  },
  {
    name: 'a gradient of the wrong dtype',
    call: () => {
      torch.ones([2]).grad = torch.ones([2], { dtype: 'float64' });
    },
    error: TypeError,
    message: /grad: assigned gradient has dtype Double but the tensor has Float/,
  },
  {
    name: 'a gradient that is not a tensor',
    call: () => {
      torch.ones([2]).grad = [1, 2] as unknown as Tensor;
    },
    error: TypeError,
    message: /grad: expected a Tensor/,
  },
];

/** A small computation whose answer is known: the engine still works. */
function engineAlive(): void {
  const value = torch.tidy(() =>
    torch
      .ones([2, 2])
      .add(1)
      .matmul(torch.ones([2, 1]))
      .sum()
      .item(),
  );
  assert.equal(value, 8);
}

describe('bad calls', () => {
  for (const bad of badCalls) {
    it(bad.name, { skip: bad.skip }, () => {
      torch.tidy(() => {
        assert.throws(bad.call, (error: unknown) => {
          assert.ok(error instanceof Error, `threw a non-Error: ${String(error)}`);
          assert.equal(error.constructor, bad.error, `${error.constructor.name}: ${error.message}`);
          assert.match(error.message, bad.message);
          return true;
        });
      });
      engineAlive();
    });
  }

  it('a tensor made with new Tensor() still describes itself', () => {
    const empty = new torch.Tensor();
    assert.equal(String(empty), 'Tensor(empty)');
    empty.dispose();
    assert.equal(String(empty), 'Tensor(disposed)');
  });
});

// Hostile input straight to every native entry point, in a child process so that
// an abort or a segfault shows up as a failed exit instead of killing the runner.
const HOSTILE = `
import { native } from '${resolve('src/torch/native.js')}';
import * as torch from '${resolve('src/torch/index.js')}';
const t = torch.ones([2, 2]);
const fake = Object.create(torch.Tensor.prototype);
const weird = [undefined, null, 0, -1, 1e300, NaN, 'x', {}, [], [[]], [1, 'a'], fake, () => 1, 2n ** 70n, Symbol('s')];
const calls = [
  ...weird.map((w) => () => native.fromBytes(w, 6, [1])),
  ...weird.map((w) => () => native.fromBytes(new Uint8Array(8), w, [2])),
  ...weird.map((w) => () => native.fromBytes(new Uint8Array(8), 6, w)),
  ...weird.map((w) => () => native.fromBytes(new Uint8Array(8), 6, [2], w, w)),
  () => native.fromBytes(new Uint8Array(8), 6, [1], [1], -3),
  () => native.fromBytes(new Uint8Array(8), 99, [8]),
  () => native.fromBytes(new Uint8Array(7), 6, [1]),
  ...weird.map((w) => () => native.resolve(w, '')),
  ...weird.map((w) => () => native.call(w, [])),
  ...weird.map((w) => () => native.call(native.resolve('aten::add', 'Tensor').id, [t, w, w])),
  ...weird.map((w) => () => native.call(native.resolve('aten::zeros', '').id, [w])),
  ...weird.map((w) => () => native.call(native.resolve('aten::cat', '').id, [[t, w]])),
  ...weird.map((w) => () => native.call(native.resolve('aten::index', 'Tensor').id, [t, [w]])),
  ...weird.map((w) => () => native.call(native.resolve('aten::to', 'dtype').id, [t, w])),
  ...weird.map((w) => () => native.call(native.resolve('aten::zeros', '').id, [[2], undefined, undefined, w])),
  ...weird.map((w) => () => native.schema(w)),
  ...weird.map((w) => () => native.setNumThreads(w)),
  ...weird.map((w) => () => native.manualSeed(w)),
  ...weird.map((w) => () => native.setGradEnabled(w)),
  ...weird.filter((w) => typeof w !== 'function').map((w) => () => native.setTensorClass(w)),
  ...weird.map((w) => () => t._setGrad(w)),
  ...weird.map((w) => () => t._backward(w, w, w)),
  ...weird.map((w) => () => t._assign(w)),
  ...weird.map((w) => () => t._setRequiresGrad(w)),
  ...weird.map((w) => () => torch.Tensor.prototype._shape.call(w)),
  () => fake._item(),
  () => fake.dispose(),
  () => native.call(native.resolve('aten::to', 'dtype').id, [t, 99]),
  () => native.call(native.resolve('aten::as_strided', '').id, [t, [4], [100]]).data(),
  () => native.call(native.resolve('aten::empty', 'memory_format').id, [[1e6, 1e6, 1e6]]),
  () => torch.operator('aten::to_sparse')([t]).data(),
  () => torch.operator('aten::to_mkldnn')([t]).data(),
];
let thrown = 0;
for (const call of calls) {
  try { call(); } catch { thrown++; }
}
if (torch.ones([3]).sum().item() !== 3) throw new Error('engine broken');
console.log('survived ' + calls.length + ' calls, ' + thrown + ' threw');
`;

describe('native entry points', () => {
  it('turn hostile input into exceptions, never a crash', () => {
    const dir = mkdtempSync(join(tmpdir(), 'moco-cxr-hostile-'));
    try {
      const script = join(dir, 'hostile.ts');
      writeFileSync(script, HOSTILE);
      const run = spawnSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8' });
      assert.equal(run.signal, null, `killed by ${String(run.signal)}\n${run.stderr}`);
      assert.equal(run.status, 0, run.stderr);
      const match = /survived (\d+) calls, (\d+) threw/.exec(run.stdout);
      assert.ok(match, run.stdout + run.stderr);
      // Nearly every call is invalid; the few valid ones (e.g. setNumThreads(1)) return normally.
      assert.ok(Number(match[2]) > Number(match[1]) * 0.8, match[0]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
