/**
 * The data path against PyTorch's, on the real Kermany training images:
 *  - cache build rate: every image decoded once, resized to 224 and 320 (images/s);
 *  - the pretraining loader: batches of 32 read from that cache, each with two
 *    augmented views (MoCo-CXR's: flip p = 0.5, bilinear rotation ±10° with zero
 *    fill, crop of the image size, grey → 3 channels normalized), beside a
 *    PyTorch DataLoader doing the same decode-free work from the same cache
 *    file with the same torchvision ops, as many workers as cores. Target:
 *    ≥ 2× PyTorch's images/s.
 *
 * Each side runs in its own process, so that its peak RSS is that of the loader
 * alone (the cache build and its decoders stay in this process). Repeats
 * alternate (ours, PyTorch, ours, PyTorch, ...) so that a change in the
 * machine's load falls on both; the ratio shown is the median of the pairs'.
 *
 * PyTorch's setting, its best for this work: `persistent_workers`, workers =
 * cores, each with one thread (as DataLoader sets), `prefetch_factor` 2 (the
 * timed loop only takes batches, so the workers' rate is the throughput and a
 * deeper queue only holds more of them ready), rows read with `os.preadv`
 * straight into a uint8 tensor, `Normalize(inplace=True)` on the grey channel
 * and an `expand` to 3 channels that the batch collation materializes; the
 * rotation is torchvision's
 * bilinear `rotate` with `fill=None`, which is the same zero fill without the
 * extra mask channel `RandomRotation`'s default `fill=0` samples too.
 * `pin_memory` is for GPU transfers and does nothing on a CPU.
 *
 * Run: `npm run bench -- data` (add `--quick` for a short run on a subset).
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

import { mocoCxrAugmentation } from '../src/data/augment.js';
import { ImageCache, PIXELS } from '../src/data/cache-reader.js';
import { BatchLoader } from '../src/data/loader.js';
import * as torch from '../src/torch/index.js';
import { printMachine } from './machine.js';
import { peakRssMb, runPythonBench } from './python.js';

const quick = process.argv.includes('--quick');
const DATA = fileURLToPath(new URL('../../shared/data/pneumonia-kermany-224/train', import.meta.url));
const BATCH = 32;
const SIZES = [224, 320];
const TARGET = 2;
const subset = quick ? 640 : Infinity;
const batches = quick ? 8 : 30;
const repeats = quick ? 2 : 3;
const WARMUP = 2;
const PREFETCH_FACTOR = 2;
const cores = availableParallelism();

/** Resident MB by what is mapped: libtorch and its libraries, the rest of the program, anonymous memory, files. */
type RssParts = Record<'torch' | 'program' | 'anonymous' | 'files', number>;

/** What one run of a loader reports. */
interface LoaderRun {
  rate: number;
  rssMb: number;
  /** PyTorch only: the largest DataLoader worker. */
  workerRssMb?: number;
  /** Resident memory by mapping at the end of the timed batches (PyTorch: main process, then each worker). */
  parts: RssParts[];
}

/** The kind of a mapping in /proc/PID/smaps, by its path. */
function partOf(path: string): keyof RssParts {
  if (path === '' || path.startsWith('[')) return 'anonymous';
  if (/lib(torch|c10|gomp|dnnl|openblas|gloo|shm)/.test(path)) return 'torch';
  if (/\.so(\.|$)|\/(node|python3[.\d]*)$/.test(path)) return 'program';
  return 'files';
}

/** This process's resident memory by mapping (Linux; zeros elsewhere). */
function rssParts(): RssParts {
  const parts: RssParts = { torch: 0, program: 0, anonymous: 0, files: 0 };
  let text = '';
  try {
    text = readFileSync('/proc/self/smaps', 'utf8');
  } catch {
    return parts;
  }
  let current: keyof RssParts = 'anonymous';
  for (const line of text.split('\n')) {
    const mapping = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (mapping !== null) current = partOf(mapping[1]!.trim());
    else if (line.startsWith('Rss:')) parts[current] += Number(line.split(/\s+/)[1]) / 1024;
  }
  return parts;
}

function formatParts(parts: RssParts): string {
  return Object.entries(parts)
    .map(([name, mb]) => `${name} ${mb.toFixed(0)}`)
    .join(', ');
}

// ---------------------------------------------------------------- our side, in a child process

async function ourLoader(dir: string): Promise<LoaderRun> {
  const cache = await ImageCache.open(dir);
  const loader = new BatchLoader(cache, {
    batchSize: BATCH,
    seed: 0,
    dropLast: true,
    views: 2,
    augment: mocoCxrAugmentation(cache.size),
  });
  let seen = 0;
  let start = 0;
  let checksum = 0;
  for (let epoch = 0; seen < WARMUP + batches; epoch++) {
    for await (const batch of loader.epoch(epoch)) {
      if (batch.views.length !== 2) throw new Error('expected two views');
      checksum += batch.views[1]!.shape[1]!;
      batch.dispose();
      seen++;
      if (seen === WARMUP) start = performance.now();
      if (seen === WARMUP + batches) break;
    }
  }
  const seconds = (performance.now() - start) / 1000;
  const parts = rssParts();
  await cache.close();
  if (checksum !== 3 * seen) throw new Error('expected 3-channel views');
  return { rate: (BATCH * batches) / seconds, rssMb: peakRssMb(), parts: [parts] };
}

function ourLoaderInChild(dir: string): LoaderRun {
  const self = fileURLToPath(import.meta.url);
  const child = spawnSync(process.execPath, ['--import', 'tsx', self, '--child', dir, ...(quick ? ['--quick'] : [])], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (child.status !== 0) throw new Error(`our loader's run failed (exit ${String(child.status)})`);
  return JSON.parse(child.stdout.trim().split('\n').pop() ?? '') as LoaderRun;
}

// ---------------------------------------------------------------- PyTorch's side

const PYTHON_LOADER = String.raw`
import json, os, re, sys, time, resource, random
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms
from torchvision.transforms import functional as F, InterpolationMode
args = json.loads(sys.argv[1])
torch.manual_seed(0); random.seed(0)
size = args['size']

class Rotation(torch.nn.Module):
    # RandomRotation(degrees, BILINEAR) with fill=None: grid_sample's zero padding is the zero fill.
    def __init__(self, degrees):
        super().__init__()
        self.degrees = degrees
    def forward(self, image):
        angle = float(torch.empty(1).uniform_(-self.degrees, self.degrees).item())
        return F.rotate(image, angle, InterpolationMode.BILINEAR)

class CacheRows(Dataset):
    # The cache's pixels.bin: one size x size uint8 slot per image, read by position.
    def __init__(self, path, transform):
        self.path, self.bytes, self.transform = path, size * size, transform
        self.count = os.path.getsize(path) // self.bytes
        self.fd = None
    def __len__(self):
        return self.count
    def __getitem__(self, i):
        if self.fd is None:
            self.fd = os.open(self.path, os.O_RDONLY)  # one per worker process
        image = torch.empty((1, size, size), dtype=torch.uint8)
        os.preadv(self.fd, [image.numpy()], i * self.bytes)
        return self.transform(image), self.transform(image)

transform = transforms.Compose([
    transforms.ConvertImageDtype(torch.float32),
    transforms.RandomHorizontalFlip(),
    Rotation(10),
    transforms.RandomCrop(size),
    transforms.Normalize([0.502], [0.085585], inplace=True),
    transforms.Lambda(lambda x: x.expand(3, -1, -1)),
])
loader = DataLoader(CacheRows(args['pixels'], transform), batch_size=args['batch'], shuffle=True,
                    num_workers=args['workers'], drop_last=True, persistent_workers=True,
                    prefetch_factor=args['prefetch'])

def rss_parts(pid):
    # Resident MB by mapping, as the other side's rssParts counts it.
    parts = {'torch': 0.0, 'program': 0.0, 'anonymous': 0.0, 'files': 0.0}
    current = 'anonymous'
    for line in open(f'/proc/{pid}/smaps'):
        fields = line.split()
        if '-' in fields[0] and not fields[0].endswith(':'):
            path = fields[5] if len(fields) > 5 else ''
            if path == '' or path.startswith('['):
                current = 'anonymous'
            elif re.search(r'lib(torch|c10|gomp|dnnl|openblas|gloo|shm)', path):
                current = 'torch'
            elif re.search(r'\.so(\.|$)|/(node|python3[.\d]*)$', path):
                current = 'program'
            else:
                current = 'files'
        elif fields[0] == 'Rss:':
            parts[current] += int(fields[1]) / 1024
    return parts

def batches():
    while True:
        yield from loader

it = batches()
# The workers fill their queues while the first batches are awaited: drain that before timing.
for _ in range(args['warmup'] + args['workers'] * args['prefetch']):
    q, k = next(it)
assert q.shape == (args['batch'], 3, size, size) and k.is_contiguous()
start = time.perf_counter()
for _ in range(args['batches']):
    q, k = next(it)
elapsed = time.perf_counter() - start
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork and exec from the (large) parent
own = int(re.search(r'^VmHWM:\s+(\d+) kB', open('/proc/self/status').read(), re.M).group(1)) / 1024
parts = [rss_parts('self')] + [rss_parts(w.pid) for w in loader._iterator._workers]
del it, loader  # ends the workers, so that their peak is counted below
children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({'rate': args['batch'] * args['batches'] / elapsed, 'rssMb': own, 'workerRssMb': children,
                  'parts': parts}))
`;

function pythonLoader(dir: string, size: number): LoaderRun {
  const args = JSON.stringify({
    pixels: join(dir, PIXELS),
    size,
    batch: BATCH,
    batches,
    warmup: WARMUP,
    workers: cores,
    prefetch: PREFETCH_FACTOR,
  });
  // Each worker is one process; libtorch inside them is kept to one thread, as DataLoader does.
  return runPythonBench(`import sys; sys.argv = ['bench', ${JSON.stringify(args)}]\n${PYTHON_LOADER}`, 1);
}

// ---------------------------------------------------------------- the comparison

function listImages(root: string): { id: string; path: string }[] {
  const out: { id: string; path: string }[] = [];
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

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const load = (): string => loadavg()[0]!.toFixed(1);

async function compare(): Promise<void> {
  const all = listImages(DATA);
  if (all.length === 0) {
    console.log(`skipped: no images under ${DATA}`);
    return;
  }
  // The cache builder loads the image decoders; only this process needs them.
  const { buildCache } = await import('../src/data/cache.js');
  const records = all.slice(0, subset);
  console.log(
    `${records.length} Kermany training images, batch ${BATCH}, ${batches} timed batches after ${WARMUP}, ` +
      `${repeats} alternating repeats per size, ${torch.getNumThreads()} libtorch threads, ${cores} cores` +
      `${quick ? ' (quick)' : ''}, OMP_WAIT_POLICY=${process.env.OMP_WAIT_POLICY ?? '(unset)'}`,
  );
  console.log(`load average at start: ${load()} on ${cores} cores`);
  const root = join(tmpdir(), `moco-cxr-bench-cache-${process.pid}`);
  try {
    for (const size of SIZES) {
      const dir = join(root, `${size}px`);
      const { stats, cache } = await buildCache(records, { dir, size, log: () => {} });
      await cache.close();
      console.log(
        `cache build ${size}px: ${stats.decoded} images in ${stats.seconds.toFixed(1)} s = ` +
          `${(stats.decoded / stats.seconds).toFixed(0)} images/s (${cores} decoding threads), ${stats.skipped} skipped`,
      );
    }
    for (const size of SIZES) {
      const dir = join(root, `${size}px`);
      const ours: LoaderRun[] = [];
      const theirs: LoaderRun[] = [];
      const loads: string[] = [];
      for (let r = 0; r < repeats; r++) {
        ours.push(ourLoaderInChild(dir));
        theirs.push(pythonLoader(dir, size));
        loads.push(load());
      }
      const ratios = ours.map((run, r) => run.rate / theirs[r]!.rate);
      const ratio = median(ratios);
      const label = `loader + two views ${size}px (images/s)`;
      console.log(
        `${label.padEnd(44)} ours ${median(ours.map((run) => run.rate)).toFixed(0)}  pytorch ` +
          `${median(theirs.map((run) => run.rate)).toFixed(0)} (DataLoader, ${cores} workers)  median ratio ` +
          `${ratio.toFixed(2)}x  target >= ${TARGET.toFixed(2)}x ${ratio >= TARGET ? 'MET' : 'NOT MET'}`,
      );
      console.log(
        `${''.padEnd(44)} pairs: ${ours.map((run, r) => `${run.rate.toFixed(0)}/${theirs[r]!.rate.toFixed(0)}`).join(', ')}; ` +
          `load average after each: ${loads.join(', ')}`,
      );
      const oursRss = Math.max(...ours.map((run) => run.rssMb));
      const main = Math.max(...theirs.map((run) => run.rssMb));
      const worker = Math.max(...theirs.map((run) => run.workerRssMb ?? 0));
      const rssRatio = oursRss / (main + worker);
      console.log(
        `${`peak RSS ${size}px (MB)`.padEnd(44)} ours ${oursRss.toFixed(0)}  pytorch ${main.toFixed(0)} main + ` +
          `${worker.toFixed(0)} largest of ${cores} workers  ratio ${rssRatio.toFixed(2)}x  target <= 1.00x ` +
          `${rssRatio <= 1 ? 'MET' : 'NOT MET'}`,
      );
      const names = ['main', ...Array.from({ length: cores }, (_, w) => `worker ${w + 1}`)];
      console.log(
        `${''.padEnd(44)} resident MB by mapping at the end, ours: ${formatParts(ours[0]!.parts[0]!)}; pytorch ` +
          theirs[0]!.parts.map((parts, p) => `${names[p]}: ${formatParts(parts)}`).join('; '),
      );
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  console.log(`load average at end: ${load()} on ${cores} cores (figures are unreliable above ${cores})`);
}

if (process.argv.includes('--child')) {
  const dir = process.argv[process.argv.indexOf('--child') + 1]!;
  process.stdout.write(`${JSON.stringify(await ourLoader(dir))}\n`);
} else {
  printMachine();
  await compare();
}
