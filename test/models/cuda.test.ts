import assert from 'node:assert/strict';
import { test } from 'node:test';

import { models, torch } from '../../src/index.js';
import type { Tensor } from '../../src/torch/index.js';

const info = torch.buildInfo();
const noCuda = info.cudaAvailable ? undefined : `no CUDA here (libtorch ${info.version})`;

test(
  'a model moved to the GPU keeps its tensor objects and computes what it computes on the CPU',
  { skip: noCuda },
  () => {
    torch.manualSeed(0);
    const model = models.resnet18({ numClasses: 3 });
    const x = torch.randn([2, 3, 64, 64]);
    const target = torch.randint(0, 3, [2]);
    model.train();
    const cpuLoss = torch.crossEntropy(model.forward(x), target);
    cpuLoss.backward();
    const cpuGrad = model.conv1.weight.grad as Tensor;
    const cpuMean = model.bn1.runningMean?.toArray() ?? [];

    // Start again from the same weights and statistics on the GPU.
    torch.manualSeed(0);
    const gpuModel = models.resnet18({ numClasses: 3 });
    const weight = gpuModel.conv1.weight;
    gpuModel.to('cuda').train();
    assert.equal(gpuModel.conv1.weight, weight, 'parameters keep their tensor objects');
    assert.ok(gpuModel.parameters().every((p) => p.device.startsWith('cuda') && p.requiresGrad && p.isLeaf));
    assert.ok(gpuModel.buffers().every((b) => b.device.startsWith('cuda')));
    const [xc, tc] = [x.to('cuda'), target.to('cuda')];
    const gpuLoss = torch.crossEntropy(gpuModel.forward(xc), tc);
    gpuLoss.backward();
    assert.ok(Math.abs(gpuLoss.item() - cpuLoss.item()) <= 1e-3, `loss ${gpuLoss.item()} vs ${cpuLoss.item()}`);
    const gpuGrad = (gpuModel.conv1.weight.grad as Tensor).to('cpu');
    const diff = torch.tidy(() => gpuGrad.sub(cpuGrad).abs().max().item() / cpuGrad.abs().max().item());
    assert.ok(diff <= 1e-2, `conv1 gradient differs by ${diff} (relative)`);
    const gpuMean = gpuModel.bn1.runningMean?.to('cpu');
    assert.ok(gpuMean !== undefined);
    gpuMean.toArray().forEach((v, i) => assert.ok(Math.abs(v - (cpuMean[i] ?? NaN)) <= 1e-3, `running_mean[${i}]`));
    assert.equal(gpuModel.bn1.numBatchesTracked?.item(), 1);

    gpuModel.to('cpu');
    assert.ok(gpuModel.parameters().every((p) => p.device === 'cpu'));
    torch.dispose([x, target, cpuLoss, cpuGrad, xc, tc, gpuLoss, gpuGrad, gpuMean]);
    model.dispose();
    gpuModel.dispose();
  },
);
