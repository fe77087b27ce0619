/**
 * The preprocessing a model was trained with (normalization, input side, grey
 * handling), recorded in every checkpoint moco-cxr writes so that whoever
 * loads the model feeds it the same view: `linear`, `finetune` and `predict`
 * take their defaults from it.
 *
 * In the file it is a plain dict under `preprocessing` (Python reads it with
 * `torch.load`, also under `weights_only=True`):
 * `{ normalize: 'moco-cxr', mean: [0.502], std: [0.085585], image_size: 320, channels: 3, grey: 'repeat' }`.
 */
import { existsSync } from 'node:fs';

import * as torch from '../torch/index.js';
import { NORMALIZATIONS, type NormalizationName } from './augment.js';

/** How images are prepared for a model. */
export interface Preprocessing {
  /** The named normalization (its statistics are written beside it for other readers). */
  normalize: NormalizationName;
  /** Side of the square input (the centred crop of the resized image). */
  imageSize: number;
  /** Channels the network takes: 3 with the grey value replicated (all of moco-cxr's models), or 1. */
  channels: 1 | 3;
}

/** The key a checkpoint holds its preprocessing under. */
export const PREPROCESSING_KEY = 'preprocessing';

/** The dict written to a checkpoint for `p` (floats as Python floats). */
export function preprocessingEntry(p: Preprocessing): Record<string, unknown> {
  const stats = NORMALIZATIONS[p.normalize];
  return {
    normalize: p.normalize,
    mean: stats.mean.map((v) => torch.pyFloat(v)),
    std: stats.std.map((v) => torch.pyFloat(v)),
    image_size: p.imageSize,
    channels: p.channels,
    // Grey X-rays are replicated to the network's channels, never summed or weighted.
    grey: p.channels === 3 ? 'repeat' : 'keep',
  };
}

/**
 * Reads the preprocessing of a loaded checkpoint `saved` (from `file`):
 * undefined when it records none (files of other tools, or older versions);
 * an error naming the file and the field when the record is malformed.
 */
export function readPreprocessing(saved: unknown, file: string): Preprocessing | undefined {
  if (saved === null || typeof saved !== 'object' || Array.isArray(saved) || saved instanceof Map) return undefined;
  const entry = (saved as Record<string, unknown>)[PREPROCESSING_KEY];
  if (entry === undefined || entry === null) return undefined;
  const bad = (what: string): Error => new Error(`${file}: ${PREPROCESSING_KEY}.${what}`);
  if (typeof entry !== 'object' || Array.isArray(entry)) throw bad(`: expected a dict, got ${typeof entry}`);
  const record = entry as Record<string, unknown>;
  const normalize = record.normalize;
  if (typeof normalize !== 'string' || !Object.hasOwn(NORMALIZATIONS, normalize)) {
    throw bad(`normalize: expected one of ${Object.keys(NORMALIZATIONS).join(', ')}, got ${JSON.stringify(normalize)}`);
  }
  const imageSize = record.image_size;
  if (typeof imageSize !== 'number' || !Number.isInteger(imageSize) || imageSize < 1) {
    throw bad(`image_size: expected a positive integer, got ${JSON.stringify(imageSize)}`);
  }
  const channels = record.channels;
  if (channels !== 1 && channels !== 3) throw bad(`channels: expected 1 or 3, got ${JSON.stringify(channels)}`);
  return { normalize: normalize as NormalizationName, imageSize, channels };
}

/** Loads `file` and reads its preprocessing (see {@link readPreprocessing}); its tensors are freed at once. */
export function readCheckpointPreprocessing(file: string): Preprocessing | undefined {
  const saved = torch.load(file, { unknownClasses: 'keep' });
  try {
    return readPreprocessing(saved, file);
  } finally {
    torch.dispose(saved);
  }
}

/** The settings a checkpoint's preprocessing provides defaults for. */
export interface PreprocessingSettings {
  normalize?: NormalizationName;
  imageSize?: number;
}

/**
 * Fills `input`'s unset `normalize` and `imageSize` from a checkpoint's
 * preprocessing, and warns once (through `warn`) about each one set to another
 * value than the checkpoint's, since the model then sees images unlike those it
 * was trained on. Returns the filled copy.
 */
export function withCheckpointPreprocessing<T extends PreprocessingSettings>(
  input: T,
  recorded: Preprocessing | undefined,
  file: string,
  warn: (line: string) => void,
): T {
  if (recorded === undefined) return input;
  const out = { ...input };
  const overrides: string[] = [];
  if (out.normalize === undefined) out.normalize = recorded.normalize;
  else if (out.normalize !== recorded.normalize)
    overrides.push(`normalize ${out.normalize} (it has ${recorded.normalize})`);
  if (out.imageSize === undefined) out.imageSize = recorded.imageSize;
  else if (out.imageSize !== recorded.imageSize)
    overrides.push(`imageSize ${out.imageSize} (it has ${recorded.imageSize})`);
  if (overrides.length > 0) {
    warn(`warning: ${file} was trained with other preprocessing; overriding with ${overrides.join(', ')}`);
  }
  return out;
}

/**
 * {@link withCheckpointPreprocessing} with the preprocessing `file` records,
 * where `file` is given, exists and loads; otherwise `input` as it is (the
 * caller's own reading of the file says what is wrong with it).
 */
export function withFilePreprocessing<T extends PreprocessingSettings>(
  input: T,
  file: string | undefined,
  warn: (line: string) => void,
): T {
  if (file === undefined || !existsSync(file)) return input;
  let recorded: Preprocessing | undefined;
  try {
    recorded = readCheckpointPreprocessing(file);
  } catch {
    return input;
  }
  return withCheckpointPreprocessing(input, recorded, file, warn);
}
