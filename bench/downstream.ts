/**
 * Downstream evaluation against the MoCo-CXR way, on the same machine and libtorch:
 *
 * 1. Linear probe, per 1,000 training images (+ 100 validation images):
 *    ours = features extracted once (ResNet18, 224 px, eval mode) + a grid of
 *    4 fractions × 5 draws of linear heads trained on those features;
 *    MoCo-CXR's = the frozen backbone run at every step of every probe and on
 *    the validation set at every evaluation, as its PyTorch code does.
 *    PyTorch's time is its measured probe-step rate times the images the grid
 *    feeds through the backbone. Target: ≥ 20× faster.
 * 2. Fine-tuning: one epoch's training images/s (loader, augmentation,
 *    forward, backward, Adam) against PyTorch's ResNet18 training step at
 *    batch 16, 224 px, as a ratio.
 *
 * Run: `npm run bench -- downstream` (`--quick` for a smoke run). Real images
 * come from the shared data folder (Kermany, 224 px).
 */
import { existsSync, mkdirSync, readdirSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import * as torch from '../src/torch/index.js';
import { epochsForFraction } from '../src/downstream/cell.js';
import { extractFeatures } from '../src/downstream/features.js';
import { finetune } from '../src/downstream/finetune.js';
import { fitLinearHead } from '../src/downstream/linear.js';
import { createBackbone, prepareDownstreamData } from '../src/downstream/setup.js';
import { fractionSize } from '../src/data/fractions.js';
import { printMachine } from './machine.js';
import { row, runPythonBench } from './python.js';

const quick = process.argv.includes('--quick');
const threads = torch.getNumThreads();
const KERMANY = fileURLToPath(new URL('../../shared/data/pneumonia-kermany-224/train', import.meta.url));
const sampleImages = quick ? 32 : 128;
const pythonSteps = quick ? 2 : 8;
const POOL = 1000;
const VAL = 100;
const FRACTIONS = [0.001, 0.01, 0.1, 1];
const DRAWS = 5;
const BATCH = 16;

printMachine();
if (!existsSync(KERMANY)) {
  console.log(`skipped: ${KERMANY} is absent`);
} else {
  await main();
}

/** A folder of `count` real radiographs, half of each class, as symbolic links. */
function sampleFolder(count: number): string {
  const dir = join(tmpdir(), `moco-cxr-bench-downstream-${count}`);
  for (const label of ['NORMAL', 'PNEUMONIA']) {
    const target = join(dir, label);
    if (existsSync(target)) continue;
    mkdirSync(target, { recursive: true });
    const names = readdirSync(join(KERMANY, label))
      .sort()
      .slice(0, count / 2);
    for (const name of names) symlinkSync(join(KERMANY, label, name), join(target, name));
  }
  return dir;
}

async function main(): Promise<void> {
  const folder = sampleFolder(sampleImages);
  const data = await prepareDownstreamData(
    {
      train: `folder:${folder}`,
      test: `folder:${folder}`,
      valSplit: 0.2,
      uncertain: 'ignore',
      seed: 0,
      cacheSize: 224,
      cacheDir: join(tmpdir(), 'moco-cxr-bench-cache'),
      workers: 0,
    },
    { log: () => undefined },
  );
  try {
    // 1a. Our feature extraction rate, on real images.
    const backbone = createBackbone('random', 'resnet18', { numClasses: 1, seed: 0 });
    await extractFeatures(backbone, data.train, { imageSize: 224, batchSize: 32 }).then((t) => t.dispose());
    const started = performance.now();
    const features = await extractFeatures(backbone, data.train, { imageSize: 224, batchSize: 32 });
    const extractRate = data.train.records.length / ((performance.now() - started) / 1000);
    backbone.dispose();

    // 1b. The grid on 1,000 training and 100 validation feature vectors.
    const rows = (n: number): torch.Tensor =>
      torch.tidy(() => {
        const index = torch.tensor(
          BigInt64Array.from({ length: n }, (_, i) => BigInt(i % (features.shape[0] as number))),
          [n],
        );
        return features.indexSelect(0, index).add(torch.randn([n, 512]).mul(0.01));
      });
    const poolX = rows(POOL);
    const valX = rows(VAL);
    const poolY = Float32Array.from({ length: POOL }, (_, i) => i % 2);
    const valY = Array.from({ length: VAL }, (_, i) => i % 2);
    let trainImages = 0;
    let valImages = 0;
    const gridStart = performance.now();
    for (const fraction of FRACTIONS) {
      const size = Math.max(2, fractionSize(fraction, POOL));
      const epochs = epochsForFraction(fraction);
      for (let draw = 0; draw < DRAWS; draw++) {
        const start = (draw * 37) % (POOL - size + 1);
        const x = poolX.narrow(0, start, size);
        const fit = await fitLinearHead(
          { features: x, labels: poolY.subarray(start, start + size), mask: new Float32Array(size).fill(1) },
          { features: valX, labels: valY },
          { epochs, seed: draw },
        );
        trainImages += epochs * size;
        valImages += fit.evaluations.length * VAL;
        fit.dispose();
        x.dispose();
      }
    }
    const gridSeconds = (performance.now() - gridStart) / 1000;
    torch.dispose([features, poolX, valX]);
    const oursSeconds = (POOL + VAL) / extractRate + gridSeconds;

    // 2. Fine-tuning on the sample: the second epoch's rate (the first warms up, as PyTorch's untimed step).
    const tuned = await finetune({
      data,
      init: 'random',
      arch: 'resnet18',
      imageSize: 224,
      fraction: 1,
      draw: 0,
      seed: 0,
      epochs: 2,
      ensemble: 1,
      plainProgress: true,
    });
    const finetuneRate = tuned.history.epochs[1]!.imagesPerSecond;

    const python = runPythonBench<{ probe: number; finetune: number }>(pythonScript(), threads);
    const theirsTrain = trainImages / python.probe;
    const theirsAll = (trainImages + valImages) / python.probe;
    console.log(
      `threads ${threads}; ${quick ? 'smoke run' : 'full run'}; real images: ${sampleImages} Kermany at 224 px`,
    );
    console.log(
      `linear grid per ${POOL} images: 4 fractions x ${DRAWS} draws, ${trainImages} training and ${valImages} validation images through the head`,
    );
    console.log(
      `  ours: extraction ${extractRate.toFixed(1)} img/s -> ${((POOL + VAL) / extractRate).toFixed(1)} s, grid ${gridSeconds.toFixed(1)} s, total ${oursSeconds.toFixed(1)} s`,
    );
    console.log(
      `  MoCo-CXR way: probe step ${python.probe.toFixed(1)} img/s -> ${theirsTrain.toFixed(0)} s training only, ${theirsAll.toFixed(0)} s with validation`,
    );
    console.log(row('linear grid speed-up (training steps only)', theirsTrain / oursSeconds, 1, 'x', 20));
    console.log(row('linear grid speed-up (with validation)', theirsAll / oursSeconds, 1, 'x', 20));
    console.log(row('fine-tuning epoch, images/s', finetuneRate, python.finetune, 'img/s', 0.95));
  } finally {
    await data.close();
  }
}

function pythonScript(): string {
  return `
import json, time, torch, torchvision
import torch.nn.functional as F
torch.set_num_threads(${threads})
torch.manual_seed(0)
x = torch.randn(${BATCH}, 3, 224, 224)
y = torch.randint(0, 2, (${BATCH}, 1)).float()
frozen = torchvision.models.resnet18(num_classes=1)
frozen.fc = torch.nn.Identity()
frozen.eval()
for p in frozen.parameters(): p.requires_grad_(False)
head = torch.nn.Linear(512, 1)
opt = torch.optim.Adam(head.parameters(), lr=1e-4, foreach=True)
def probe():
    with torch.no_grad():
        f = frozen(x)
    loss = F.binary_cross_entropy_with_logits(head(f), y)
    opt.zero_grad(); loss.backward(); opt.step()
net = torchvision.models.resnet18(num_classes=1)
net.train()
opt2 = torch.optim.Adam(net.parameters(), lr=1e-4, foreach=True)
def tune():
    loss = F.binary_cross_entropy_with_logits(net(x), y)
    opt2.zero_grad(); loss.backward(); opt2.step()
def rate(step):
    step()
    t = time.perf_counter()
    for _ in range(${pythonSteps}): step()
    return ${BATCH} * ${pythonSteps} / (time.perf_counter() - t)
print(json.dumps({'probe': rate(probe), 'finetune': rate(tune)}))
`;
}
