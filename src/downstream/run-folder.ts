/**
 * A downstream run folder on disk: which settings its results were made with,
 * and each finished cell (its line in `cells.jsonl` and its test predictions).
 * A cell counts as finished once its line is written, and its predictions are
 * written first, so a killed run never leaves a cell half recorded.
 */
import { appendFileSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { type DownstreamMode, type DownstreamResult, type TestPredictions } from './cell.js';
import { DOWNSTREAM_DEFAULTS, type DownstreamConfig, RUN_SOURCE_KEYS } from './settings.js';

/** The configuration keys a cell's numbers depend on: a run folder holds results of one setting of them. */
export const RESULT_KEYS: readonly (keyof DownstreamConfig)[] = [
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
  'trainPart',
  'testPart',
  'valPart',
  ...RUN_SOURCE_KEYS,
];

/** The file name of a cell. */
export const cellName = (fraction: number, draw: number): string => `f${fraction}-d${draw}`;

/** Writes through a temporary file, so a kill leaves the old file or the new one. */
export function writeFileAtomically(path: string, text: string): void {
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, text);
  renameSync(temporary, path);
}

/**
 * Throws unless the run folder is new or holds results of `mode` made with the
 * same result-deciding settings (but those in `skip`).
 */
export function checkRunFolder(
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

/** The finished cells recorded in the run folder, by cell name. */
export function readFinished(runDir: string): Map<string, DownstreamResult> {
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

/** Records a finished cell: its predictions, then its line. */
export function writeCell(runDir: string, result: DownstreamResult): void {
  const name = cellName(result.fraction, result.draw);
  const { test, ...line } = result;
  const rows = test.ids.map((id, i) =>
    JSON.stringify({ id, studyId: test.studyIds[i], label: test.labels[i], score: test.scores[i] }),
  );
  // Predictions first: a cell counts as finished once its line is in cells.jsonl.
  writeFileAtomically(join(runDir, 'predictions', `${name}.jsonl`), `${rows.join('\n')}\n`);
  appendFileSync(join(runDir, 'cells.jsonl'), `${JSON.stringify(line)}\n`);
}
