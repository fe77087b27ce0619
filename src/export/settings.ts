/**
 * The settings of `moco-cxr export`, declared once: the flags, the `--config`
 * YAML keys, the defaults, the checks and `--help` come from this table (the
 * server's table is in `serve.ts`, which loads no libtorch).
 */
import { existsSync } from 'node:fs';

import { resolve, type Setting, type SettingsOf } from '../config/settings.js';
import { NORMALIZATIONS, type NormalizationName } from '../data/augment.js';
import { IMAGE_SIDE_SETTING as imageSide } from '../data/limits.js';
import { modelNames } from '../models/index.js';

/** Every setting of an export. */
export const EXPORT_SETTINGS = [
  {
    key: 'model',
    type: 'string',
    required: 'model: the weights file is required (--model FILE: a state dict or checkpoint with its classifier)',
    check: (value: string) => (existsSync(value) ? undefined : `: no such file '${value}'`),
    help: 'weights file with its classifier (fc / classifier): a state dict or a checkpoint holding one',
  },
  {
    key: 'arch',
    type: 'string',
    optional: "told from the file's keys",
    check: (value: string) =>
      modelNames().includes(value) ? undefined : `: unknown model '${value}'; available: ${modelNames().join(', ')}`,
    help: 'backbone',
  },
  { key: 'format', type: 'string', oneOf: ['onnx'] as const, default: 'onnx', help: 'file format' },
  {
    key: 'out',
    type: 'string',
    default: 'model.onnx',
    help: 'the .onnx file to write (with --web: inside the folder)',
  },
  {
    key: 'tasks',
    type: 'string',
    optional: "the file's own 'tasks' list, else class 0, class 1, ...",
    help: 'names of the classifier outputs, comma-separated',
  },
  {
    key: 'imageSize',
    type: 'int',
    range: 'positive',
    ...imageSide,
    default: 320,
    defaultHelp: "the model file's recorded side, else 320",
    help: 'input side the model was trained at (the page resizes to it)',
  },
  {
    key: 'normalize',
    type: 'string',
    oneOf: Object.keys(NORMALIZATIONS) as NormalizationName[],
    default: 'imagenet',
    defaultHelp: "the model file's recorded one, else imagenet",
    help: 'the normalization the model was trained with, done inside the graph',
  },
  {
    key: 'withFeatures',
    type: 'boolean',
    default: false,
    help: "add a 'features' output (the last block's feature map), for class activation maps",
  },
  {
    key: 'web',
    type: 'string',
    optional: 'no page',
    help: 'also write a static page that runs the model in the browser into this folder',
  },
] as const satisfies readonly Setting[];

/** An export's configuration. */
export type ExportConfig = SettingsOf<typeof EXPORT_SETTINGS>;

/** Fills the defaults into `partial` and checks every value (errors name the key). */
export function resolveExportConfig(partial: Readonly<Record<string, unknown>>, where = ''): ExportConfig {
  return resolve(EXPORT_SETTINGS, partial, where);
}
