/**
 * The settings of `moco-cxr predict`, declared once: the flags, the `--config`
 * YAML keys, the checks and `--help` come from this table. Normalization and
 * input side default to what the model file records.
 */
import { parsingProblem, resolve, type Setting, type SettingsOf } from '../config/settings.js';
import { NORMALIZATIONS, type NormalizationName } from '../data/augment.js';
import { IMAGE_SIDE_SETTING as imageSide } from '../data/limits.js';
import * as torch from '../torch/index.js';

/** Every setting of a prediction run. */
export const PREDICT_SETTINGS = [
  {
    key: 'model',
    type: 'string',
    required: '--model FILE is required (a classifier that moco-cxr finetune wrote, models/*.pt)',
    help: "classifier file (a finetune run's models/f<fraction>-d<draw>.pt, or its export's .onnx)",
  },
  {
    key: 'out',
    type: 'string',
    optional: 'CSV on standard output',
    help: 'output file: .csv or .json',
  },
  {
    key: 'cam',
    type: 'string',
    optional: 'none',
    help: 'folder for Grad-CAM heatmaps overlaid on each input (PNG)',
  },
  {
    key: 'normalize',
    type: 'string',
    oneOf: Object.keys(NORMALIZATIONS) as NormalizationName[],
    optional: "the model's",
    help: 'input normalization: imagenet, moco-cxr or none',
  },
  { key: 'imageSize', type: 'int', range: 'positive', ...imageSide, optional: "the model's", help: 'input side' },
  { key: 'batchSize', type: 'int', range: 'positive', default: 16, help: 'images per forward pass' },
  {
    key: 'device',
    type: 'string',
    default: 'cpu',
    check: (value: string) => parsingProblem('device', () => torch.checkDevice(value)),
    help: 'cpu or cuda[:N]',
  },
] as const satisfies readonly Setting[];

/** Everything a prediction run is defined by (see {@link PREDICT_SETTINGS}). */
export type PredictConfig = SettingsOf<typeof PREDICT_SETTINGS>;

/** Checks a configuration and fills its defaults; errors name the key (after `where`). */
export function resolvePredictConfig(input: Partial<PredictConfig>, where = ''): PredictConfig {
  const config = resolve(PREDICT_SETTINGS, input, where);
  if (config.out !== undefined && !/\.(csv|json)$/i.test(config.out)) {
    throw new RangeError(`${where}out '${config.out}': expected a file ending in .csv or .json`);
  }
  return config;
}
