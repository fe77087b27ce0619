import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { pretrain, resolvePretrainConfig, type PretrainConfig } from '../../src/moco/pretrain.js';
import * as torch from '../../src/torch/index.js';
import { oracleMissing, runPython, tempDir } from '../helpers/oracle.js';

const TB = fileURLToPath(new URL('../../../shared/data/tb-shenzhen-montgomery-128/train', import.meta.url));
const noData = existsSync(TB) ? undefined : `${TB} is absent`;

describe('pretrain', { skip: noData }, () => {
  const dir = tempDir();
  const images = join(dir.path, 'images');
  const base = (): Partial<PretrainConfig> & { data: string } => ({
    data: `tb:${images}`,
    imageSize: 56,
    cacheSize: 64,
    batchSize: 8,
    queue: 32,
    epochs: 2,
    logEvery: 1,
    cacheDir: join(dir.path, 'cache'),
    seed: 3,
  });
  const quiet = { log: () => undefined, plainProgress: true };

  before(() => {
    // A small set: 32 real radiographs, four batches per epoch.
    mkdirSync(images);
    for (const name of readdirSync(TB).sort().slice(0, 32)) symlinkSync(join(TB, name), join(images, name));
  });
  after(() => dir.cleanup());

  function losses(run: string): number[] {
    return readFileSync(join(run, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { loss?: number })
      .filter((entry) => entry.loss !== undefined)
      .map((entry) => entry.loss!);
  }

  test('an interrupted and resumed run gives the losses of an uninterrupted one', async () => {
    const full = join(dir.path, 'full');
    // The uninterrupted run also reports a kNN monitor, which must not disturb training.
    const whole = await pretrain({ ...base(), out: full, monitor: 'phantom:80,9,64' }, quiet);
    assert.equal(whole.status, 'finished');
    const monitored = readFileSync(join(full, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { epoch: number; monitorAuc?: number })
      .filter((entry) => entry.monitorAuc !== undefined);
    assert.deepEqual(
      monitored.map((entry) => entry.epoch),
      [1, 2],
    );
    for (const entry of monitored) assert.ok(entry.monitorAuc! >= 0 && entry.monitorAuc! <= 1);
    assert.equal(whole.steps, 8);
    assert.ok(existsSync(join(full, 'checkpoint_0002.pt')));

    const split = join(dir.path, 'split');
    const controller = new AbortController();
    const first = await pretrain(
      { ...base(), out: split },
      { ...quiet, signal: controller.signal, onStep: (step) => step === 5 && controller.abort() },
    );
    assert.equal(first.status, 'interrupted');
    assert.equal(first.steps, 5);
    await assert.rejects(pretrain({ ...base(), out: split }, quiet), /already holds a checkpoint: pass --resume/);
    const second = await pretrain({ ...base(), out: split }, { ...quiet, resume: true });
    assert.equal(second.status, 'finished');
    assert.equal(second.steps, 8);
    const a = losses(full);
    const b = losses(split);
    assert.equal(b.length, 8);
    for (let i = 0; i < 8; i++) assert.ok(Math.abs(a[i]! - b[i]!) < 1e-6, `step ${i + 1}: ${a[i]} vs ${b[i]}`);
  });

  test(
    'the checkpoint loads in PyTorch and its encoder_q fits torchvision resnet18 strictly',
    { skip: oracleMissing() },
    () => {
      const file = join(dir.path, 'full', 'last.pt');
      const result = runPython<{
        keys: string[];
        epoch: number;
        arch: string;
        queue: number[];
        ptr: number;
        missing: string[];
        preprocessing: Record<string, unknown>;
      }>(
        `
import torch, torchvision
ck = torch.load(INPUT)
sd = ck['state_dict']
q = {k[len('module.encoder_q.'):]: v for k, v in sd.items() if k.startswith('module.encoder_q.') and not k.startswith('module.encoder_q.fc.')}
net = torchvision.models.resnet18()
res = net.load_state_dict(q, strict=False)
OUTPUT = {'keys': sorted(ck.keys()), 'epoch': ck['epoch'], 'arch': ck['arch'], 'queue': list(sd['module.queue'].shape),
          'ptr': int(sd['module.queue_ptr'][0]), 'missing': res.missing_keys, 'unexpected': res.unexpected_keys,
          'preprocessing': ck['preprocessing']}
`,
        file,
      );
      for (const key of ['arch', 'epoch', 'optimizer', 'state_dict']) assert.ok(result.keys.includes(key), key);
      assert.equal(result.epoch, 2);
      assert.equal(result.arch, 'resnet18');
      assert.deepEqual(result.queue, [128, 32]);
      assert.equal(result.ptr, 0);
      // Only torchvision's classifier is missing: the MoCo head replaced it.
      assert.deepEqual(result.missing, ['fc.weight', 'fc.bias']);
      // The view the encoder learned from: MoCo-CXR's statistics at the crop side, grey replicated.
      assert.deepEqual(result.preprocessing, {
        normalize: 'moco-cxr',
        mean: [0.502],
        std: [0.085585],
        image_size: 56,
        channels: 3,
        grey: 'repeat',
      });
    },
  );

  test('patient positives where every patient has one image train exactly as image positives', async () => {
    // Each Shenzhen/Montgomery patient has one radiograph: every image pairs with itself, so the
    // batches, views and losses are those of MoCo-CXR's pairing, through the pairing's own path.
    const lines: string[] = [];
    const short = { ...base(), epochs: 1, maxSteps: 2 };
    await pretrain({ ...short, out: join(dir.path, 'pos-image') }, quiet);
    await pretrain(
      { ...short, out: join(dir.path, 'pos-patient'), positives: 'patient' },
      { ...quiet, log: (line) => lines.push(line) },
    );
    assert.ok(
      lines.includes(
        'positives: two images of one patient: 32 images, 32 patients; 0 images have a partner, 32 pair with themselves',
      ),
      lines.join('\n'),
    );
    const image = losses(join(dir.path, 'pos-image'));
    assert.equal(image.length, 2);
    assert.deepEqual(losses(join(dir.path, 'pos-patient')), image);
    assert.throws(() => resolvePretrainConfig({ data: 'tb:x', positives: 'person' as 'patient' }), /positives/);
  });

  test('a non-finite loss stops the run without writing a checkpoint', async () => {
    const out = join(dir.path, 'nan');
    const result = await pretrain({ ...base(), out, temperature: 1e-40 }, quiet);
    assert.equal(result.status, 'diverged');
    assert.match(result.message, /loss became NaN at epoch 0, step 1; stopped without saving/);
    assert.equal(existsSync(join(out, 'last.pt')), false);
  });
});

// Pure configuration checks: they need neither the data nor the oracle.
describe('pretrain settings', () => {
  test('bad settings are rejected with the key named', () => {
    assert.throws(
      () => resolvePretrainConfig({ data: 'x', queue: 30, batchSize: 8 }),
      /queue \(30\) must be a multiple of batchSize \(8\)/,
    );
    assert.throws(() => resolvePretrainConfig({ data: 'x', schedule: 'weekly' }), /schedule 'weekly'/);
    assert.throws(
      () => resolvePretrainConfig({ data: 'x', shuffleBn: 'split:x' }),
      /shuffleBn 'split:x': expected 'off' or 'split:N'/,
    );
    assert.throws(
      () => resolvePretrainConfig({ data: 'x', init: '/nope.pt' }),
      /init '\/nope.pt': no such weights file/,
    );
    assert.throws(() => resolvePretrainConfig({ data: 'x', epochs: 0 }), /epochs must be a positive integer/);
  });

  test("device 'cuda' is refused exactly when no GPU is usable", () => {
    if (torch.cudaAvailable()) {
      assert.equal(resolvePretrainConfig({ data: 'x', device: 'cuda' }).device, 'cuda');
    } else {
      assert.throws(() => resolvePretrainConfig({ data: 'x', device: 'cuda' }), /CUDA/);
    }
  });
});
