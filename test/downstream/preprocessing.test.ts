import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import {
  preprocessingEntry,
  readCheckpointPreprocessing,
  withCheckpointPreprocessing,
} from '../../src/data/preprocessing.js';
import { readClassifier } from '../../src/downstream/classifier-file.js';
import { runDownstream } from '../../src/downstream/runner.js';
import { resnet18 } from '../../src/models/index.js';
import * as torch from '../../src/torch/index.js';
import { maxAbsDiff, oracleMissing, runPython, tempDir } from '../helpers/oracle.js';
import { checkEvents, tfeventsReaderMissing } from '../helpers/tfevents.js';

describe('preprocessing recorded in checkpoints', () => {
  const dir = tempDir();
  after(() => dir.cleanup());

  test('round-trips through a PyTorch-format file, which Python reads', () => {
    const file = join(dir.path, 'p.pt');
    torch.save({ preprocessing: preprocessingEntry({ normalize: 'moco-cxr', imageSize: 224, channels: 3 }) }, file);
    assert.deepEqual(readCheckpointPreprocessing(file), { normalize: 'moco-cxr', imageSize: 224, channels: 3 });
    torch.save({ weights: 1 }, join(dir.path, 'none.pt'));
    assert.equal(readCheckpointPreprocessing(join(dir.path, 'none.pt')), undefined);
    torch.save({ preprocessing: { normalize: 'sepia', image_size: 1, channels: 3 } }, join(dir.path, 'bad.pt'));
    assert.throws(
      () => readCheckpointPreprocessing(join(dir.path, 'bad.pt')),
      /bad\.pt: preprocessing\.normalize: expected one of moco-cxr, imagenet, none, got "sepia"/,
    );
    if (oracleMissing() !== undefined) return;
    const python = runPython<Record<string, unknown>>(
      `import torch\nOUTPUT = torch.load(INPUT)['preprocessing']`,
      file,
    );
    assert.deepEqual(python, {
      normalize: 'moco-cxr',
      mean: [0.502],
      std: [0.085585],
      image_size: 224,
      channels: 3,
      grey: 'repeat',
    });
  });

  test('unset settings follow the checkpoint; a set one that differs is kept with one warning', () => {
    const recorded = { normalize: 'moco-cxr', imageSize: 224, channels: 3 } as const;
    const warnings: string[] = [];
    const warn = (line: string): number => warnings.push(line);
    assert.deepEqual(
      withCheckpointPreprocessing<{ lr: number; normalize?: 'moco-cxr' | 'imagenet' | 'none'; imageSize?: number }>(
        { lr: 1 },
        recorded,
        'm.pt',
        warn,
      ),
      {
        lr: 1,
        normalize: 'moco-cxr',
        imageSize: 224,
      },
    );
    assert.deepEqual(withCheckpointPreprocessing({ imageSize: 224 }, recorded, 'm.pt', warn), {
      imageSize: 224,
      normalize: 'moco-cxr',
    });
    assert.deepEqual(warnings, []);
    const set = withCheckpointPreprocessing({ normalize: 'imagenet', imageSize: 128 }, recorded, 'm.pt', warn);
    assert.deepEqual(set, { normalize: 'imagenet', imageSize: 128 });
    assert.equal(warnings.length, 1);
    assert.match(
      warnings[0]!,
      /m\.pt was trained with other preprocessing; overriding with normalize imagenet \(it has moco-cxr\), imageSize 128 \(it has 224\)/,
    );
    assert.deepEqual(withCheckpointPreprocessing({}, undefined, 'm.pt', warn), {});
  });

  test('fine-tuning from a checkpoint takes its preprocessing and writes a classifier that records it', async () => {
    // A starting checkpoint that records MoCo-CXR's normalization at 32 px.
    const init = join(dir.path, 'init.pt');
    torch.manualSeed(4);
    const start = resnet18({ numClasses: 1000 });
    torch.save(
      {
        state_dict: start.stateDict(),
        preprocessing: preprocessingEntry({ normalize: 'moco-cxr', imageSize: 32, channels: 3 }),
      },
      init,
    );
    start.dispose();
    const log: string[] = [];
    const common = {
      train: 'phantom:32,71,32',
      valSplit: 0.3,
      test: 'phantom:12,72,32',
      init,
      fractions: '1',
      epochs: 1,
      batchSize: 8,
      ensemble: 1,
      bootstrap: 0,
      cacheDir: join(dir.path, 'cache'),
    };
    const out = join(dir.path, 'finetune');
    const run = await runDownstream('finetune', { ...common, out }, { log: (l) => log.push(l), plainProgress: true });
    assert.equal(run.status, 'finished');
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(config.normalize, 'moco-cxr');
    assert.equal(config.imageSize, 32);
    assert.equal(log.filter((l) => l.includes('warning')).length, 0);
    // The cell's history for TensorBoard, read back independently.
    if (tfeventsReaderMissing() === undefined) checkEvents(out, 'cells');

    const modelFile = join(out, 'models', 'f1-d0.pt');
    assert.ok(existsSync(modelFile));
    const classifier = readClassifier(modelFile);
    try {
      assert.equal(classifier.arch, 'resnet18');
      assert.deepEqual(classifier.tasks, ['Pleural Effusion']);
      assert.deepEqual(classifier.preprocessing, { normalize: 'moco-cxr', imageSize: 32, channels: 3 });
      assert.equal(classifier.origin?.epoch, 1);
      if (oracleMissing() === undefined) {
        // PyTorch reads the file and its state dict fits torchvision's resnet18 with one output.
        torch.manualSeed(9);
        const input = torch.randn([2, 3, 32, 32]);
        const ours = torch.noGrad(() => classifier.model.forward(input));
        const python = runPython<{ out: number[]; pre: Record<string, unknown>; tasks: string[] }>(
          `
import torch, torchvision
ck = torch.load(INPUT['file'])
net = torchvision.models.resnet18(num_classes=1)
net.load_state_dict(ck['state_dict'])
net.eval()
x = torch.tensor(INPUT['x'], dtype=torch.float32).view(2, 3, 32, 32)
with torch.no_grad():
    OUTPUT = {'out': net(x).view(-1).tolist(), 'pre': ck['preprocessing'], 'tasks': ck['tasks']}
`,
          { file: modelFile, x: Array.from(input.data() as Float32Array) },
        );
        assert.deepEqual(python.tasks, ['Pleural Effusion']);
        assert.equal(python.pre.image_size, 32);
        // A logit is a sum of ~512·9·… products through 18 layers: a loose bound, far below a real mismatch.
        assert.ok(maxAbsDiff(ours.data() as Float32Array, python.out) < 1e-3);
        input.dispose();
        ours.dispose();
      }
    } finally {
      classifier.model.dispose();
    }

    // A flag set against the checkpoint wins, with one warning.
    const overridden = join(dir.path, 'linear');
    log.length = 0;
    await runDownstream(
      'linear',
      { ...common, out: overridden, normalize: 'imagenet', epochs: 2 },
      { log: (l) => log.push(l), plainProgress: true },
    );
    const warnings = log.filter((l) => l.startsWith('warning'));
    assert.equal(warnings.length, 1, log.join('\n'));
    assert.match(warnings[0]!, /overriding with normalize imagenet \(it has moco-cxr\)/);
    const linearConfig = JSON.parse(readFileSync(join(overridden, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(linearConfig.normalize, 'imagenet');
    assert.equal(linearConfig.imageSize, 32);
    if (tfeventsReaderMissing() === undefined) {
      const tags = new Set(checkEvents(overridden, 'cells').found.map(([tag]) => tag));
      assert.deepEqual([...tags].sort(), ['f1-d0/testAuc', 'f1-d0/trainLoss', 'f1-d0/valAuc']);
    }
  });

  test('a file that is not a classifier is refused, saying what it holds', () => {
    const weights = join(dir.path, 'weights.pt');
    const model = resnet18({ numClasses: 1 });
    torch.save(model.stateDict(), weights);
    model.dispose();
    assert.throws(
      () => readClassifier(weights),
      /weights\.pt is not a moco-cxr classifier: .*only weights \(a state dict\)/,
    );
    assert.throws(() => readClassifier(join(dir.path, 'absent.pt')), /absent\.pt/);
  });
});
