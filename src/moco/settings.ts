/**
 * The settings of a pretraining run, declared once: the `pretrain` command's
 * flags, its `--config` YAML keys, a study's `pretrain:` block, the defaults
 * (MoCo-CXR's published run), the checks and `--help` all come from this table.
 */
import { existsSync } from 'node:fs';

import {
  defaultsOf,
  parsingProblem,
  resolve,
  resumableKeys,
  type Setting,
  type SettingsOf,
} from '../config/settings.js';
import { CACHE_SIZE_SETTING, IMAGE_SIDE_SETTING as imageSide } from '../data/limits.js';
import { GRAD_SYNC_SETTING } from '../distributed/index.js';
import type { ScheduleSpec } from '../optim/index.js';
import * as torch from '../torch/index.js';

const SCHEDULE_FORMS = "expected 'step:E1,E2,...', 'cosine', 'cosine:WARMUP' or 'constant'";

/** Parses a schedule string such as 'step:12,18,24' or 'cosine'. */
export function parseSchedule(text: string, epochs: number): ScheduleSpec {
  const [kind, rest] = text.split(':', 2) as [string, string | undefined];
  if (kind === 'constant' && rest === undefined) return { kind: 'constant' };
  if (kind === 'cosine') {
    const warmup = rest === undefined ? 0 : Number(rest);
    if (!Number.isInteger(warmup) || warmup < 0) throw new RangeError(`schedule '${text}': warmup must be an integer`);
    return { kind: 'cosine', epochs, warmupEpochs: warmup };
  }
  if (kind === 'step' && rest !== undefined) {
    const milestones = rest.split(',').map(Number);
    if (milestones.some((m) => !Number.isInteger(m) || m < 1)) {
      throw new RangeError(`schedule '${text}': milestones must be positive integers, as in step:12,18,24`);
    }
    return { kind: 'multistep', milestones, gamma: 0.1 };
  }
  throw new RangeError(`schedule '${text}': ${SCHEDULE_FORMS}`);
}

/** Parses 'off' or 'split:N' into a number of sub-batches. */
export function parseShuffleBn(text: string): number {
  if (text === 'off') return 1;
  const match = /^split:(\d+)$/.exec(text);
  if (match === null || Number(match[1]) < 1) throw new RangeError(`shuffleBn '${text}': expected 'off' or 'split:N'`);
  return Number(match[1]);
}

/** Every setting of a pretraining run. `resumable` ones decide how or how long a run is computed, not what. */
/**
 * Where a positive pair comes from: `image` is MoCo-CXR's two augmentations of
 * one image; `patient` and `study` take the key's view from another image of
 * the same patient or study (Vu et al. 2021, MedAug), an image alone in its
 * group pairing with itself.
 */
export const POSITIVE_PAIRINGS = ['image', 'patient', 'study'] as const;
export type PositivePairing = (typeof POSITIVE_PAIRINGS)[number];

export const PRETRAIN_SETTINGS = [
  {
    key: 'data',
    type: 'string',
    required: '--data KIND:PATH is required (e.g. --data folder:./xrays)',
    help: 'images as KIND:PATH (chexpert:, nih:, mimic:, padchest:, vindr:, tb:, folder:, csv:, phantom:); labels ignored',
  },
  { key: 'arch', type: 'string', default: 'resnet18', help: 'backbone' },
  {
    key: 'init',
    type: 'string',
    default: 'random',
    check: (value: string) =>
      value === 'random' || existsSync(value)
        ? undefined
        : `'${value}': no such weights file (use 'random' or a checkpoint path)`,
    help: "'random' or a torchvision / MoCo weights file",
  },
  {
    key: 'imageSize',
    type: 'int',
    range: 'positive',
    ...imageSide,
    default: 320,
    defaultHelp: '320; 224 or 128 on small machines',
    help: 'training crop side',
  },
  CACHE_SIZE_SETTING,
  { key: 'batchSize', type: 'int', range: 'positive', default: 16, help: 'batch size' },
  { key: 'epochs', type: 'int', range: 'positive', default: 20, resumable: true, help: 'epochs' },
  { key: 'optimizer', type: 'string', oneOf: ['adam', 'sgd'] as const, default: 'adam', help: 'adam or sgd' },
  { key: 'lr', type: 'number', range: 'positive', default: 1e-4, help: 'learning rate' },
  { key: 'weightDecay', type: 'number', range: 'non-negative', default: 1e-4, help: 'weight decay' },
  {
    key: 'schedule',
    type: 'string',
    default: 'step:12,18,24',
    check: (value: string) => parsingProblem('schedule', () => parseSchedule(value, 1)),
    help: '×0.1 at step:E1,E2,... | cosine[:WARMUP] | constant',
  },
  {
    key: 'queue',
    type: 'int',
    range: 'positive',
    default: 24576,
    help: 'negative keys in the queue, a multiple of the batch size',
  },
  { key: 'momentum', type: 'number', range: 'non-negative', max: 1, default: 0.999, help: 'key encoder momentum' },
  { key: 'temperature', type: 'number', range: 'positive', default: 0.2, help: 'softmax temperature' },
  { key: 'mlpDim', type: 'int', range: 'positive', default: 128, help: 'projection output dimension' },
  {
    key: 'shuffleBn',
    type: 'string',
    default: 'off',
    check: (value: string) => parsingProblem('shuffleBn', () => parseShuffleBn(value)),
    help: 'off or split:N, split-batch BN with shuffled keys',
  },
  GRAD_SYNC_SETTING,
  {
    key: 'positives',
    type: 'string',
    oneOf: POSITIVE_PAIRINGS,
    default: 'image',
    help: "a pair's two views: image (two crops of one image, MoCo-CXR) | patient | study (two images of one patient or study, MedAug)",
  },
  {
    key: 'seed',
    type: 'int',
    range: 'non-negative',
    default: 0,
    help: 'seed of data order, augmentation and initialization',
  },
  {
    key: 'workers',
    type: 'int',
    range: 'non-negative',
    default: 0,
    defaultHelp: 'all cores',
    resumable: true,
    help: 'image decoding threads',
  },
  {
    key: 'device',
    type: 'string',
    default: 'cpu',
    resumable: true,
    check: (value: string) => parsingProblem('device', () => torch.checkDevice(value)),
    help: 'cpu or cuda[:N]',
  },
  { key: 'out', type: 'string', default: 'runs/pretrain', resumable: true, help: 'run folder' },
  { key: 'cacheDir', type: 'string', default: '.moco-cxr-cache', resumable: true, help: 'decoded image cache' },
  {
    key: 'checkpointEvery',
    type: 'int',
    range: 'positive',
    default: 5,
    resumable: true,
    help: 'epochs between numbered checkpoints',
  },
  {
    key: 'logEvery',
    type: 'int',
    range: 'positive',
    default: 10,
    resumable: true,
    help: 'steps between metrics lines',
  },
  {
    key: 'maxSteps',
    type: 'int',
    range: 'non-negative',
    default: 0,
    defaultHelp: 'no limit',
    resumable: true,
    help: 'stop after this many steps',
  },
  {
    key: 'memoryFormat',
    type: 'string',
    oneOf: ['auto', 'channelsLast', 'contiguous'] as const,
    default: 'auto',
    defaultHelp: 'auto: channels-last on CPU',
    resumable: true,
    help: 'auto | channelsLast | contiguous: layout of weights and inputs',
  },
  {
    key: 'precision',
    type: 'string',
    oneOf: ['fp32', 'bf16', 'fp16'] as const,
    default: 'fp32',
    help: 'fp32 | bf16 (autocast, CPU or CUDA) | fp16 (autocast + loss scaling, CUDA)',
  },
  {
    key: 'monitor',
    type: 'string',
    default: '',
    resumable: true,
    help: 'labelled KIND:PATH whose kNN AUC is reported every epoch',
  },
  {
    key: 'monitorTask',
    type: 'string',
    default: '',
    defaultHelp: "the source's own",
    resumable: true,
    help: "the monitor's label",
  },
] as const satisfies readonly Setting[];

/** Everything a pretraining run is defined by (see {@link PRETRAIN_SETTINGS}). */
export type PretrainConfig = SettingsOf<typeof PRETRAIN_SETTINGS>;

/** The defaults of every setting but `data`, which is required. */
export const PRETRAIN_DEFAULTS = defaultsOf(PRETRAIN_SETTINGS);

/**
 * Settings that a resumed run may change: the epochs to run (more extend it;
 * the schedule must not depend on them), the step limit, logging and
 * checkpoint intervals, decoding threads, the cache and run folders'
 * locations, the device and memory layout, when the gradient allreduce runs
 * (the same numbers either way), and the kNN monitor. Every other
 * setting defines the run, and changing it is refused.
 */
export const RESUMABLE_SETTINGS: readonly (keyof PretrainConfig)[] = resumableKeys(PRETRAIN_SETTINGS);

/**
 * Checks a configuration and fills its defaults; errors name the key (after
 * `where`, e.g. a file and block). Beyond each key's own check: the queue holds
 * whole batches, the cache is at least the crop, and fp16 needs CUDA.
 */
export function resolvePretrainConfig(partial: Partial<PretrainConfig> & { data: string }, where = ''): PretrainConfig {
  const config = resolve(PRETRAIN_SETTINGS, partial, where);
  if (config.queue % config.batchSize !== 0) {
    throw new RangeError(
      `${where}queue (${config.queue}) must be a multiple of batchSize (${config.batchSize}), so that each batch of keys fits the ring`,
    );
  }
  if (config.precision === 'fp16' && !config.device.startsWith('cuda')) {
    throw new RangeError(`${where}precision 'fp16' needs a CUDA device; on the CPU use 'bf16' or 'fp32'`);
  }
  if (config.cacheSize === 0) config.cacheSize = config.imageSize;
  if (config.cacheSize < config.imageSize) {
    throw new RangeError(`${where}cacheSize (${config.cacheSize}) must be at least imageSize (${config.imageSize})`);
  }
  return config;
}
