/**
 * `predict` with the ONNX file `moco-cxr export` wrote: the same images
 * scored through onnxruntime-web give the PyTorch classifier's probabilities,
 * tasks and preprocessing; bad images are counted as with the checkpoint; a
 * broken file and the options an ONNX graph cannot honour are refused by name.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import sharp from 'sharp';

import { writeClassifier } from '../../src/downstream/classifier-file.js';
import { exportModel } from '../../src/export/index.js';
import { resnet18 } from '../../src/models/index.js';
import { predict, predictionsCsv, resolveInputs } from '../../src/predict/index.js';
import * as torch from '../../src/torch/index.js';
import { tempDir } from '../helpers/oracle.js';
import { assertClose, chainLength } from '../helpers/tolerance.js';

const SIZE = 64;

/** A grey gradient with a bright disc whose place depends on `seed`. */
function pattern(width: number, height: number, seed: number): Buffer {
  const pixels = Buffer.alloc(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const disc = (x - width * (0.25 + 0.15 * seed)) ** 2 + (y - height / 2) ** 2 < (width / 5) ** 2 ? 100 : 0;
      pixels[y * width + x] = Math.min(255, Math.round((x * 110) / width + (y * 50) / height + disc));
    }
  }
  return pixels;
}

describe('predict with an ONNX model', () => {
  const dir = tempDir('moco-cxr-onnx-predict-');
  const images = join(dir.path, 'images');
  const checkpoint = join(dir.path, 'model.pt');
  const onnx = join(dir.path, 'model.onnx');
  let ops = 0;
  after(() => dir.cleanup());

  before(async () => {
    mkdirSync(images, { recursive: true });
    // Not square and not at the model's side, so the resize and the centred crop both matter.
    const sides: [number, number][] = [
      [80, 96],
      [120, 72],
      [64, 64],
    ];
    for (const [i, [width, height]] of sides.entries()) {
      await sharp(pattern(width, height, i), { raw: { width, height, channels: 1 } })
        .png()
        .toFile(join(images, `x${i}.png`));
    }
    writeFileSync(join(images, 'broken.png'), 'not an image');
    torch.manualSeed(11);
    const net = resnet18({ numClasses: 2 });
    ops = chainLength(net.parameters().map((p) => p.shape));
    writeClassifier(checkpoint, net.stateDict(), {
      arch: 'resnet18',
      tasks: ['Effusion', 'Edema'],
      preprocessing: { normalize: 'moco-cxr', imageSize: SIZE, channels: 3 },
    });
    net.dispose();
    exportModel({ model: checkpoint, out: onnx }, () => undefined);
  });

  test('gives the checkpoint’s probabilities, tasks, preprocessing, bad files and study maxima', async () => {
    const { inputs } = await resolveInputs([images]);
    const withStudies = inputs.map((input, i) => ({ ...input, studyId: i < 2 ? 's1' : `s${i}` }));
    const quiet = { batchSize: 2, log: () => undefined };
    const fromCheckpoint = await predict(checkpoint, withStudies, quiet);
    const log: string[] = [];
    const fromOnnx = await predict(onnx, withStudies, { ...quiet, log: (line) => log.push(line) });

    assert.equal(fromOnnx.model, onnx);
    assert.deepEqual(fromOnnx.tasks, ['Effusion', 'Edema']);
    assert.deepEqual(fromOnnx.preprocessing, fromCheckpoint.preprocessing);
    assert.equal(fromOnnx.failed, 1);
    assert.match(fromOnnx.images.find((image) => image.id.endsWith('broken.png'))?.error ?? '', /./);
    assert.equal(log.filter((line) => /^bad file .*broken\.png/.test(line)).length, 1);
    assert.deepEqual(
      fromOnnx.images.map((image) => image.error === undefined),
      fromCheckpoint.images.map((image) => image.error === undefined),
    );
    const ours = fromOnnx.images.flatMap((image) => image.probabilities ?? []);
    const reference = fromCheckpoint.images.flatMap((image) => image.probabilities ?? []);
    assert.equal(ours.length, 6);
    // Same decoded pixels, same pixels / 255, same float32 weights: only the runtimes' summation orders differ.
    // Roundings along ResNet-18's longest chain (every layer's fan-in, test/helpers/tolerance.ts) with k = 4 and
    // the probability scale 1 (the sigmoid's slope is at most 1/4, so this is loose): about 1e-4.
    assertClose(ours, reference, 'ONNX vs checkpoint probabilities', { ops, k: 4, scale: 1 });
    assert.equal(fromOnnx.studies.length, fromCheckpoint.studies.length);
    assert.deepEqual(
      fromOnnx.studies.map((study) => [study.studyId, study.images]),
      fromCheckpoint.studies.map((study) => [study.studyId, study.images]),
    );
    assertClose(
      fromOnnx.studies.flatMap((study) => study.probabilities),
      fromCheckpoint.studies.flatMap((study) => study.probabilities),
      'ONNX vs checkpoint study maxima',
      { ops, k: 4, scale: 1 },
    );
    assert.equal(predictionsCsv(fromOnnx).split('\n')[0], predictionsCsv(fromCheckpoint).split('\n')[0]);
  });

  test('a broken ONNX file, --normalize and Grad-CAM are refused by name', async () => {
    const { inputs } = await resolveInputs([join(images, 'x0.png')]);
    const broken = join(dir.path, 'broken.onnx');
    writeFileSync(broken, 'these bytes are no protobuf');
    await assert.rejects(predict(broken, inputs), /broken\.onnx: (not an ONNX model|no 'moco_cxr\.tasks' metadata)/);
    await assert.rejects(predict(join(dir.path, 'absent.onnx'), inputs), /absent\.onnx: cannot read the ONNX model/);
    await assert.rejects(
      predict(onnx, inputs, { normalize: 'imagenet' }),
      /normalize: .*model\.onnx is an ONNX model, whose graph holds its normalization/,
    );
    const cam = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'src/cli/run.ts', 'predict', '--model', onnx, '--cam', join(dir.path, 'cam'), images],
      { encoding: 'utf8' },
    );
    assert.equal(cam.status, 1);
    assert.match(cam.stderr, /cam: .*model\.onnx is an ONNX model; Grad-CAM needs the PyTorch classifier file/);
  });

  test('the command scores with the ONNX file and writes the same JSON fields', () => {
    const out = join(dir.path, 'out.json');
    const run = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'src/cli/run.ts', 'predict', '--model', onnx, '--out', out, images],
      { encoding: 'utf8' },
    );
    assert.equal(run.status, 0, run.stderr);
    const written = JSON.parse(readFileSync(out, 'utf8')) as { failed: number; tasks: string[]; model: string };
    assert.equal(written.failed, 1);
    assert.deepEqual(written.tasks, ['Effusion', 'Edema']);
    assert.match(run.stderr, /scored 3 of 4 images into .*out\.json; 1 bad files/);
  });
});
