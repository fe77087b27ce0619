/**
 * What both downstream evaluations start from: the labelled data (train pool,
 * validation and test sets, each with its decoded image cache), the starting
 * weights of the backbone, and the label-fraction draw of a cell.
 */
import { existsSync, statSync } from 'node:fs';
import { basename, resolve } from 'node:path';

import { buildCache, type ImageCache } from '../data/cache.js';
import { sourceCacheFolder } from '../data/cache-folder.js';
import { type DrawUnit, labelFraction, type LabelDraw } from '../data/fractions.js';
import { type XrayRecord } from '../data/records.js';
import {
  openSource,
  skippedNote,
  type Source,
  type SourceOptions,
  type UncertaintyPolicy,
} from '../data/sources/index.js';
import { patientSplit } from '../data/splits.js';
import { type Backbone, createModel, loadWeights } from '../models/index.js';
import * as torch from '../torch/index.js';
import { abortError } from '../util/abort.js';

/** A set of labelled records and the cache that holds their pixels. */
export interface DataSplit {
  /** The records, every one of them stored in `cache`. */
  records: XrayRecord[];
  cache: ImageCache;
}

/** The data of a downstream evaluation: the pool label fractions are drawn from, validation and test. */
export interface DownstreamData {
  /** The label the classifier learns, e.g. `Pleural Effusion`. */
  task: string;
  train: DataSplit;
  val: DataSplit;
  test: DataSplit;
  /** Side of the cached squares (the training crop is drawn from them). */
  cacheSize: number;
  /** Closes the caches' files. */
  close(): Promise<void>;
}

/** Where the data come from and how they are read. */
export interface DataOptions {
  /** Training pool as `KIND:PATH`. */
  train: string;
  /** Test set as `KIND:PATH`. */
  test: string;
  /** Validation set as `KIND:PATH`; without it `valSplit` of the training patients are held out. */
  val?: string;
  /** Share of the training patients held out for validation when `val` is not given. */
  valSplit: number;
  /** The label to learn; default the source's own task (`Tuberculosis`, `PNEUMONIA`, `Pleural Effusion`). */
  task?: string;
  uncertain: UncertaintyPolicy;
  /** Seed of the validation split. */
  seed: number;
  /** Side of the cached images. */
  cacheSize: number;
  /** Folder of the decoded-image caches. */
  cacheDir: string;
  /** Decoding threads (0: all cores). */
  workers: number;
  /** What each set's source is opened with (default: only `uncertain`). */
  sources?: Partial<Record<'train' | 'test' | 'val', SourceOptions>>;
}

/** The task MoCo-CXR evaluates on CheXpert, used when a source implies none. */
const PAPER_TASK = 'Pleural Effusion';

function chooseTask(source: Source, spec: string, requested: string | undefined): string {
  const task = requested ?? source.defaultTask ?? (source.tasks.includes(PAPER_TASK) ? PAPER_TASK : undefined);
  if (task === undefined) {
    throw new Error(`--task is required for ${spec}: its labels are ${source.tasks.join(', ')}`);
  }
  if (!source.tasks.includes(task)) {
    throw new Error(`task '${task}' is not a label of ${spec}; its labels are: ${source.tasks.join(', ')}`);
  }
  return task;
}

function countClasses(records: readonly XrayRecord[], task: string): { positive: number; negative: number } {
  let positive = 0;
  let negative = 0;
  for (const record of records) {
    const value = record.labels[task];
    if (value === null || value === undefined) continue;
    if (value > 0.5) positive++;
    else negative++;
  }
  return { positive, negative };
}

async function cached(
  spec: string,
  records: XrayRecord[],
  options: DataOptions,
  log: (line: string) => void,
  signal: AbortSignal | undefined,
): Promise<DataSplit> {
  const { cache, stats } = await buildCache(records, {
    dir: sourceCacheFolder(options.cacheDir, spec, options.cacheSize),
    size: options.cacheSize,
    workers: options.workers === 0 ? undefined : options.workers,
    signal,
    log,
  });
  if (signal?.aborted === true) {
    await cache.close();
    throw abortError();
  }
  const kept = records.filter((record) => cache.positionOfId(record.id) !== undefined);
  log(
    `cache ${spec}: ${kept.length} images (${stats.reused ? 'reused' : `${stats.decoded} decoded`}` +
      `${records.length > kept.length ? `, ${records.length - kept.length} unreadable and left out` : ''})`,
  );
  return { records: kept, cache };
}

/**
 * Opens the sources, holds out the validation patients when no validation
 * source is given, and decodes every image once into the caches. Errors name
 * the source and what is missing (an unknown task, a set without both classes).
 */
export async function prepareDownstreamData(
  options: DataOptions,
  hooks: { log?: (line: string) => void; signal?: AbortSignal } = {},
): Promise<DownstreamData> {
  const log = hooks.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const open = async (spec: string, set: 'train' | 'test' | 'val'): Promise<Source> => {
    const source = await openSource(spec, options.sources?.[set] ?? { uncertain: options.uncertain });
    const notTaken = skippedNote(source, spec);
    if (notTaken !== undefined) log(notTaken);
    return source;
  };
  const trainSource = await open(options.train, 'train');
  const task = chooseTask(trainSource, options.train, options.task);
  const testSource = await open(options.test, 'test');
  chooseTask(testSource, options.test, task);
  let pool = trainSource.records;
  let valRecords: XrayRecord[];
  if (options.val !== undefined) {
    const valSource = await open(options.val, 'val');
    chooseTask(valSource, options.val, task);
    valRecords = valSource.records;
  } else {
    // Balanced when it can be (as the paper's Shenzhen split); a tiny set may not allow it.
    let split;
    try {
      split = patientSplit(pool, {
        valFraction: options.valSplit,
        seed: options.seed,
        balance: { task, tolerance: 0.05, maxAttempts: 200 },
      });
    } catch {
      split = patientSplit(pool, { valFraction: options.valSplit, seed: options.seed });
    }
    pool = split.train;
    valRecords = split.validation;
  }
  const sets: [string, string, XrayRecord[]][] = [
    ['training', options.train, pool],
    ['validation', options.val ?? `${options.train} (held-out ${options.valSplit})`, valRecords],
    ['test', options.test, testSource.records],
  ];
  for (const [name, spec, records] of sets) {
    const { positive, negative } = countClasses(records, task);
    if (positive === 0 || negative === 0) {
      throw new Error(
        `${name} set ${spec}: '${task}' has ${positive} positive and ${negative} negative labels; ` +
          'both classes are needed to train and score a classifier',
      );
    }
    log(`${name}: ${records.length} images, '${task}' ${positive} positive / ${negative} negative`);
  }

  const opened: ImageCache[] = [];
  const close = async (): Promise<void> => {
    await Promise.all(opened.map((cache) => cache.close()));
  };
  try {
    const withVal = options.val === undefined ? [...pool, ...valRecords] : pool;
    const trainAll = await cached(options.train, withVal, options, log, hooks.signal);
    opened.push(trainAll.cache);
    const inTrain = (records: XrayRecord[]): XrayRecord[] =>
      records.filter((record) => trainAll.cache.positionOfId(record.id) !== undefined);
    const train = { records: inTrain(pool), cache: trainAll.cache };
    let val: DataSplit;
    if (options.val === undefined) {
      val = { records: inTrain(valRecords), cache: trainAll.cache };
    } else {
      val = await cached(options.val, valRecords, options, log, hooks.signal);
      opened.push(val.cache);
    }
    const test = await cached(options.test, testSource.records, options, log, hooks.signal);
    opened.push(test.cache);
    return { task, train, val, test, cacheSize: options.cacheSize, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** Starting weights: `random`, a weights file, or `NAME:FILE` (e.g. `imagenet:resnet18.pth`, `moco:last.pt`). */
export interface InitSpec {
  /** A short name for reports: `random`, the given NAME, or the file's name. */
  name: string;
  /** The weights file; undefined for `random`. */
  file: string | undefined;
}

/** Reads an init spec; a file that does not exist is an error naming it. */
export function parseInit(spec: string): InitSpec {
  if (spec === 'random') return { name: 'random', file: undefined };
  if (existsSync(spec)) return { name: basename(spec), file: spec };
  const match = /^([A-Za-z][\w.-]*):(.+)$/.exec(spec);
  if (match !== null && existsSync(match[2] as string)) return { name: match[1] as string, file: match[2] as string };
  throw new Error(
    `init '${spec}': no such weights file; expected 'random', a checkpoint or weights file, or NAME:FILE ` +
      "(e.g. 'imagenet:resnet18.pth')",
  );
}

/**
 * What identifies the starting weights: the spec, the file's size and date,
 * and for `random` the seed that initializes them.
 */
export function initFingerprint(spec: string, seed: number): string {
  const { file } = parseInit(spec);
  if (file === undefined) return `random:${seed}`;
  const info = statSync(file);
  return `${resolve(file)}:${info.size}:${info.mtimeMs}`;
}

/**
 * Builds `arch` with a `numClasses`-output classifier and loads the starting
 * weights: a MoCo / MoCo-CXR checkpoint (its query encoder), a torchvision
 * file or one of ours; the classifier keeps its fresh initialization unless
 * the file holds one of the same shape. `random` initializes from `seed`.
 */
export function createBackbone(
  init: string,
  arch: string,
  options: { numClasses: number; seed: number; log?: (line: string) => void },
): Backbone {
  const { file } = parseInit(init);
  torch.manualSeed(options.seed);
  const model = createModel(arch, { numClasses: options.numClasses });
  if (file !== undefined) {
    try {
      const report = loadWeights(model, file);
      options.log?.(`init: ${file} (${report.format}, ${report.loaded} tensors loaded)`);
    } catch (error) {
      model.dispose();
      throw error;
    }
  }
  return model;
}

/** Which training subset a cell uses. */
export interface DrawOptions {
  task: string;
  fraction: number;
  draw: number;
  seed: number;
  per: DrawUnit;
}

/**
 * The cell's training subset: `fraction` of the pool (by patient or image),
 * drawn by (seed, draw) as `labelFraction` does, with at least one positive
 * and one negative label of the task (a subset of one class teaches nothing).
 */
export function drawTrainingSet(pool: readonly XrayRecord[], options: DrawOptions): LabelDraw {
  return labelFraction(pool, { ...options, keepBothClasses: true });
}
