/**
 * The multi-draw driver behind `moco-cxr linear` and `moco-cxr finetune`: one
 * starting point evaluated at every label fraction and draw, written to a run
 * folder that a rerun continues (finished cells are skipped):
 *
 * - `config.json`: the resolved configuration;
 * - `draws/f<fraction>-d<draw>.json`: each draw's record ids;
 * - `predictions/f<fraction>-d<draw>.jsonl`: one line per test image
 *   (`id`, `studyId`, `label`, `score`);
 * - `cells.jsonl`: one line per finished cell (AUCs, epochs, history);
 * - `metrics.json`: per fraction, AUC per draw, mean, and the bootstrap CI of
 *   the mean over draws (the test set resampled, as MoCo-CXR does);
 * - `features/` (linear): the frozen features, reused by reruns.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { NORMALIZATIONS, type NormalizationName } from '../data/augment.js';
import { type DrawUnit, writeDraw } from '../data/fractions.js';
import { checkImageSize } from '../data/limits.js';
import { UNCERTAINTY_POLICIES, type UncertaintyPolicy } from '../data/sources/index.js';
import { type Interval } from '../eval/bootstrap.js';
import { scoreOverDraws } from '../eval/draws.js';
import { modelNames } from '../models/index.js';
import * as torch from '../torch/index.js';
import {
  checkFraction,
  type DownstreamMode,
  type DownstreamResult,
  epochsForFraction,
  type TestPredictions,
} from './downstream.js';
import { isAbortError } from '../util/abort.js';
import { backboneFeatures, type FeatureSet } from './features.js';
import { finetune } from './finetune.js';
import { linearProbe } from './linear.js';
import { drawTrainingSet, type DownstreamData, parseInit, prepareDownstreamData } from './setup.js';

/** Everything a downstream run is defined by. */
export interface DownstreamConfig {
  /** Training pool as `KIND:PATH`. */
  train: string;
  /** Test set as `KIND:PATH`. */
  test: string;
  /** Validation set as `KIND:PATH` (default: `valSplit` of the training patients). */
  val?: string;
  /** Share of the training patients held out for validation when `val` is not given. */
  valSplit: number;
  /** The label to learn (default: the source's own task). */
  task?: string;
  uncertain: UncertaintyPolicy;
  /** Label fractions, each in (0, 1]. */
  fractions: number[];
  /** Draws of each fraction below 1 (a fraction of 1 has one draw: every draw would be the whole pool). */
  draws: number;
  per: DrawUnit;
  seed: number;
  /** 'random', a weights file (MoCo checkpoint, torchvision, ours), or NAME:FILE. */
  init: string;
  arch: string;
  imageSize: number;
  /** Side of the cached images (default: the image size). */
  cacheSize: number;
  normalize: NormalizationName;
  /** Epochs for every fraction; 0: MoCo-CXR's by fraction (500, 107, 23, 5 for 0.1%, 1%, 10%, 100%). */
  epochs: number;
  lr: number;
  batchSize: number;
  /** Checkpoints averaged for the test prediction. */
  ensemble: number;
  /** Training images between evaluations within an epoch. */
  evalEvery: number;
  /** Evaluations without improvement before a cell stops; 0: never. */
  patience: number;
  /** Images per forward pass when extracting features or scoring. */
  evalBatchSize: number;
  /** Bootstrap resamples of the test set for the CIs; 0: none. */
  bootstrap: number;
  device: string;
  /** The run folder. */
  out: string;
  cacheDir: string;
  workers: number;
}

export const DOWNSTREAM_DEFAULTS: Omit<DownstreamConfig, 'train' | 'test'> = {
  valSplit: 0.1,
  uncertain: 'ignore',
  fractions: [0.001, 0.01, 0.1, 1],
  draws: 5,
  per: 'patient',
  seed: 0,
  init: 'random',
  arch: 'resnet18',
  imageSize: 320,
  cacheSize: 0,
  normalize: 'imagenet',
  epochs: 0,
  lr: 1e-4,
  batchSize: 16,
  ensemble: 10,
  evalEvery: 8192,
  patience: 0,
  evalBatchSize: 64,
  bootstrap: 1000,
  device: 'cpu',
  out: 'runs/downstream',
  cacheDir: '.moco-cxr-cache',
  workers: 0,
};

/** What a caller may pass: fractions also as text ('0.001,0.01,0.1,1'). */
export type DownstreamInput = Partial<Omit<DownstreamConfig, 'fractions'>> & {
  train?: string;
  test?: string;
  fractions?: number[] | string;
};

function parseFractions(value: number[] | string): number[] {
  const list =
    typeof value === 'string'
      ? value
          .split(',')
          .map((part) => part.trim())
          .filter((part) => part !== '')
          .map((part) => (Number.isFinite(Number(part)) ? Number(part) : NaN))
      : value;
  if (list.length === 0) throw new RangeError('fractions: expected a list such as 0.001,0.01,0.1,1');
  for (const fraction of list) checkFraction(fraction, `fractions: each fraction`);
  return [...new Set(list)];
}

/** Checks a configuration and fills its defaults; errors name the option. */
export function resolveDownstreamConfig(input: DownstreamInput): DownstreamConfig {
  if (typeof input.train !== 'string' || input.train === '') {
    throw new TypeError('train: the training source is required (--train KIND:PATH)');
  }
  if (typeof input.test !== 'string' || input.test === '') {
    throw new TypeError('test: the test source is required (--test KIND:PATH)');
  }
  const { fractions, ...rest } = input;
  const config: DownstreamConfig = {
    ...DOWNSTREAM_DEFAULTS,
    ...(Object.fromEntries(
      Object.entries(rest).filter(([, value]) => value !== undefined),
    ) as Partial<DownstreamConfig>),
    train: input.train,
    test: input.test,
    fractions: parseFractions(fractions ?? DOWNSTREAM_DEFAULTS.fractions),
  };
  const positive = ['imageSize', 'draws', 'batchSize', 'ensemble', 'evalEvery', 'evalBatchSize'] as const;
  for (const key of positive) {
    const value = config[key];
    if (!Number.isInteger(value) || value < 1) throw new RangeError(`${key} must be a positive integer, got ${value}`);
  }
  for (const key of ['cacheSize', 'epochs', 'patience', 'bootstrap', 'seed', 'workers'] as const) {
    const value = config[key];
    if (!Number.isInteger(value) || value < 0) {
      throw new RangeError(`${key} must be a non-negative integer, got ${value}`);
    }
  }
  if (!(config.lr > 0)) throw new RangeError(`lr must be positive, got ${config.lr}`);
  if (config.val === undefined && !(config.valSplit > 0 && config.valSplit < 1)) {
    throw new RangeError(`valSplit must be in (0, 1) when no validation source is given, got ${config.valSplit}`);
  }
  if (!UNCERTAINTY_POLICIES.includes(config.uncertain)) {
    throw new RangeError(`uncertain must be one of ${UNCERTAINTY_POLICIES.join(', ')}, got '${config.uncertain}'`);
  }
  if (config.per !== 'patient' && config.per !== 'image') {
    throw new RangeError(`per must be 'patient' or 'image', got '${String(config.per)}'`);
  }
  if (!Object.hasOwn(NORMALIZATIONS, config.normalize)) {
    throw new RangeError(
      `normalize must be one of ${Object.keys(NORMALIZATIONS).join(', ')}, got '${String(config.normalize)}'`,
    );
  }
  if (!modelNames().includes(config.arch)) {
    throw new RangeError(`arch: unknown model '${config.arch}'; available: ${modelNames().join(', ')}`);
  }
  checkImageSize('imageSize', config.imageSize);
  if (config.cacheSize === 0) config.cacheSize = config.imageSize;
  checkImageSize('cacheSize', config.cacheSize);
  if (config.cacheSize < config.imageSize) {
    throw new RangeError(`cacheSize (${config.cacheSize}) must be at least imageSize (${config.imageSize})`);
  }
  parseInit(config.init);
  torch.checkDevice(config.device);
  return config;
}

/** The configuration keys a cell's numbers depend on: a run folder holds results of one setting of them. */
const RESULT_KEYS: readonly (keyof DownstreamConfig)[] = [
  'train',
  'test',
  'val',
  'valSplit',
  'task',
  'uncertain',
  'per',
  'seed',
  'init',
  'arch',
  'imageSize',
  'cacheSize',
  'normalize',
  'epochs',
  'lr',
  'batchSize',
  'ensemble',
  'evalEvery',
  'patience',
];

/** Metrics of one label fraction over its draws. */
export interface FractionMetrics {
  fraction: number;
  epochs: number;
  draws: { draw: number; testAuc: number; valAuc: number; bestEpoch: number; trainImages: number }[];
  /** Mean of the draws' test AUCs. */
  meanAuc: number;
  /** Bootstrap CI of the mean over draws (test set resampled); absent without bootstrap. */
  ci?: Interval;
  /** The same per study (max over a study's images), where studies hold several images. */
  study?: { meanAuc: number; ci?: Interval };
}

/** The metrics file. */
export interface DownstreamMetrics {
  mode: DownstreamMode;
  init: string;
  task: string;
  arch: string;
  testImages: number;
  fractions: FractionMetrics[];
}

/** How a run ended. */
export interface DownstreamRun {
  status: 'finished' | 'interrupted';
  runDir: string;
  /** Every finished cell of the configured grid, in grid order (from this run or an earlier one). */
  results: DownstreamResult[];
  /** Cells found finished in the run folder and not run again. */
  skipped: number;
  metrics: DownstreamMetrics;
}

/** Hooks for the caller. */
export interface DownstreamHooks {
  signal?: AbortSignal;
  log?: (line: string) => void;
  plainProgress?: boolean;
  /** Called after each cell finishes (not for skipped cells). */
  onCell?: (result: DownstreamResult) => void;
}

/** The grid: each fraction with its draws (one for a fraction of 1). */
export function gridCells(fractions: readonly number[], draws: number): { fraction: number; draw: number }[] {
  return fractions.flatMap((fraction) =>
    Array.from({ length: fraction === 1 ? 1 : draws }, (_, draw) => ({ fraction, draw })),
  );
}

const cellName = (fraction: number, draw: number): string => `f${fraction}-d${draw}`;

function writeFileAtomically(path: string, text: string): void {
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, text);
  renameSync(temporary, path);
}

function checkRunFolder(
  runDir: string,
  config: DownstreamConfig,
  mode: DownstreamMode,
  skip: readonly (keyof DownstreamConfig)[] = [],
): void {
  const file = join(runDir, 'config.json');
  if (!existsSync(file)) return;
  let saved: Record<string, unknown>;
  try {
    saved = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (error) {
    throw new Error(`${file}: unreadable (${(error as Error).message}); choose another --out`);
  }
  if (saved.command !== mode) {
    throw new Error(`${runDir} holds a '${String(saved.command)}' run, not '${mode}'; choose another --out`);
  }
  for (const key of RESULT_KEYS) {
    if (skip.includes(key)) continue;
    if (JSON.stringify(saved[key]) !== JSON.stringify(config[key])) {
      throw new Error(
        `${runDir} holds results made with ${key} = ${JSON.stringify(saved[key])}, not ${JSON.stringify(config[key])}; ` +
          'choose another --out (a run folder continues only with the same settings; fractions and draws may grow)',
      );
    }
  }
}

type CellLine = Omit<DownstreamResult, 'test'>;

function readFinished(runDir: string): Map<string, DownstreamResult> {
  const finished = new Map<string, DownstreamResult>();
  const file = join(runDir, 'cells.jsonl');
  if (!existsSync(file)) return finished;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    let cell: CellLine;
    try {
      cell = JSON.parse(line) as CellLine;
    } catch {
      continue; // A line cut short by a crash: that cell runs again.
    }
    const name = cellName(cell.fraction, cell.draw);
    const predictions = join(runDir, 'predictions', `${name}.jsonl`);
    if (!existsSync(predictions)) continue;
    finished.set(name, { ...cell, test: readPredictions(predictions) });
  }
  return finished;
}

function readPredictions(file: string): TestPredictions {
  const test: TestPredictions = { ids: [], studyIds: [], labels: [], scores: [] };
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    const row = JSON.parse(line) as { id: string; studyId: string; label: number; score: number };
    test.ids.push(row.id);
    test.studyIds.push(row.studyId);
    test.labels.push(row.label);
    test.scores.push(row.score);
  }
  return test;
}

function writeCell(runDir: string, result: DownstreamResult): void {
  const name = cellName(result.fraction, result.draw);
  const { test, ...line } = result;
  const rows = test.ids.map((id, i) =>
    JSON.stringify({ id, studyId: test.studyIds[i], label: test.labels[i], score: test.scores[i] }),
  );
  // Predictions first: a cell counts as finished once its line is in cells.jsonl.
  writeFileAtomically(join(runDir, 'predictions', `${name}.jsonl`), `${rows.join('\n')}\n`);
  appendFileSync(join(runDir, 'cells.jsonl'), `${JSON.stringify(line)}\n`);
}

function sameTestSet(results: readonly DownstreamResult[]): boolean {
  const first = results[0]?.test.ids;
  return results.every((r) => r.test.ids.length === first?.length && r.test.ids.every((id, i) => id === first[i]));
}

/** Per fraction: the draws' AUCs, their mean, and the bootstrap CI of the mean. */
export function downstreamMetrics(
  results: readonly DownstreamResult[],
  options: { mode: DownstreamMode; init: string; arch: string; task: string; bootstrap: number; seed: number },
): DownstreamMetrics {
  const fractions = [...new Set(results.map((r) => r.fraction))];
  const metrics: DownstreamMetrics = {
    mode: options.mode,
    init: options.init,
    task: options.task,
    arch: options.arch,
    testImages: results[0]?.test.ids.length ?? 0,
    fractions: [],
  };
  for (const fraction of fractions) {
    const cells = results.filter((r) => r.fraction === fraction);
    const entry: FractionMetrics = {
      fraction,
      epochs: cells[0]?.epochs ?? 0,
      draws: cells.map((r) => ({
        draw: r.draw,
        testAuc: r.testAuc,
        valAuc: r.valAuc,
        bestEpoch: r.bestEpoch,
        trainImages: r.trainIds.length,
      })),
      meanAuc: cells.reduce((sum, r) => sum + r.testAuc, 0) / cells.length,
    };
    if (options.bootstrap > 0 && sameTestSet(cells)) {
      const { labels, studyIds } = (cells[0] as DownstreamResult).test;
      const boot = { replicates: options.bootstrap, seed: options.seed };
      entry.ci = scoreOverDraws({ scores: cells.map((r) => r.test.scores), labels }, boot).ci;
      if (new Set(studyIds).size < studyIds.length) {
        const { meanAuc, ci } = scoreOverDraws({ scores: cells.map((r) => r.test.scores), labels, studyIds }, boot);
        entry.study = { meanAuc, ci };
      }
    } else if (new Set(cells[0]?.test.studyIds).size < (cells[0]?.test.studyIds.length ?? 0)) {
      const aucs = cells.map(
        (r) => scoreOverDraws({ scores: [r.test.scores], labels: r.test.labels, studyIds: r.test.studyIds }).meanAuc,
      );
      entry.study = { meanAuc: aucs.reduce((a, b) => a + b, 0) / aucs.length };
    }
    metrics.fractions.push(entry);
  }
  return metrics;
}

function summaryTable(metrics: DownstreamMetrics): string {
  const lines = [`${metrics.mode} ${metrics.init} (${metrics.arch}), task '${metrics.task}':`];
  for (const f of metrics.fractions) {
    const ci = f.ci === undefined ? '' : ` (95% CI ${f.ci.lower.toFixed(3)}-${f.ci.upper.toFixed(3)})`;
    const draws = f.draws.map((d) => d.testAuc.toFixed(3)).join(' ');
    lines.push(
      `  fraction ${String(f.fraction).padEnd(6)} test AUC ${f.meanAuc.toFixed(3)}${ci}  draws: ${draws}  (${f.epochs} epochs)`,
    );
  }
  return lines.join('\n');
}

/**
 * Runs (or continues) a linear-probe or fine-tuning grid as configured: opens
 * and caches the data, extracts the frozen features once (linear), runs every
 * (fraction, draw) cell not yet finished in the run folder, and writes the
 * predictions and metrics. Ctrl-C (the signal) stops after the current
 * epoch; finished cells are kept and a rerun continues.
 */
export async function runDownstream(
  mode: DownstreamMode,
  input: DownstreamInput,
  hooks: DownstreamHooks = {},
): Promise<DownstreamRun> {
  const config = resolveDownstreamConfig(input);
  const log = hooks.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const runDir = resolve(config.out);
  // The task may be the source's default, known only once the data are open.
  checkRunFolder(runDir, config, mode, config.task === undefined ? ['task'] : []);
  for (const folder of ['', 'draws', 'predictions']) mkdirSync(join(runDir, folder), { recursive: true });

  let data: DownstreamData;
  try {
    data = await prepareDownstreamData(config, { log, signal: hooks.signal });
  } catch (error) {
    if (!isAbortError(error)) throw error;
    log('interrupted while caching the images; rerun the same command to continue');
    return {
      status: 'interrupted',
      runDir,
      results: [],
      skipped: 0,
      metrics: downstreamMetrics([], { mode, ...config, task: config.task ?? '' }),
    };
  }
  const resolved = { ...config, task: data.task };
  checkRunFolder(runDir, resolved, mode);
  writeFileSync(join(runDir, 'config.json'), `${JSON.stringify({ command: mode, ...resolved }, null, 2)}\n`);

  const finished = readFinished(runDir);
  const cells = gridCells(config.fractions, config.draws);
  const already = cells.filter(({ fraction, draw }) => finished.has(cellName(fraction, draw))).length;
  if (already > 0) log(`${already} of ${cells.length} cells already finished in ${runDir}: not run again`);
  const results: DownstreamResult[] = [];
  let skipped = 0;
  let features: FeatureSet | undefined;
  let status: DownstreamRun['status'] = 'finished';
  try {
    for (const { fraction, draw } of cells) {
      const name = cellName(fraction, draw);
      const done = finished.get(name);
      if (done !== undefined) {
        results.push(done);
        skipped++;
        continue;
      }
      const labelDraw = drawTrainingSet(data.train.records, {
        task: data.task,
        fraction,
        draw,
        seed: config.seed,
        per: config.per,
      });
      await writeDraw(join(runDir, 'draws', `${name}.json`), labelDraw, config.train);
      const cell = {
        fraction,
        draw,
        seed: config.seed,
        per: config.per,
        trainRecords: labelDraw.records,
        epochs: config.epochs === 0 ? epochsForFraction(fraction) : config.epochs,
        lr: config.lr,
        batchSize: config.batchSize,
        ensemble: config.ensemble,
        evalEvery: config.evalEvery,
        patience: config.patience === 0 ? undefined : config.patience,
        signal: hooks.signal,
        log,
        plainProgress: hooks.plainProgress,
      };
      let result: DownstreamResult;
      if (mode === 'linear') {
        features ??= await backboneFeatures(data, {
          init: config.init,
          arch: config.arch,
          imageSize: config.imageSize,
          seed: config.seed,
          normalize: config.normalize,
          device: config.device,
          batchSize: config.evalBatchSize,
          dir: join(runDir, 'features'),
          log,
          signal: hooks.signal,
          plainProgress: hooks.plainProgress,
        });
        result = await linearProbe({ ...cell, features, task: data.task });
      } else {
        result = await finetune({
          ...cell,
          data,
          init: config.init,
          arch: config.arch,
          imageSize: config.imageSize,
          normalize: config.normalize,
          device: config.device,
          evalBatchSize: config.evalBatchSize,
        });
      }
      writeCell(runDir, result);
      results.push(result);
      hooks.onCell?.(result);
      log(
        `${mode} fraction ${fraction} draw ${draw}: ${result.trainIds.length} images, val AUC ${result.valAuc.toFixed(4)} ` +
          `(epoch ${result.bestEpoch}/${result.epochs}), test AUC ${result.testAuc.toFixed(4)}, ${result.seconds.toFixed(1)} s`,
      );
    }
  } catch (error) {
    if (!isAbortError(error)) throw error;
    status = 'interrupted';
  } finally {
    features?.dispose();
    await data.close();
  }

  const metrics = downstreamMetrics(results, {
    mode,
    init: config.init,
    arch: config.arch,
    task: data.task,
    bootstrap: config.bootstrap,
    seed: config.seed,
  });
  if (results.length > 0) {
    writeFileAtomically(join(runDir, 'metrics.json'), `${JSON.stringify(metrics, null, 2)}\n`);
    log(summaryTable(metrics));
  }
  if (status === 'interrupted') {
    log(`interrupted: ${results.length} of ${cells.length} cells finished; rerun the same command to continue`);
  }
  return { status, runDir, results, skipped, metrics };
}
