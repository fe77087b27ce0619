/**
 * The data path against PyTorch's, on the real Kermany training images:
 *  - cache build rate: every image decoded once, resized to 224 and 320 (images/s);
 *  - loader + MoCo-CXR two-view augmentation (flip, rotation ±10°, crop,
 *    normalize, two views), batch 32, at 224 and 320, beside a PyTorch
 *    DataLoader with the torchvision transforms MoCo-CXR used, which decodes
 *    every image with PIL each epoch. Target: ≥ 2× PyTorch's images/s.
 * Peak memory of both sides is printed.
 *
 * Run: `npm run bench -- data` (add `--quick` for a short run on a subset).
 */
import { readdirSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

import { mocoCxrAugmentation } from '../src/data/augment.js';
import { buildCache, type CacheRecord } from '../src/data/cache.js';
import { BatchLoader } from '../src/data/loader.js';
import * as torch from '../src/torch/index.js';
import { printMachine } from './machine.js';
import { peakRssMb, row, runPythonBench } from './python.js';

const quick = process.argv.includes('--quick');
const DATA = fileURLToPath(new URL('../../shared/data/pneumonia-kermany-224/train', import.meta.url));
const BATCH = 32;
const SIZES = [224, 320];
const subset = quick ? 640 : Infinity;
const batches = quick ? 6 : 30;
const warmupBatches = 2;
const cores = availableParallelism();

function listImages(root: string): CacheRecord[] {
  const out: CacheRecord[] = [];
  const walk = (folder: string): void => {
    for (const entry of readdirSync(folder, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = join(folder, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (/\.(jpe?g|png)$/i.test(entry.name)) out.push({ id: relative(root, path), path });
    }
  };
  walk(root);
  return out;
}

// The PyTorch side: MoCo-CXR's pretraining transforms on PIL images, two crops per image, DataLoader workers.
const PYTHON_LOADER = String.raw`
import json, os, sys, time, resource, random
import torch
from PIL import Image
from torchvision import transforms
from torch.utils.data import DataLoader, Dataset
args = json.loads(sys.argv[1])
torch.manual_seed(0); random.seed(0)
class Files(Dataset):
    def __init__(self, paths, transform): self.paths, self.transform = paths, transform
    def __len__(self): return len(self.paths)
    def __getitem__(self, i):
        image = Image.open(self.paths[i]).convert('RGB')
        return self.transform(image), self.transform(image)
results = {}
for size in args['sizes']:
    transform = transforms.Compose([
        transforms.Resize(size),
        transforms.RandomHorizontalFlip(),
        transforms.RandomRotation(10),
        transforms.RandomCrop(size),
        transforms.ToTensor(),
        transforms.Normalize([0.502] * 3, [0.085585] * 3),
    ])
    loader = DataLoader(Files(args['paths'], transform), batch_size=args['batch'], shuffle=True,
                        num_workers=args['workers'], drop_last=True, persistent_workers=False)
    it = iter(loader)
    for _ in range(args['warmup']): next(it)
    start = time.perf_counter()
    for _ in range(args['batches']): q, k = next(it)
    elapsed = time.perf_counter() - start
    results[str(size)] = args['batch'] * args['batches'] / elapsed
    del it, loader
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({'rate': results, 'rssMb': own, 'workerRssMb': children}))
`;

function pythonLoader(
  paths: string[],
  workers: number,
): { rate: Record<string, number>; rssMb: number; workerRssMb: number } {
  const args = JSON.stringify({ paths, sizes: SIZES, batch: BATCH, batches, warmup: warmupBatches, workers });
  // Each worker is one process; libtorch inside them is kept to one thread, as DataLoader does.
  return runPythonBench(`import sys; sys.argv = ['bench', ${JSON.stringify(args)}]\n${PYTHON_LOADER}`, 1);
}

async function ourLoaderRate(records: CacheRecord[], size: number, cacheDir: string): Promise<number> {
  const { cache } = await buildCache(records, { dir: cacheDir, size, log: () => {} });
  const loader = new BatchLoader(cache, {
    batchSize: BATCH,
    seed: 0,
    dropLast: true,
    views: 2,
    augment: mocoCxrAugmentation(size),
  });
  let seen = 0;
  let start = 0;
  for await (const batch of loader.epoch(0)) {
    // The views are what a training step would read; touching them keeps the work honest.
    if (batch.views.length !== 2) throw new Error('expected two views');
    batch.dispose();
    seen++;
    if (seen === warmupBatches) start = performance.now();
    if (seen === warmupBatches + batches) break;
  }
  const seconds = (performance.now() - start) / 1000;
  await cache.close();
  return (BATCH * batches) / seconds;
}

printMachine();
const all = listImages(DATA);
if (all.length === 0) {
  console.log(`skipped: no images under ${DATA}`);
} else {
  const records = all.slice(0, subset);
  console.log(
    `${records.length} Kermany training images, batch ${BATCH}, ${batches} timed batches after ${warmupBatches}, ` +
      `${torch.getNumThreads()} libtorch threads, ${cores} cores${quick ? ' (quick)' : ''}, ` +
      `OMP_WAIT_POLICY=${process.env.OMP_WAIT_POLICY ?? '(unset)'}`,
  );
  console.log(`load average at start: ${loadavg()[0]!.toFixed(1)} on ${cores} cores`);
  const root = join(tmpdir(), 'moco-cxr-bench-cache');
  const buildRates: Record<number, number> = {};
  for (const size of SIZES) {
    const dir = join(root, `${size}px`);
    rmSync(dir, { recursive: true, force: true });
    const { stats } = await buildCache(records, { dir, size, log: () => {} });
    buildRates[size] = stats.decoded / stats.seconds;
    console.log(
      `cache build ${size}px: ${stats.decoded} images in ${stats.seconds.toFixed(1)} s = ` +
        `${buildRates[size].toFixed(0)} images/s (${cores} decoding threads), ${stats.skipped} skipped`,
    );
  }
  const ours: Record<number, number> = {};
  for (const size of SIZES) ours[size] = await ourLoaderRate(records, size, join(root, `${size}px`));
  const oursRss = peakRssMb();
  const workers = cores;
  const theirs = pythonLoader(
    records.map((r) => r.path),
    workers,
  );
  for (const size of SIZES) {
    console.log(row(`loader + two views ${size}px (images/s)`, ours[size]!, theirs.rate[String(size)]!, 'img/s', 2));
  }
  console.log(
    `load average at end: ${loadavg()[0]!.toFixed(1)} on ${cores} cores (figures are unreliable above ${cores})`,
  );
  console.log(
    `peak RSS: ours ${oursRss.toFixed(0)} MB (cache build, loader, augmentation in one process); ` +
      `pytorch ${theirs.rssMb.toFixed(0)} MB main + ${theirs.workerRssMb.toFixed(0)} MB largest worker (${workers} DataLoader workers)`,
  );
  console.log(
    row('peak RSS (pytorch: main + largest worker)', oursRss, theirs.rssMb + theirs.workerRssMb, 'MB', 1, 'atMost'),
  );
}
