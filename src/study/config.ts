/**
 * A study's configuration: the paper's protocol as one grid. Read from YAML
 * (kebab-case or camelCase keys), checked key by key so that a typo names the
 * file and the key instead of being silently ignored.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve as resolvePath } from 'node:path';

import { parse as parseYaml } from 'yaml';

import { refuseUnknownKeys, resolve } from '../config/settings.js';
import { type UncertaintyPolicy } from '../data/sources/index.js';
import { PRETRAIN_SETTINGS, type PretrainConfig } from '../moco/settings.js';
import { type TrainingMode } from './results.js';
import {
  STUDY_MODE_SETTINGS,
  STUDY_SETTINGS,
  STUDY_TARGET_SETTINGS,
  STUDY_TRAINING_SETTINGS,
  type StudyModeSettings,
  type StudySettings,
  type StudyTargetSettings,
  type StudyTraining,
} from './settings.js';

export type { StudyModeSettings, StudyTraining } from './settings.js';

/** One evaluation target: the source task, or a transfer target (see {@link STUDY_TARGET_SETTINGS}). */
export type StudyTarget = Omit<StudyTargetSettings, 'name' | 'uncertain'> & {
  /** 'source' for the pretraining set's own task, else a short name such as 'tb'. */
  name: string;
  uncertain?: UncertaintyPolicy;
  /** Per-mode grids: fractions, draws and epochs of the linear or fine-tuning cells. */
  linear?: StudyModeSettings;
  finetune?: StudyModeSettings;
};

/** A study: its top-level settings and its blocks. */
export interface StudyConfig extends Omit<StudySettings, 'modes'> {
  modes: TrainingMode[];
  /** MoCo pretraining on the source images, or `{ checkpoint }` to reuse one. */
  pretrain: (Partial<PretrainConfig> & { data: string }) | { checkpoint: string };
  training: StudyTraining;
  targets: StudyTarget[];
}

/** What one mode of a target runs: its fractions, draws and epochs, after every fallback. */
export interface ModeGrid {
  fractions: number[];
  draws: number;
  epochs: number;
}

/** The modes `target` runs: its own `modes`, else the study's. */
export function targetModes(config: StudyConfig, target: StudyTarget): TrainingMode[] {
  return target.modes ?? config.modes;
}

/** The grid of `mode` on `target`: the mode's block, then the target's, then the study's settings. */
export function modeGrid(config: StudyConfig, target: StudyTarget, mode: TrainingMode): ModeGrid {
  const own = target[mode];
  return {
    fractions: own?.fractions ?? target.fractions ?? config.fractions,
    draws: own?.draws ?? target.draws ?? config.draws,
    epochs: own?.epochs ?? (mode === 'linear' ? config.training.linearEpochs : config.training.finetuneEpochs),
  };
}

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

/** Paths in a config file are relative to the file's folder; `KIND:PATH` sources too. */
function relativeTo(base: string, spec: string): string {
  const colon = spec.indexOf(':');
  if (colon < 0) return isAbsolute(spec) ? spec : resolvePath(base, spec);
  const kind = spec.slice(0, colon);
  const location = spec.slice(colon + 1);
  if (kind === 'phantom' || kind === 'random' || isAbsolute(location)) return spec;
  return `${kind}:${resolvePath(base, location)}`;
}

/** `block[key]` made relative to `base` when it is text (a check of its type comes later). */
function withPath(block: Record<string, unknown>, key: string, base: string): void {
  const value = block[key];
  if (typeof value === 'string' && value !== '' && value !== 'random') block[key] = relativeTo(base, value);
}

/** A block of the file that must be a mapping (absent: empty). */
function mapping(value: unknown, where: string, key: string, expected: string): Record<string, unknown> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new RangeError(`${where}${key} must be ${expected}, got ${JSON.stringify(value)}`);
  }
  return { ...(value as Record<string, unknown>) };
}

/** The pretrain block: a checkpoint to reuse, or pretraining settings (checked now, run later). */
function readPretrain(value: unknown, where: string, base: string): StudyConfig['pretrain'] {
  const expected = 'a mapping with data: KIND:PATH (and pretraining settings) or checkpoint: FILE';
  if (value === undefined) throw new RangeError(`${where}pretrain must be ${expected}, got nothing`);
  const block = mapping(value, where, 'pretrain', expected);
  if (block.checkpoint !== undefined) {
    refuseUnknownKeys(['checkpoint'], block, where, 'pretrain.');
    if (typeof block.checkpoint !== 'string' || block.checkpoint === '') {
      throw new RangeError(`${where}pretrain.checkpoint must be a file, got ${JSON.stringify(block.checkpoint)}`);
    }
    return { checkpoint: relativeTo(base, block.checkpoint) };
  }
  // The study sets the run folder itself (OUT/pretrain), so `out` is not a key of the block.
  refuseUnknownKeys(
    PRETRAIN_SETTINGS.map((s) => s.key).filter((key) => key !== 'out'),
    block,
    where,
    'pretrain.',
  );
  withPath(block, 'data', base);
  withPath(block, 'init', base);
  // Checked against the pretraining table now, so a bad value names the file before any work starts.
  resolve(PRETRAIN_SETTINGS, block, where, 'pretrain.');
  return block as Partial<PretrainConfig> & { data: string };
}

/** One entry of `targets`, with its per-mode blocks. */
function readTarget(value: unknown, index: number, where: string, base: string): StudyTarget {
  const at = `${where}targets[${index}]: `;
  const block = mapping(value, at, 'the target', 'a mapping (name, train, test, ...)');
  const modes: Partial<Record<TrainingMode, StudyModeSettings>> = {};
  for (const mode of ['linear', 'finetune'] as const) {
    if (block[mode] === undefined) continue;
    const modeBlock = mapping(block[mode], at, mode, 'a mapping of fractions, draws and epochs');
    modes[mode] = resolve(STUDY_MODE_SETTINGS, modeBlock, at, `${mode}.`);
    modes[mode].fractions = uniqueSorted(modes[mode].fractions);
    delete block[mode];
  }
  for (const key of ['train', 'test', 'val', 'imageRoot']) withPath(block, key, base);
  const settings = resolve(STUDY_TARGET_SETTINGS, block, at);
  return {
    ...settings,
    name: settings.name ?? (index === 0 ? 'source' : ''),
    fractions: uniqueSorted(settings.fractions),
    ...(settings.modes === undefined ? {} : { modes: [...new Set(settings.modes)] }),
    ...modes,
  } as StudyTarget;
}

function uniqueSorted(fractions: number[] | undefined): number[] | undefined {
  return fractions === undefined ? undefined : [...new Set(fractions)].sort((a, b) => a - b);
}

/** The blocks of a study file beside its top-level settings. */
const BLOCKS = ['pretrain', 'training', 'targets'] as const;

/**
 * Checks a parsed configuration (kebab-case or camelCase keys) and fills
 * defaults, block by block, against the study's tables; every error names
 * `where` (the file) and the key. `base` resolves relative paths.
 */
export function resolveStudyConfig(
  input: Record<string, unknown>,
  where = 'study config',
  base = process.cwd(),
): StudyConfig {
  const raw = camelKeys(input) as Record<string, unknown>;
  const at = `${where}: `;
  refuseUnknownKeys([...STUDY_SETTINGS.map((s) => s.key), ...BLOCKS], raw, at);
  const top: Record<string, unknown> = Object.fromEntries(
    Object.entries(raw).filter(([key]) => !(BLOCKS as readonly string[]).includes(key)),
  );
  withPath(top, 'baseline', base);
  const settings = resolve(STUDY_SETTINGS, top, at);

  const pretrain = readPretrain(raw.pretrain, at, base);
  const training = resolve(
    STUDY_TRAINING_SETTINGS,
    mapping(raw.training, at, 'training', 'a mapping of training settings'),
    at,
    'training.',
  );
  const targetsRaw = raw.targets;
  if (!Array.isArray(targetsRaw) || targetsRaw.length === 0) {
    throw new RangeError(
      `${at}targets must be a list with the source task first (name, train, test, task) and optional ` +
        `transfer targets, got ${JSON.stringify(targetsRaw)}`,
    );
  }
  const targets = targetsRaw.map((t, i) => readTarget(t, i, at, base));
  const names = new Set<string>();
  targets.forEach((target, i) => {
    if (target.name === '' || names.has(target.name)) {
      throw new RangeError(`${at}targets[${i}]: name must be unique and given for every target but the first`);
    }
    names.add(target.name);
  });

  return {
    ...settings,
    out: resolvePath(base, settings.out),
    cacheDir: resolvePath(base, settings.cacheDir),
    modes: [...new Set(settings.modes)],
    fractions: uniqueSorted(settings.fractions)!,
    pretrain,
    training,
    targets,
  };
}

/**
 * Reads and checks a study YAML file; relative paths in it are relative to the
 * file. `overrides` (top-level settings, as from the command line) replace the
 * file's values before the checks.
 */
export function readStudyConfig(path: string, overrides: Readonly<Record<string, unknown>> = {}): StudyConfig {
  let parsed: unknown;
  try {
    parsed = parseYaml(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new Error(`study config ${path}: ${(error as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new Error(`study config ${path}: expected a mapping of settings`);
  }
  const merged = { ...(camelKeys(parsed) as Record<string, unknown>), ...overrides };
  return resolveStudyConfig(merged, `study config ${path}`, dirname(resolvePath(path)));
}
