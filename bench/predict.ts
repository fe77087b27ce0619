/**
 * `moco-cxr predict` throughput on real radiographs against PyTorch running the
 * same classifier on the same files, both in this run:
 *
 * - ours: `predict()` on the files (sharp decode and resize in worker threads,
 *   the next batch decoding while the network runs, ResNet18 at 224 px, batch 16);
 * - PyTorch: PIL decode → grey → torchvision Resize(224) + CenterCrop(224) →
 *   normalize → the same weights in torchvision's resnet18, batch 16, one
 *   process (a DataLoader without workers).
 *
 * Both report images/s over the whole list (decode included), and the largest
 * difference of their probabilities (the two resizers round differently).
 * A second line times `predict` with Grad-CAM overlays written (`--cam`).
 *
 * Run: `npm run bench -- predict` (`--quick` for a smoke run; `--data=DIR` for
 * the shared data folder elsewhere). Images come from the Kermany test set
 * (224 px JPEG).
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { writeClassifier } from '../src/downstream/classifier-file.js';
import { resnet18 } from '../src/models/index.js';
import { camWriter } from '../src/predict/cam.js';
import { predict } from '../src/predict/predict.js';
import * as torch from '../src/torch/index.js';
import { row, runPythonBench } from './python.js';

const quick = process.argv.includes('--quick');
const threads = torch.getNumThreads();
// The shared data folder beside the project, or another copy of it with --data=DIR.
const dataArg = process.argv.find((arg) => arg.startsWith('--data='))?.slice('--data='.length);
const KERMANY = join(
  dataArg ?? fileURLToPath(new URL('../../shared/data', import.meta.url)),
  'pneumonia-kermany-224',
  'test',
);
const IMAGES = quick ? 32 : 192;
const SIZE = 224;
const BATCH = 16;

if (!existsSync(KERMANY)) {
  console.log(`skipped: ${KERMANY} is absent`);
} else {
  await main();
}

async function main(): Promise<void> {
  const files = ['NORMAL', 'PNEUMONIA'].flatMap((label) =>
    readdirSync(join(KERMANY, label))
      .sort()
      .slice(0, IMAGES / 2)
      .map((name) => join(KERMANY, label, name)),
  );
  const work = mkdtempSync(join(tmpdir(), 'moco-cxr-bench-predict-'));
  try {
    const model = join(work, 'model.pt');
    torch.manualSeed(0);
    const net = resnet18({ numClasses: 1 });
    writeClassifier(model, net.stateDict(), {
      arch: 'resnet18',
      tasks: ['PNEUMONIA'],
      preprocessing: { normalize: 'moco-cxr', imageSize: SIZE, channels: 3 },
    });
    net.dispose();
    const inputs = files.map((path) => ({ id: path, path }));
    const quiet = { log: () => undefined, batchSize: BATCH };

    await predict(model, inputs.slice(0, BATCH), quiet); // warm-up: kernels, thread pools
    let started = performance.now();
    const ours = await predict(model, inputs, quiet);
    const oursRate = inputs.length / ((performance.now() - started) / 1000);

    started = performance.now();
    await predict(model, inputs, { ...quiet, forward: camWriter(join(work, 'cam'), ['PNEUMONIA']) });
    const camRate = inputs.length / ((performance.now() - started) / 1000);

    const python = runPythonBench<{ rate: number; probabilities: number[] }>(
      `
import json, time, torch, torchvision
from PIL import Image
import torchvision.transforms as T
torch.set_num_threads(${threads})
files = json.loads(${JSON.stringify(JSON.stringify(files))})
ck = torch.load(${JSON.stringify(model)})
net = torchvision.models.resnet18(num_classes=1)
net.load_state_dict(ck['state_dict'])
net.eval()
pre = ck['preprocessing']
view = T.Compose([T.Resize(pre['image_size']), T.CenterCrop(pre['image_size']), T.ToTensor(),
                  T.Normalize(pre['mean'], pre['std'])])
def run(paths):
    out = []
    with torch.no_grad():
        for i in range(0, len(paths), ${BATCH}):
            x = torch.stack([view(Image.open(p).convert('L')) for p in paths[i:i + ${BATCH}]]).repeat(1, 3, 1, 1)
            out += torch.sigmoid(net(x)).view(-1).tolist()
    return out
run(files[:${BATCH}])
start = time.perf_counter()
probabilities = run(files)
print(json.dumps({'rate': len(files) / (time.perf_counter() - start), 'probabilities': probabilities}))
`,
      threads,
    );
    let worst = 0;
    ours.images.forEach((image, i) => {
      worst = Math.max(worst, Math.abs(image.probabilities![0]! - python.probabilities[i]!));
    });
    console.log(
      `${inputs.length} Kermany test images (224 px JPEG), resnet18 at ${SIZE} px, batch ${BATCH}, ${threads} threads`,
    );
    console.log(row('predict (decode + forward)', oursRate, python.rate, 'img/s'));
    console.log(row('predict --cam (Grad-CAM + PNG overlays)', camRate, python.rate, 'img/s'));
    console.log(`largest probability difference from PyTorch's (PIL's resize vs sharp's): ${worst.toExponential(2)}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
