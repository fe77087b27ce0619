/**
 * Supervised training throughput against PyTorch on the same machine and
 * libtorch, in one run: one Adam step (forward, binary cross-entropy on one
 * logit, backward, update) of
 *  - ResNet18 on grey input at batch 16 and 32, 224 and 128 px: PyTorch gets
 *    the grey batch expanded to RGB, as MoCo-CXR feeds grey X-rays; here the
 *    model is in 'repeat' mode, which gives the same outputs and gradients
 *    but runs the first convolution on the one grey channel;
 *  - DenseNet121 at batch 16, 224 px.
 * Both sides use Adam's list kernels (PyTorch with `foreach=True`) and the
 * contiguous layout.
 * Target: ≥ 1.0× PyTorch's images/s. Images/s is the batch over the median
 * step time, which shrugs off a step slowed by another process on a shared
 * machine. Peak RSS of both processes is printed.
 *
 * Run: `npm run bench -- models` (`--quick` for a smoke run).
 */
import { createModel, type Backbone } from '../src/models/index.js';
import { Adam } from '../src/optim/index.js';
import * as torch from '../src/torch/index.js';
import { printMachine } from './machine.js';
import { peakRssMb, row, runPythonBench } from './python.js';

const quick = process.argv.includes('--quick');
const warmup = quick ? 1 : 2;
const steps = quick ? 3 : 5;
const threads = torch.getNumThreads();

interface Config {
  arch: 'resnet18' | 'densenet121';
  batch: number;
  size: number;
}

const CONFIGS: Config[] = quick
  ? [
      { arch: 'resnet18', batch: 16, size: 128 },
      { arch: 'densenet121', batch: 16, size: 128 },
    ]
  : [
      { arch: 'resnet18', batch: 16, size: 224 },
      { arch: 'resnet18', batch: 32, size: 224 },
      { arch: 'resnet18', batch: 16, size: 128 },
      { arch: 'resnet18', batch: 32, size: 128 },
      { arch: 'densenet121', batch: 16, size: 224 },
    ];

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1] as number;
}

function trainStep(model: Backbone, optimizer: Adam, x: torch.Tensor, y: torch.Tensor): void {
  torch.tidy(() => {
    const loss = torch.binaryCrossEntropyWithLogits(model.forward(x), y);
    optimizer.zeroGrad(true);
    loss.backward();
    optimizer.step();
  });
}

function imagesPerSecond({ arch, batch, size }: Config): number {
  torch.manualSeed(0);
  const model = createModel(arch, { numClasses: 1 });
  model.setInputChannels(1, 'repeat');
  model.train();
  const optimizer = new Adam(model.parameters(), { lr: 1e-4 });
  const x = torch.rand([batch, 1, size, size]);
  const y = torch.tidy(() => torch.rand([batch, 1]).round());
  for (let i = 0; i < warmup; i++) trainStep(model, optimizer, x, y);
  const seconds: number[] = [];
  for (let i = 0; i < steps; i++) {
    const start = performance.now();
    trainStep(model, optimizer, x, y);
    seconds.push((performance.now() - start) / 1000);
  }
  const rate = batch / median(seconds);
  torch.dispose([x, y]);
  optimizer.dispose();
  model.dispose();
  return rate;
}

const pythonScript = `
import json, time, resource, torch, torchvision
torch.set_num_threads(${threads})
configs = ${JSON.stringify(CONFIGS)}
rates = []
for c in configs:
    torch.manual_seed(0)
    model = getattr(torchvision.models, c['arch'])(num_classes=1)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, foreach=True)
    x = torch.rand(c['batch'], 1, c['size'], c['size'])
    y = torch.rand(c['batch'], 1).round()
    def step():
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x.expand(-1, 3, -1, -1)), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    for _ in range(${warmup}): step()
    seconds = []
    for _ in range(${steps}):
        t = time.perf_counter(); step(); seconds.append(time.perf_counter() - t)
    rates.append(c['batch'] / sorted(seconds)[len(seconds) // 2])
print(json.dumps({'rates': rates, 'rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
`;

printMachine();
console.log(
  `models benchmark: ${threads} threads, ` +
    `${warmup} warm-up + ${steps} timed Adam steps per row${quick ? ' (quick)' : ''}`,
);
const ours = CONFIGS.map(imagesPerSecond);
const oursRss = peakRssMb();
const theirs = runPythonBench<{ rates: number[]; rss_mb: number }>(pythonScript, threads);
CONFIGS.forEach((c, i) => {
  const label = `${c.arch} train step, batch ${c.batch}, 1x${c.size}`;
  console.log(row(label, ours[i] ?? NaN, theirs.rates[i] ?? NaN, 'img/s', 1.0));
});
console.log(row('peak RSS', oursRss, theirs.rss_mb, 'MB', 1.0, 'atMost'));
