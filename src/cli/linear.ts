/**
 * `moco-cxr linear`: the linear probe on frozen features at every label
 * fraction and draw. The options are those of `moco-cxr finetune` too.
 */
import { type DownstreamMode } from '../downstream/downstream.js';
import { DOWNSTREAM_DEFAULTS, runDownstream, type DownstreamInput } from '../downstream/runner.js';
import { IMAGE_SIZE_LIMIT_REASON, MAX_IMAGE_SIZE } from '../data/limits.js';
import type { Command } from './command.js';
import { type Flag, helpText, parseFlags, withInterrupt } from './options.js';

const d = DOWNSTREAM_DEFAULTS;

/** The options of both downstream commands. */
export const DOWNSTREAM_FLAGS: Flag[] = [
  {
    name: 'train',
    key: 'train',
    type: 'string',
    help: 'labelled training pool as KIND:PATH (tb:, folder:, chexpert:, csv:, phantom:)',
  },
  { name: 'test', key: 'test', type: 'string', help: 'test set as KIND:PATH' },
  { name: 'val', key: 'val', type: 'string', help: 'validation set as KIND:PATH (default: held out of --train)' },
  {
    name: 'val-split',
    key: 'valSplit',
    type: 'number',
    help: `share of training patients held out for validation without --val (default ${d.valSplit})`,
  },
  {
    name: 'task',
    key: 'task',
    type: 'string',
    help: "label to learn, e.g. 'Pleural Effusion' (default: the source's own)",
  },
  {
    name: 'uncertain',
    key: 'uncertain',
    type: 'string',
    help: `uncertain labels: ones, zeros or ignore (masked) (default ${d.uncertain})`,
  },
  {
    name: 'fractions',
    key: 'fractions',
    type: 'string',
    help: `label fractions, comma-separated (default ${d.fractions.join(',')})`,
  },
  {
    name: 'draws',
    key: 'draws',
    type: 'int',
    range: 'positive',
    help: `draws per fraction below 1 (default ${d.draws}; 1 has one)`,
  },
  { name: 'per', key: 'per', type: 'string', help: `draw by patient or image (default ${d.per})` },
  {
    name: 'seed',
    key: 'seed',
    type: 'int',
    range: 'non-negative',
    help: `seed of the split, draws, order and new layers (default ${d.seed})`,
  },
  {
    name: 'init',
    key: 'init',
    type: 'string',
    help: 'starting weights: random, a MoCo / torchvision / moco-cxr file, or NAME:FILE (default random)',
  },
  { name: 'arch', key: 'arch', type: 'string', help: `backbone (default ${d.arch})` },
  {
    name: 'image-size',
    key: 'imageSize',
    type: 'int',
    range: 'positive',
    max: MAX_IMAGE_SIZE,
    maxReason: IMAGE_SIZE_LIMIT_REASON,
    help: `input side (default ${d.imageSize})`,
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
  {
    name: 'normalize',
    key: 'normalize',
    type: 'string',
    help: `input normalization: imagenet, moco-cxr or none (default ${d.normalize})`,
  },
  {
    name: 'epochs',
    key: 'epochs',
    type: 'int',
    range: 'non-negative',
    help: 'epochs for every fraction (default: 5·(1/f)^(2/3), i.e. 500, 107, 23, 5 for 0.1%, 1%, 10%, 100%)',
  },
  { name: 'lr', key: 'lr', type: 'number', range: 'positive', help: `Adam learning rate (default ${d.lr})` },
  { name: 'batch-size', key: 'batchSize', type: 'int', range: 'positive', help: `batch size (default ${d.batchSize})` },
  {
    name: 'ensemble',
    key: 'ensemble',
    type: 'int',
    range: 'positive',
    help: `best checkpoints (validation AUC) averaged for the test prediction (default ${d.ensemble})`,
  },
  {
    name: 'eval-every',
    key: 'evalEvery',
    type: 'int',
    range: 'positive',
    help: `training images between validations within an epoch (default ${d.evalEvery}; every epoch end too)`,
  },
  {
    name: 'patience',
    key: 'patience',
    type: 'int',
    range: 'non-negative',
    help: 'stop after this many validations without gain (default: never)',
  },
  {
    name: 'eval-batch-size',
    key: 'evalBatchSize',
    type: 'int',
    range: 'positive',
    help: `images per scoring pass (default ${d.evalBatchSize})`,
  },
  {
    name: 'bootstrap',
    key: 'bootstrap',
    type: 'int',
    range: 'non-negative',
    help: `bootstrap resamples for the CIs, 0 for none (default ${d.bootstrap})`,
  },
  { name: 'device', key: 'device', type: 'string', help: `cpu or cuda[:N] (default ${d.device})` },
  {
    name: 'out',
    key: 'out',
    type: 'string',
    help: 'run folder (default runs/linear or runs/finetune); a rerun continues it',
  },
  { name: 'cache-dir', key: 'cacheDir', type: 'string', help: `decoded image cache (default ${d.cacheDir})` },
  {
    name: 'workers',
    key: 'workers',
    type: 'int',
    range: 'non-negative',
    help: 'image decoding threads (default: all cores)',
  },
];

/** A downstream command: parses the flags, runs the grid, and returns the exit code. */
export function downstreamCommand(mode: DownstreamMode): Command {
  return {
    async run(argv) {
      const { values, help } = parseFlags(argv, DOWNSTREAM_FLAGS);
      if (help) {
        console.log(helpText(`usage: moco-cxr ${mode} --train KIND:PATH --test KIND:PATH [options]`, DOWNSTREAM_FLAGS));
        return 0;
      }
      const input = { out: `runs/${mode}`, ...values } as DownstreamInput;
      const run = await withInterrupt((signal) => runDownstream(mode, input, { signal }));
      if (run.status === 'interrupted') return 130;
      console.log(
        JSON.stringify({
          runDir: run.runDir,
          metrics: run.metrics.fractions.map((f) => ({
            fraction: f.fraction,
            meanAuc: f.meanAuc,
            ci: f.ci === undefined ? undefined : [f.ci.lower, f.ci.upper],
          })),
        }),
      );
      return 0;
    },
  };
}

export const command: Command = downstreamCommand('linear');
