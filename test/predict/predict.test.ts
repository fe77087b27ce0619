import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import sharp from 'sharp';

import { PREDICT_FLAGS } from '../../src/cli/predict.js';
import { helpText } from '../../src/cli/options.js';
import { decodeResized } from '../../src/data/decode.js';
import { writeClassifier } from '../../src/downstream/classifier-file.js';
import { resnet18 } from '../../src/models/index.js';
import { predict, predictionsCsv, resolveInputs } from '../../src/predict/index.js';
import * as torch from '../../src/torch/index.js';
import { maxAbsDiff, oracleMissing, PYTHON, runPython, tempDir } from '../helpers/oracle.js';

const SIZE = 32;

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args], { encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A grey test pattern: a bright disc on a gradient, different per seed. */
function pattern(width: number, height: number, seed: number): Buffer {
  const pixels = Buffer.alloc(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const disc = (x - width * (0.3 + 0.1 * seed)) ** 2 + (y - height / 2) ** 2 < (width / 4) ** 2 ? 90 : 0;
      pixels[y * width + x] = Math.min(255, Math.round((x * 120) / width + (y * 40) / height + disc));
    }
  }
  return pixels;
}

describe('predict', () => {
  const dir = tempDir();
  const images = join(dir.path, 'images');
  const model = join(dir.path, 'model.pt');
  after(() => dir.cleanup());

  before(async () => {
    mkdirSync(join(images, 'sub'), { recursive: true });
    const raw = { raw: { width: 40, height: 56, channels: 1 as const } };
    await sharp(pattern(40, 56, 0), raw)
      .png()
      .toFile(join(images, 'a.png'));
    await sharp(pattern(40, 56, 1), raw)
      .jpeg({ quality: 95 })
      .toFile(join(images, 'sub', 'b.jpg'));
    writeFileSync(join(images, 'broken.png'), 'not an image');
    writeFileSync(join(images, 'notes.txt'), 'not scored');
    if (oracleMissing() === undefined) {
      // A 16-bit DICOM, as scanners write them.
      const script = `
import sys, numpy as np, pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
meta = FileMetaDataset()
meta.TransferSyntaxUID = ExplicitVRLittleEndian
meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.1.1'
meta.MediaStorageSOPInstanceUID = generate_uid()
ds = FileDataset(sys.argv[1], {}, file_meta=meta, preamble=b'\\0' * 128)
ds.SOPClassUID = meta.MediaStorageSOPClassUID
ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
ds.Modality = 'DX'
ds.Rows, ds.Columns = 48, 40
ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, 'MONOCHROME2'
ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
y, x = np.mgrid[0:48, 0:40]
ds.PixelData = ((x * 60 + y * 30) % 4096).astype('<u2').tobytes()
ds.is_little_endian, ds.is_implicit_VR = True, False
ds.save_as(sys.argv[1], write_like_original=False)
`;
      const made = spawnSync(PYTHON, ['-c', script, join(images, 'c.dcm')], { encoding: 'utf8' });
      assert.equal(made.status, 0, made.stderr);
    }
    torch.manualSeed(5);
    const net = resnet18({ numClasses: 2 });
    writeClassifier(model, net.stateDict(), {
      arch: 'resnet18',
      tasks: ['Effusion', 'Edema, acute'],
      preprocessing: { normalize: 'moco-cxr', imageSize: SIZE, channels: 3 },
    });
    net.dispose();
  });

  test("scores files, folders and bad files with the model's preprocessing, as PyTorch does", async () => {
    const { inputs, passedOver } = await resolveInputs([images, join(dir.path, 'absent.png')]);
    assert.deepEqual(passedOver, [`${images}/notes.txt`]);
    const log: string[] = [];
    const result = await predict(model, inputs, { batchSize: 2, log: (line) => log.push(line) });
    const ids = result.images.map((image) => image.id.slice(dir.path.length + 1));
    const dicom = oracleMissing() === undefined ? ['images/c.dcm'] : [];
    assert.deepEqual(ids, ['images/a.png', 'images/broken.png', ...dicom, 'images/sub/b.jpg', 'absent.png']);
    assert.equal(result.failed, 2);
    assert.equal(result.images.find((image) => image.id.endsWith('absent.png'))?.error, 'not found');
    assert.match(result.images.find((image) => image.id.endsWith('broken.png'))?.error ?? '', /./);
    assert.equal(log.filter((line) => line.startsWith('bad file')).length, 2);
    assert.deepEqual(result.preprocessing, { normalize: 'moco-cxr', imageSize: SIZE, channels: 3 });
    assert.deepEqual(result.studies, []);

    const scored = result.images.filter((image) => image.error === undefined);
    assert.ok(scored.every((image) => image.probabilities?.length === 2));
    if (oracleMissing() !== undefined) return;
    // PyTorch on the same decoded pixels: MoCo-CXR's statistics, grey replicated, torchvision's resnet18.
    const pixels = await Promise.all(scored.map((image) => decodeResized(image.path, { size: SIZE })));
    const python = runPython<number[][]>(
      `
import torch, torchvision
ck = torch.load(INPUT['model'])
net = torchvision.models.resnet18(num_classes=2)
net.load_state_dict(ck['state_dict'])
net.eval()
pre = ck['preprocessing']
x = torch.tensor(INPUT['pixels'], dtype=torch.float32).view(-1, 1, pre['image_size'], pre['image_size']) / 255
x = ((x - pre['mean'][0]) / pre['std'][0]).repeat(1, 3, 1, 1)
with torch.no_grad():
    OUTPUT = torch.sigmoid(net(x)).tolist()
`,
      { model, pixels: pixels.flatMap((p) => Array.from(p)) },
    );
    // Probabilities in (0, 1) after ~20 float32 layers of ≤ 4608-term sums: far below a wrong normalization.
    assert.ok(
      maxAbsDiff(
        scored.flatMap((image) => image.probabilities!),
        python.flat(),
      ) < 1e-4,
    );

    // The CSV, read back by Python's csv module.
    const csvFile = join(dir.path, 'out.csv');
    writeFileSync(csvFile, predictionsCsv(result));
    const rows = runPython<string[][]>(`import csv\nOUTPUT = list(csv.reader(open(INPUT, newline='')))`, csvFile);
    assert.deepEqual(rows[0], ['id', 'path', 'Effusion', 'Edema, acute', 'error']);
    assert.equal(rows.length, result.images.length + 1);
    assert.equal(Number(rows[1]![2]), scored[0]!.probabilities![0]);
    assert.equal(rows[2]![4], result.images[1]!.error);
  });

  test('images with study ids also get the max over each study', async () => {
    const { inputs } = await resolveInputs([join(images, 'a.png'), join(images, 'sub', 'b.jpg')]);
    const withStudies = [
      { ...inputs[0]!, studyId: 's1' },
      { ...inputs[1]!, studyId: 's1' },
      { ...inputs[0]!, id: 'again', studyId: 's2' },
    ];
    const result = await predict(model, withStudies, { log: () => undefined });
    const [a, b] = result.images.map((image) => image.probabilities!);
    assert.deepEqual(result.studies, [
      { studyId: 's1', images: 2, probabilities: [Math.max(a![0]!, b![0]!), Math.max(a![1]!, b![1]!)] },
      { studyId: 's2', images: 1, probabilities: a },
    ]);
    assert.match(
      predictionsCsv(result).split('\n')[0]!,
      /,study_id,Effusion \(study max\),"Edema, acute \(study max\)",error$/,
    );
  });

  test('the command writes JSON, counts bad files, and refuses a file that is not a classifier', () => {
    const out = join(dir.path, 'out.json');
    const run = cli('predict', '--model', model, '--out', out, '--image-size', '40', images);
    assert.equal(run.status, 0, run.stderr);
    const written = JSON.parse(readFileSync(out, 'utf8')) as { failed: number; preprocessing: { imageSize: number } };
    assert.equal(written.failed, 1);
    assert.equal(written.preprocessing.imageSize, 40);
    assert.match(run.stderr, /bad file .*broken\.png/);
    assert.match(
      run.stderr,
      /warning: .*model\.pt was trained with other preprocessing; overriding with imageSize 40 \(it has 32\)/,
    );
    assert.match(run.stderr, /scored \d of \d+ images into .*out\.json; 1 bad files/);

    const notModel = join(dir.path, 'weights.pt');
    torch.save({ epoch: 1, state_dict: { w: torch.zeros([1]) }, optimizer: {} }, notModel);
    const refused = cli('predict', '--model', notModel, images);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /weights\.pt is not a moco-cxr classifier: .*a pretraining checkpoint/);
    const help = helpText('usage', PREDICT_FLAGS);
    assert.match(help, /--model .*classifier file/);
    assert.match(help, /--normalize .*\(default the model's\)/);
  });
});
