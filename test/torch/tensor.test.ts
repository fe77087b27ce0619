/**
 * The Tensor API itself: metadata, data out, conversions, in-place methods,
 * `assign`, and which operations share storage. Values are worked by hand.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import * as torch from '../../src/torch/index.js';

type Tensor = torch.Tensor;

/** Runs a test body in a tidy scope so that nothing it makes outlives it. */
const scoped = (body: () => void) => () => torch.tidy(body);

describe('metadata', () => {
  it(
    'shape, size, ndim, numel, dtype, device, strides',
    scoped(() => {
      const t = torch.zeros([2, 3, 4]);
      assert.deepEqual(t.shape, [2, 3, 4]);
      assert.deepEqual(t.size(), [2, 3, 4]);
      assert.equal(t.size(0), 2);
      assert.equal(t.size(-1), 4);
      assert.equal(t.size(-3), 2);
      assert.throws(() => t.size(-4), RangeError);
      assert.equal(t.ndim, 3);
      assert.equal(t.numel(), 24);
      assert.equal(t.dtype, 'float32');
      assert.equal(t.device, 'cpu');
      assert.deepEqual(t.strides, [12, 4, 1]);
      assert.equal(t.isContiguous(), true);
      assert.equal(t.isFloatingPoint(), true);
      assert.equal(torch.zeros([2], { dtype: 'int64' }).isFloatingPoint(), false);
    }),
  );

  it(
    'a 0-d tensor and an empty tensor',
    scoped(() => {
      const s = torch.scalar(4.5);
      assert.deepEqual(s.shape, []);
      assert.equal(s.ndim, 0);
      assert.equal(s.numel(), 1);
      assert.equal(s.item(), 4.5);
      const e = torch.zeros([0, 3]);
      assert.deepEqual(e.shape, [0, 3]);
      assert.equal(e.numel(), 0);
      assert.equal(e.data().length, 0);
      assert.deepEqual(e.toArray(), []);
    }),
  );

  it(
    'toString names shape, dtype and device, and says when disposed',
    scoped(() => {
      const t = torch.ones([2, 3], { dtype: 'int32' });
      assert.equal(String(t), 'Tensor(shape=[2, 3], dtype=int32, device=cpu)');
      assert.equal(String(torch.scalar(1)), 'Tensor(shape=[], dtype=float32, device=cpu)');
      t.dispose();
      assert.equal(t.isDisposed, true);
      assert.equal(String(t), 'Tensor(disposed)');
    }),
  );

  it(
    'a transposed view is not contiguous until made so',
    scoped(() => {
      const t = torch.arange(6).view(2, 3).t();
      assert.deepEqual(t.strides, [1, 3]);
      assert.equal(t.isContiguous(), false);
      const c = t.contiguous();
      assert.equal(c.isContiguous(), true);
      assert.deepEqual(c.toArray(), [0, 3, 1, 4, 2, 5]);
      const image = torch.zeros([2, 3, 4, 5]).contiguous('channelsLast');
      assert.deepEqual(image.strides, [60, 1, 15, 3]);
    }),
  );
});

describe('data out', () => {
  const cases: [torch.DType, new (n: number) => ArrayLike<number | bigint>, (number | bigint)[]][] = [
    ['float32', Float32Array, [1.5, -2, 0.25]],
    ['float64', Float64Array, [1.5, -2, 0.1]],
    ['int64', BigInt64Array, [1n, -2n, 2n ** 40n]],
    ['int32', Int32Array, [1, -2, 2147483647]],
    ['int16', Int16Array, [1, -2, 32767]],
    ['int8', Int8Array, [1, -2, 127]],
    ['uint8', Uint8Array, [1, 2, 255]],
  ];
  for (const [dtype, ArrayType, values] of cases) {
    it(
      `${dtype} comes back as ${ArrayType.name}, values and dtype intact`,
      scoped(() => {
        const source = (ArrayType as unknown as { from(v: unknown[]): ArrayLike<number | bigint> }).from(values);
        const t = torch.tensor(source as torch.AnyTypedArray);
        assert.equal(t.dtype, dtype);
        const out = t.data();
        assert.ok(out instanceof ArrayType, `${out.constructor.name}`);
        assert.deepEqual(Array.from(out as ArrayLike<number | bigint>), values);
      }),
    );
  }

  it(
    'bool comes back as 0/1 bytes; float16 and bfloat16 as rounded float32',
    scoped(() => {
      const flags = torch.tensor(Uint8Array.from([0, 3, 1]), [3], { dtype: 'bool' });
      assert.equal(flags.dtype, 'bool');
      const bytes = flags.data();
      assert.ok(bytes instanceof Uint8Array);
      assert.deepEqual(Array.from(bytes), [0, 1, 1]);
      // 1/3 in half precision is 0.333251953125, in bfloat16 0.333984375.
      const third = Float32Array.from([1 / 3, 65504, 1]);
      const half = torch.tensor(third, [3], { dtype: 'float16' });
      assert.equal(half.dtype, 'float16');
      assert.ok(half.data() instanceof Float32Array);
      assert.deepEqual(half.toArray(), [0.333251953125, 65504, 1]);
      const brain = torch.tensor(third, [3], { dtype: 'bfloat16' });
      assert.equal(brain.dtype, 'bfloat16');
      assert.deepEqual(brain.toArray(), [0.333984375, 65536, 1]);
    }),
  );

  it(
    'data() is a copy in row-major order, also of a strided view',
    scoped(() => {
      const t = torch.tensor(Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]);
      const copy = t.data();
      copy[0] = 100;
      assert.equal(t.toArray()[0], 1);
      assert.deepEqual(t.t().data(), Float32Array.from([1, 4, 2, 5, 3, 6]));
      assert.deepEqual(t.select(1, 2).toArray(), [3, 6]);
    }),
  );

  it(
    'a tensor made from a typed array copies it, honouring a subarray offset',
    scoped(() => {
      const buffer = Float32Array.from([9, 1, 2, 3, 4, 9]);
      const t = torch.tensor(buffer.subarray(1, 5), [2, 2]);
      buffer[1] = 100;
      assert.deepEqual(t.toArray(), [1, 2, 3, 4]);
    }),
  );

  it(
    'fromBytes lays out a strided storage as PyTorch files do',
    scoped(() => {
      const storage = Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7]);
      // A 2x2 view with strides [1, 4] starting at element 1: [[1, 5], [2, 6]].
      const t = torch.fromBytes(new Uint8Array(storage.buffer), 'float32', [2, 2], [1, 4], 1);
      assert.deepEqual(t.toArray(), [1, 5, 2, 6]);
    }),
  );

  it(
    'item() and toArray() give plain numbers',
    scoped(() => {
      assert.equal(torch.scalar(7, { dtype: 'int64' }).item(), 7);
      assert.equal(torch.tensor([1], undefined, { dtype: 'bool' }).item(), 1);
      assert.equal(torch.tensor([0.1], undefined, { dtype: 'float64' }).item(), 0.1);
      assert.equal(torch.tensor([0.1]).item(), Math.fround(0.1));
      assert.deepEqual(torch.arange(3).toArray(), [0, 1, 2]);
      assert.equal(typeof torch.arange(3).toArray()[0], 'number');
    }),
  );
});

describe('shape helpers', () => {
  it(
    'expandAs broadcasts without copying',
    scoped(() => {
      const column = torch.tensor([[1], [2]]);
      const wide = column.expandAs(torch.zeros([2, 3]));
      assert.deepEqual(wide.shape, [2, 3]);
      assert.deepEqual(wide.strides, [1, 0]);
      assert.deepEqual(wide.toArray(), [1, 1, 1, 2, 2, 2]);
      assert.equal(wide._storageId(), column._storageId());
    }),
  );

  it(
    'conversions to the same dtype and device return the same storage; copy: true does not',
    scoped(() => {
      const t = torch.ones([3]);
      assert.equal(t.to('float32')._storageId(), t._storageId());
      assert.equal(t.to('cpu')._storageId(), t._storageId());
      assert.notEqual(t.to('float32', { copy: true })._storageId(), t._storageId());
      assert.notEqual(t.to('float64')._storageId(), t._storageId());
    }),
  );
});

describe('operators by schema name', () => {
  it(
    'run the named overload, and one handle serves each name',
    scoped(() => {
      const neg = torch.operator('aten::neg');
      assert.equal(torch.operator('aten::neg'), neg);
      assert.notEqual(torch.operator('aten::add', 'Scalar'), torch.operator('aten::add', 'Tensor'));
      assert.deepEqual((neg([torch.tensor([1, -2])]) as Tensor).toArray(), [-1, 2]);
      assert.match(neg.schema(), /^aten::neg\(Tensor self\) -> Tensor/);
      const addScalar = torch.operator('aten::add', 'Scalar');
      assert.deepEqual((addScalar([torch.tensor([1, 2]), 3, 2]) as Tensor).toArray(), [7, 8]);
      const t = torch.tensor([4, 9]);
      torch.operator('aten::sqrt_').inPlace([t]);
      assert.deepEqual(t.toArray(), [2, 3]);
    }),
  );
});

describe('comparison', () => {
  it(
    'equal() is true only for the same shape and elements',
    scoped(() => {
      const t = torch.tensor([1, 2, 3]);
      assert.equal(t.equal(torch.tensor([1, 2, 3])), true);
      assert.equal(t.equal(torch.tensor([1, 2, 4])), false);
      assert.equal(t.equal(torch.tensor([[1, 2, 3]])), false);
      assert.equal(t.equal(t.clone()), true);
    }),
  );
});

describe('in-place methods', () => {
  it(
    'return this and change the values',
    scoped(() => {
      const t = torch.tensor([1, 2, 3]);
      assert.equal(t.add_(1), t);
      assert.equal(t.add_(torch.tensor([1, 1, 1]), 2), t);
      assert.deepEqual(t.toArray(), [4, 5, 6]);
      assert.equal(t.mul_(2), t);
      assert.equal(t.sub_(torch.tensor([1, 1, 1])), t);
      assert.equal(t.div_(torch.tensor([7, 9, 11])), t);
      assert.deepEqual(t.toArray(), [1, 1, 1]);
      assert.equal(t.lerp_(torch.tensor([3, 5, 9]), 0.5), t);
      assert.deepEqual(t.toArray(), [2, 3, 5]);
      assert.equal(t.addcmul_(torch.tensor([1, 2, 3]), torch.tensor([2, 2, 2]), 0.5), t);
      assert.deepEqual(t.toArray(), [3, 5, 8]);
      assert.equal(t.addcdiv_(torch.tensor([2, 4, 6]), torch.tensor([2, 2, 2]), -1), t);
      assert.deepEqual(t.toArray(), [2, 3, 5]);
      assert.equal(t.clamp_(2.5, 4), t);
      assert.deepEqual(t.toArray(), [2.5, 3, 4]);
      assert.equal(t.copy_(torch.tensor([7], undefined, { dtype: 'int64' })), t);
      assert.deepEqual(t.toArray(), [7, 7, 7]);
      assert.equal(t.dtype, 'float32');
      assert.equal(t.fill_(-1), t);
      assert.equal(t.relu_(), t);
      assert.deepEqual(t.toArray(), [0, 0, 0]);
      assert.equal(t.fill_(4).sqrt_(), t);
      assert.deepEqual(t.toArray(), [2, 2, 2]);
      assert.equal(t.maskedFill_(torch.tensor([1, 0, 1], undefined, { dtype: 'bool' }), 9), t);
      assert.deepEqual(t.toArray(), [9, 2, 9]);
      assert.equal(t.zero_(), t);
      assert.deepEqual(t.toArray(), [0, 0, 0]);
      assert.equal(t.requiresGrad_(), t);
      assert.equal(t.requiresGrad, true);
      assert.equal(t.detach_(), t);
      assert.equal(t.requiresGrad, false);
    }),
  );

  it(
    'write through a view into the base tensor',
    scoped(() => {
      const base = torch.zeros([2, 3]);
      base.select(0, 1).fill_(5);
      base.narrow(1, 0, 1).add_(1);
      assert.deepEqual(base.toArray(), [1, 0, 0, 6, 5, 5]);
    }),
  );
});

describe('storage semantics', () => {
  it(
    'clone copies; detach and view share',
    scoped(() => {
      const x = torch.tensor([1, 2, 3, 4]).requiresGrad_();
      const cloned = x.clone();
      const detached = x.detach();
      const viewed = x.view(2, 2);
      assert.notEqual(cloned._storageId(), x._storageId());
      assert.equal(detached._storageId(), x._storageId());
      assert.equal(viewed._storageId(), x._storageId());
      assert.equal(cloned.requiresGrad, true);
      assert.equal(cloned.gradFn, 'CloneBackward0');
      assert.equal(detached.requiresGrad, false);
      assert.equal(detached.isLeaf, true);
      detached.mul_(10);
      assert.deepEqual(x.toArray(), [10, 20, 30, 40]);
      assert.deepEqual(viewed.toArray(), [10, 20, 30, 40]);
      assert.deepEqual(cloned.toArray(), [1, 2, 3, 4]);
    }),
  );

  it(
    'assign points this object at another tensor and frees the other wrapper',
    scoped(() => {
      const param = torch.ones([2]).requiresGrad_();
      const replacement = torch.tensor([5, 6]);
      const storage = replacement._storageId();
      assert.equal(param.assign(replacement), param);
      assert.equal(replacement.isDisposed, true);
      assert.deepEqual(param.toArray(), [5, 6]);
      assert.equal(param._storageId(), storage);
      assert.equal(param.requiresGrad, false);
      // assigning to itself changes nothing
      param.assign(param);
      assert.deepEqual(param.toArray(), [5, 6]);
      assert.equal(param.isDisposed, false);
    }),
  );

  it(
    'grad reads are new wrappers of one gradient; setting null clears it',
    scoped(() => {
      const w = torch.tensor([1, 2]).requiresGrad_();
      assert.equal(w.grad === null, true);
      w.mul(w).sum().backward();
      const first = w.grad as Tensor;
      const second = w.grad as Tensor;
      assert.notEqual(first, second);
      assert.equal(first._storageId(), second._storageId());
      assert.deepEqual(first.toArray(), [2, 4]);
      first.dispose();
      assert.deepEqual(second.toArray(), [2, 4]);
      w.grad = torch.tensor([7, 7]);
      assert.deepEqual(w.grad.toArray(), [7, 7]);
      w.grad = null;
      assert.equal(w.grad, null);
    }),
  );

  it(
    'isLeaf and gradFn follow the graph',
    scoped(() => {
      const x = torch.ones([2]).requiresGrad_();
      assert.equal(x.isLeaf, true);
      assert.equal(x.gradFn, null);
      const y = x.exp();
      assert.equal(y.isLeaf, false);
      assert.equal(y.gradFn, 'ExpBackward0');
      assert.equal(torch.ones([2]).exp().isLeaf, true);
    }),
  );
});
