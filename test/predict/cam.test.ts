import assert from 'node:assert/strict';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import sharp from 'sharp';

import { writeClassifier } from '../../src/downstream/classifier-file.js';
import { type Backbone, createModel } from '../../src/models/index.js';
import { camFileName, camWriter, gradCam } from '../../src/predict/cam.js';
import { resolveInputs } from '../../src/predict/inputs.js';
import { predict } from '../../src/predict/predict.js';
import * as torch from '../../src/torch/index.js';
import { maxAbsDiff, oracleMissing, runPython, tempDir } from '../helpers/oracle.js';
import { assertClose, chainLength, maxAbs } from '../helpers/tolerance.js';

const SIZE = 64;

/** Grad-CAM in PyTorch through the whole network's autograd, on torchvision's model. */
const PYTHON_GRAD_CAM = `
import torch, torchvision
import torch.nn.functional as F
arch = INPUT['arch']
net = getattr(torchvision.models, arch)(num_classes=2)
net.load_state_dict(torch.load(INPUT['weights']))
net.eval()
x = torch.tensor(INPUT['x'], dtype=torch.float32).view(2, 3, ${SIZE}, ${SIZE})
maps = []
for t in range(2):
    if arch.startswith('resnet'):
        h = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        a = net.layer4(net.layer3(net.layer2(net.layer1(h))))
        a.retain_grad()
        logits = net.fc(torch.flatten(net.avgpool(a), 1))
    else:
        a = F.relu(net.features(x))
        a.retain_grad()
        logits = net.classifier(torch.flatten(F.adaptive_avg_pool2d(a, 1), 1))
    net.zero_grad()
    logits[:, t].sum().backward()
    alpha = a.grad.mean(dim=(2, 3), keepdim=True)
    maps.append(F.relu((alpha * a).sum(1)).detach())
OUTPUT = torch.stack(maps, 1).flatten().tolist()
`;

describe('Grad-CAM', () => {
  const dir = tempDir();
  after(() => dir.cleanup());

  function model(arch: string): Backbone {
    torch.manualSeed(11);
    const net = createModel(arch, { numClasses: 2 });
    net.eval();
    return net;
  }

  for (const arch of ['resnet18', 'densenet121']) {
    test(`${arch}: the raw maps equal PyTorch's Grad-CAM through autograd`, { skip: oracleMissing() }, () => {
      const net = model(arch);
      try {
        torch.manualSeed(12);
        const x = torch.randn([2, 3, SIZE, SIZE]);
        const { probabilities, maps } = gradCam(net, x);
        assert.deepEqual(maps.shape, [2, 2, 2, 2]);
        assert.deepEqual(probabilities.shape, [2, 2]);
        const weights = join(dir.path, `${arch}.pt`);
        torch.save(net.stateDict(), weights);
        const expected = runPython<number[]>(PYTHON_GRAD_CAM, {
          arch,
          weights,
          x: Array.from(x.data() as Float32Array),
        });
        // The map's error is that of the feature map (every layer's sums), times a 512/1024-term weighting.
        const ops = chainLength(net.stateDictShapes().map(([, shape]) => shape)) + net.featureDim;
        assert.ok(maxAbs(expected) > 0, 'a map that is not all zero');
        assertClose(maps.data() as Float32Array, expected, `${arch} Grad-CAM`, { ops });
        assert.ok(maxAbsDiff(maps.data() as Float32Array, expected) <= 1e-4 * Math.max(1, maxAbs(expected)));
        torch.dispose([x, probabilities, maps]);
      } finally {
        net.dispose();
      }
    });
  }

  test('for a linear head on pooled features Grad-CAM is CAM: relu(Σ w_k A_k) / (h·w)', () => {
    const net = model('resnet18');
    try {
      torch.manualSeed(13);
      const x = torch.randn([1, 3, 64, 64]);
      const { probabilities, maps } = gradCam(net, x);
      const cam = torch.noGrad(() =>
        torch.tidy(() => {
          const a = net.featureMap(x); // [1, 512, 2, 2]
          const w = net.classifier.getTensor('weight'); // [2, 512]
          const [, , h, wd] = a.shape;
          return torch
            .einsum('kc,bchw->bkhw', w, a)
            .relu()
            .div(h! * wd!)
            .contiguous();
        }),
      );
      assertClose(maps.data() as Float32Array, cam.data() as Float32Array, 'CAM', { ops: 512 });
      assert.ok(net.classifier.parameters().every((p) => p.requiresGrad && p.grad === null));
      torch.dispose([x, probabilities, maps, cam]);
    } finally {
      net.dispose();
    }
  });

  test('the --cam writer puts one overlay per image and task in the folder, at the input side', async () => {
    const images = join(dir.path, 'images');
    mkdirSync(images);
    const pixels = Buffer.alloc(50 * 40);
    for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 7) % 251;
    await sharp(pixels, { raw: { width: 50, height: 40, channels: 1 } })
      .png()
      .toFile(join(images, 'one.png'));
    const file = join(dir.path, 'model.pt');
    const net = model('resnet18');
    writeClassifier(file, net.stateDict(), {
      arch: 'resnet18',
      tasks: ['Effusion', 'Edema'],
      preprocessing: { normalize: 'imagenet', imageSize: 48, channels: 3 },
    });
    net.dispose();
    const cam = join(dir.path, 'cam');
    const { inputs } = await resolveInputs([join(images, 'one.png')]);
    const result = await predict(file, inputs, {
      log: () => undefined,
      forward: camWriter(cam, ['Effusion', 'Edema']),
    });
    assert.equal(result.failed, 0);
    assert.equal(result.images[0]!.probabilities!.length, 2);
    const id = join(images, 'one.png');
    assert.deepEqual(readdirSync(cam).sort(), [camFileName(id, 'Edema'), camFileName(id, 'Effusion')]);
    const meta = await sharp(join(cam, camFileName(id, 'Effusion'))).metadata();
    assert.deepEqual([meta.width, meta.height, meta.channels], [48, 48, 3]);
  });
});
