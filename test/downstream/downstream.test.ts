import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { readDraw } from '../../src/data/fractions.js';
import { ResNet, resnet18 } from '../../src/models/index.js';
import * as torch from '../../src/torch/index.js';
import { type DownstreamMetrics, runDownstream, resolveDownstreamConfig } from '../../src/downstream/runner.js';
import { createBackbone, parseInit, prepareDownstreamData } from '../../src/downstream/setup.js';
import { finetune } from '../../src/downstream/finetune.js';
import { tempDir } from '../helpers/oracle.js';

const quiet = { log: () => undefined, plainProgress: true };

describe('linear probe grid', () => {
  const dir = tempDir();
  after(() => dir.cleanup());
  const config = {
    train: 'phantom:60,21,64',
    test: 'phantom:30,22,64',
    imageSize: 56,
    cacheSize: 64,
    fractions: '0.1,1',
    draws: 2,
    bootstrap: 200,
    out: join(dir.path, 'run'),
    cacheDir: join(dir.path, 'cache'),
  };

  /** Counts the images that go through a ResNet's feature extractor while `work` runs. */
  async function countImages<T>(work: () => Promise<T>): Promise<{ value: T; images: number }> {
    const original = Object.getOwnPropertyDescriptor(ResNet.prototype, 'features')!;
    let images = 0;
    Object.defineProperty(ResNet.prototype, 'features', {
      ...original,
      value: function (this: ResNet, input: torch.Tensor): torch.Tensor {
        images += input.shape[0] as number;
        return (original.value as (x: torch.Tensor) => torch.Tensor).call(this, input);
      },
    });
    try {
      return { value: await work(), images };
    } finally {
      Object.defineProperty(ResNet.prototype, 'features', original);
    }
  }

  test('runs the backbone once per image, writes the run folder, and a rerun skips finished cells', async () => {
    const first = await countImages(() => runDownstream('linear', config, quiet));
    const run = first.value;
    assert.equal(run.status, 'finished');
    assert.equal(first.images, 60 + 30, 'every train, validation and test image once, whatever the grid');
    assert.deepEqual(
      run.results.map((r) => [r.fraction, r.draw, r.epochs]),
      [
        [0.1, 0, 23],
        [0.1, 1, 23],
        [1, 0, 5],
      ],
    );
    for (const result of run.results) {
      assert.equal(result.test.ids.length, 30);
      assert.ok(result.test.scores.every((s) => s > 0 && s < 1));
      assert.ok(result.valAuc >= 0 && result.valAuc <= 1);
      assert.ok(result.bestEpoch >= 1 && result.bestEpoch <= result.epochs);
    }
    assert.notDeepEqual(run.results[0]!.trainIds, run.results[1]!.trainIds, 'draws differ');
    assert.equal(run.results[2]!.trainIds.length, 54, 'the whole pool after the validation hold-out');

    const runDir = config.out;
    const saved = JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(saved.command, 'linear');
    assert.equal(saved.task, 'Pleural Effusion');
    const draw = await readDraw(join(runDir, 'draws', 'f0.1-d1.json'));
    assert.deepEqual(draw.ids, run.results[1]!.trainIds);
    const lines = readFileSync(join(runDir, 'predictions', 'f0.1-d0.jsonl'), 'utf8')
      .trim()
      .split('\n');
    assert.equal(lines.length, 30);
    const row = JSON.parse(lines[0]!) as { id: string; studyId: string; label: number; score: number };
    assert.deepEqual(Object.keys(row), ['id', 'studyId', 'label', 'score']);
    const metrics = JSON.parse(readFileSync(join(runDir, 'metrics.json'), 'utf8')) as DownstreamMetrics;
    assert.deepEqual(
      metrics.fractions.map((f) => [f.fraction, f.draws.length]),
      [
        [0.1, 2],
        [1, 1],
      ],
    );
    const tenth = metrics.fractions[0]!;
    assert.ok(Math.abs(tenth.meanAuc - (run.results[0]!.testAuc + run.results[1]!.testAuc) / 2) < 1e-12);
    assert.ok(tenth.ci!.lower <= tenth.meanAuc && tenth.meanAuc <= tenth.ci!.upper);

    // One more draw: the finished cells are read back, the features file serves the new one.
    const second = await countImages(() => runDownstream('linear', { ...config, draws: 3 }, quiet));
    assert.equal(second.images, 0);
    assert.equal(second.value.skipped, 3);
    assert.equal(second.value.results.length, 4);
    assert.deepEqual(second.value.results[0]!.test, run.results[0]!.test);
    assert.equal(second.value.results[2]!.draw, 2);
    assert.ok(existsSync(join(runDir, 'predictions', 'f0.1-d2.jsonl')));
  });

  test('a run folder refuses other settings, naming the key', async () => {
    await assert.rejects(
      runDownstream('linear', { ...config, lr: 0.01 }, quiet),
      /holds results made with lr = 0.0001, not 0.01; choose another --out/,
    );
    await assert.rejects(runDownstream('finetune', config, quiet), /holds a 'linear' run, not 'finetune'/);
  });
});

describe('fine-tuning', () => {
  const dir = tempDir();
  after(() => dir.cleanup());

  test('lowers the training loss and predicts every test image', async () => {
    const data = await prepareDownstreamData(
      {
        train: 'phantom:40,31,64',
        test: 'phantom:16,32,64',
        valSplit: 0.2,
        uncertain: 'ignore',
        seed: 0,
        cacheSize: 64,
        cacheDir: join(dir.path, 'cache'),
        workers: 0,
      },
      quiet,
    );
    try {
      const result = await finetune({
        data,
        init: 'random',
        arch: 'resnet18',
        imageSize: 56,
        fraction: 1,
        draw: 0,
        seed: 1,
        epochs: 4,
        lr: 1e-3,
        batchSize: 8,
        ensemble: 2,
        plainProgress: true,
      });
      const losses = result.history.epochs.map((e) => e.trainLoss);
      assert.equal(losses.length, 4);
      assert.ok(losses[3]! < losses[0]!, `training loss ${losses.join(' -> ')}`);
      assert.equal(result.history.evaluations.length, 4, 'one validation per epoch');
      assert.equal(result.ensembleEpochs.length, 2);
      assert.equal(result.ensembleEpochs[0], result.bestEpoch);
      assert.deepEqual(
        result.test.ids,
        data.test.records.map((r) => r.id),
      );
      assert.ok(result.test.scores.every((s) => s > 0 && s < 1));
      assert.equal(result.trainIds.length, data.train.records.length);
      assert.ok(Number.isFinite(result.testAuc));
    } finally {
      await data.close();
    }
  });
});

describe('starting weights and settings', () => {
  const dir = tempDir();
  after(() => dir.cleanup());

  test('a MoCo checkpoint starts the backbone from its query encoder; the classifier starts fresh', () => {
    torch.manualSeed(5);
    const encoder = resnet18({ numClasses: 128 });
    const file = join(dir.path, 'moco.pt');
    torch.tidy(() => {
      const dict: Record<string, torch.Tensor> = {};
      for (const [key, value] of Object.entries(encoder.stateDict())) {
        dict[`module.encoder_q.${key}`] = value;
        dict[`module.encoder_k.${key}`] = value.mul(0);
      }
      dict['module.queue'] = torch.zeros([128, 16]);
      torch.save({ epoch: 20, arch: 'resnet18', state_dict: dict }, file);
    });
    const model = createBackbone(`moco:${file}`, 'resnet18', { numClasses: 1, seed: 0 });
    try {
      const key = 'layer4.1.conv2.weight';
      assert.deepEqual(model.getTensor(key).data(), encoder.getTensor(key).data());
      assert.deepEqual(model.getTensor('fc.weight').shape, [1, 512]);
    } finally {
      model.dispose();
      encoder.dispose();
    }
    assert.deepEqual(parseInit(`moco:${file}`), { name: 'moco', file });
    assert.deepEqual(parseInit('random'), { name: 'random', file: undefined });
  });

  test('bad settings are refused with what was expected', () => {
    const base = { train: 'phantom:10', test: 'phantom:10' };
    assert.throws(() => resolveDownstreamConfig({ ...base, fractions: '0.1,1.5' }), /must be in \(0, 1\], got 1.5/);
    assert.throws(() => resolveDownstreamConfig({ ...base, fractions: '0' }), /must be in \(0, 1\], got 0/);
    assert.throws(() => resolveDownstreamConfig({ train: 'phantom:10' }), /the test source is required \(--test/);
    assert.throws(
      () => resolveDownstreamConfig({ ...base, init: '/no/such.pt' }),
      /init '\/no\/such.pt': no such weights file/,
    );
    assert.throws(() => resolveDownstreamConfig({ ...base, arch: 'vgg' }), /unknown model 'vgg'/);
    assert.throws(() => resolveDownstreamConfig({ ...base, uncertain: 'maybe' as 'ones' }), /uncertain must be one of/);
    assert.throws(() => resolveDownstreamConfig({ ...base, valSplit: 1 }), /valSplit must be in \(0, 1\)/);
    assert.throws(() => resolveDownstreamConfig({ ...base, cacheSize: 100, imageSize: 128 }), /cacheSize \(100\)/);
  });

  test('an unknown task names the labels there are', async () => {
    await assert.rejects(
      prepareDownstreamData(
        {
          train: 'phantom:12,41,32',
          test: 'phantom:12,42,32',
          task: 'Pneumothorax',
          valSplit: 0.2,
          uncertain: 'ignore',
          seed: 0,
          cacheSize: 32,
          cacheDir: join(dir.path, 'cache'),
          workers: 0,
        },
        quiet,
      ),
      /task 'Pneumothorax' is not a label of phantom:12,41,32; its labels are: Pleural Effusion, Cardiomegaly/,
    );
  });
});
