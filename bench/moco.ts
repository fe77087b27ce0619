/**
 * MoCo pretraining throughput against PyTorch on the same machine, one run:
 *  - the MoCo step alone (ResNet18, Adam, queue 24576) at batch 16 and 32, 128 px;
 *  - ours with channels-last weights and inputs, as `moco-cxr pretrain` runs on a CPU
 *    (one row repeats the 224 px end-to-end run with the contiguous layout);
 *  - end to end (cache → loader → two augmented views → MoCo step) at batch 16,
 *    224 px and batch 32, 128 px, beside a PyTorch DataLoader with MoCo-CXR's
 *    transforms (PIL decode every epoch, flip, rotation ±10°, crop).
 * PyTorch runs every row twice, contiguous and channels-last (model and inputs
 * with `memory_format=torch.channels_last`), with Adam's list kernels
 * (`foreach=True`) as ours uses; each row compares against its better layout.
 * Targets: MoCo step ≥ 1.0× PyTorch's, peak RSS ≤ PyTorch's (main process plus
 * its loader workers, which hold the decoded images ours keeps in one process).
 *
 * Run: `npm run bench -- moco` (`--quick` for a smoke run).
 */
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { mocoCxrAugmentation } from '../src/data/augment.js';
import { buildCache } from '../src/data/cache.js';
import { BatchLoader } from '../src/data/loader.js';
import { openSource } from '../src/data/sources/index.js';
import { MoCo } from '../src/moco/model.js';
import { Adam } from '../src/optim/index.js';
import * as torch from '../src/torch/index.js';
import { printMachine } from './machine.js';
import { peakRssMb, row, rowBestLayout, runPythonBench, type LayoutRates } from './python.js';

const DATA = fileURLToPath(new URL('../../shared/data/pneumonia-kermany-224/train', import.meta.url));
const quick = process.argv.includes('--quick');
const warmup = quick ? 1 : 2;
const steps = quick ? 2 : 8;
const threads = torch.getNumThreads();

function mocoStep(model: MoCo, optimizer: Adam, q: torch.Tensor, k: torch.Tensor): void {
  torch.tidy(() => {
    const out = model.step(q, k);
    optimizer.zeroGrad();
    out.loss.backward();
    optimizer.step();
  });
}

// What `moco-cxr pretrain` does by default on a CPU: channels-last weights and inputs.
const LAYOUT: torch.MemoryFormat = 'channelsLast';

function makeModel(layout: torch.MemoryFormat): { model: MoCo; optimizer: Adam } {
  torch.manualSeed(0);
  const model = new MoCo({ queueSize: 24576 });
  model.train();
  if (layout === 'channelsLast') model.toMemoryFormat(layout);
  return { model, optimizer: new Adam(model.parameters(), { lr: 1e-4, weightDecay: 1e-4 }) };
}

function stepAlone(batch: number, size: number): number {
  const { model, optimizer } = makeModel(LAYOUT);
  const q = torch.randn([batch, 3, size, size]).contiguous(LAYOUT);
  const k = torch.randn([batch, 3, size, size]).contiguous(LAYOUT);
  for (let i = 0; i < warmup; i++) mocoStep(model, optimizer, q, k);
  const start = performance.now();
  for (let i = 0; i < steps; i++) mocoStep(model, optimizer, q, k);
  const rate = (batch * steps) / ((performance.now() - start) / 1000);
  torch.dispose([q, k]);
  model.dispose();
  return rate;
}

async function endToEnd(batch: number, size: number, layout: torch.MemoryFormat = LAYOUT): Promise<number> {
  const source = await openSource(`folder:${DATA}`);
  const { cache } = await buildCache(source.records, {
    dir: join(tmpdir(), 'moco-cxr-bench-cache', `${size}`),
    size,
    log: () => undefined,
  });
  const loader = new BatchLoader(cache, {
    batchSize: batch,
    seed: 0,
    dropLast: true,
    views: 2,
    augment: mocoCxrAugmentation(size),
  });
  const { model, optimizer } = makeModel(layout);
  let done = 0;
  let start = 0;
  for await (const b of loader.epoch(0)) {
    try {
      if (done === warmup) start = performance.now();
      torch.tidy(() => mocoStep(model, optimizer, b.views[0]!.contiguous(layout), b.views[1]!.contiguous(layout)));
    } finally {
      b.dispose();
    }
    done++;
    if (done === warmup + steps) break;
  }
  const rate = (batch * steps) / ((performance.now() - start) / 1000);
  model.dispose();
  await cache.close();
  return rate;
}

const python = `
import json, time, resource, torch, torchvision
from torchvision import transforms, datasets
torch.set_num_threads(${threads})
WARM, STEPS = ${warmup}, ${steps}
def encoder():
    e = torchvision.models.resnet18(num_classes=128)
    e.fc = torch.nn.Sequential(torch.nn.Linear(512, 512), torch.nn.ReLU(), e.fc)
    return e.train()
def make(layout):
    torch.manual_seed(0)
    q, k = encoder(), encoder()
    q.to(memory_format=layout); k.to(memory_format=layout)
    k.load_state_dict(q.state_dict())
    for p in k.parameters(): p.requires_grad = False
    queue = torch.nn.functional.normalize(torch.randn(128, 24576), dim=0)
    opt = torch.optim.Adam(list(q.parameters()) + list(k.parameters()), lr=1e-4, weight_decay=1e-4, foreach=True)
    return q, k, queue, opt
def step(state, a, b, ptr):
    q_enc, k_enc, queue, opt = state
    q = torch.nn.functional.normalize(q_enc(a), dim=1)
    with torch.no_grad():
        for pq, pk in zip(q_enc.parameters(), k_enc.parameters()): pk.data = pk.data * 0.999 + pq.data * (1. - 0.999)
        k = torch.nn.functional.normalize(k_enc(b), dim=1)
    logits = torch.cat([torch.einsum('nc,nc->n', [q, k]).unsqueeze(-1), torch.einsum('nc,ck->nk', [q, queue.clone().detach()])], 1) / 0.2
    loss = torch.nn.functional.cross_entropy(logits, torch.zeros(a.shape[0], dtype=torch.long))
    queue[:, ptr:ptr + a.shape[0]] = k.T
    opt.zero_grad(); loss.backward(); opt.step()
    return (ptr + a.shape[0]) % queue.shape[1]
def alone(batch, size, layout):
    state = make(layout); ptr = 0
    a = torch.randn(batch, 3, size, size).contiguous(memory_format=layout)
    b = torch.randn(batch, 3, size, size).contiguous(memory_format=layout)
    for _ in range(WARM): ptr = step(state, a, b, ptr)
    t = time.perf_counter()
    for _ in range(STEPS): ptr = step(state, a, b, ptr)
    return batch * STEPS / (time.perf_counter() - t)
class TwoCrops:
    def __init__(self, t): self.t = t
    def __call__(self, x): return [self.t(x), self.t(x)]
def end_to_end(batch, size, layout):
    aug = transforms.Compose([transforms.Resize(size), transforms.RandomHorizontalFlip(), transforms.RandomRotation(10),
        transforms.RandomCrop(size), transforms.Grayscale(3), transforms.ToTensor(), transforms.Normalize([0.5020] * 3, [0.085585] * 3)])
    ds = datasets.ImageFolder('${DATA}', TwoCrops(aug))
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=2, drop_last=True)
    state = make(layout); ptr = 0; done = 0
    for (views, _) in loader:
        if done == WARM: t = time.perf_counter()
        a, b = views[0].contiguous(memory_format=layout), views[1].contiguous(memory_format=layout)
        ptr = step(state, a, b, ptr); done += 1
        if done == WARM + STEPS: break
    return batch * STEPS / (time.perf_counter() - t)
def both(run, *args):
    return {"contiguous": run(*args, torch.contiguous_format), "channelsLast": run(*args, torch.channels_last)}
out = {"alone16": both(alone, 16, 128), "alone32": both(alone, 32, 128),
       "e2e16_224": both(end_to_end, 16, 224), "e2e32_128": both(end_to_end, 32, 128)}
out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
out["rss_children_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps(out))
`;

if (!existsSync(DATA)) {
  console.log(`moco benchmark skipped: ${DATA} is absent`);
} else {
  printMachine();
  console.log(`moco benchmark: ${threads} threads, ours ${LAYOUT}${quick ? ' (quick)' : ''}`);
  const ours = {
    alone16: stepAlone(16, 128),
    alone32: stepAlone(32, 128),
    e2e16: await endToEnd(16, 224),
    e2e16Contiguous: await endToEnd(16, 224, 'contiguous'),
    e2e32: await endToEnd(32, 128),
    rss: peakRssMb(),
  };
  const theirs = runPythonBench<{
    alone16: LayoutRates;
    alone32: LayoutRates;
    e2e16_224: LayoutRates;
    e2e32_128: LayoutRates;
    rss_mb: number;
    rss_children_mb: number;
  }>(python, threads);
  console.log(rowBestLayout('MoCo step alone, batch 16, 128 px', ours.alone16, theirs.alone16, 'img/s', 1.0));
  console.log(rowBestLayout('MoCo step alone, batch 32, 128 px', ours.alone32, theirs.alone32, 'img/s', 1.0));
  console.log(rowBestLayout('end to end, batch 16, 224 px', ours.e2e16, theirs.e2e16_224, 'img/s'));
  console.log(
    rowBestLayout('end to end, batch 16, 224 px, ours contiguous', ours.e2e16Contiguous, theirs.e2e16_224, 'img/s'),
  );
  console.log(rowBestLayout('end to end, batch 32, 128 px', ours.e2e32, theirs.e2e32_128, 'img/s'));
  // PyTorch's loader workers hold the decoded images in their own processes; ours does it all in one.
  console.log(
    row(
      'peak RSS (pytorch: main + largest worker)',
      ours.rss,
      theirs.rss_mb + theirs.rss_children_mb,
      'MB',
      1.0,
      'atMost',
    ),
  );
}
