/**
 * Frozen-backbone features: every train, validation and test image goes
 * through the backbone once, in evaluation mode and without augmentation,
 * and the pooled vectors are kept (in memory and in a file keyed by the
 * starting weights and the data). A whole grid of linear probes then trains
 * on these vectors instead of running the backbone at every step.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { type NormalizationName } from '../data/augment.js';
import { type EvalViewOptions, mapImages } from '../data/images.js';
import { type XrayRecord } from '../data/records.js';
import { type Backbone } from '../models/index.js';
import * as torch from '../torch/index.js';
import { createBackbone, type DataSplit, type DownstreamData, initFingerprint } from './setup.js';

type Tensor = torch.Tensor;

/**
 * The pooled feature vectors `[N, featureDim]` of the split's images (record
 * order) from `backbone` in evaluation mode. The backbone's mode is restored.
 */
export async function extractFeatures(backbone: Backbone, split: DataSplit, options: EvalViewOptions): Promise<Tensor> {
  const wasTraining = backbone.training;
  backbone.eval();
  try {
    return await mapImages(split, (images) => backbone.features(images), options);
  } finally {
    backbone.train(wasTraining);
  }
}

/** Features of one split, row i for record i. */
export interface SplitFeatures {
  records: XrayRecord[];
  /** float32 `[records.length, featureDim]`, on the CPU. */
  features: Tensor;
}

/** The frozen features of a backbone for the train pool, validation and test sets. */
export interface FeatureSet {
  /** The starting weights as given. */
  init: string;
  arch: string;
  /** Identifies the weights, data and view the features came from. */
  key: string;
  featureDim: number;
  train: SplitFeatures;
  val: SplitFeatures;
  test: SplitFeatures;
  /** Whether they were read from the features file rather than computed. */
  reused: boolean;
  dispose(): void;
}

/** Options of {@link backboneFeatures}. */
export interface FeatureOptions {
  /** 'random', a weights file, or NAME:FILE. */
  init: string;
  arch: string;
  imageSize: number;
  /** Seed of a random initialization. */
  seed: number;
  normalize?: NormalizationName;
  device?: string;
  /** Images per forward pass (default 64). */
  batchSize?: number;
  /** Folder of the features file; without it nothing is written or read. */
  dir?: string;
  log?: (line: string) => void;
  signal?: AbortSignal;
  plainProgress?: boolean;
}

const FEATURES_FORMAT = 'moco-cxr-features';

function idsDigest(records: readonly XrayRecord[]): string {
  const hash = createHash('sha256');
  for (const record of records) hash.update(`${record.id}\n`);
  return hash.digest('hex');
}

/** The key of a feature set: starting weights, architecture, view and the exact images of each split. */
export function featureKey(data: DownstreamData, options: FeatureOptions): string {
  const splits = (['train', 'val', 'test'] as const).map((name) => ({
    name,
    cache: data[name].cache.fingerprint,
    ids: idsDigest(data[name].records),
  }));
  return createHash('sha256')
    .update(
      JSON.stringify({
        format: FEATURES_FORMAT,
        version: 1,
        init: initFingerprint(options.init, options.seed),
        arch: options.arch,
        imageSize: options.imageSize,
        normalize: options.normalize ?? 'imagenet',
        splits,
      }),
    )
    .digest('hex');
}

function readFeatureFile(file: string, key: string, data: DownstreamData): Record<string, Tensor> | undefined {
  let loaded: unknown;
  try {
    loaded = torch.load(file);
  } catch {
    return undefined;
  }
  const value = loaded as Record<string, unknown>;
  const out: Record<string, Tensor> = {};
  let ok = value.format === FEATURES_FORMAT && value.key === key;
  for (const name of ['train', 'val', 'test'] as const) {
    const entry = value[name] as { features?: unknown } | undefined;
    const features = entry?.features;
    if (ok && torch.isTensor(features) && features.ndim === 2 && features.shape[0] === data[name].records.length) {
      out[name] = features;
    } else {
      ok = false;
    }
  }
  if (!ok) {
    torch.dispose(loaded);
    return undefined;
  }
  return out;
}

/**
 * The features of `data` under the given starting weights: read from
 * `dir/features-KEY.pt` when it is there (same weights file, data and view),
 * otherwise computed (the backbone runs once per image) and written there.
 */
export async function backboneFeatures(data: DownstreamData, options: FeatureOptions): Promise<FeatureSet> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const key = featureKey(data, options);
  const file = options.dir === undefined ? undefined : join(options.dir, `features-${key.slice(0, 16)}.pt`);
  const make = (tensors: Record<string, Tensor>, reused: boolean): FeatureSet => {
    const split = (name: 'train' | 'val' | 'test'): SplitFeatures => ({
      records: data[name].records,
      features: tensors[name] as Tensor,
    });
    return {
      init: options.init,
      arch: options.arch,
      key,
      featureDim: (tensors.train as Tensor).shape[1] as number,
      train: split('train'),
      val: split('val'),
      test: split('test'),
      reused,
      dispose: () => torch.dispose(tensors),
    };
  };
  if (file !== undefined && existsSync(file)) {
    const found = readFeatureFile(file, key, data);
    if (found !== undefined) {
      log(`features: reused ${file}`);
      return make(found, true);
    }
  }

  const backbone = createBackbone(options.init, options.arch, { numClasses: 1, seed: options.seed, log });
  const tensors: Record<string, Tensor> = {};
  try {
    backbone.to(torch.checkDevice(options.device ?? 'cpu'));
    for (const name of ['train', 'val', 'test'] as const) {
      tensors[name] = await extractFeatures(backbone, data[name], {
        imageSize: options.imageSize,
        normalize: options.normalize,
        batchSize: options.batchSize,
        device: options.device,
        signal: options.signal,
        progress: `features ${name}`,
        plainProgress: options.plainProgress,
      });
    }
  } catch (error) {
    torch.dispose(tensors);
    throw error;
  } finally {
    backbone.dispose();
  }
  if (file !== undefined) {
    mkdirSync(options.dir as string, { recursive: true });
    const entry = (name: 'train' | 'val' | 'test'): Record<string, unknown> => ({
      ids: data[name].records.map((record) => record.id),
      features: tensors[name],
    });
    torch.save(
      {
        format: FEATURES_FORMAT,
        version: 1,
        key,
        init: options.init,
        arch: options.arch,
        image_size: options.imageSize,
        train: entry('train'),
        val: entry('val'),
        test: entry('test'),
      },
      file,
    );
    log(`features: wrote ${file}`);
  }
  return make(tensors, false);
}
