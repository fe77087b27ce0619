import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { models, nn, torch } from '../../src/index.js';
import type { Tensor } from '../../src/torch/index.js';
import { oracleMissing, runPython, tempDir } from '../helpers/oracle.js';
import { assertClose, chainLength } from '../helpers/tolerance.js';

const skip = oracleMissing();
const dir = tempDir('moco-cxr-weights-');
after(() => dir.cleanup());

interface Fixtures {
  /** `module.encoder_q.*` names of the checkpoint, in order. */
  mocoKeys: string[];
  /** The query encoder's eval-mode features on `grey` repeated to RGB, and its projection. */
  mocoFeatures: number[];
  /** resnet18 (1000 classes) eval logits on the grey input repeated to RGB. */
  greyLogits: number[];
}

/**
 * Files made by PyTorch: a MoCo-CXR style checkpoint (query and key encoders
 * with MLP heads, queue, queue pointer, Adam state), a torchvision resnet18
 * state dict, and a densenet121 state dict with torchvision's original key
 * names (`norm.1` for `norm1`).
 */
let fixtures: Fixtures | undefined;
function makeFixtures(): Fixtures {
  fixtures ??= runPython<Fixtures>(
    `
import copy, re, torch, torchvision
torch.set_num_threads(INPUT['threads'])
torch.manual_seed(0)
encoder_q = torchvision.models.resnet18(num_classes=128)
encoder_q.fc = torch.nn.Sequential(torch.nn.Linear(512, 512), torch.nn.ReLU(), encoder_q.fc)
with torch.no_grad():
    for m in encoder_q.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3); m.running_var.uniform_(0.5, 2.0); m.bias.uniform_(-0.2, 0.2)
encoder_k = copy.deepcopy(encoder_q)
class MoCo(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder_q = encoder_q
        self.encoder_k = encoder_k
        self.register_buffer('queue', torch.nn.functional.normalize(torch.randn(128, 64), dim=0))
        self.register_buffer('queue_ptr', torch.zeros(1, dtype=torch.long))
moco = torch.nn.DataParallel(MoCo())
optimizer = torch.optim.Adam(moco.parameters(), lr=1e-4, weight_decay=1e-4)
moco.module.encoder_q(torch.randn(2, 3, 32, 32)).sum().backward()
optimizer.step()
optimizer.zero_grad()
torch.save({'epoch': 20, 'arch': 'resnet18', 'state_dict': moco.state_dict(), 'optimizer': optimizer.state_dict()},
           WORKDIR + '/moco-cxr.pth.tar')

grey = torch.rand(2, 1, 64, 64)
torch.save({'grey': grey}, WORKDIR + '/grey.pt')
rgb = grey.repeat(1, 3, 1, 1)
encoder_q.eval()
captured = {}
encoder_q.fc.register_forward_hook(lambda m, i, o: captured.__setitem__('f', i[0]))
with torch.no_grad():
    encoder_q(rgb)

torch.manual_seed(1)
resnet = torchvision.models.resnet18().eval()
torch.save(resnet.state_dict(), WORKDIR + '/resnet18.pth')
with torch.no_grad():
    grey_logits = resnet(rgb)

densenet = torchvision.models.densenet121()
# As in the original download: old layer names, and no num_batches_tracked (older than PyTorch 0.4.1).
legacy = {re.sub(r'(denselayer\\d+\\.(?:norm|relu|conv))([12])\\.', r'\\1.\\2.', k): v
          for k, v in densenet.state_dict().items() if not k.endswith('num_batches_tracked')}
torch.save(legacy, WORKDIR + '/densenet121-legacy.pth')
torch.save({'features.conv0.weight': densenet.features.conv0.weight.detach().clone()}, WORKDIR + '/densenet-stem.pt')

OUTPUT = {
    'mocoKeys': [k for k in moco.state_dict().keys() if k.startswith('module.encoder_q.')],
    'mocoFeatures': captured['f'].reshape(-1).tolist(),
    'greyLogits': grey_logits.reshape(-1).tolist(),
}
`,
    { threads: torch.getNumThreads() },
    dir.path,
  );
  return fixtures;
}

const file = (name: string): string => join(dir.path, name);

function greyInput(): Tensor {
  const { grey } = torch.load(file('grey.pt')) as { grey: Tensor };
  return grey;
}

test('a MoCo-CXR checkpoint loads its query encoder into resnet18 and sets the rest aside', { skip }, () => {
  const { mocoKeys, mocoFeatures } = makeFixtures();
  const model = models.resnet18({ numClasses: 1 });
  const classifierBefore = (model.fc as nn.Linear).weight.toArray();
  const report = models.loadWeights(model, file('moco-cxr.pth.tar'), { inputChannels: 3 });
  assert.equal(report.format, 'moco checkpoint');
  assert.equal(report.source, file('moco-cxr.pth.tar'));
  assert.equal(report.classifierLoaded, false);
  assert.deepEqual(report.missing, ['fc.weight', 'fc.bias']);
  assert.deepEqual(report.unexpected, []);
  assert.deepEqual(report.mismatched, []);
  const headKeys = ['fc.0.weight', 'fc.0.bias', 'fc.2.weight', 'fc.2.bias'];
  assert.deepEqual(
    report.dropped.filter((k) => k.startsWith('fc.')),
    headKeys,
  );
  assert.ok(report.dropped.includes('queue') && report.dropped.includes('queue_ptr'));
  assert.ok(report.dropped.includes('encoder_k.conv1.weight'));
  assert.equal(report.dropped.filter((k) => k.startsWith('encoder_k.')).length, mocoKeys.length);
  assert.equal(report.loaded, mocoKeys.length - headKeys.length);
  assert.equal(report.grey, 'none');
  assert.deepEqual((model.fc as nn.Linear).weight.toArray(), classifierBefore, 'the classifier keeps its own weights');

  // The backbone now computes what the query encoder computed in PyTorch.
  const grey = greyInput();
  const rgb = torch.tidy(() => grey.repeat(1, 3, 1, 1));
  model.eval();
  const features = torch.noGrad(() => model.features(rgb));
  assertClose(features.toArray(), mocoFeatures, "features against the query encoder's", {
    ops: chainLength(model.parameters().map((p) => p.shape)),
  });
  torch.dispose([grey, rgb, features]);
  model.dispose();
});

test('a MoCo checkpoint restores an encoder that keeps the MLP head', { skip }, () => {
  makeFixtures();
  const model = models.resnet18();
  const old = model.classifier;
  model.classifier = new nn.Sequential(new nn.Linear(512, 512), new nn.ReLU(), new nn.Linear(512, 128));
  old.dispose();
  const report = models.loadWeights(model, file('moco-cxr.pth.tar'));
  assert.equal(report.classifierLoaded, true);
  assert.deepEqual(report.missing, []);
  assert.equal(report.loaded, Object.keys(model.stateDict({ keepVars: true })).length);
  model.dispose();
});

test('weights of another architecture fail naming both architectures', { skip }, () => {
  makeFixtures();
  const model = models.resnet18();
  const before = model.conv1.weight.toArray().slice(0, 5);
  assert.throws(
    () => models.loadWeights(model, file('densenet121-legacy.pth')),
    (error: Error) =>
      error.message.includes(file('densenet121-legacy.pth')) &&
      /these are densenet121 weights \(keys such as 'features\.denseblock1\.[^']+'\), but the model is resnet18: set the architecture to densenet121 \(--arch densenet121\)/.test(
        error.message,
      ),
  );
  assert.deepEqual(model.conv1.weight.toArray().slice(0, 5), before, 'nothing was copied');
  // A same-named key of another shape outside the classifier is an error too.
  const wrong = { ...model.stateDict(), 'layer1.0.conv1.weight': torch.zeros([64, 64, 1, 1]) };
  assert.throws(
    () => models.loadWeights(model, wrong),
    /'layer1\.0\.conv1\.weight' has shape \[64, 64, 1, 1\] in the file but \[64, 64, 3, 3\] in resnet18/,
  );
  torch.dispose(wrong);
  model.dispose();
});

test("torchvision's legacy DenseNet key names load into densenet121", { skip }, () => {
  makeFixtures();
  const model = models.densenet121();
  const report = models.loadWeights(model, file('densenet121-legacy.pth'));
  assert.deepEqual([report.missing, report.unexpected, report.dropped], [[], [], []]);
  const stem = torch.load(file('densenet-stem.pt')) as Record<string, Tensor>;
  assert.deepEqual(model.stem.weight.toArray(), stem['features.conv0.weight']?.toArray());
  torch.dispose(stem);
  model.dispose();
});

test('a classifier of another size is reported as mismatched and left as initialized', { skip }, () => {
  makeFixtures();
  const model = models.resnet18({ numClasses: 1 });
  const report = models.loadWeights(model, file('resnet18.pth'));
  assert.equal(report.format, 'state dict');
  assert.deepEqual(report.mismatched, [
    { key: 'fc.weight', expected: [1, 512], found: [1000, 512] },
    { key: 'fc.bias', expected: [1], found: [1000] },
  ]);
  assert.deepEqual(report.missing, ['fc.weight', 'fc.bias']);
  assert.equal(report.classifierLoaded, false);
  model.dispose();
});

test("grey input: 'repeat' and 'sum' both reproduce PyTorch on grey images repeated to RGB", { skip }, () => {
  const { greyLogits } = makeFixtures();
  const grey = greyInput();

  const repeat = models.resnet18();
  const repeatReport = models.loadWeights(repeat, file('resnet18.pth'), { inputChannels: 1 });
  assert.equal(repeatReport.grey, 'repeat');
  assert.equal(repeat.inputChannels, 1);
  assert.deepEqual(repeat.conv1.weight.shape, [64, 3, 7, 7]);
  const a = torch.noGrad(() => repeat.eval().forward(grey));
  const ops = chainLength(repeat.parameters().map((p) => p.shape));
  assertClose(a.toArray(), greyLogits, 'repeat mode against PyTorch', { ops });

  const summed = models.resnet18();
  const sumReport = models.loadWeights(summed, file('resnet18.pth'), { inputChannels: 1, greyMode: 'sum' });
  assert.equal(sumReport.grey, 'sum');
  assert.deepEqual(summed.conv1.weight.shape, [64, 1, 7, 7]);
  const b = torch.noGrad(() => summed.eval().forward(grey));
  // Summing the kernel's three channels first rounds differently from three channels of one image.
  assertClose(b.toArray(), greyLogits, 'sum mode against PyTorch', { ops: 2 * ops });

  // A model built for grey input keeps its 1-channel convolution: 'sum' by default.
  const built = models.resnet18({ inChannels: 1 });
  assert.equal(models.loadWeights(built, file('resnet18.pth')).grey, 'sum');
  assert.deepEqual(built.conv1.weight.toArray(), summed.conv1.weight.toArray());
  built.dispose();

  // A 1-channel checkpoint written here reloads into a fresh model as 1-channel.
  const ours = file('resnet18-grey.pt');
  const dict = summed.stateDict();
  torch.save({ epoch: 1, state_dict: dict }, ours);
  torch.dispose(dict);
  const reloaded = models.resnet18();
  const reloadReport = models.loadWeights(reloaded, ours, { inputChannels: 1 });
  assert.equal(reloadReport.format, 'checkpoint');
  assert.equal(reloadReport.grey, 'none');
  assert.equal(reloaded.inputChannels, 1);
  assert.deepEqual(reloaded.conv1.weight.toArray(), summed.conv1.weight.toArray());
  const rgbOnly = models.resnet18();
  assert.throws(() => models.loadWeights(rgbOnly, ours), /takes 1-channel input but 3 channels were asked for/);

  torch.dispose([grey, a, b]);
  [repeat, summed, reloaded, rgbOnly].forEach((m) => m.dispose());
});

test("DataParallel's 'module.' prefix is stripped; a dict without tensors is refused", () => {
  const source = models.resnet18({ numClasses: 3 });
  const dict = source.stateDict();
  const wrapped = Object.fromEntries(Object.entries(dict).map(([k, v]) => [`module.${k}`, v]));
  const target = models.resnet18({ numClasses: 3 });
  const report = models.loadWeights(target, { model: wrapped, epoch: 2 });
  assert.equal(report.format, 'checkpoint');
  assert.equal(report.source, '<state dict>');
  assert.deepEqual(target.conv1.weight.toArray(), source.conv1.weight.toArray());
  assert.equal(dict['conv1.weight']?.isDisposed, false, "a dict passed in stays the caller's");
  assert.throws(
    () => models.loadWeights(target, { epoch: 2, arch: 'resnet18' }),
    /holds no tensors.*keys: epoch, arch/,
  );
  torch.dispose(dict);
  source.dispose();
  target.dispose();
});
