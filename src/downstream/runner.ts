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
 *
 * In a process group (`hooks.group`, or the launch environment's), rank 0
 * alone checks and writes the run folder and decides which cells are left;
 * fine-tuning trains each cell data-parallel across the ranks, while a linear
 * probe (whose features are extracted once, by rank 0 first) and any run with
 * `spreadCells` give each rank whole cells in turn, one-process, and gather
 * their results over the group's collectives after every round.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

import {
  allgatherJson,
  broadcastJson,
  inLaunchGroup,
  type ProcessGroup,
  SETUP_TIMEOUT_MS,
} from '../distributed/index.js';
import { type LabelDraw, writeDraw } from '../data/fractions.js';
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
  /** Called after every fine-tuning step with the mean loss of its labelled rows (in a group, over all ranks). */
  onStep?: (cell: { fraction: number; draw: number }, step: number, loss: number) => void;
  /**
   * The process group this run is a rank of (default: the launch
   * environment's when WORLD_SIZE > 1, as under torchrun or `moco-cxr
   * launch`). Every rank returns the same run.
   */
  group?: ProcessGroup;
  /**
   * In a group, each rank runs whole cells one-process (cell i on rank
   * i mod world size) instead of training every cell data-parallel; a
   * fine-tuning cell's model file is then written by the rank that ran it.
   * A linear probe always spreads its cells.
   */
  spreadCells?: boolean;
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
  return inLaunchGroup(hooks.group, (group) =>
    runDownstreamIn(mode, input, hooks, group !== undefined && group.size > 1 ? group : undefined),
  );
}

/** What a rank says after a round of spread cells: its cell's result (if it had one) and whether it stops. */
interface RoundReport {
  result: DownstreamResult | null;
  stop: boolean;
}

/** The run on one process, or as one rank of `group`. */
async function runDownstreamIn(
  mode: DownstreamMode,
  input: DownstreamInput,
  hooks: DownstreamHooks,
  group: ProcessGroup | undefined,
): Promise<DownstreamRun> {
  const main = group === undefined || group.rank === 0;
  const baseLog = hooks.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  // Rank 0 speaks for the run; in a spread run each rank reports its own cells' progress.
  const log = main ? baseLog : () => undefined;
  const spread = group !== undefined && (mode === 'linear' || hooks.spreadCells === true);
  const config = resolveDownstreamConfig(followInitPreprocessing(input, log));
  if (group !== undefined) {
    log(
      spread
        ? `${group.size} processes (${group.backend}): each runs whole cells in turn`
        : `data-parallel: ${group.size} processes (${group.backend}), global batch ${config.batchSize}`,
    );
  }
  const runDir = resolve(config.out);
  if (main) {
    // The task may be the source's default, known only once the data are open.
    checkRunFolder(runDir, config, mode, config.task === undefined ? ['task'] : []);
    for (const folder of ['', 'draws', 'predictions', ...(mode === 'finetune' ? ['models'] : [])])
      mkdirSync(join(runDir, folder), { recursive: true });
  } else if (spread && mode === 'finetune') {
    mkdirSync(join(runDir, 'models'), { recursive: true });
  }

  // Rank 0 builds the image caches; the others wait for it and then open them.
  if (group !== undefined && !main) await group.barrier(SETUP_TIMEOUT_MS);
  let opened: DownstreamData | undefined;
  try {
    const sources = { train: sourceOptionsFor(config, 'train'), test: sourceOptionsFor(config, 'test') };
    opened = await prepareDownstreamData(
      { ...config, sources: { ...sources, val: sourceOptionsFor(config, 'val') } },
      { log, signal: hooks.signal },
    );
  } catch (error) {
    if (!isAbortError(error)) throw error;
  } finally {
    if (group !== undefined && main) await group.barrier(SETUP_TIMEOUT_MS);
  }
  if (opened === undefined) {
    log('interrupted while caching the images; rerun the same command to continue');
    return {
      status: 'interrupted',
      runDir,
      results: [],
      skipped: 0,
      metrics: downstreamMetrics([], { mode, ...config, task: config.task ?? '' }),
    };
  }
  const data = opened;
  const resolved = { ...config, task: data.task };
  let finished = new Map<string, DownstreamResult>();
  if (main) {
    checkRunFolder(runDir, resolved, mode);
    writeFileSync(join(runDir, 'config.json'), `${JSON.stringify({ command: mode, ...resolved }, null, 2)}\n`);
    finished = readFinished(runDir);
  }
  // Rank 0's record of the folder decides for all.
  if (group !== undefined) finished = new Map(await broadcastJson(group, [...finished]));
  const cells = gridCells(config.fractions, config.draws);
  const remaining = cells.filter(({ fraction, draw }) => !finished.has(cellName(fraction, draw)));
  const already = cells.length - remaining.length;
  if (already > 0) log(`${already} of ${cells.length} cells already finished in ${runDir}: not run again`);
  const done = new Map(finished);
  let features: FeatureSet | undefined;
  // Made at the first finished cell: a rerun with nothing left to do adds no file.
  let events: EventWriter | undefined;
  let status: DownstreamRun['status'] = 'finished';
  const labelDrawOf = (fraction: number, draw: number): LabelDraw =>
    drawTrainingSet(data.train.records, { task: data.task, fraction, draw, seed: config.seed, per: config.per });
  const featuresFor = (cellLog: (line: string) => void): Promise<FeatureSet> =>
    backboneFeatures(data, {
      init: config.init,
      arch: config.arch,
      imageSize: config.imageSize,
      seed: config.seed,
      normalize: config.normalize,
      device: config.device,
      batchSize: config.evalBatchSize,
      dir: join(runDir, 'features'),
      log: cellLog,
      signal: hooks.signal,
      plainProgress: hooks.plainProgress,
    });
  /** One cell: linear on the features, or fine-tuning (data-parallel across `cellGroup` when given). */
  const runCell = async (
    fraction: number,
    draw: number,
    cellGroup: ProcessGroup | undefined,
    cellLog: (line: string) => void,
  ): Promise<DownstreamResult> => {
    const cell = {
      fraction,
      draw,
      seed: config.seed,
      per: config.per,
      trainRecords: labelDrawOf(fraction, draw).records,
      epochs: config.epochs === 0 ? epochsForFraction(fraction) : config.epochs,
      lr: config.lr,
      batchSize: config.batchSize,
      ensemble: config.ensemble,
      evalEvery: config.evalEvery,
      patience: config.patience === 0 ? undefined : config.patience,
      signal: hooks.signal,
      log: cellLog,
      plainProgress: hooks.plainProgress,
    };
    if (mode === 'linear') {
      features ??= await featuresFor(cellLog);
      return linearProbe({ ...cell, features, task: data.task, probe: config.probe });
    }
    return finetune({
      ...cell,
      data,
      init: config.init,
      arch: config.arch,
      imageSize: config.imageSize,
      normalize: config.normalize,
      device: config.device,
      evalBatchSize: config.evalBatchSize,
      modelFile: join(runDir, 'models', `${cellName(fraction, draw)}.pt`),
      bnStats: config.bnStats,
      trunkLr: config.trunkLr,
      warmup: config.warmup,
      group: cellGroup,
      gradSync: config.gradSync,
      onStep: hooks.onStep === undefined ? undefined : (step, loss) => hooks.onStep!({ fraction, draw }, step, loss),
    });
  };
  /** Rank 0 records a finished cell in the run folder; every rank keeps it. */
  const record = (result: DownstreamResult): void => {
    done.set(cellName(result.fraction, result.draw), result);
    hooks.onCell?.(result);
    if (!main) return;
    writeCell(runDir, result);
    events ??= new EventWriter(runDir);
    writeCellEvents(events, result);
    log(
      `${mode} fraction ${result.fraction} draw ${result.draw}: ${result.trainIds.length} images, val AUC ${result.valAuc.toFixed(4)} ` +
        `(epoch ${result.bestEpoch}/${result.epochs}), test AUC ${result.testAuc.toFixed(4)}, ${result.seconds.toFixed(1)} s`,
    );
  };
  const writeDrawOf = async (fraction: number, draw: number): Promise<void> => {
    if (main)
      await writeDraw(
        join(runDir, 'draws', `${cellName(fraction, draw)}.json`),
        labelDrawOf(fraction, draw),
        config.train,
      );
  };
  try {
    if (spread) {
      const ranks = group;
      if (mode === 'linear' && remaining.length > 0) {
        // Rank 0 extracts the features and writes their file; the others then read it (or, on another
        // machine's disk, extract their own), if they have cells to run.
        if (!main) await ranks.barrier(SETUP_TIMEOUT_MS);
        try {
          if (main || remaining.length > ranks.rank) features = await featuresFor(baseLog);
        } finally {
          if (main) await ranks.barrier(SETUP_TIMEOUT_MS);
        }
      }
      for (let at = 0; at < remaining.length; at += ranks.size) {
        const round = remaining.slice(at, at + ranks.size);
        for (const { fraction, draw } of round) await writeDrawOf(fraction, draw);
        const mine = round[ranks.rank];
        const report: RoundReport = { result: null, stop: false };
        if (mine !== undefined) {
          try {
            report.result = await runCell(mine.fraction, mine.draw, undefined, baseLog);
          } catch (error) {
            if (!isAbortError(error)) throw error;
            report.stop = true;
          }
        }
        report.stop ||= hooks.signal?.aborted === true;
        const reports = await allgatherJson(ranks, report);
        for (const { result } of reports) if (result !== null) record(result);
        if (reports.some((r) => r.stop)) {
          status = 'interrupted';
          break;
        }
      }
    } else {
      for (const { fraction, draw } of remaining) {
        await writeDrawOf(fraction, draw);
        record(await runCell(fraction, draw, group, log));
      }
    }
  } catch (error) {
    if (!isAbortError(error)) throw error;
    status = 'interrupted';
  } finally {
    features?.dispose();
    events?.close();
    await data.close();
  }

  const results = cells.flatMap(({ fraction, draw }) => done.get(cellName(fraction, draw)) ?? []);
  const metrics = downstreamMetrics(results, {
    mode,
    init: config.init,
    arch: config.arch,
    task: data.task,
    bootstrap: config.bootstrap,
    seed: config.seed,
  });
  if (results.length > 0 && main) {
    writeFileAtomically(join(runDir, 'metrics.json'), `${JSON.stringify(metrics, null, 2)}\n`);
    log(summaryTable(metrics));
  }
  if (status === 'interrupted') {
    log(`interrupted: ${results.length} of ${cells.length} cells finished; rerun the same command to continue`);
  }
  return { status, runDir, results, skipped: already, metrics };
}
