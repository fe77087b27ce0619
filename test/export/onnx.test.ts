/**
 * The ONNX export against the library's own libtorch forward: onnxruntime
 * (CPU) loads each file — its checker and shape inference run when the session
 * is created — and its logits, probabilities and feature maps match ours on
 * real and synthetic X-rays, for every architecture at 64 px.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import * as ort from 'onnxruntime-node';

import { normalize } from '../../src/data/augment.js';
import { decodeResized } from '../../src/data/decode.js';
import { decodeModel, exportOnnx, ONNX_OPSET } from '../../src/export/index.js';
import { createModel, type Backbone } from '../../src/models/index.js';
import { BatchNorm2d } from '../../src/nn/index.js';
import * as torch from '../../src/torch/index.js';
import { assertClose, chainLength } from '../helpers/tolerance.js';

const SIZE = 64;
const ARCHS = ['resnet18', 'resnet34', 'resnet50', 'densenet121'] as const;
const XRAYS = '/work/shared/data/tb-shenzhen-montgomery-128/test';

/**
 * A model whose BatchNorm layers hold statistics and affine weights away from
 * their initial 0 / 1 (so a wrong epsilon, order or scale shows), with a
 * 3-task head.
 */
function trainedLikeModel(arch: string): Backbone {
  torch.manualSeed(7);
  const model = createModel(arch, { numClasses: 3 });
  torch.noGrad(() => {
    for (const module of model.modules()) {
      if (!(module instanceof BatchNorm2d)) continue;
      const n = module.numFeatures;
      module.runningMean?.copy_(torch.tidy(() => torch.randn([n]).mul(0.1)));
      module.runningVar?.copy_(torch.tidy(() => torch.rand([n]).add(0.5)));
      module.weight?.copy_(torch.tidy(() => torch.randn([n]).mul(0.1).add(1)));
      module.bias?.copy_(torch.tidy(() => torch.randn([n]).mul(0.1)));
    }
  });
  model.eval();
  return model;
}

/** Grey images [N, 1, SIZE, SIZE] in 0..1: real radiographs when the shared data is here, else none. */
async function realXrays(count: number): Promise<Float32Array | undefined> {
  if (!existsSync(XRAYS)) return undefined;
  const files = readdirSync(XRAYS)
    .filter((name) => name.endsWith('.png'))
    .sort()
    .slice(0, count);
  const out = new Float32Array(files.length * SIZE * SIZE);
  for (const [i, file] of files.entries()) {
    const pixels = await decodeResized(join(XRAYS, file), { size: SIZE });
    for (let p = 0; p < pixels.length; p++) out[i * SIZE * SIZE + p] = (pixels[p] as number) / 255;
  }
  return out;
}

/** Smooth synthetic "radiographs": a bright ellipse with two dark lung fields and noise, in 0..1. */
function syntheticXrays(count: number): Float32Array {
  const out = new Float32Array(count * SIZE * SIZE);
  let state = 12345;
  const noise = (): number => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5) * 0.1;
  for (let i = 0; i < count; i++) {
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) {
        const u = (x - SIZE / 2) / (SIZE / 2);
        const v = (y - SIZE / 2) / (SIZE / 2);
        const body = u * u + v * v < 0.8 ? 0.7 : 0.1;
        const lung =
          ((u - 0.35) ** 2 + v * v * 0.5 < 0.08 || (u + 0.35) ** 2 + v * v * 0.5 < 0.08 ? -0.4 : 0) * (1 + i * 0.2);
        out[i * SIZE * SIZE + y * SIZE + x] = Math.min(1, Math.max(0, body + lung + noise()));
      }
    }
  }
  return out;
}

/** Our forward on grey images in 0..1: the training pipeline's normalize (grey → 3 channels), then the model. */
function libtorchForward(
  model: Backbone,
  images: Float32Array,
  withFeatures: boolean,
): { logits: Float32Array; features?: Float32Array } {
  return torch.noGrad(() =>
    torch.tidy(() => {
      const n = images.length / (SIZE * SIZE);
      const input = normalize(torch.tensor(images, [n, 1, SIZE, SIZE]), 'imagenet', 3);
      const logits = model.forward(input).data() as Float32Array;
      if (!withFeatures) return { logits };
      return { logits, features: lastFeatureMap(model, input).data() as Float32Array };
    }),
  );
}

/** The map the global average pool reads: ResNet's layer4 output, DenseNet's relu(norm5). */
function lastFeatureMap(model: Backbone, input: torch.Tensor): torch.Tensor {
  let out = model.stem.forward(input);
  for (const [name, child] of model.namedChildren()) {
    if (name === 'conv1' || name === 'avgpool' || name === 'fc' || name === 'classifier') continue;
    if (name === 'features') {
      for (const [inner, module] of child.namedChildren()) if (inner !== 'conv0') out = module.forward(out);
      return out.relu();
    }
    out = child.forward(out);
  }
  return out;
}

async function runOnnx(session: ort.InferenceSession, images: Float32Array): Promise<Record<string, ort.Tensor>> {
  const n = images.length / (SIZE * SIZE);
  return session.run({ image: new ort.Tensor('float32', images, [n, 1, SIZE, SIZE]) });
}

for (const arch of ARCHS) {
  test(`${arch}: onnxruntime loads the export and matches the libtorch forward on real and synthetic X-rays`, async () => {
    const model = trainedLikeModel(arch);
    try {
      const withFeatures = arch === 'resnet18' || arch === 'densenet121';
      const { bytes, metadata } = exportOnnx(model, { tasks: ['a', 'b', 'c'], imageSize: SIZE, withFeatures });
      assert.equal(metadata['moco_cxr.arch'], arch);
      const session = await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'], intraOpNumThreads: 1 });
      const real = await realXrays(2);
      if (real === undefined) process.stderr.write(`skipping the real X-rays: ${XRAYS} is absent\n`);
      // Batches of different sizes through one file: the batch dimension is dynamic.
      const cases: [string, Float32Array][] = [['synthetic', syntheticXrays(1)]];
      if (real !== undefined) cases.push(['real', real]);
      for (const [what, images] of cases) {
        const ours = libtorchForward(model, images, withFeatures);
        const theirs = await runOnnx(session, images);
        const n = images.length / (SIZE * SIZE);
        assert.deepEqual(theirs.logits?.dims, [n, 3]);
        // Roundings along the longest chain: every layer's fan-in (k · eps32 · scale · sqrt(ops), see
        // test/helpers/tolerance.ts). Both runtimes sum in float32 with different blockings and no cancellation
        // is expected, so k = 4 (about 1e-4 of the logit scale for ResNet-18) rather than the usual 16.
        const ops = chainLength(model.parameters().map((p) => p.shape));
        assertClose(theirs.logits?.data as Float32Array, ours.logits, `${arch} ${what} logits`, { ops, k: 4 });
        const sigmoid = ours.logits.map((z) => 1 / (1 + Math.exp(-z)));
        assertClose(theirs.probabilities?.data as Float32Array, sigmoid, `${arch} ${what} probabilities`, {
          ops,
          k: 4,
          scale: 1,
        });
        if (withFeatures) {
          assert.equal(theirs.features?.dims[1], model.featureDim);
          assertClose(
            theirs.features?.data as Float32Array,
            ours.features as Float32Array,
            `${arch} ${what} features`,
            { ops, k: 4 },
          );
        } else assert.equal(theirs.features, undefined);
      }
      await session.release();
    } finally {
      model.dispose();
    }
  });
}

test('the file declares opset, a dynamic batch, the normalization and tasks in its metadata', () => {
  const model = trainedLikeModel('resnet18');
  try {
    const decoded = decodeModel(exportOnnx(model, { tasks: ['x', 'y', 'z'], normalize: 'moco-cxr' }).bytes);
    assert.equal(decoded.opsetImport[0]?.version, ONNX_OPSET);
    assert.ok(ONNX_OPSET >= 13);
    const input = decoded.graph.input[0];
    assert.deepEqual(input?.type.tensorType.shape.dim, [
      { dimParam: 'batch' },
      { dimValue: 1 },
      { dimParam: 'height' },
      { dimParam: 'width' },
    ]);
    const meta = Object.fromEntries(decoded.metadataProps.map(({ key, value }) => [key, value]));
    assert.deepEqual(JSON.parse(meta['moco_cxr.tasks'] as string), ['x', 'y', 'z']);
    assert.deepEqual((JSON.parse(meta['moco_cxr.normalization'] as string) as { mean: number[] }).mean, [0.502]);
    const ops = new Set(decoded.graph.node.map((node) => node.opType));
    for (const op of [
      'Conv',
      'BatchNormalization',
      'Relu',
      'MaxPool',
      'Add',
      'GlobalAveragePool',
      'Flatten',
      'Gemm',
      'Sigmoid',
    ]) {
      assert.ok(ops.has(op), `no ${op} node`);
    }
    assert.ok(decoded.graph.initializer.some((t) => t.name === 'layer1.0.bn1.running_var'));
  } finally {
    model.dispose();
  }
});

test('a task list of the wrong length and an unknown normalization are refused by name', () => {
  const model = trainedLikeModel('resnet18');
  try {
    assert.throws(() => exportOnnx(model, { tasks: ['only one'] }), /1 task names for a classifier with 3 outputs/);
    assert.throws(() => exportOnnx(model, { normalize: 'nope' as 'none' }), /normalize: unknown 'nope'/);
  } finally {
    model.dispose();
  }
});
