import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { mocoCxrAugmentation } from '../../src/data/augment.js';
import { buildCache } from '../../src/data/cache.js';
import { BatchLoader } from '../../src/data/loader.js';
import { openSource } from '../../src/data/sources/index.js';
import { batchNorms, finetune, parameterGroups, recomputeBatchNorm, trainMode } from '../../src/downstream/finetune.js';
import { prepareDownstreamData } from '../../src/downstream/setup.js';
import { resnet18 } from '../../src/models/index.js';
import * as torch from '../../src/torch/index.js';
import { tempDir } from '../helpers/oracle.js';

describe('fine-tuning options', () => {
  const dir = tempDir();
  after(() => dir.cleanup());

  test('trunkLr puts the pretrained layers in a group of their own at lr × trunkLr, the head at lr', () => {
    const model = resnet18({ numClasses: 1 });
    try {
      assert.equal(parameterGroups(model, 1e-4, 1).length, 1);
      const [trunk, head] = parameterGroups(model, 1e-4, 0.1);
      assert.deepEqual(head!.params, model.classifier.parameters());
      assert.ok(Math.abs(trunk!.lr - 1e-5) < 1e-20 && head!.lr === 1e-4);
      assert.equal(trunk!.params.length + head!.params.length, model.parameters().length);
    } finally {
      model.dispose();
    }
  });

  test('recompute replaces the running statistics by the training images’ batch statistics; frozen keeps BN in eval mode', async () => {
    const source = await openSource('phantom:12,4,40');
    const { cache } = await buildCache(source.records, {
      dir: join(dir.path, 'cache'),
      size: 40,
      workers: 1,
      log: () => {},
    });
    const model = resnet18({ numClasses: 1 });
    try {
      const bn1 = batchNorms(model)[0]!;
      torch.noGrad(() => bn1.runningMean!.fill_(5));
      // One batch holding every image: the recomputed statistics are that batch's.
      const loader = new BatchLoader(cache, { batchSize: 12, seed: 1, augment: mocoCxrAugmentation(32) });
      await recomputeBatchNorm(model, loader, 'cpu');
      assert.equal(bn1.momentum, 0.1, 'the momentum is restored');
      assert.equal(bn1.numBatchesTracked!.item(), 1);
      for await (const batch of loader.epoch(0)) {
        const expected = torch.noGrad(() =>
          torch.tidy(() => model.getSubmodule('conv1').forward(batch.images).mean([0, 2, 3]).data() as Float32Array),
        );
        const got = bn1.runningMean!.data() as Float32Array;
        // A mean of 12·16·16 float32 values: a few eps32 × magnitude per channel.
        expected.forEach((value, c) =>
          assert.ok(Math.abs(got[c]! - value) <= 1e-5 * (1 + Math.abs(value)), `channel ${c}`),
        );
        batch.dispose();
      }
      trainMode(model, 'frozen');
      assert.ok(model.training && model.classifier.training);
      assert.ok(batchNorms(model).every((bn) => !bn.training));
      trainMode(model, 'keep');
      assert.ok(batchNorms(model).every((bn) => bn.training));
    } finally {
      model.dispose();
      await cache.close();
    }
  });

  test('a fine-tuning cell runs under every policy, and bad values are refused by name', async () => {
    const data = await prepareDownstreamData(
      {
        train: 'phantom:24,5,40',
        test: 'phantom:12,6,40',
        valSplit: 0.25,
        uncertain: 'ignore',
        seed: 0,
        cacheSize: 40,
        cacheDir: join(dir.path, 'cache2'),
        workers: 1,
      },
      { log: () => {} },
    );
    const base = {
      data,
      init: 'random',
      arch: 'resnet18',
      imageSize: 32,
      fraction: 1,
      draw: 0,
      seed: 0,
      epochs: 1,
      plainProgress: true,
    };
    const frozen = await finetune({ ...base, bnStats: 'frozen', trunkLr: 0.1, warmup: 1 });
    assert.equal(frozen.epochs, 1);
    assert.equal(frozen.test.scores.length, 12);
    await assert.rejects(
      finetune({ ...base, bnStats: 'off' as 'keep' }),
      /bnStats must be one of keep, reset, recompute, frozen, got 'off'/,
    );
    await assert.rejects(finetune({ ...base, trunkLr: 0 }), /trunkLr must be positive, got 0/);
    await assert.rejects(finetune({ ...base, warmup: 1.5 }), /warmup must be a non-negative integer, got 1.5/);
  });
});
