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
 * - `models/f<fraction>-d<draw>.pt` (finetune): the cell's best checkpoint on
 *   validation AUC as a classifier file, which `moco-cxr predict` reads;
 * - `features/` (linear): the frozen features, reused by reruns;
 * - `events.out.tfevents.*`: each finished cell's history for TensorBoard, as
 *   `f<fraction>-d<draw>/trainLoss` per epoch, `…/valAuc` per validation
 *   (at its training step) and `…/testAuc` (at the last step).
 *
 * Unset `normalize` and `imageSize` follow the preprocessing recorded in the
 * `init` checkpoint (a moco-cxr pretraining or classifier file).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { writeDraw } from '../data/fractions.js';
import { withFilePreprocessing } from '../data/preprocessing.js';
import { type DownstreamMode, type DownstreamResult, epochsForFraction } from './cell.js';
import { isAbortError } from '../util/abort.js';
import { EventWriter } from '../util/tensorboard.js';
import { backboneFeatures, type FeatureSet } from './features.js';
import { finetune } from './finetune.js';
import { linearProbe } from './linear.js';
import { type DownstreamInput, resolveDownstreamConfig, sourceOptionsFor } from './settings.js';
import { drawTrainingSet, type DownstreamData, parseInit, prepareDownstreamData } from './setup.js';
import { downstreamMetrics, type DownstreamMetrics, summaryTable } from './metrics.js';
import { cellName, checkRunFolder, readFinished, writeCell, writeFileAtomically } from './run-folder.js';

export { downstreamMetrics, type DownstreamMetrics, type FractionMetrics } from './metrics.js';

export {
  DOWNSTREAM_DEFAULTS,
  DOWNSTREAM_SETTINGS,
  type DownstreamConfig,
  type DownstreamInput,
  resolveDownstreamConfig,
} from './settings.js';

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

/** A finished cell's history as TensorBoard scalars under the cell's name. */
function writeCellEvents(events: EventWriter, result: DownstreamResult): void {
  const name = cellName(result.fraction, result.draw);
  for (const epoch of result.history.epochs) events.scalars(epoch.epoch, { [`${name}/trainLoss`]: epoch.trainLoss });
  for (const evaluation of result.history.evaluations) {
    events.scalars(evaluation.step, { [`${name}/valAuc`]: evaluation.valAuc });
  }
  const last = result.history.evaluations.at(-1)?.step ?? result.history.epochs.length;
  events.scalars(last, { [`${name}/testAuc`]: result.testAuc });
}

/**
 * `input` with unset `normalize` and `imageSize` taken from the preprocessing
 * the `init` file records (pretraining checkpoints and classifier files of
 * moco-cxr do); a set one that differs is kept, with a warning.
 */
function followInitPreprocessing(input: DownstreamInput, warn: (line: string) => void): DownstreamInput {
  if (typeof input.init !== 'string') return input;
  let file: string | undefined;
  try {
    file = parseInit(input.init).file;
  } catch {
    return input; // The settings' own check reports a missing file.
  }
  return withFilePreprocessing(input, file, warn);
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
  const log = hooks.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const config = resolveDownstreamConfig(followInitPreprocessing(input, log));
  const runDir = resolve(config.out);
  // The task may be the source's default, known only once the data are open.
  checkRunFolder(runDir, config, mode, config.task === undefined ? ['task'] : []);
  for (const folder of ['', 'draws', 'predictions', ...(mode === 'finetune' ? ['models'] : [])])
    mkdirSync(join(runDir, folder), { recursive: true });

  let data: DownstreamData;
  try {
    const sources = { train: sourceOptionsFor(config, 'train'), test: sourceOptionsFor(config, 'test') };
    data = await prepareDownstreamData(
      { ...config, sources: { ...sources, val: sourceOptionsFor(config, 'val') } },
      { log, signal: hooks.signal },
    );
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
  // Made at the first finished cell: a rerun with nothing left to do adds no file.
  let events: EventWriter | undefined;
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
        result = await linearProbe({ ...cell, features, task: data.task, probe: config.probe });
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
          modelFile: join(runDir, 'models', `${name}.pt`),
          bnStats: config.bnStats,
          trunkLr: config.trunkLr,
          warmup: config.warmup,
        });
      }
      writeCell(runDir, result);
      events ??= new EventWriter(runDir);
      writeCellEvents(events, result);
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
    events?.close();
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
