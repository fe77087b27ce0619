import assert from 'node:assert/strict';
import { test } from 'node:test';

import { nn, torch } from '../../src/index.js';
import type { Tensor } from '../../src/torch/index.js';

/** conv → bn → relu, then a Linear head: a small tree with parameters, buffers and nesting. */
class TinyNet extends nn.Module {
  readonly body: nn.Sequential;
  readonly head: nn.Linear;

  constructor() {
    super();
    this.body = this.registerModule(
      'body',
      new nn.Sequential(new nn.Conv2d(1, 2, 3, { padding: 1 }), new nn.BatchNorm2d(2), new nn.ReLU()),
    );
    this.registerModule('pool', new nn.AdaptiveAvgPool2d(1));
    this.registerModule('flat', new nn.Flatten());
    this.head = this.registerModule('head', new nn.Linear(2, 3));
  }

  override forward(input: Tensor): Tensor {
    return torch.tidy(() =>
      this.head.forward(this.child('flat').forward(this.child('pool').forward(this.body.forward(input)))),
    );
  }
}

const TINY_KEYS = [
  'body.0.weight',
  'body.0.bias',
  'body.1.weight',
  'body.1.bias',
  'body.1.running_mean',
  'body.1.running_var',
  'body.1.num_batches_tracked',
  'head.weight',
  'head.bias',
];

test('names follow PyTorch: parameters, buffers and the state dict in registration order', () => {
  const net = new TinyNet();
  assert.deepEqual(
    net.namedParameters().map(([name]) => name),
    ['body.0.weight', 'body.0.bias', 'body.1.weight', 'body.1.bias', 'head.weight', 'head.bias'],
  );
  assert.deepEqual(
    net.namedBuffers().map(([name]) => name),
    ['body.1.running_mean', 'body.1.running_var', 'body.1.num_batches_tracked'],
  );
  assert.deepEqual(
    net.namedModules().map(([name]) => name),
    ['', 'body', 'body.0', 'body.1', 'body.2', 'pool', 'flat', 'head'],
  );
  assert.deepEqual(
    net.namedChildren().map(([name]) => name),
    ['body', 'pool', 'flat', 'head'],
  );
  const dict = net.stateDict();
  assert.deepEqual(Object.keys(dict), TINY_KEYS);
  const counter = dict['body.1.num_batches_tracked'] as Tensor;
  assert.equal(counter.dtype, 'int64');
  assert.deepEqual(counter.shape, []);
  assert.equal(counter.item(), 0);
  // State dict values share storage with the module but are cut from autograd.
  const weight = dict['head.weight'] as Tensor;
  assert.equal(weight.requiresGrad, false);
  torch.noGrad(() => net.head.weight.fill_(7));
  assert.equal(weight.toArray()[0], 7);
  torch.dispose(dict);
  assert.equal(net.head.weight.isDisposed, false);
  assert.equal(net.numParameters(), 2 * 9 + 2 + 2 + 2 + 6 + 3);
  net.dispose();
});

test('parameters require grad, buffers do not; requiresGrad(false) freezes a subtree', () => {
  const net = new TinyNet();
  assert.ok(net.parameters().every((p) => p.requiresGrad && p.isLeaf));
  assert.ok(net.buffers().every((b) => !b.requiresGrad));
  net.body.requiresGrad(false);
  assert.deepEqual(
    net
      .namedParameters()
      .filter(([, p]) => p.requiresGrad)
      .map(([name]) => name),
    ['head.weight', 'head.bias'],
  );
  const x = torch.randn([2, 1, 4, 4]);
  torch.tidy(() => net.forward(x).sum().backward());
  assert.equal(net.body.at(0).parameters()[0]?.grad, null);
  const grad = net.head.weight.grad;
  assert.ok(grad !== null);
  grad.dispose();
  net.zeroGrad();
  assert.equal(net.head.weight.grad, null);
  x.dispose();
  net.dispose();
});

test('train() and eval() reach every descendant', () => {
  const net = new TinyNet();
  assert.ok(net.modules().every((m) => m.training));
  net.eval();
  assert.ok(net.modules().every((m) => !m.training));
  net.body.train();
  assert.deepEqual(
    net
      .namedModules()
      .filter(([, m]) => m.training)
      .map(([name]) => name),
    ['body', 'body.0', 'body.1', 'body.2'],
  );
  net.dispose();
});

test('loadStateDict copies in place and reports missing, unexpected and mismatched keys', () => {
  const source = new TinyNet();
  const target = new TinyNet();
  const weightBefore = target.head.weight;
  const dict = source.stateDict();
  torch.noGrad(() => (dict['body.1.num_batches_tracked'] as Tensor).fill_(5));
  const report = target.loadStateDict(dict);
  assert.deepEqual(report, { missing: [], unexpected: [], mismatched: [] });
  assert.equal(target.head.weight, weightBefore, 'the parameter object is kept');
  assert.deepEqual(target.head.weight.toArray(), source.head.weight.toArray());
  assert.equal(target.getTensor('body.1.num_batches_tracked').item(), 5);
  assert.equal(target.head.weight.requiresGrad, true);

  // strict: an extra key and a missing key both throw, and nothing is copied.
  const partial: Record<string, Tensor> = { ...dict, extra: torch.zeros([1]) };
  delete partial['head.bias'];
  torch.noGrad(() => (partial['head.weight'] as Tensor).fill_(3));
  assert.throws(
    () => target.loadStateDict(partial),
    (error: Error) =>
      error instanceof nn.StateDictError &&
      /missing keys 'head.bias'/.test(error.message) &&
      /unexpected keys 'extra'/.test(error.message),
  );
  assert.notEqual(target.head.weight.toArray()[0], 3);
  const loose = target.loadStateDict(partial, { strict: false });
  assert.deepEqual(loose, { missing: ['head.bias'], unexpected: ['extra'], mismatched: [] });
  assert.equal(target.head.weight.toArray()[0], 3);

  // A shape mismatch names the key and both shapes, even without strict.
  const wrong: Record<string, Tensor> = { ...dict, 'head.weight': torch.zeros([4, 2]) };
  assert.throws(
    () => target.loadStateDict(wrong, { strict: false }),
    /size mismatch for 'head.weight': the model has shape \[3, 2\] but the state dict holds \[4, 2\]/,
  );
  const skipped = target.loadStateDict(wrong, { skipMismatched: true });
  assert.deepEqual(skipped.mismatched, [{ key: 'head.weight', expected: [3, 2], found: [4, 2] }]);

  // Files from before PyTorch 0.4.1 lack num_batches_tracked: it resets to 0 and is not missing.
  const old: Record<string, Tensor> = { ...dict };
  delete old['body.1.num_batches_tracked'];
  assert.deepEqual(target.loadStateDict(old).missing, []);
  assert.equal(target.getTensor('body.1.num_batches_tracked').item(), 0);

  torch.dispose([dict, partial['extra'], wrong['head.weight']]);
  source.dispose();
  target.dispose();
});

test('forward leaves its input alive; dispose frees every parameter and buffer', () => {
  const net = new TinyNet();
  const x = torch.randn([2, 1, 4, 4]);
  const y = net.forward(x);
  assert.deepEqual(y.shape, [2, 3]);
  assert.equal(x.isDisposed, false);
  const tensors = [...net.parameters(), ...net.buffers()];
  net.dispose();
  assert.ok(tensors.every((t) => t.isDisposed));
  torch.dispose([x, y]);
});

test('modules built inside tidy keep their parameters; to() keeps tensor objects', () => {
  const layer = torch.tidy(() => new nn.Linear(4, 2));
  assert.equal(layer.weight.isDisposed, false);
  const weight = layer.weight;
  layer.to('cpu');
  assert.equal(layer.weight, weight);
  assert.equal(layer.weight.requiresGrad, true);
  layer.dispose();
});

test('Sequential names children by position, runs them in order, and can be indexed', () => {
  const seq = new nn.Sequential(new nn.Linear(3, 4), new nn.ReLU(), new nn.Linear(4, 2));
  assert.deepEqual(
    seq.namedChildren().map(([name]) => name),
    ['0', '1', '2'],
  );
  assert.equal(seq.length, 3);
  assert.ok(seq.at(-1) instanceof nn.Linear);
  const named = nn.Sequential.named([
    ['conv0', new nn.Conv2d(1, 1, 1)],
    ['relu0', new nn.ReLU(true)],
  ]);
  assert.deepEqual(Object.keys(named.stateDict({ keepVars: true })), ['conv0.weight', 'conv0.bias']);

  const x = torch.tensor([[1, -2, 3]]);
  const y = seq.forward(x);
  const expected = torch.tidy(() => {
    const first = seq.at(0) as nn.Linear;
    const last = seq.at(2) as nn.Linear;
    return torch.linear(torch.relu(torch.linear(x, first.weight, first.bias)), last.weight, last.bias);
  });
  assert.deepEqual(y.toArray(), expected.toArray());
  // An empty Sequential passes its input through as a new tensor object.
  const empty = new nn.Sequential();
  const same = empty.forward(x);
  assert.notEqual(same, x);
  assert.deepEqual(same.toArray(), x.toArray());
  torch.dispose([x, y, expected, same]);
  seq.dispose();
  named.dispose();
});

test('registering a child under an existing name replaces it in place', () => {
  const net = new TinyNet();
  const replacement = new nn.Sequential(new nn.Linear(2, 2), new nn.ReLU(), new nn.Linear(2, 5));
  const old = net.child('head');
  net.registerModule('head', replacement);
  assert.deepEqual(
    net.namedChildren().map(([name]) => name),
    ['body', 'pool', 'flat', 'head'],
  );
  assert.deepEqual(Object.keys(net.stateDict({ keepVars: true })).slice(-4), [
    'head.0.weight',
    'head.0.bias',
    'head.2.weight',
    'head.2.bias',
  ]);
  assert.throws(() => net.registerModule('a.b', new nn.Identity()), /no '\.'/);
  assert.throws(() => net.child('nothing'), /no child module 'nothing'.*body, pool, flat, head/);
  old.dispose();
  net.dispose();
});

test('toString prints the tree as PyTorch does', () => {
  const seq = new nn.Sequential(new nn.Conv2d(3, 8, 3, { stride: 2, padding: 1, bias: false }), new nn.ReLU(true));
  assert.equal(
    seq.toString(),
    [
      'Sequential(',
      '  (0): Conv2d(3, 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), bias=False)',
      '  (1): ReLU(inplace=True)',
      ')',
    ].join('\n'),
  );
  seq.dispose();
});
