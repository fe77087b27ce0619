import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { models, nn, torch } from '../../src/index.js';
import type { Tensor } from '../../src/torch/index.js';
import { maxAbsDiff, oracleMissing, runPython, tempDir } from '../helpers/oracle.js';
import { assertClose, chainLength, maxAbs } from '../helpers/tolerance.js';

const skip = oracleMissing();
/**
 * Train-mode BatchNorm divides by the spread of each channel over the batch:
 * with a handful of values per channel (2 images at 1x1 in resnet50's last
 * stage) that spread is tiny now and then, and rounding noise becomes O(1)
 * differences. Eight images at 64 px leave 32 values per channel in the last
 * stage, where the tolerances below hold on other CPUs.
 */
const BATCH = 8;
const dir = tempDir('moco-cxr-parity-');
after(() => dir.cleanup());

/**
 * In PyTorch: a torchvision model with random weights and random BatchNorm
 * statistics, saved with torch.save(model.state_dict()); then on one input its
 * eval-mode logits and features, and after one train-mode forward and backward
 * its logits, loss, parameter gradients and updated buffers.
 */
const PYTHON_REFERENCE = `
import torch, torchvision
torch.set_num_threads(INPUT['threads'])
torch.manual_seed(INPUT['seed'])
name = INPUT['name']
model = getattr(torchvision.models, name)(num_classes=INPUT['classes'])
with torch.no_grad():
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.uniform_(0.5, 1.5); m.bias.uniform_(-0.2, 0.2)
            m.running_mean.uniform_(-0.3, 0.3); m.running_var.uniform_(0.5, 2.0)
            m.num_batches_tracked.fill_(3)
torch.save(model.state_dict(), WORKDIR + '/weights.pt')
x = torch.randn(INPUT['batch'], 3, INPUT['size'], INPUT['size'])
target = torch.randint(0, INPUT['classes'], (INPUT['batch'],))
head = model.fc if hasattr(model, 'fc') else model.classifier
captured = {}
head.register_forward_hook(lambda module, inputs, output: captured.__setitem__('features', inputs[0].detach().clone()))
model.eval()
with torch.no_grad():
    eval_logits = model(x)
eval_features = captured['features']
model.train()
train_logits = model(x)
loss = torch.nn.functional.cross_entropy(train_logits, target)
loss.backward()
out = {'x': x, 'target': target, 'eval_logits': eval_logits, 'eval_features': eval_features,
       'train_logits': train_logits.detach(), 'loss': loss.detach()}
for key, p in model.named_parameters():
    out['grad.' + key] = p.grad
for key, b in model.named_buffers():
    out['buffer.' + key] = b
torch.save(out, WORKDIR + '/reference.pt')
`;

/** Asserts `actual` is `expected` within float32's error over `ops` roundings (see test/helpers/tolerance.ts). */
function close(actual: Tensor, expected: Tensor, what: string, ops: number, scale?: number): void {
  assertClose(actual.toArray(), expected.toArray(), what, { ops, ...(scale === undefined ? {} : { scale }) });
}

/**
 * The parameters' gradients of a train-mode step on `x` nudged by an ulp:
 * how far float32 noise moves each gradient on this input (see `measured` in
 * test/helpers/tolerance.ts). Updates the running statistics once more.
 */
function nudgedGradients(model: nn.Module, x: Tensor, target: Tensor): Map<string, number[]> {
  model.zeroGrad();
  torch.tidy(() => torch.crossEntropy(model.forward(x.mul(1 + 2 ** -23)), target).backward());
  const out = new Map<string, number[]>();
  for (const [key, p] of model.namedParameters()) {
    out.set(
      key,
      torch.tidy(() => (p.grad as Tensor).toArray()),
    );
  }
  model.zeroGrad();
  return out;
}

/**
 * Roundings feeding one value of `model` on a batch of `batch` images of
 * `size` px: the chain of its layers' reductions forward and backward, and a
 * whole batch's pixels for a weight gradient or a running statistic.
 */
function roundings(model: nn.Module, batch: number, size: number): { forward: number; backward: number } {
  const chain = chainLength(model.parameters().map((p) => p.shape));
  return { forward: chain + batch * size * size, backward: 2 * chain + batch * size * size };
}

function checkParity(name: 'resnet18' | 'densenet121', size: number): void {
  const workdir = join(dir.path, name);
  runPython(
    `import os\nos.makedirs(WORKDIR, exist_ok=True)\n${PYTHON_REFERENCE}`,
    {
      name,
      seed: 1,
      size,
      batch: BATCH,
      classes: 10,
      threads: torch.getNumThreads(),
    },
    workdir,
  );
  const reference = torch.load(join(workdir, 'reference.pt')) as Record<string, Tensor>;
  const ref = (key: string): Tensor => {
    const t = reference[key];
    assert.ok(t !== undefined, `reference lacks ${key}`);
    return t;
  };
  const model = models.createModel(name, { numClasses: 10 });
  const report = models.loadWeights(model, join(workdir, 'weights.pt'));
  assert.equal(report.format, 'state dict');
  assert.deepEqual([report.missing, report.unexpected, report.mismatched, report.dropped], [[], [], [], []]);
  assert.equal(report.classifierLoaded, true);
  assert.equal(report.loaded, Object.keys(model.stateDict({ keepVars: true })).length);

  const x = ref('x');
  const ops = roundings(model, BATCH, size);
  model.eval();
  const [logits, features] = torch.noGrad(() => [model.forward(x), model.features(x)]);
  close(logits, ref('eval_logits'), `${name}: eval logits`, ops.forward);
  close(features, ref('eval_features'), `${name}: features`, ops.forward);
  // Evaluation leaves the running statistics alone.
  assert.equal(
    model
      .getTensor(name.startsWith('resnet') ? 'bn1.num_batches_tracked' : 'features.norm0.num_batches_tracked')
      .item(),
    3,
  );

  model.train();
  const trainLogits = model.forward(x);
  const loss = torch.crossEntropy(trainLogits, ref('target'));
  loss.backward();
  close(trainLogits, ref('train_logits'), `${name}: train-mode logits`, ops.forward);
  // Cross-entropy moves by at most twice the largest change of a logit.
  const logitScale = torch.tidy(() => ref('train_logits').abs().max().item());
  close(loss, ref('loss'), `${name}: loss`, 4 * ops.forward, logitScale);

  const grads = new Map<string, number[]>();
  for (const [key, p] of model.namedParameters()) {
    const grad = p.grad;
    assert.ok(grad !== null, `${name}: ${key} has no gradient`);
    grads.set(key, grad.toArray());
    grad.dispose();
  }
  assert.equal(grads.size, model.parameters().length);
  for (const [key, b] of model.namedBuffers()) {
    const expected = ref(`buffer.${key}`);
    if (b.dtype === 'int64') assert.equal(b.item(), expected.item(), `${name}: ${key}`);
    else close(b, expected, `${name}: buffer ${key} after a training step`, ops.forward);
  }
  const nudged = nudgedGradients(model, x, ref('target'));
  for (const [key, grad] of grads) {
    assertClose(grad, ref(`grad.${key}`).toArray(), `${name}: gradient of ${key}`, {
      ops: ops.backward,
      measured: maxAbsDiff(grad, nudged.get(key) ?? []),
    });
  }
  torch.dispose([reference, logits, features, trainLogits, loss]);
  model.dispose();
}

test(
  'resnet18: torchvision weights load; eval and train logits, features, gradients and running stats match PyTorch',
  { skip },
  () => {
    checkParity('resnet18', 64);
  },
);

test(
  'densenet121: torchvision weights load; eval and train logits, features, gradients and running stats match PyTorch',
  { skip },
  () => {
    checkParity('densenet121', 64);
  },
);

/**
 * The same checks without a weights file: the model, the random BatchNorm
 * statistics, the input and the target come from one seeded generator on both
 * sides, in the same order, so the values agree without being exchanged.
 */
test('resnet50 from the same seed: logits, loss, gradients and running stats match PyTorch', { skip }, () => {
  const seed = 5;
  const expected = runPython<Record<string, number[]>>(
    `
import torch, torchvision
torch.set_num_threads(INPUT['threads'])
torch.manual_seed(INPUT['seed'])
model = torchvision.models.resnet50(num_classes=10)
with torch.no_grad():
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.uniform_(0.5, 1.5); m.bias.uniform_(-0.2, 0.2)
            m.running_mean.uniform_(-0.3, 0.3); m.running_var.uniform_(0.5, 2.0)
x = torch.randn(${BATCH}, 3, 64, 64)
target = torch.randint(0, 10, (${BATCH},))
flat = lambda t: t.detach().reshape(-1).tolist()
model.eval()
with torch.no_grad():
    eval_logits = model(x)
model.train()
logits = model(x)
loss = torch.nn.functional.cross_entropy(logits, target)
loss.backward()
OUTPUT = {'eval_logits': flat(eval_logits), 'train_logits': flat(logits), 'loss': [loss.item()],
          'conv1_grad': flat(model.conv1.weight.grad), 'fc_grad': flat(model.fc.weight.grad),
          'grad_norms': [p.grad.norm().item() for p in model.parameters()],
          'running_means': [v for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) for v in flat(m.running_mean)]}
`,
    { seed, threads: torch.getNumThreads() },
  );
  torch.manualSeed(seed);
  const model = models.resnet50({ numClasses: 10 });
  const norms = model.modules().filter((m): m is nn.BatchNorm2d => m instanceof nn.BatchNorm2d);
  for (const bn of norms) {
    nn.init.uniform_(bn.weight as Tensor, 0.5, 1.5);
    nn.init.uniform_(bn.bias as Tensor, -0.2, 0.2);
    nn.init.uniform_(bn.runningMean as Tensor, -0.3, 0.3);
    nn.init.uniform_(bn.runningVar as Tensor, 0.5, 2.0);
  }
  const x = torch.randn([BATCH, 3, 64, 64]);
  const target = torch.randint(0, 10, [BATCH]);
  const ops = roundings(model, BATCH, 64);
  const check = (actual: ArrayLike<number> | number, key: string, roundingCount: number, scale?: number): void =>
    assertClose(actual, expected[key] ?? [], `resnet50: ${key}`, {
      ops: roundingCount,
      ...(scale === undefined ? {} : { scale }),
    });
  model.eval();
  const evalLogits = torch.noGrad(() => model.forward(x));
  check(evalLogits.toArray(), 'eval_logits', ops.forward);
  model.train();
  const logits = model.forward(x);
  const loss = torch.crossEntropy(logits, target);
  loss.backward();
  check(logits.toArray(), 'train_logits', ops.forward);
  check(loss.item(), 'loss', 4 * ops.forward, maxAbs(expected['train_logits'] ?? []));
  const gradOf = (p: Tensor): number[] => torch.tidy(() => (p.grad as Tensor).toArray());
  const conv1Grad = gradOf(model.conv1.weight);
  const fcGrad = gradOf((model.fc as nn.Linear).weight);
  const gradNorms = model.parameters().map((p) => torch.tidy(() => (p.grad as Tensor).norm().item()));
  const ourGrads = model.parameters().map((p) => gradOf(p));
  const runningMeans = norms.flatMap((bn) => torch.tidy(() => (bn.runningMean as Tensor).toArray()));
  const nudged = nudgedGradients(model, x, target);
  // A norm moves by at most the norm of the change: |‖a‖ − ‖b‖| ≤ ‖a − b‖.
  const names = new Map(model.namedParameters().map(([key, p]) => [p, key]));
  const nudgedShift = model.parameters().map((p, i) => {
    const moved = nudged.get(names.get(p) ?? '') ?? [];
    const mine = ourGrads[i] ?? [];
    let sum = 0;
    for (let j = 0; j < mine.length; j++) sum += ((mine[j] ?? 0) - (moved[j] ?? 0)) ** 2;
    return Math.sqrt(sum);
  });
  const conv1Nudged = nudged.get('conv1.weight') ?? [];
  const fcNudged = nudged.get('fc.weight') ?? [];
  assertClose(conv1Grad, expected['conv1_grad'] ?? [], 'resnet50: conv1_grad', {
    ops: ops.backward,
    measured: maxAbsDiff(conv1Grad, conv1Nudged),
  });
  assertClose(fcGrad, expected['fc_grad'] ?? [], 'resnet50: fc_grad', {
    ops: ops.backward,
    measured: maxAbsDiff(fcGrad, fcNudged),
  });
  gradNorms.forEach((norm, i) => {
    const want = expected['grad_norms']?.[i] ?? NaN;
    // A norm is off by the norm of its entries' errors, which scale with the entries: about as much, relatively.
    assertClose(norm, want, `resnet50: gradient norm of parameter ${i}`, {
      ops: ops.backward,
      measured: nudgedShift[i] ?? NaN,
    });
  });
  check(runningMeans, 'running_means', ops.forward);
  torch.dispose([x, target, evalLogits, logits, loss]);
  model.dispose();
});
