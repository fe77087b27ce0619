/**
 * Engine overhead against PyTorch on the same machine and libtorch:
 *  - per-op cost of a 1-element add (the binding's crossing cost);
 *  - a ResNet18 forward+backward at batch 32, 3×224 (the kernels dominate; our
 *    overhead must not show).
 * Targets: per-op time ≤ PyTorch's (ratio ≤ 1.0; `npm run bench -- ops` counts
 * the same add in instructions, the stable figure on a shared machine),
 * ResNet18 ≥ 1.0× PyTorch's images/s, peak RSS ≤ PyTorch's.
 *
 * Run: `npm run bench -- engine` (or `node --import tsx bench/engine.ts`).
 */
import { models } from '../src/index.js';
import * as torch from '../src/torch/index.js';
import { printMachine } from './machine.js';
import { peakRssMb, row, runPythonBench } from './python.js';

const threads = torch.getNumThreads();
const quick = process.argv.includes('--quick');
const opIterations = quick ? 20_000 : 200_000;
const batch = quick ? 4 : 32;
const warmup = quick ? 1 : 2;
const steps = quick ? 2 : 5;

function opOverheadUs(): number {
  const a = torch.ones([1]);
  const b = torch.ones([1]);
  for (let i = 0; i < 1000; i++) a.add(b).dispose();
  const start = process.hrtime.bigint();
  for (let i = 0; i < opIterations; i++) a.add(b).dispose();
  const elapsed = Number(process.hrtime.bigint() - start) / 1e3;
  torch.dispose([a, b]);
  return elapsed / opIterations;
}

function resnetImagesPerSecond(): number {
  torch.manualSeed(0);
  const net = models.resnet18({ numClasses: 1000 });
  net.train();
  const x = torch.randn([batch, 3, 224, 224]);
  const target = torch.randint(0, 1000, [batch]);
  const step = (): void => {
    torch.tidy(() => {
      const loss = torch.crossEntropy(net.forward(x), target);
      loss.backward();
    });
    net.zeroGrad();
  };
  for (let i = 0; i < warmup; i++) step();
  const start = performance.now();
  for (let i = 0; i < steps; i++) step();
  const seconds = (performance.now() - start) / 1000;
  torch.dispose([x, target]);
  net.dispose();
  return (batch * steps) / seconds;
}

const pythonScript = `
import json, time, torch, torchvision, resource
torch.set_num_threads(${threads})
a = torch.ones(1); b = torch.ones(1)
for _ in range(1000): torch.add(a, b)
t = time.perf_counter()
for _ in range(${opIterations}): torch.add(a, b)
op_us = (time.perf_counter() - t) / ${opIterations} * 1e6
torch.manual_seed(0)
net = torchvision.models.resnet18(num_classes=1000); net.train()
x = torch.randn(${batch}, 3, 224, 224); y = torch.randint(0, 1000, (${batch},))
def step():
    loss = torch.nn.functional.cross_entropy(net(x), y); loss.backward(); net.zero_grad(set_to_none=True)
for _ in range(${warmup}): step()
t = time.perf_counter()
for _ in range(${steps}): step()
ips = ${batch} * ${steps} / (time.perf_counter() - t)
print(json.dumps({"op_us": op_us, "ips": ips, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
`;

printMachine();
console.log(`engine benchmark: ${threads} threads${quick ? ' (quick)' : ''}`);
const ours = { opUs: opOverheadUs(), ips: resnetImagesPerSecond(), rssMb: peakRssMb() };
const theirs = runPythonBench<{ op_us: number; ips: number; rss_mb: number }>(pythonScript, threads);
console.log(row('1-element add, per op (lower is better)', ours.opUs, theirs.op_us, 'us', 1.0, 'atMost'));
console.log(row(`ResNet18 fwd+bwd, batch ${batch}, 3x224`, ours.ips, theirs.ips, 'img/s', 1.0));
console.log(row('peak RSS', ours.rssMb, theirs.rss_mb, 'MB', 1.0, 'atMost'));
