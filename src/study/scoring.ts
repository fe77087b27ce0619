/**
 * Every number of the study's report, computed from the raw test scores and
 * never carried over from training logs: a study's score is the max over its
 * images, a cell's AUC the mean over its draws, and the CI resamples the test
 * set with the same seed for every cell of a target, so the paired difference
 * sees the same resampled indices for both initializations.
 */
import { createHash } from 'node:crypto';

import {
  aggregateByStudy,
  bootstrapAucDifference,
  scoreOverDraws,
  type BootstrapOptions,
  type DrawScores,
  type Interval,
} from '../eval/index.js';
import { type InitNames } from './figures.js';
import { cellKey, formatFraction, MODES } from './format.js';
import type { Initialization, StudyCell, StudyResults, TrainingMode } from './results.js';

/** How the report is computed and drawn. */
export interface ReportOptions {
  /** Bootstrap resamples per interval (default 1000). */
  replicates?: number;
  /** Seed of the resampling, shared by every cell (default 0). */
  seed?: number;
  /** Confidence level (default 0.95). */
  level?: number;
  /** Score studies by the max over their images (default), or every image on its own. */
  aggregate?: 'study' | 'image';
  /** Display names of the initializations (default MoCo and Baseline). */
  initNames?: Partial<InitNames>;
  /**
   * Fractions to list per target and mode even before any of their cells has
   * finished; its targets are reported even when none of their cells ran.
   */
  fractions?: Record<string, Partial<Record<TrainingMode, readonly number[]>>>;
  /** ROC curves of the first draw of each cell (default), or of every draw. */
  rocDraws?: 'first' | 'all';
  /** Draw the figures (default true). */
  figures?: boolean;
}

/** A target's test set as scored. */
export interface TargetSummary {
  target: string;
  task: string;
  images: number;
  /** Scored units: studies, or images when scoring per image. */
  studies: number;
  positives: number;
  negatives: number;
  /** Why this target's cells could not be scored. */
  problem?: string;
}

/** One draw of a cell. */
export interface DrawSummary {
  draw: number;
  /** Training images of the draw. */
  trainSize: number;
  /** First 12 hex digits of SHA-256 over the sorted training ids: equal subsets, equal hashes. */
  subset: string;
  valAuc: number;
  testAuc: number | null;
  seconds: number;
}

/** One (target, mode, init, fraction). */
export interface CellSummary {
  target: string;
  task: string;
  mode: TrainingMode;
  init: Initialization;
  fraction: number;
  draws: DrawSummary[];
  /** Seconds over all draws. */
  seconds: number;
  /** Mean-over-draws test AUC with its bootstrap CI; null when unscored. */
  auc: Interval | null;
  /** Why the cell is unscored. */
  problem?: string;
}

/** One line of a comparison table: a label fraction. */
export interface ComparisonRow {
  fraction: number;
  moco: Interval | null;
  baseline: Interval | null;
  /** MoCo − baseline, paired bootstrap; null unless both sides are scored. */
  difference: Interval | null;
  mocoDraws: number;
  baselineDraws: number;
}

/** The table of one (target, mode). */
export interface ComparisonTable {
  target: string;
  task: string;
  mode: TrainingMode;
  rows: ComparisonRow[];
}

/** Every number of the report (written as `report.json`). */
export interface StudyReport {
  name: string;
  createdAt: string;
  settings: Record<string, unknown>;
  bootstrap: { replicates: number; seed: number; level: number };
  aggregation: 'study' | 'image';
  initNames: InitNames;
  targets: TargetSummary[];
  tables: ComparisonTable[];
  cells: CellSummary[];
  timings: Record<string, number>;
  /** Problems found while scoring, as sentences. */
  notes: string[];
  /** Figure files written, relative to the report folder. */
  figures: string[];
}

const subsetHash = (ids: readonly string[]): string =>
  createHash('sha256')
    .update([...ids].sort().join('\n'))
    .digest('hex')
    .slice(0, 12);

/** A target's test set ready to score: labels per scored unit and how image scores map onto them. */
interface PreparedTest {
  summary: TargetSummary;
  labels: Float64Array;
  /** The test set as {@link scoreOverDraws} reads it: image labels, and study ids when scoring per study. */
  draws: Omit<DrawScores, 'scores'>;
}

function prepareTest(results: StudyResults, target: string, task: string, perStudy: boolean): PreparedTest {
  const test = results.tests[target];
  const summary: TargetSummary = { target, task, images: 0, studies: 0, positives: 0, negatives: 0 };
  const fail = (problem: string): PreparedTest => ({
    summary: { ...summary, problem },
    labels: new Float64Array(0),
    draws: { labels: [] },
  });
  if (test === undefined) {
    if (!results.cells.some((c) => c.target === target)) return fail('none of its cells has finished yet');
    return fail(`results.tests has no test set for target '${target}'`);
  }
  summary.images = test.ids.length;
  if (test.labels.length !== test.ids.length) {
    return fail(`tests.${target} has ${test.ids.length} ids but ${test.labels.length} labels`);
  }
  if (perStudy && test.studyIds.length !== test.ids.length) {
    return fail(`tests.${target} has ${test.ids.length} ids but ${test.studyIds.length} studyIds`);
  }
  const bad = test.labels.findIndex((y) => y !== 0 && y !== 1);
  if (bad >= 0) {
    return fail(
      `tests.${target}.labels[${bad}] (image '${test.ids[bad]}') is ${String(test.labels[bad])}; labels must be 0 or 1`,
    );
  }
  let labels: Float64Array;
  if (perStudy) {
    try {
      labels = aggregateByStudy(test.studyIds, test.labels, test.labels).labels;
    } catch (error) {
      return fail(`tests.${target}: ${(error as Error).message}`);
    }
  } else {
    labels = Float64Array.from(test.labels);
  }
  summary.studies = labels.length;
  for (const y of labels) {
    if (y === 1) summary.positives++;
    else summary.negatives++;
  }
  if (summary.positives === 0 || summary.negatives === 0) {
    const unit = perStudy ? 'studies' : 'images';
    return fail(
      `the test set of target '${target}' has only one class (${summary.positives} positive, ` +
        `${summary.negatives} negative ${unit}), so its AUC is undefined; the test split needs both classes`,
    );
  }
  return { summary, labels, draws: { labels: test.labels, studyIds: perStudy ? test.studyIds : undefined } };
}

/** Checks that each draw of a cell holds a finite score per test image; throws a message naming the cell. */
function checkDraws(cell: StudyCell, images: number): void {
  const name = `cell ${cellKey(cell.target, cell.mode, cell.init, cell.fraction)}`;
  for (const draw of cell.draws) {
    if (draw.scores.length !== images) {
      throw new RangeError(`${name}: draw ${draw.draw} has ${draw.scores.length} scores for ${images} test images`);
    }
    const bad = draw.scores.findIndex((s) => !Number.isFinite(s));
    if (bad >= 0) throw new RangeError(`${name}: draw ${draw.draw} has score ${String(draw.scores[bad])} at ${bad}`);
  }
}

/** Computed numbers plus what the figures need beyond them. */
export interface Scored {
  report: StudyReport;
  /** Collapsed scores per cell key, one array per draw (in draw order). */
  scores: Map<string, Float64Array[]>;
  labels: Map<string, Float64Array>;
}

/** Targets in report order: the source first, then as they first appear (declared ones included). */
function orderedTargets(results: StudyResults, declared: readonly string[]): string[] {
  const targets = [...new Set([...declared, ...Object.keys(results.tests), ...results.cells.map((c) => c.target)])];
  return [...targets.filter((t) => t === 'source'), ...targets.filter((t) => t !== 'source')];
}

/** Scores one cell into its summary; the collapsed scores are returned for the pairing and the figures. */
function scoreCell(
  cell: StudyCell,
  test: PreparedTest,
  bootstrap: BootstrapOptions,
): { summary: CellSummary; scores?: Float64Array[] } {
  const draws = [...cell.draws].sort((a, b) => a.draw - b.draw);
  const summary: CellSummary = {
    target: cell.target,
    task: cell.task,
    mode: cell.mode,
    init: cell.init,
    fraction: cell.fraction,
    draws: draws.map((d) => ({
      draw: d.draw,
      trainSize: d.trainIds.length,
      subset: subsetHash(d.trainIds),
      valAuc: d.valAuc,
      testAuc: null,
      seconds: d.seconds,
    })),
    seconds: draws.reduce((total, d) => total + d.seconds, 0),
    auc: null,
  };
  if (draws.length === 0) return { summary };
  if (test.summary.problem !== undefined) {
    summary.problem = test.summary.problem;
    return { summary };
  }
  try {
    checkDraws({ ...cell, draws }, test.summary.images);
    const scored = scoreOverDraws({ ...test.draws, scores: draws.map((d) => d.scores) }, bootstrap);
    scored.aucs.forEach((testAuc, i) => ((summary.draws[i] as DrawSummary).testAuc = testAuc));
    summary.auc = scored.ci as Interval;
    return { summary, scores: scored.scores };
  } catch (error) {
    summary.problem = (error as Error).message;
    return { summary };
  }
}

/** Scores every cell and table of `results`; the collapsed scores are kept for the figures. */
export function score(results: StudyResults, options: ReportOptions): Scored {
  const bootstrap = { replicates: options.replicates ?? 1000, seed: options.seed ?? 0, level: options.level ?? 0.95 };
  const aggregation = options.aggregate ?? 'study';
  const notes: string[] = [];

  const targetNames = orderedTargets(results, Object.keys(options.fractions ?? {}));
  const tests = new Map<string, PreparedTest>();
  for (const target of targetNames) {
    const task = results.cells.find((c) => c.target === target)?.task ?? '';
    const prepared = prepareTest(results, target, task, aggregation === 'study');
    tests.set(target, prepared);
    if (prepared.summary.problem !== undefined) notes.push(`Target '${target}': ${prepared.summary.problem}.`);
  }

  const cells = new Map<string, CellSummary>();
  const scores = new Map<string, Float64Array[]>();
  const labels = new Map<string, Float64Array>();
  for (const cell of results.cells) {
    const key = cellKey(cell.target, cell.mode, cell.init, cell.fraction);
    if (cells.has(key)) {
      notes.push(`Cell ${key} appears more than once in the results; only the first is reported.`);
      continue;
    }
    const test = tests.get(cell.target) as PreparedTest;
    const scored = scoreCell(cell, test, bootstrap);
    cells.set(key, scored.summary);
    if (scored.scores !== undefined) {
      scores.set(key, scored.scores);
      labels.set(key, test.labels);
    } else if (scored.summary.problem !== undefined && test.summary.problem === undefined) {
      notes.push(`Cell ${key} is not scored: ${scored.summary.problem}.`);
    }
  }
  noteDifferentSubsets([...cells.values()], notes);

  const declaredModes = Object.values(options.fractions ?? {}).flatMap((byMode) => Object.keys(byMode));
  const modes = MODES.filter((mode) => declaredModes.includes(mode) || results.cells.some((c) => c.mode === mode));
  const tables: ComparisonTable[] = [];
  for (const target of targetNames) {
    const test = tests.get(target) as PreparedTest;
    for (const mode of modes) {
      // A mode's rows are the fractions it was declared with and those its cells ran; without a
      // declaration (a report of saved results), those of any of the target's cells.
      const declared = options.fractions?.[target]?.[mode];
      // A target whose grid is declared without this mode does not run it (its own `modes`): no table,
      // unless saved cells of the mode are there to show.
      const ran = results.cells.some((c) => c.target === target && c.mode === mode);
      if (options.fractions?.[target] !== undefined && declared === undefined && !ran) continue;
      const fractions = new Set<number>(declared ?? []);
      for (const cell of results.cells) {
        if (cell.target === target && (declared === undefined || cell.mode === mode)) fractions.add(cell.fraction);
      }
      const rows = [...fractions]
        .sort((a, b) => a - b)
        .map((fraction): ComparisonRow => {
          const mocoKey = cellKey(target, mode, 'moco', fraction);
          const baselineKey = cellKey(target, mode, 'baseline', fraction);
          const mocoScores = scores.get(mocoKey);
          const baselineScores = scores.get(baselineKey);
          return {
            fraction,
            moco: cells.get(mocoKey)?.auc ?? null,
            baseline: cells.get(baselineKey)?.auc ?? null,
            difference:
              mocoScores && baselineScores
                ? bootstrapAucDifference(mocoScores, baselineScores, test.labels, bootstrap)
                : null,
            mocoDraws: cells.get(mocoKey)?.draws.length ?? 0,
            baselineDraws: cells.get(baselineKey)?.draws.length ?? 0,
          };
        });
      tables.push({ target, task: test.summary.task, mode, rows });
    }
  }

  for (const target of targetNames) {
    // Every cell of a target sees the same resamples, so any one of them tells.
    const redrawn = [...cells.values()].find((c) => c.target === target && c.auc !== null)?.auc?.redrawn ?? 0;
    if (redrawn > 0) {
      notes.push(
        `Target '${target}': ${redrawn} bootstrap resamples held a single class and were drawn again; ` +
          'its test set is small, so its intervals are approximate.',
      );
    }
  }

  const report: StudyReport = {
    name: results.name,
    createdAt: results.createdAt,
    settings: results.settings,
    bootstrap,
    aggregation,
    initNames: { moco: 'MoCo', baseline: 'Baseline', ...options.initNames },
    targets: [...tests.values()].map((t) => t.summary),
    tables,
    cells: [...cells.values()],
    timings: results.timings ?? {},
    notes,
    figures: [],
  };
  return { report, scores, labels };
}

/** A paired difference assumes both inits trained on the same subsets; say where they did not. */
function noteDifferentSubsets(cells: readonly CellSummary[], notes: string[]): void {
  for (const moco of cells) {
    if (moco.init !== 'moco') continue;
    const baseline = cells.find(
      (c) => c.init === 'baseline' && c.target === moco.target && c.mode === moco.mode && c.fraction === moco.fraction,
    );
    if (baseline === undefined) continue;
    const differing = moco.draws
      .filter((d) => baseline.draws.some((b) => b.draw === d.draw && b.subset !== d.subset))
      .map((d) => d.draw);
    if (differing.length > 0) {
      notes.push(
        `${moco.target}, ${moco.mode}, ${formatFraction(moco.fraction)}: ` +
          `${differing.length === 1 ? 'draw' : 'draws'} ${differing.join(', ')} of MoCo and ` +
          'baseline were trained on different subsets, so their difference also carries the subsets’ variation.',
      );
    }
  }
}

/**
 * Computes every number of the report from the study's raw test scores,
 * without writing anything. Cells that are missing or still running are
 * `null`; cells that cannot be scored say why in `problem` and `notes`.
 */
export function summarizeStudy(results: StudyResults, options: ReportOptions = {}): StudyReport {
  return score(results, options).report;
}
