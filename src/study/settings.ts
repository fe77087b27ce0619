/**
 * The settings of a study file, declared once per block: the top level, the
 * `training` block shared by every cell, each entry of `targets` and a target's
 * per-mode blocks (`linear:`, `finetune:`). Settings the study hands on to a
 * downstream cell are the downstream table's own declarations, adapted (another
 * default, YAML-only), so a default or a check is never written twice. The
 * `pretrain` block is the pretraining table itself.
 */
import { adapt, optionalAs, pick, type Setting, type SettingsOf } from '../config/settings.js';
import { DOWNSTREAM_SETTINGS, RUN_SOURCE_KEYS } from '../downstream/settings.js';

/** A downstream setting, by key. */
function downstream<const K extends (typeof DOWNSTREAM_SETTINGS)[number]['key']>(
  key: K,
): Extract<(typeof DOWNSTREAM_SETTINGS)[number], { readonly key: K }> {
  return pick(DOWNSTREAM_SETTINGS, [key])[0]!;
}

/** The study file's top level (also `moco-cxr study` flags, which override the file). */
export const STUDY_SETTINGS = [
  { key: 'name', type: 'string', default: 'study', help: 'name shown in the report' },
  { key: 'out', type: 'string', default: 'runs/study', help: 'study folder; a rerun continues it' },
  adapt(downstream('seed'), { help: 'seed of pretraining, splits, draws and training' }),
  downstream('device'),
  downstream('arch'),
  downstream('imageSize'),
  adapt(downstream('normalize'), { default: 'moco-cxr' }),
  downstream('cacheDir'),
  adapt(downstream('init'), {
    key: 'baseline',
    flag: null,
    help: "the starting point without MoCo: 'random' or a weights file (ImageNet weights, say)",
  }),
  {
    key: 'modes',
    type: 'strings',
    oneOf: ['linear', 'finetune'] as const,
    default: ['linear', 'finetune'],
    flag: null,
    help: 'downstream modes: linear and/or finetune',
  },
  adapt(downstream('fractions'), { flag: null }),
  adapt(downstream('draws'), { flag: null }),
  adapt(downstream('per'), { flag: null }),
  adapt(downstream('bootstrap'), { range: 'positive', help: "bootstrap resamples for the report's CIs" }),
] as const satisfies readonly Setting[];

/** The `training` block: how every downstream cell trains. */
export const STUDY_TRAINING_SETTINGS = [
  adapt(downstream('epochs'), { key: 'linearEpochs', flag: null, help: 'epochs of a linear cell' }),
  adapt(downstream('epochs'), { key: 'finetuneEpochs', flag: null, help: 'epochs of a fine-tuning cell' }),
  ...pick(DOWNSTREAM_SETTINGS, ['lr', 'batchSize', 'ensemble', 'evalEvery', 'patience', 'trunkLr', 'warmup']).map(
    (setting) => adapt(setting, { flag: null }),
  ),
  adapt(downstream('probe'), { flag: null }),
  adapt(downstream('bnStats'), { flag: null }),
] as const satisfies readonly Setting[];

/** The source settings of a target, as the downstream run takes them. */
export const TARGET_SOURCE_KEYS = ['trainPart', 'testPart', 'valPart', ...RUN_SOURCE_KEYS] as const;

/** One entry of `targets`: the source task first, then transfer targets. */
export const STUDY_TARGET_SETTINGS = [
  {
    key: 'name',
    type: 'string',
    optional: "'source' for the first target",
    flag: null,
    check: (value: string) =>
      /^[\w.-]+$/.test(value) ? undefined : `must be a name of letters, digits, . - _, got '${value}'`,
    help: "short name: 'source' for the pretraining set's own task, else e.g. 'tb'",
  },
  ...pick(DOWNSTREAM_SETTINGS, ['train', 'test']).map((setting) =>
    adapt(setting, { flag: null, required: `${setting.key}: a target needs a ${setting.key} source (KIND:PATH)` }),
  ),
  adapt(downstream('val'), { flag: null }),
  adapt(downstream('valSplit'), { flag: null }),
  adapt(downstream('task'), { flag: null }),
  adapt(downstream('uncertain'), { flag: null }),
  optionalAs(pick(STUDY_SETTINGS, ['modes'])[0]!, "the study's", {
    help: "this target's modes, e.g. [linear] for a transfer target probed only",
  }),
  optionalAs(downstream('fractions'), "the study's", { flag: null }),
  optionalAs(downstream('draws'), "the study's", { flag: null }),
  // How the target's sources are opened: every option a source takes (each kind checks its own).
  ...pick(DOWNSTREAM_SETTINGS, [...TARGET_SOURCE_KEYS]).map((setting) => adapt(setting, { flag: null })),
] as const satisfies readonly Setting[];

/** A target's `linear:` or `finetune:` block: that mode's own grid and length. */
export const STUDY_MODE_SETTINGS = [
  optionalAs(downstream('fractions'), "the target's", { flag: null }),
  optionalAs(downstream('draws'), "the target's", { flag: null }),
  optionalAs(downstream('epochs'), "the training block's", {
    flag: null,
    help: 'epochs of this mode (0 scales them with the fraction)',
  }),
] as const satisfies readonly Setting[];

/** The study file's top level, checked and with defaults. */
export type StudySettings = SettingsOf<typeof STUDY_SETTINGS>;
/** The training settings shared by every cell. */
export type StudyTraining = SettingsOf<typeof STUDY_TRAINING_SETTINGS>;
/** One target's own settings (its mode blocks aside). */
export type StudyTargetSettings = SettingsOf<typeof STUDY_TARGET_SETTINGS>;
/** One mode's grid of a target. */
export type StudyModeSettings = SettingsOf<typeof STUDY_MODE_SETTINGS>;
