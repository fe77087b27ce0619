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

import { writeDraw } from '../data/fractions.js';
import { type Interval } from '../eval/bootstrap.js';
import { scoreOverDraws } from '../eval/draws.js';
import { type DownstreamMode, type DownstreamResult, epochsForFraction, type TestPredictions } from './downstream.js';
import { isAbortError } from '../util/abort.js';
import { backboneFeatures, type FeatureSet } from './features.js';
import { finetune } from './finetune.js';
import { linearProbe } from './linear.js';
import {
  DOWNSTREAM_DEFAULTS,
  type DownstreamConfig,
  type DownstreamInput,
  resolveDownstreamConfig,
} from './settings.js';
import { drawTrainingSet, type DownstreamData, prepareDownstreamData } from './setup.js';

export {
  DOWNSTREAM_DEFAULTS,
  DOWNSTREAM_SETTINGS,
  type DownstreamConfig,
  type DownstreamInput,
  resolveDownstreamConfig,
} from './settings.js';

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
  'probe',
  'lr',
  'bnStats',
  'trunkLr',
  'warmup',
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
    // A key the folder predates was at its default then.
    const before = saved[key] ?? (DOWNSTREAM_DEFAULTS as Record<string, unknown>)[key];
    if (JSON.stringify(before) !== JSON.stringify(config[key])) {
      throw new Error(
        `${runDir} holds results made with ${key} = ${JSON.stringify(before)}, not ${JSON.stringify(config[key])}; ` +
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
          bnStats: config.bnStats,
          trunkLr: config.trunkLr,
          warmup: config.warmup,
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
