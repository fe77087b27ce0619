/**
 * The settings of a downstream run (`moco-cxr linear` and `moco-cxr finetune`),
 * declared once: the flags, the `--config` YAML keys, the defaults, the checks
 * and `--help` come from this table.
 */
import { adapt, defaultsOf, parsingProblem, pick, resolve, type Setting, type SettingsOf } from '../config/settings.js';
import { NORMALIZATIONS, type NormalizationName } from '../data/augment.js';
import { CACHE_SIZE_SETTING, IMAGE_SIDE_SETTING as imageSide } from '../data/limits.js';
import { GRAD_SYNC_SETTING } from '../distributed/index.js';
import { SOURCE_SETTINGS, sourceOptionsOf, type SourceOptions, UNCERTAINTY_POLICIES } from '../data/sources/index.js';
import { modelNames } from '../models/index.js';
import * as torch from '../torch/index.js';
import { BN_STATS, checkFraction, LINEAR_PROBES } from './cell.js';
import { parseInit } from './setup.js';

/** The source settings every source of a run is opened with (the kinds that read each are checked). */
export const RUN_SOURCE_KEYS = [
  'blank',
  'frontalOnly',
  'views',
  'projections',
  'minReaders',
  'imageRoot',
  'patientPattern',
  'pathColumn',
  'labelColumns',
  'patientColumn',
  'studyColumn',
] as const;

const [sourcePart] = pick(SOURCE_SETTINGS, ['split']);

/** The official part (nih, mimic) of each source of a run: the train, test and validation sets differ. */
const PART_SETTINGS = (['train', 'test', 'val'] as const).map((set) =>
  adapt(sourcePart!, {
    key: `${set}Part`,
    help: `the official part the ${set} source reads (nih: train or test; mimic: train, validate or test)`,
  }),
) as [
  Omit<NonNullable<typeof sourcePart>, 'key' | 'help'> & { readonly key: 'trainPart'; readonly help: string },
  Omit<NonNullable<typeof sourcePart>, 'key' | 'help'> & { readonly key: 'testPart'; readonly help: string },
  Omit<NonNullable<typeof sourcePart>, 'key' | 'help'> & { readonly key: 'valPart'; readonly help: string },
];

/** Every setting of a downstream run; defaults follow MoCo-CXR's supervised training. */
export const DOWNSTREAM_SETTINGS = [
  {
    key: 'train',
    type: 'string',
    required: 'train: the training source is required (--train KIND:PATH)',
    help: 'labelled training pool as KIND:PATH (tb:, folder:, chexpert:, nih:, mimic:, padchest:, vindr:, csv:, phantom:)',
  },
  {
    key: 'test',
    type: 'string',
    required: 'test: the test source is required (--test KIND:PATH)',
    help: 'test set as KIND:PATH',
  },
  { key: 'val', type: 'string', optional: 'held out of --train', help: 'validation set as KIND:PATH' },
  {
    key: 'valSplit',
    type: 'number',
    default: 0.1,
    help: 'share of training patients held out for validation without --val',
  },
  {
    key: 'task',
    type: 'string',
    optional: "the source's own",
    help: "label to learn, e.g. 'Pleural Effusion'",
  },
  {
    key: 'uncertain',
    type: 'string',
    oneOf: UNCERTAINTY_POLICIES,
    default: 'ignore',
    help: 'uncertain labels: ones, zeros or ignore (masked)',
  },
  {
    key: 'fractions',
    type: 'numbers',
    default: [0.001, 0.01, 0.1, 1],
    check: (value: number[]) => {
      for (const fraction of value) {
        const problem = parsingProblem('fractions:', () => checkFraction(fraction, 'fractions: each fraction'));
        if (problem !== undefined) return `: ${problem}`;
      }
      return undefined;
    },
    help: 'label fractions, comma-separated',
  },
  {
    key: 'draws',
    type: 'int',
    range: 'positive',
    default: 5,
    defaultHelp: '5; 1 has one',
    help: 'draws per fraction below 1',
  },
  {
    key: 'per',
    type: 'string',
    oneOf: ['patient', 'image'] as const,
    default: 'patient',
    help: 'draw by patient or image',
  },
  {
    key: 'seed',
    type: 'int',
    range: 'non-negative',
    default: 0,
    help: 'seed of the split, draws, order and new layers',
  },
  {
    key: 'init',
    type: 'string',
    default: 'random',
    check: (value: string) => parsingProblem('init', () => parseInit(value)),
    help: 'starting weights: random, a MoCo / torchvision / moco-cxr file, or NAME:FILE',
  },
  {
    key: 'arch',
    type: 'string',
    default: 'resnet18',
    check: (value: string) =>
      modelNames().includes(value) ? undefined : `: unknown model '${value}'; available: ${modelNames().join(', ')}`,
    help: 'backbone',
  },
  {
    key: 'imageSize',
    type: 'int',
    range: 'positive',
    ...imageSide,
    default: 320,
    defaultHelp: "the init checkpoint's, else 320",
    help: 'input side',
  },
  CACHE_SIZE_SETTING,
  {
    key: 'normalize',
    type: 'string',
    oneOf: Object.keys(NORMALIZATIONS) as NormalizationName[],
    default: 'imagenet',
    defaultHelp: "the init checkpoint's, else imagenet",
    help: 'input normalization: imagenet, moco-cxr or none',
  },
  {
    key: 'epochs',
    type: 'int',
    range: 'non-negative',
    default: 0,
    defaultHelp: '5·(1/f)^(2/3), i.e. 500, 107, 23, 5 for 0.1%, 1%, 10%, 100%',
    help: 'epochs for every fraction',
  },
  {
    key: 'probe',
    type: 'string',
    oneOf: LINEAR_PROBES,
    default: 'adam',
    help: "linear only: adam (MoCo-CXR's epochs of Adam) or lbfgs (logistic regression to convergence, L2 chosen on validation)",
  },
  { key: 'lr', type: 'number', range: 'positive', default: 1e-4, help: 'Adam learning rate' },
  {
    key: 'bnStats',
    type: 'string',
    oneOf: BN_STATS,
    default: 'keep',
    help: "fine-tuning only: the start's BatchNorm statistics: keep | reset | recompute (on the training images) | frozen (eval mode)",
  },
  {
    key: 'trunkLr',
    type: 'number',
    range: 'positive',
    default: 1,
    help: "fine-tuning only: the pretrained layers' learning rate as a multiple of --lr (the new head's)",
  },
  {
    key: 'warmup',
    type: 'int',
    range: 'non-negative',
    default: 0,
    help: 'fine-tuning only: epochs of linear learning-rate warm-up from 0',
  },
  { key: 'batchSize', type: 'int', range: 'positive', default: 16, help: 'batch size' },
  GRAD_SYNC_SETTING,
  {
    key: 'ensemble',
    type: 'int',
    range: 'positive',
    default: 10,
    help: 'best checkpoints (validation AUC) averaged for the test prediction',
  },
  {
    key: 'evalEvery',
    type: 'int',
    range: 'positive',
    default: 8192,
    defaultHelp: '8192; every epoch end too',
    help: 'training images between validations within an epoch',
  },
  {
    key: 'patience',
    type: 'int',
    range: 'non-negative',
    default: 0,
    defaultHelp: 'never',
    help: 'stop after this many validations without gain',
  },
  { key: 'evalBatchSize', type: 'int', range: 'positive', default: 64, help: 'images per scoring pass' },
  {
    key: 'bootstrap',
    type: 'int',
    range: 'non-negative',
    default: 1000,
    help: 'bootstrap resamples for the CIs, 0 for none',
  },
  {
    key: 'device',
    type: 'string',
    default: 'cpu',
    check: (value: string) => parsingProblem('device', () => torch.checkDevice(value)),
    help: 'cpu or cuda[:N]',
  },
  {
    key: 'out',
    type: 'string',
    default: 'runs/downstream',
    defaultHelp: 'runs/linear or runs/finetune',
    help: 'run folder; a rerun continues it',
  },
  { key: 'cacheDir', type: 'string', default: '.moco-cxr-cache', help: 'decoded image cache' },
  {
    key: 'workers',
    type: 'int',
    range: 'non-negative',
    default: 0,
    defaultHelp: 'all cores',
    help: 'image decoding threads',
  },
  ...PART_SETTINGS,
  ...pick(SOURCE_SETTINGS, RUN_SOURCE_KEYS),
] as const satisfies readonly Setting[];

/** Everything a downstream run is defined by (see {@link DOWNSTREAM_SETTINGS}). */
export type DownstreamConfig = SettingsOf<typeof DOWNSTREAM_SETTINGS>;

/** The defaults of every setting but the required `train` and `test`. */
export const DOWNSTREAM_DEFAULTS = defaultsOf(DOWNSTREAM_SETTINGS);

/** What a caller may pass: fractions also as text ('0.001,0.01,0.1,1'). */
export type DownstreamInput = Partial<Omit<DownstreamConfig, 'fractions'>> & {
  fractions?: number[] | string;
};

/**
 * Checks a configuration and fills its defaults; errors name the option (after
 * `where`, e.g. a file and block). Beyond each key's own check: a validation
 * share is needed only without a validation source, and the cache is at least
 * the input size.
 */
export function resolveDownstreamConfig(input: DownstreamInput, where = ''): DownstreamConfig {
  const config = resolve(DOWNSTREAM_SETTINGS, input, where);
  config.fractions = [...new Set(config.fractions)];
  if (config.val === undefined && !(config.valSplit > 0 && config.valSplit < 1)) {
    throw new RangeError(
      `${where}valSplit must be in (0, 1) when no validation source is given, got ${config.valSplit}`,
    );
  }
  if (config.cacheSize === 0) config.cacheSize = config.imageSize;
  if (config.cacheSize < config.imageSize) {
    throw new RangeError(`${where}cacheSize (${config.cacheSize}) must be at least imageSize (${config.imageSize})`);
  }
  return config;
}

/** The sets a downstream run opens. */
export type RunSet = 'train' | 'test' | 'val';

/** What `openSource` takes for one set of a run: the run's source settings and that set's part. */
export function sourceOptionsFor(config: DownstreamConfig, set: RunSet): SourceOptions {
  const settings: Record<string, unknown> = { uncertain: config.uncertain, split: config[`${set}Part`] };
  for (const key of RUN_SOURCE_KEYS) settings[key] = config[key];
  return sourceOptionsOf(settings);
}
