import assert from 'node:assert/strict';
import { test } from 'node:test';

import { nn, torch } from '../../src/index.js';
import type { Tensor } from '../../src/torch/index.js';
import { oracleMissing, runPython } from '../helpers/oracle.js';
import { assertClose } from '../helpers/tolerance.js';

const skip = oracleMissing();

function values(t: Tensor): number[] {
  return t.toArray();
}

/** Equal to PyTorch's within float32's error over `ops` roundings per value (see test/helpers/tolerance.ts). */
function close(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, ops: number): void {
  assertClose(actual, expected, what, { ops });
}

// Reduction lengths: a conv's fan-in, a batch's elements per channel (BatchNorm
// over [3, 4, 2, 3] batches: 18), and the largest pooling window (7 × 9).
const CONV_OPS = 2 * 3 * 3;
const LINEAR_OPS = 5;
const BN_OPS = 3 * 2 * 3;
const POOL_OPS = 7 * 9;
// Initial values: the same random bits scaled to the bound, by a vector or a scalar kernel.
const INIT_OPS = 2;

test('Conv2d and Linear start from the values PyTorch draws for the same seed, and compute the same', { skip }, () => {
  torch.manualSeed(7);
  const conv = new nn.Conv2d(4, 6, 3, { stride: 2, padding: 1, groups: 2 });
  const plain = new nn.Conv2d(3, 5, [1, 3], { bias: false });
  const linear = new nn.Linear(5, 3);
  const x = torch.randn([2, 4, 5, 5]);
  const v = torch.randn([4, 5]);
  const expected = runPython<Record<string, number[]>>(`
import torch
torch.manual_seed(7)
conv = torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)
plain = torch.nn.Conv2d(3, 5, (1, 3), bias=False)
linear = torch.nn.Linear(5, 3)
x = torch.randn(2, 4, 5, 5)
v = torch.randn(4, 5)
flat = lambda t: t.detach().reshape(-1).tolist()
OUTPUT = {
  'conv.weight': flat(conv.weight), 'conv.bias': flat(conv.bias), 'plain.weight': flat(plain.weight),
  'linear.weight': flat(linear.weight), 'linear.bias': flat(linear.bias),
  'conv(x)': flat(conv(x)), 'linear(v)': flat(linear(v)),
}
`);
  close(values(conv.weight), expected['conv.weight'] ?? [], 'conv.weight at initialization', INIT_OPS);
  close(values(conv.bias as Tensor), expected['conv.bias'] ?? [], 'conv.bias at initialization', INIT_OPS);
  close(values(plain.weight), expected['plain.weight'] ?? [], 'plain.weight at initialization', INIT_OPS);
  assert.equal(plain.bias, null);
  close(values(linear.weight), expected['linear.weight'] ?? [], 'linear.weight at initialization', INIT_OPS);
  close(values(linear.bias as Tensor), expected['linear.bias'] ?? [], 'linear.bias at initialization', INIT_OPS);
  const y = conv.forward(x);
  const w = linear.forward(v);
  close(values(y), expected['conv(x)'] ?? [], 'conv(x)', CONV_OPS);
  close(values(w), expected['linear(v)'] ?? [], 'linear(v)', LINEAR_OPS);
  torch.dispose([x, v, y, w]);
  [conv, plain, linear].forEach((m) => m.dispose());
});

test('nn.init matches torch.nn.init draw for draw', { skip }, () => {
  torch.manualSeed(3);
  const a = torch.empty([8, 4, 3, 3]);
  const b = torch.empty([16, 8]);
  const c = torch.empty([6, 2, 5, 5]);
  nn.init.kaimingNormal_(a, { mode: 'fanOut', nonlinearity: 'relu' });
  nn.init.kaimingUniform_(b, { a: Math.sqrt(5) });
  nn.init.kaimingNormal_(c);
  const expected = runPython<number[][]>(`
import math, torch
torch.manual_seed(3)
a = torch.empty(8, 4, 3, 3); b = torch.empty(16, 8); c = torch.empty(6, 2, 5, 5)
torch.nn.init.kaiming_normal_(a, mode='fan_out', nonlinearity='relu')
torch.nn.init.kaiming_uniform_(b, a=math.sqrt(5))
torch.nn.init.kaiming_normal_(c)
OUTPUT = [t.reshape(-1).tolist() for t in (a, b, c)]
`);
  assert.deepEqual(values(a), expected[0]);
  assert.deepEqual(values(b), expected[1]);
  assert.deepEqual(values(c), expected[2]);
  assert.deepEqual(nn.init.calculateFanInAndFanOut(a), [36, 72]);
  torch.dispose([a, b, c]);
});

const BN_CASES = [
  { name: 'default', momentum: 0.1, affine: true, track: true },
  { name: 'cumulative average (momentum None)', momentum: null, affine: true, track: true },
  { name: 'no affine', momentum: 0.3, affine: false, track: true },
  { name: 'no running stats', momentum: 0.1, affine: false, track: false },
] as const;

test('BatchNorm2d updates running stats and num_batches_tracked exactly as PyTorch', { skip }, () => {
  torch.manualSeed(11);
  const batches = [0, 1, 2].map((i) =>
    torch
      .randn([3, 4, 2, 3])
      .mul(i + 1)
      .add(i),
  );
  const probe = torch.randn([2, 4, 2, 3]);
  const expected = runPython<Record<string, number[]>[]>(
    `
import torch
torch.manual_seed(11)
batches = [torch.randn(3, 4, 2, 3) * (i + 1) + i for i in range(3)]
probe = torch.randn(2, 4, 2, 3)
OUTPUT = []
for case in INPUT:
    bn = torch.nn.BatchNorm2d(4, momentum=case['momentum'], affine=case['affine'], track_running_stats=case['track'])
    if case['affine']:
        with torch.no_grad():
            bn.weight.copy_(torch.linspace(0.5, 2, 4)); bn.bias.copy_(torch.linspace(-1, 1, 4))
    out = {}
    for i, b in enumerate(batches):
        out['train%d' % i] = bn(b).detach().reshape(-1).tolist()
    if case['track']:
        out['running_mean'] = bn.running_mean.tolist(); out['running_var'] = bn.running_var.tolist()
        out['num_batches_tracked'] = [bn.num_batches_tracked.item()]
    bn.eval()
    out['eval'] = bn(probe).detach().reshape(-1).tolist()
    OUTPUT.append(out)
`,
    BN_CASES,
  );
  BN_CASES.forEach((c, ci) => {
    const want = expected[ci] as Record<string, number[]>;
    const bn = new nn.BatchNorm2d(4, { momentum: c.momentum, affine: c.affine, trackRunningStats: c.track });
    if (c.affine) {
      torch.tidy(() =>
        torch.noGrad(() => {
          bn.weight?.copy_(torch.linspace(0.5, 2, 4));
          bn.bias?.copy_(torch.linspace(-1, 1, 4));
        }),
      );
    }
    batches.forEach((b, i) => {
      const out = bn.forward(b);
      close(values(out), want[`train${i}`] ?? [], `${c.name}: training batch ${i}`, BN_OPS);
      out.dispose();
    });
    if (c.track) {
      // Three batches' statistics folded in one after another.
      close(values(bn.runningMean as Tensor), want['running_mean'] ?? [], `${c.name}: running_mean`, 3 * BN_OPS);
      close(values(bn.runningVar as Tensor), want['running_var'] ?? [], `${c.name}: running_var`, 3 * BN_OPS);
      assert.deepEqual(values(bn.numBatchesTracked as Tensor), want['num_batches_tracked']);
      assert.deepEqual(Object.keys(bn.stateDict({ keepVars: true })), [
        ...(c.affine ? ['weight', 'bias'] : []),
        'running_mean',
        'running_var',
        'num_batches_tracked',
      ]);
    } else {
      assert.deepEqual(Object.keys(bn.stateDict({ keepVars: true })), []);
    }
    bn.eval();
    const out = bn.forward(probe);
    close(values(out), want['eval'] ?? [], `${c.name}: evaluation`, 3 * BN_OPS);
    out.dispose();
    bn.dispose();
  });
  torch.dispose([batches, probe]);
});

test('pooling, flatten and ReLU layers agree with PyTorch', { skip }, () => {
  torch.manualSeed(5);
  const x = torch.randn([2, 3, 7, 9]);
  const expected = runPython<number[][]>(`
import torch
torch.manual_seed(5)
x = torch.randn(2, 3, 7, 9)
nn = torch.nn
layers = [nn.MaxPool2d(3, stride=2, padding=1), nn.MaxPool2d(2, ceil_mode=True), nn.AvgPool2d(2, stride=2),
          nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), nn.AdaptiveAvgPool2d(1),
          nn.AdaptiveAvgPool2d((2, 3)), nn.Flatten(), nn.ReLU()]
OUTPUT = [list(layer(x).shape) + layer(x).reshape(-1).tolist() for layer in layers]
`);
  const layers = [
    new nn.MaxPool2d(3, { stride: 2, padding: 1 }),
    new nn.MaxPool2d(2, { ceilMode: true }),
    new nn.AvgPool2d(2, { stride: 2 }),
    new nn.AvgPool2d(3, { stride: 1, padding: 1, countIncludePad: false }),
    new nn.AdaptiveAvgPool2d(1),
    new nn.AdaptiveAvgPool2d([2, 3]),
    new nn.Flatten(),
    new nn.ReLU(),
  ];
  layers.forEach((layer, i) => {
    const y = layer.forward(x);
    const want = expected[i] ?? [];
    assert.deepEqual(y.shape, want.slice(0, y.ndim), `${layer.constructor.name} #${i} shape`);
    close(values(y), want.slice(y.ndim), `${layer.constructor.name} #${i}`, POOL_OPS);
    y.dispose();
  });
  x.dispose();
});

test('in-place ReLU overwrites its input yet returns a tensor of its own', () => {
  const x = torch.tensor([-1, 2, -3, 4]);
  const y = new nn.ReLU(true).forward(x);
  assert.notEqual(y, x);
  assert.deepEqual(values(x), [0, 2, 0, 4]);
  y.dispose();
  assert.equal(x.isDisposed, false);
  x.dispose();
});

test('Dropout zeroes and rescales in training only; Identity passes gradients through', () => {
  torch.manualSeed(1);
  const dropout = new nn.Dropout(0.25);
  const x = torch.ones([4000]);
  const y = dropout.forward(x);
  const kept = values(y).filter((v) => v !== 0);
  assert.ok(
    kept.every((v) => Math.abs(v - 1 / 0.75) < 1e-6),
    'kept elements are scaled by 1/(1-p)',
  );
  const dropped = 1 - kept.length / 4000;
  assert.ok(Math.abs(dropped - 0.25) < 0.03, `dropped fraction ${dropped}`);
  dropout.eval();
  const z = dropout.forward(x);
  assert.deepEqual(values(z), values(x));
  assert.throws(() => new nn.Dropout(1.5), /p must be in \[0, 1\]/);

  const leaf = torch.tensor([1, 2, 3], undefined, { requiresGrad: true });
  const out = new nn.Identity().forward(leaf);
  assert.notEqual(out, leaf);
  torch.tidy(() => out.mul(2).sum().backward());
  const grad = leaf.grad as Tensor;
  assert.deepEqual(values(grad), [2, 2, 2]);
  torch.dispose([x, y, z, leaf, out, grad]);
});
