/**
 * A study's configuration: the paper's protocol as one grid. Read from YAML
 * (kebab-case or camelCase keys), checked key by key so that a typo names the
 * file and the key instead of being silently ignored.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';

import { parse as parseYaml } from 'yaml';

import { type NormalizationName } from '../data/augment.js';
import { type DrawUnit } from '../data/fractions.js';
import { MAX_IMAGE_SIZE } from '../data/limits.js';
import { type UncertaintyPolicy } from '../data/sources/index.js';
import { PRETRAIN_SETTINGS, type PretrainConfig } from '../moco/pretrain.js';
import { type TrainingMode } from './results.js';

/** One evaluation target: the source task, or a transfer target. */
export interface StudyTarget {
  /** 'source' for the pretraining set's own task, else a short name such as 'tb'. */
  name: string;
  train: string;
  test: string;
  val?: string;
  valSplit?: number;
  task?: string;
  uncertain?: UncertaintyPolicy;
  /** Label fractions of this target (default: the study's). */
  fractions?: number[];
  /** Draws per fraction below 1 (default: the study's). */
  draws?: number;
}

/** The supervised training settings shared by every cell. */
export interface StudyTraining {
  /** Epochs of a linear cell; 0 scales them with the fraction as MoCo-CXR did. */
  linearEpochs: number;
  /** Epochs of a fine-tuning cell; 0 scales them with the fraction. */
  finetuneEpochs: number;
  lr: number;
  batchSize: number;
  /** Checkpoints (best by validation AUC) averaged for the test prediction. */
  ensemble: number;
  evalEvery: number;
  patience: number;
}

export interface StudyConfig {
  name: string;
  /** The study folder. */
  out: string;
  seed: number;
  device: string;
  arch: string;
  imageSize: number;
  normalize: NormalizationName;
  cacheDir: string;
  /** MoCo pretraining on the source images, or `{ checkpoint }` to reuse one. */
  pretrain: (Partial<PretrainConfig> & { data: string }) | { checkpoint: string };
  /** The starting point without MoCo: 'random' or a weights file (ImageNet weights, say). */
  baseline: string;
  modes: TrainingMode[];
  fractions: number[];
  draws: number;
  per: DrawUnit;
  /** Bootstrap resamples for the report's CIs. */
  bootstrap: number;
  training: StudyTraining;
  targets: StudyTarget[];
}

const TRAINING_DEFAULTS: StudyTraining = {
  linearEpochs: 0,
  finetuneEpochs: 0,
  lr: 1e-4,
  batchSize: 16,
  ensemble: 10,
  evalEvery: 8192,
  patience: 0,
};

function camel(key: string): string {
  return key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function camelKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(camelKeys);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>).map(([k, v]) => [camel(k), camelKeys(v)]),
    );
  }
  return value;
}

class ConfigReader {
  constructor(private readonly where: string) {}

  fail(key: string, expected: string, value: unknown): never {
    throw new Error(`${this.where}: '${key}' must be ${expected}, got ${JSON.stringify(value)}`);
  }

  known(object: Record<string, unknown>, prefix: string, keys: readonly string[]): void {
    for (const key of Object.keys(object)) {
      if (!keys.includes(key)) {
        throw new Error(`${this.where}: unknown key '${prefix}${key}'; known keys: ${keys.join(', ')}`);
      }
    }
  }

  string(object: Record<string, unknown>, key: string, fallback?: string): string {
    const value = object[key] ?? fallback;
    if (typeof value !== 'string' || value === '') this.fail(key, 'text', value);
    return value;
  }

  number(
    object: Record<string, unknown>,
    key: string,
    fallback: number,
    check: (n: number) => boolean,
    expected: string,
  ): number {
    const value = object[key] ?? fallback;
    if (typeof value !== 'number' || !check(value)) this.fail(key, expected, value);
    return value;
  }

  fractions(object: Record<string, unknown>, key: string, fallback?: number[]): number[] {
    const value = object[key] ?? fallback;
    if (!Array.isArray(value) || value.length === 0 || !value.every((f) => typeof f === 'number' && f > 0 && f <= 1)) {
      this.fail(key, 'a list of fractions in (0, 1]', value);
    }
    return [...new Set(value as number[])].sort((a, b) => a - b);
  }
}

const isPositiveInt = (n: number): boolean => Number.isInteger(n) && n >= 1;
const isNonNegativeInt = (n: number): boolean => Number.isInteger(n) && n >= 0;

/** Paths in a config file are relative to the file's folder; `KIND:PATH` sources too. */
function relativeTo(base: string, spec: string): string {
  const colon = spec.indexOf(':');
  if (colon < 0) return isAbsolute(spec) ? spec : resolve(base, spec);
  const kind = spec.slice(0, colon);
  const location = spec.slice(colon + 1);
  if (kind === 'phantom' || kind === 'random' || isAbsolute(location)) return spec;
  return `${kind}:${resolve(base, location)}`;
}

/** Checks a parsed configuration (camelCase keys) and fills defaults. `base` resolves relative paths. */
export function resolveStudyConfig(
  input: Record<string, unknown>,
  where = 'study config',
  base = process.cwd(),
): StudyConfig {
  const raw = camelKeys(input) as Record<string, unknown>;
  const r = new ConfigReader(where);
  r.known(raw, '', [
    'name',
    'out',
    'seed',
    'device',
    'arch',
    'imageSize',
    'normalize',
    'cacheDir',
    'pretrain',
    'baseline',
    'modes',
    'fractions',
    'draws',
    'per',
    'bootstrap',
    'training',
    'targets',
  ]);
  const modes = (raw.modes ?? ['linear', 'finetune']) as unknown;
  if (!Array.isArray(modes) || modes.length === 0 || !modes.every((m) => m === 'linear' || m === 'finetune')) {
    r.fail('modes', "a list of 'linear' and/or 'finetune'", modes);
  }
  const normalize = (raw.normalize ?? 'moco-cxr') as NormalizationName;
  if (!['moco-cxr', 'imagenet', 'none'].includes(normalize))
    r.fail('normalize', "'moco-cxr', 'imagenet' or 'none'", normalize);
  const per = (raw.per ?? 'patient') as DrawUnit;
  if (per !== 'patient' && per !== 'image') r.fail('per', "'patient' or 'image'", per);

  const pretrainRaw = raw.pretrain;
  if (pretrainRaw === null || typeof pretrainRaw !== 'object' || Array.isArray(pretrainRaw)) {
    r.fail('pretrain', 'a mapping with data: KIND:PATH (and pretraining settings) or checkpoint: FILE', pretrainRaw);
  }
  const pretrainObject = pretrainRaw as Record<string, unknown>;
  let pretrain: StudyConfig['pretrain'];
  if (pretrainObject.checkpoint !== undefined) {
    r.known(pretrainObject, 'pretrain.', ['checkpoint']);
    pretrain = { checkpoint: relativeTo(base, r.string(pretrainObject, 'checkpoint')) };
  } else {
    // The study sets the run folder itself (OUT/pretrain).
    const known = PRETRAIN_SETTINGS.map((setting) => setting.key).filter((key) => key !== 'out');
    r.known(pretrainObject, 'pretrain.', known);
    const data = r.string(pretrainObject, 'data');
    pretrain = { ...(pretrainObject as Partial<PretrainConfig>), data: relativeTo(base, data) };
    if (typeof pretrain.init === 'string' && pretrain.init !== 'random')
      pretrain.init = relativeTo(base, pretrain.init);
  }

  const trainingRaw = (raw.training ?? {}) as Record<string, unknown>;
  r.known(trainingRaw, 'training.', Object.keys(TRAINING_DEFAULTS));
  const training: StudyTraining = {
    linearEpochs: r.number(trainingRaw, 'linearEpochs', 0, isNonNegativeInt, 'a non-negative integer'),
    finetuneEpochs: r.number(trainingRaw, 'finetuneEpochs', 0, isNonNegativeInt, 'a non-negative integer'),
    lr: r.number(trainingRaw, 'lr', TRAINING_DEFAULTS.lr, (n) => n > 0, 'a positive number'),
    batchSize: r.number(trainingRaw, 'batchSize', TRAINING_DEFAULTS.batchSize, isPositiveInt, 'a positive integer'),
    ensemble: r.number(trainingRaw, 'ensemble', TRAINING_DEFAULTS.ensemble, isPositiveInt, 'a positive integer'),
    evalEvery: r.number(trainingRaw, 'evalEvery', TRAINING_DEFAULTS.evalEvery, isPositiveInt, 'a positive integer'),
    patience: r.number(trainingRaw, 'patience', 0, isNonNegativeInt, 'a non-negative integer'),
  };

  const fractions = r.fractions(raw, 'fractions', [0.001, 0.01, 0.1, 1]);
  const draws = r.number(raw, 'draws', 5, isPositiveInt, 'a positive integer');
  const targetsRaw = raw.targets;
  if (!Array.isArray(targetsRaw) || targetsRaw.length === 0) {
    r.fail(
      'targets',
      'a list with the source task first (name, train, test, task) and optional transfer targets',
      targetsRaw,
    );
  }
  const names = new Set<string>();
  const targets = (targetsRaw as Record<string, unknown>[]).map((t, i) => {
    const tr = new ConfigReader(`${where}: targets[${i}]`);
    tr.known(t, '', ['name', 'train', 'test', 'val', 'valSplit', 'task', 'uncertain', 'fractions', 'draws']);
    const name = tr.string(t, 'name', i === 0 ? 'source' : undefined);
    if (!/^[\w.-]+$/.test(name) || names.has(name)) tr.fail('name', 'a unique name of letters, digits, . - _', name);
    names.add(name);
    const target: StudyTarget = {
      name,
      train: relativeTo(base, tr.string(t, 'train')),
      test: relativeTo(base, tr.string(t, 'test')),
      fractions: t.fractions === undefined ? undefined : tr.fractions(t, 'fractions'),
      draws: t.draws === undefined ? undefined : tr.number(t, 'draws', 1, isPositiveInt, 'a positive integer'),
    };
    if (t.val !== undefined) target.val = relativeTo(base, tr.string(t, 'val'));
    if (t.valSplit !== undefined) target.valSplit = tr.number(t, 'valSplit', 0.1, (n) => n > 0 && n < 1, 'in (0, 1)');
    if (t.task !== undefined) target.task = tr.string(t, 'task');
    if (t.uncertain !== undefined) target.uncertain = tr.string(t, 'uncertain') as UncertaintyPolicy;
    return target;
  });

  const baseline =
    typeof raw.baseline === 'string' && raw.baseline !== 'random' ? relativeTo(base, raw.baseline) : 'random';
  return {
    name: r.string(raw, 'name', 'study'),
    out: resolve(base, r.string(raw, 'out', 'runs/study')),
    seed: r.number(raw, 'seed', 0, isNonNegativeInt, 'a non-negative integer'),
    device: r.string(raw, 'device', 'cpu'),
    arch: r.string(raw, 'arch', 'resnet18'),
    imageSize: r.number(
      raw,
      'imageSize',
      320,
      (n) => isPositiveInt(n) && n <= MAX_IMAGE_SIZE,
      `a positive integer up to ${MAX_IMAGE_SIZE} (px)`,
    ),
    normalize,
    cacheDir: resolve(base, r.string(raw, 'cacheDir', '.moco-cxr-cache')),
    pretrain,
    baseline,
    modes: [...new Set(modes as TrainingMode[])],
    fractions,
    draws,
    per,
    bootstrap: r.number(raw, 'bootstrap', 1000, isPositiveInt, 'a positive integer'),
    training,
    targets,
  };
}

/** Reads and checks a study YAML file; relative paths in it are relative to the file. */
export function readStudyConfig(path: string): StudyConfig {
  let parsed: unknown;
  try {
    parsed = parseYaml(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new Error(`study config ${path}: ${(error as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new Error(`study config ${path}: expected a mapping of settings`);
  }
  return resolveStudyConfig(parsed as Record<string, unknown>, `study config ${path}`, dirname(resolve(path)));
}
