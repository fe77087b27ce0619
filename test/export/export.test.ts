/**
 * `moco-cxr export` from a weights file: the architecture, the number of
 * tasks and their names come from the file; a file without a linear
 * classifier, a missing file and a wrong task list are errors that say so.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { decodeModel, exportModel } from '../../src/export/index.js';
import { createModel } from '../../src/models/index.js';
import * as torch from '../../src/torch/index.js';

let work: string;
let weights: string;

before(() => {
  work = mkdtempSync(join(tmpdir(), 'moco-cxr-export-'));
  weights = join(work, 'resnet.pt');
  const model = createModel('resnet18', { numClasses: 2 });
  torch.save({ state_dict: model.stateDict(), tasks: ['Edema', 'Effusion'] }, weights);
  model.dispose();
});

after(() => rmSync(work, { recursive: true, force: true }));

test('the CLI writes the ONNX file with the architecture and tasks the checkpoint records', () => {
  const out = join(work, 'resnet.onnx');
  const run = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'src/cli/run.ts', 'export', '--model', weights, '--out', out, '--image-size', '224'],
    { encoding: 'utf8' },
  );
  assert.equal(run.status, 0, run.stderr);
  const result = JSON.parse(run.stdout) as { arch: string; tasks: string[] };
  assert.equal(result.arch, 'resnet18');
  assert.deepEqual(result.tasks, ['Edema', 'Effusion']);
  const meta = Object.fromEntries(decodeModel(readFileSync(out)).metadataProps.map((e) => [e.key, e.value]));
  assert.equal(meta['moco_cxr.image_size'], '224');
  assert.equal(meta['moco_cxr.arch'], 'resnet18');
});

test('tasks given on the command line replace the file’s, and must match the classifier', () => {
  const renamed = exportModel({ model: weights, out: join(work, 'renamed.onnx'), tasks: 'a, b' });
  assert.deepEqual(renamed.tasks, ['a', 'b']);
  assert.throws(
    () => exportModel({ model: weights, out: join(work, 'x.onnx'), tasks: 'a,b,c' }),
    /tasks: 3 names .* for a classifier with 2 outputs/,
  );
});

test('a MoCo checkpoint (projection head, no linear classifier) and a missing file are refused by name', () => {
  const moco = join(work, 'moco.pt');
  const model = createModel('resnet18', { numClasses: 128 });
  const state = model.stateDict();
  const mocoState: Record<string, torch.Tensor> = {};
  for (const [key, value] of Object.entries(state)) {
    if (!key.startsWith('fc.')) mocoState[`module.encoder_q.${key}`] = value;
  }
  mocoState['module.encoder_q.fc.0.weight'] = state['fc.weight'] as torch.Tensor;
  torch.save({ state_dict: mocoState, arch: 'resnet18' }, moco);
  model.dispose();
  assert.throws(
    () => exportModel({ model: moco, out: join(work, 'm.onnx') }),
    /moco\.pt: holds no linear classifier \('fc\.weight'/,
  );
  assert.throws(() => exportModel({ model: join(work, 'absent.pt') }), /model: no such file '.*absent\.pt'/);
  assert.throws(() => exportModel({}), /model: the weights file is required/);
  assert.throws(() => exportModel({ model: weights, format: 'tflite' }), /format must be one of 'onnx'/);
  assert.equal(existsSync(join(work, 'm.onnx')), false);
});

test('the package entry exports the exporter, the page writer and the server', async () => {
  const entry = await import('../../src/index.js');
  assert.equal(entry.exportModel, exportModel);
  assert.equal(typeof entry.exportOnnx, 'function');
  assert.equal(typeof entry.serveFolder, 'function');
  assert.equal(typeof entry.exporting.writeWebPage, 'function');
});
