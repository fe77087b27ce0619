import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { models, nn, torch } from '../../src/index.js';
import type { Tensor } from '../../src/torch/index.js';
import { maxAbsDiff, oracleMissing, runPython, tempDir } from '../helpers/oracle.js';

const skip = oracleMissing();
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
x = torch.randn(2, 3, INPUT['size'], INPUT['size'])
target = torch.randint(0, INPUT['classes'], (2,))
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

/** Largest |a - b| over the largest |b|, so that large and small tensors compare alike. */
function relativeDiff(a: Tensor, b: Tensor): number {
  return torch.tidy(() => {
    const diff = a.sub(b).abs().max().item();
    const scale = b.abs().max().item();
    return diff / Math.max(scale, 1e-12);
  });
}

function absoluteDiff(a: Tensor, b: Tensor): number {
  return torch.tidy(() => a.double().sub(b.double()).abs().max().item());
}

function checkParity(name: 'resnet18' | 'densenet121', size: number): void {
  const workdir = join(dir.path, name);
  runPython(
    `import os\nos.makedirs(WORKDIR, exist_ok=True)\n${PYTHON_REFERENCE}`,
    {
      name,
      seed: 1,
      size,
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
  model.eval();
  const [logits, features] = torch.noGrad(() => [model.forward(x), model.features(x)]);
  assert.ok(absoluteDiff(logits, ref('eval_logits')) <= 1e-4, `${name}: eval logits differ`);
  assert.ok(absoluteDiff(features, ref('eval_features')) <= 1e-4, `${name}: features differ`);
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
  assert.ok(absoluteDiff(trainLogits, ref('train_logits')) <= 1e-4, `${name}: train-mode logits differ`);
  assert.ok(Math.abs(loss.item() - ref('loss').item()) <= 1e-5, `${name}: loss differs`);

  let gradients = 0;
  for (const [key, p] of model.namedParameters()) {
    const grad = p.grad;
    assert.ok(grad !== null, `${name}: ${key} has no gradient`);
    const diff = relativeDiff(grad, ref(`grad.${key}`));
    assert.ok(diff <= 1e-4, `${name}: gradient of ${key} differs by ${diff} (relative)`);
    grad.dispose();
    gradients++;
  }
  assert.equal(gradients, model.parameters().length);
  for (const [key, b] of model.namedBuffers()) {
    const expected = ref(`buffer.${key}`);
    if (b.dtype === 'int64') assert.equal(b.item(), expected.item(), `${name}: ${key}`);
    else assert.ok(absoluteDiff(b, expected) <= 1e-5, `${name}: buffer ${key} differs after a training step`);
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
x = torch.randn(2, 3, 32, 32)
target = torch.randint(0, 10, (2,))
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
          'running_means': [m.running_mean.sum().item() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]}
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
  const x = torch.randn([2, 3, 32, 32]);
  const target = torch.randint(0, 10, [2]);
  const close = (actual: ArrayLike<number>, key: string, tolerance: number): void => {
    const want = expected[key] ?? [];
    const scale = Math.max(...want.map(Math.abs), 1e-12);
    const diff = maxAbsDiff(actual, want) / scale;
    assert.ok(diff <= tolerance, `resnet50: ${key} differs by ${diff} (relative)`);
  };
  model.eval();
  const evalLogits = torch.noGrad(() => model.forward(x));
  close(evalLogits.toArray(), 'eval_logits', 1e-5);
  model.train();
  const logits = model.forward(x);
  const loss = torch.crossEntropy(logits, target);
  loss.backward();
  close(logits.toArray(), 'train_logits', 1e-5);
  close([loss.item()], 'loss', 1e-5);
  const gradOf = (p: Tensor): number[] => torch.tidy(() => (p.grad as Tensor).toArray());
  close(gradOf(model.conv1.weight), 'conv1_grad', 1e-4);
  close(gradOf((model.fc as nn.Linear).weight), 'fc_grad', 1e-4);
  const gradNorms = model.parameters().map((p) => torch.tidy(() => (p.grad as Tensor).norm().item()));
  gradNorms.forEach((norm, i) => {
    const want = expected['grad_norms']?.[i] ?? NaN;
    assert.ok(
      Math.abs(norm - want) <= 1e-4 * Math.abs(want) + 1e-7,
      `gradient norm of parameter ${i}: ${norm} vs ${want}`,
    );
  });
  close(
    norms.map((bn) => torch.tidy(() => (bn.runningMean as Tensor).sum().item())),
    'running_means',
    1e-5,
  );
  torch.dispose([x, target, evalLogits, logits, loss]);
  model.dispose();
});
