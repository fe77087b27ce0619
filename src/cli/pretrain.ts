/** `moco-cxr pretrain`: MoCo v2 pretraining on unlabeled chest X-rays. */
import { resolve } from 'node:path';

import { IMAGE_SIZE_LIMIT_REASON, MAX_IMAGE_SIZE } from '../data/limits.js';
import { PRETRAIN_DEFAULTS, pretrain, type PretrainConfig } from '../moco/pretrain.js';
import { readRunConfig } from '../moco/run-folder.js';
import type { Command } from './command.js';
import { type Flag, helpText, parseFlags, withInterrupt } from './options.js';

const d = PRETRAIN_DEFAULTS;
const FLAGS: Flag[] = [
  {
    name: 'data',
    key: 'data',
    type: 'string',
    help: 'images as KIND:PATH (chexpert:, tb:, folder:, csv:, phantom:); labels ignored',
  },
  { name: 'arch', key: 'arch', type: 'string', help: `backbone (default ${d.arch})` },
  { name: 'init', key: 'init', type: 'string', help: "'random' or a torchvision / MoCo weights file (default random)" },
  {
    name: 'image-size',
    key: 'imageSize',
    type: 'int',
    range: 'positive',
    max: MAX_IMAGE_SIZE,
    maxReason: IMAGE_SIZE_LIMIT_REASON,
    help: `training crop side (default ${d.imageSize}; 224 or 128 on small machines)`,
  },
  {
    name: 'cache-size',
    key: 'cacheSize',
    type: 'int',
    range: 'non-negative',
    max: MAX_IMAGE_SIZE,
    maxReason: IMAGE_SIZE_LIMIT_REASON,
    help: 'side of the cached images (default: the image size)',
  },
  { name: 'batch-size', key: 'batchSize', type: 'int', range: 'positive', help: `batch size (default ${d.batchSize})` },
  { name: 'epochs', key: 'epochs', type: 'int', range: 'positive', help: `epochs (default ${d.epochs})` },
  { name: 'optimizer', key: 'optimizer', type: 'string', help: `adam or sgd (default ${d.optimizer})` },
  { name: 'lr', key: 'lr', type: 'number', range: 'positive', help: `learning rate (default ${d.lr})` },
  {
    name: 'weight-decay',
    key: 'weightDecay',
    type: 'number',
    range: 'non-negative',
    help: `weight decay (default ${d.weightDecay})`,
  },
  {
    name: 'schedule',
    key: 'schedule',
    type: 'string',
    help: `step:E1,E2,... | cosine[:WARMUP] | constant (default ${d.schedule})`,
  },
  {
    name: 'queue',
    key: 'queue',
    type: 'int',
    range: 'positive',
    help: `negative keys in the queue, a multiple of the batch size (default ${d.queue})`,
  },
  {
    name: 'momentum',
    key: 'momentum',
    type: 'number',
    range: 'non-negative',
    max: 1,
    help: `key encoder momentum (default ${d.momentum})`,
  },
  {
    name: 'temperature',
    key: 'temperature',
    type: 'number',
    range: 'positive',
    help: `softmax temperature (default ${d.temperature})`,
  },
  {
    name: 'mlp-dim',
    key: 'mlpDim',
    type: 'int',
    range: 'positive',
    help: `projection output dimension (default ${d.mlpDim})`,
  },
  {
    name: 'shuffle-bn',
    key: 'shuffleBn',
    type: 'string',
    help: 'off or split:N, split-batch BN with shuffled keys (default off)',
  },
  {
    name: 'seed',
    key: 'seed',
    type: 'int',
    range: 'non-negative',
    help: `seed of data order, augmentation and initialization (default ${d.seed})`,
  },
  {
    name: 'workers',
    key: 'workers',
    type: 'int',
    range: 'non-negative',
    help: 'image decoding threads (default: all cores)',
  },
  { name: 'device', key: 'device', type: 'string', help: `cpu or cuda[:N] (default ${d.device})` },
  { name: 'out', key: 'out', type: 'string', help: `run folder (default ${d.out})` },
  { name: 'cache-dir', key: 'cacheDir', type: 'string', help: `decoded image cache (default ${d.cacheDir})` },
  {
    name: 'checkpoint-every',
    key: 'checkpointEvery',
    type: 'int',
    range: 'positive',
    help: `epochs between numbered checkpoints (default ${d.checkpointEvery})`,
  },
  {
    name: 'log-every',
    key: 'logEvery',
    type: 'int',
    range: 'positive',
    help: `steps between metrics lines (default ${d.logEvery})`,
  },
  {
    name: 'max-steps',
    key: 'maxSteps',
    type: 'int',
    range: 'non-negative',
    help: 'stop after this many steps (default: no limit)',
  },
  {
    name: 'precision',
    key: 'precision',
    type: 'string',
    help: 'fp32 | bf16 (autocast, CPU or CUDA) | fp16 (autocast + loss scaling, CUDA) (default fp32)',
  },
  {
    name: 'memory-format',
    key: 'memoryFormat',
    type: 'string',
    help: 'auto | channelsLast | contiguous: layout of weights and inputs (default auto: channels-last on CPU)',
  },
  { name: 'monitor', key: 'monitor', type: 'string', help: 'labelled KIND:PATH whose kNN AUC is reported every epoch' },
  { name: 'monitor-task', key: 'monitorTask', type: 'string', help: "the monitor's label (default: the source's own)" },
  {
    name: 'resume',
    key: 'resume',
    type: 'boolean',
    help: "continue the run in --out from its last.pt; settings not given are the run's own (its config.json)",
  },
];

export const command: Command = {
  async run(argv) {
    const { values, help } = parseFlags(argv, FLAGS);
    if (help) {
      console.log(helpText('usage: moco-cxr pretrain --data KIND:PATH [options]', FLAGS));
      return 0;
    }
    const { resume, ...given } = values as Partial<PretrainConfig> & { resume?: boolean };
    // A resumed run starts from its recorded settings; what is given on the
    // command line is checked against them (a change that alters the run is refused).
    const out = given.out ?? PRETRAIN_DEFAULTS.out;
    const recorded = resume === true ? readRunConfig(resolve(out)) : undefined;
    const { command: _command, ...settings } = recorded ?? {};
    const config = { ...(settings as Partial<PretrainConfig>), ...given, out };
    const data = config.data;
    if (typeof data !== 'string') throw new TypeError('--data KIND:PATH is required (e.g. --data folder:./xrays)');
    const result = await withInterrupt((signal) => pretrain({ ...config, data }, { resume: resume === true, signal }));
    return result.status === 'finished' ? 0 : result.status === 'interrupted' ? 130 : 1;
  },
};
