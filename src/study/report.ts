/**
 * The study's report: per target and mode, the test AUC of every label
 * fraction for MoCo and baseline initializations with 95% bootstrap CIs, the
 * MoCo − baseline difference with its paired bootstrap CI, the paper's
 * figures, the exact settings, each cell's draws and the timings — written as
 * `report.md`, a self-contained `report.html`, `figures/` (SVG, PNG and the
 * Vega-Lite specs) and `report.json` holding every number of the tables.
 *
 * Every number is computed here from the raw test scores, never carried over
 * from training logs: a study's score is the max over its images, a cell's AUC
 * the mean over its draws, and the CI resamples the test set with the same
 * seed for every cell of a target, so the paired difference sees the same
 * resampled indices for both initializations.
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import {
  aggregateByStudy,
  auc,
  bootstrapAuc,
  bootstrapAucDifference,
  rocCurve,
  type BootstrapOptions,
  type Interval,
} from '../eval/index.js';
import { toHtml, toMarkdown, type Block } from './document.js';
import {
  aucByFractionSpec,
  renderFigure,
  rocSpec,
  type FractionPanel,
  type InitNames,
  type RocPanel,
  type RocSeries,
} from './figures.js';
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
  /** Fractions to list per target even before any of their cells has finished. */
  fractions?: Record<string, readonly number[]>;
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

const MODES: readonly TrainingMode[] = ['linear', 'finetune'];
const MODE_TITLES: Record<TrainingMode, string> = { linear: 'Linear probe', finetune: 'Fine-tuning (end to end)' };
const DASH = '—';

/** A fraction as a percentage without trailing zeros: 0.001 → `0.1%`, 0.0625 → `6.25%`. */
export function formatFraction(fraction: number): string {
  return `${Number((fraction * 100).toPrecision(6))}%`;
}

/** `0.776 (0.741, 0.810)`, or `—` when there is no interval. */
export function formatInterval(interval: Interval | null): string {
  if (interval === null) return DASH;
  return `${interval.estimate.toFixed(3)} (${interval.lower.toFixed(3)}, ${interval.upper.toFixed(3)})`;
}

/** Like {@link formatInterval} with the estimate's sign always shown: `+0.092 (0.061, 0.130)`. */
export function formatDifference(interval: Interval | null): string {
  if (interval === null) return DASH;
  const sign = interval.estimate >= 0 ? '+' : '';
  return `${sign}${formatInterval(interval)}`;
}

function formatSeconds(seconds: number): string {
  const total = Math.round(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return `${h}:${String(m).padStart(2, '0')}:${String(s).padStart(2, '0')}`;
}

const cellKey = (target: string, mode: string, init: string, fraction: number): string =>
  `${target}/${mode}/${init}/${fraction}`;

const subsetHash = (ids: readonly string[]): string =>
  createHash('sha256')
    .update([...ids].sort().join('\n'))
    .digest('hex')
    .slice(0, 12);

/** A target's test set ready to score: labels per scored unit and how image scores map onto them. */
interface PreparedTest {
  summary: TargetSummary;
  labels: Float64Array;
  /** Scores per image → scores per scored unit. */
  collapse: (scores: ArrayLike<number>) => Float64Array;
}

function prepareTest(results: StudyResults, target: string, task: string, perStudy: boolean): PreparedTest {
  const test = results.tests[target];
  const summary: TargetSummary = { target, task, images: 0, studies: 0, positives: 0, negatives: 0 };
  const fail = (problem: string): PreparedTest => ({
    summary: { ...summary, problem },
    labels: new Float64Array(0),
    collapse: () => new Float64Array(0),
  });
  if (test === undefined) return fail(`results.tests has no test set for target '${target}'`);
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
  let collapse: (scores: ArrayLike<number>) => Float64Array;
  if (perStudy) {
    try {
      labels = aggregateByStudy(test.studyIds, test.labels, test.labels).labels;
    } catch (error) {
      return fail(`tests.${target}: ${(error as Error).message}`);
    }
    collapse = (scores) => aggregateByStudy(test.studyIds, scores, test.labels).scores;
  } else {
    labels = Float64Array.from(test.labels);
    collapse = (scores) => Float64Array.from(scores);
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
  return { summary, labels, collapse };
}

/** Scores one cell: checks its draws and collapses their scores; throws a message naming the cell. */
function scoreDraws(cell: StudyCell, test: PreparedTest, images: number): Float64Array[] {
  const name = `cell ${cellKey(cell.target, cell.mode, cell.init, cell.fraction)}`;
  return cell.draws.map((draw) => {
    if (draw.scores.length !== images) {
      throw new RangeError(`${name}: draw ${draw.draw} has ${draw.scores.length} scores for ${images} test images`);
    }
    const bad = draw.scores.findIndex((s) => !Number.isFinite(s));
    if (bad >= 0) throw new RangeError(`${name}: draw ${draw.draw} has score ${String(draw.scores[bad])} at ${bad}`);
    return test.collapse(draw.scores);
  });
}

/** Computed numbers plus what the figures need beyond them. */
interface Scored {
  report: StudyReport;
  /** Collapsed scores per cell key, one array per draw (in draw order). */
  scores: Map<string, Float64Array[]>;
  labels: Map<string, Float64Array>;
}

/** Targets in report order: the source first, then as they first appear. */
function orderedTargets(results: StudyResults): string[] {
  const targets = [...new Set([...Object.keys(results.tests), ...results.cells.map((c) => c.target)])];
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
    const scores = scoreDraws({ ...cell, draws }, test, test.summary.images);
    scores.forEach((s, i) => ((summary.draws[i] as DrawSummary).testAuc = auc(s, test.labels)));
    summary.auc = bootstrapAuc(scores, test.labels, bootstrap);
    return { summary, scores };
  } catch (error) {
    summary.problem = (error as Error).message;
    return { summary };
  }
}

function score(results: StudyResults, options: ReportOptions): Scored {
  const bootstrap = { replicates: options.replicates ?? 1000, seed: options.seed ?? 0, level: options.level ?? 0.95 };
  const aggregation = options.aggregate ?? 'study';
  const notes: string[] = [];

  const targetNames = orderedTargets(results);
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

  const modes = MODES.filter((mode) => results.cells.some((c) => c.mode === mode));
  const tables: ComparisonTable[] = [];
  for (const target of targetNames) {
    const fractions = new Set<number>(options.fractions?.[target] ?? []);
    for (const cell of results.cells) if (cell.target === target) fractions.add(cell.fraction);
    const test = tests.get(target) as PreparedTest;
    for (const mode of modes) {
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

function slug(text: string): string {
  return (
    text
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-|-$/g, '') || 'target'
  );
}

function targetTitle(target: string, task: string): string {
  if (task === '') return target === 'source' ? 'Source' : target;
  return target === 'source' ? `Source: ${task}` : `${target}: ${task}`;
}

interface FigureFile {
  name: string;
  caption: string;
  svg: string;
  png: Buffer;
  spec: unknown;
}

async function drawFigures(scored: Scored, options: ReportOptions): Promise<FigureFile[]> {
  const { report } = scored;
  const names = report.initNames;
  const level = `${Number((report.bootstrap.level * 100).toPrecision(4))}%`;
  const figures: FigureFile[] = [];

  const panels: FractionPanel[] = report.tables.map((table) => ({
    title: `${targetTitle(table.target, table.task)} · ${MODE_TITLES[table.mode]}`,
    points: table.rows.flatMap((row) =>
      (['moco', 'baseline'] as const).flatMap((init) => {
        const interval = row[init];
        return interval === null ? [] : [{ init, fraction: row.fraction, ...interval }];
      }),
    ),
  }));
  const drawn = panels.filter((p) => p.points.length > 0);
  if (drawn.length > 0) {
    const modes = new Set(report.tables.map((t) => t.mode)).size;
    const spec = aucByFractionSpec(drawn, names, {
      columns: Math.max(1, Math.min(2, modes)),
      title: 'Test AUC by label fraction',
      subtitle: `Mean over draws; bars: ${level} bootstrap CI (${report.bootstrap.replicates} resamples)`,
    });
    const rendered = await renderFigure(spec);
    figures.push({
      name: 'auc-by-fraction',
      caption: `Test AUC against label fraction (log scale), ${names.moco} and ${names.baseline}, with ${level} CIs.`,
      spec,
      ...rendered,
    });
  }

  const used = new Set<string>();
  for (const table of report.tables) {
    const scoredFractions = table.rows
      .filter((row) => row.moco !== null || row.baseline !== null)
      .map((row) => row.fraction);
    if (scoredFractions.length === 0) continue;
    const chosen = [...new Set([scoredFractions[0] as number, scoredFractions[scoredFractions.length - 1] as number])];
    const rocPanels: RocPanel[] = chosen.map((fraction) => {
      const series: RocSeries[] = [];
      const notes: RocPanel['notes'] = [];
      for (const init of ['moco', 'baseline'] as const) {
        const key = cellKey(table.target, table.mode, init, fraction);
        const perDraw = scored.scores.get(key);
        const labels = scored.labels.get(key);
        const cell = report.cells.find((c) => cellKey(c.target, c.mode, c.init, c.fraction) === key);
        if (perDraw === undefined || labels === undefined || cell === undefined) continue;
        const shown = options.rocDraws === 'all' ? perDraw.length : 1;
        for (let i = 0; i < shown; i++) {
          series.push({
            init,
            draw: (cell.draws[i] as DrawSummary).draw,
            points: rocCurve(perDraw[i] as Float64Array, labels),
          });
        }
        const first = cell.draws[0] as DrawSummary;
        notes.push({
          init,
          text:
            shown === 1
              ? `${names[init]}: AUC ${(first.testAuc as number).toFixed(3)} (draw ${first.draw})`
              : `${names[init]}: mean AUC ${(cell.auc as Interval).estimate.toFixed(3)} (${shown} draws)`,
        });
      }
      return { title: `${formatFraction(fraction)} of labels`, series, notes };
    });
    let name = `roc-${slug(table.target)}-${table.mode}`;
    for (let k = 2; used.has(name); k++) name = `roc-${slug(table.target)}-${k}-${table.mode}`;
    used.add(name);
    const which = options.rocDraws === 'all' ? 'every draw' : 'the first draw of each cell';
    const spec = rocSpec(rocPanels, names, {
      title: `ROC curves · ${targetTitle(table.target, table.task)} · ${MODE_TITLES[table.mode]}`,
      subtitle: `Smallest and largest label fraction; ${which}`,
    });
    const rendered = await renderFigure(spec);
    figures.push({
      name,
      caption: `ROC curves, ${targetTitle(table.target, table.task)}, ${MODE_TITLES[table.mode].toLowerCase()}: ${which}.`,
      spec,
      ...rendered,
    });
  }
  return figures;
}

function comparisonBlock(table: ComparisonTable, report: StudyReport): Block {
  const names = report.initNames;
  const level = `${Number((report.bootstrap.level * 100).toPrecision(4))}% CI`;
  return {
    kind: 'table',
    header: [
      'Label fraction',
      `${names.moco} AUC (${level})`,
      `${names.baseline} AUC (${level})`,
      `${names.moco} − ${names.baseline} (${level})`,
      `Draws (${names.moco} / ${names.baseline})`,
    ],
    rows: table.rows.map((row) => [
      formatFraction(row.fraction),
      formatInterval(row.moco),
      formatInterval(row.baseline),
      formatDifference(row.difference),
      `${row.mocoDraws} / ${row.baselineDraws}`,
    ]),
    rightAligned: [true, true, true, true, true],
  };
}

function buildBlocks(report: StudyReport, figures: readonly FigureFile[], options: ReportOptions): Block[] {
  const names = report.initNames;
  const { replicates, seed, level } = report.bootstrap;
  const percent = `${Number((level * 100).toPrecision(4))}%`;
  const blocks: Block[] = [{ kind: 'heading', level: 1, text: `Study report: ${report.name}` }];
  blocks.push({
    kind: 'paragraph',
    text:
      `Study started ${report.createdAt}. Test AUC of ${names.moco}-pretrained and ${names.baseline} models ` +
      'at each label fraction, with a linear probe and with end-to-end fine-tuning.',
  });

  const headline = report.tables.flatMap((table) => {
    const row = table.rows.find((r) => r.difference !== null);
    if (row === undefined) return [];
    return [
      `${targetTitle(table.target, table.task)}, ${MODE_TITLES[table.mode].toLowerCase()}, ` +
        `${formatFraction(row.fraction)} of labels: ${names.moco} − ${names.baseline} = ` +
        `**${formatDifference(row.difference)}**`,
    ];
  });
  if (headline.length > 0) {
    blocks.push({ kind: 'heading', level: 2, text: 'Summary: smallest label fraction' });
    blocks.push({ kind: 'list', items: headline });
  }
  if (report.notes.length > 0) {
    blocks.push({ kind: 'heading', level: 2, text: 'Notes' });
    blocks.push({ kind: 'list', items: report.notes });
  }

  blocks.push({ kind: 'heading', level: 2, text: 'Test AUC by label fraction' });
  const unit = report.aggregation === 'study' ? 'study (the max over its images)' : 'image';
  blocks.push({
    kind: 'paragraph',
    text:
      `Each cell's AUC is the mean over its draws, scored per ${unit}. ${percent} CIs: ${replicates} bootstrap ` +
      `resamples of the test set (seed ${seed}), the mean over draws recomputed in each, percentiles ` +
      `${Number((((1 - level) / 2) * 100).toPrecision(4))} and ${Number((((1 + level) / 2) * 100).toPrecision(4))}. ` +
      `The difference is paired: the same resampled indices for both initializations. ${DASH} marks a cell ` +
      'not (yet) scored.',
  });
  for (const target of report.targets) {
    const tables = report.tables.filter((t) => t.target === target.target);
    if (tables.length === 0) continue;
    blocks.push({ kind: 'heading', level: 3, text: targetTitle(target.target, target.task) });
    if (target.problem !== undefined) {
      blocks.push({ kind: 'paragraph', text: `**Not scored:** ${target.problem}.` });
    } else {
      const scoredUnit = report.aggregation === 'study' ? 'studies' : 'images';
      blocks.push({
        kind: 'paragraph',
        text:
          `Test set: ${target.images} images, ${target.studies} ${scoredUnit} ` +
          `(${target.positives} positive, ${target.negatives} negative).`,
      });
    }
    for (const table of tables) {
      blocks.push({ kind: 'paragraph', text: `**${MODE_TITLES[table.mode]}**` });
      blocks.push(comparisonBlock(table, report));
    }
  }

  if (figures.length > 0) {
    blocks.push({ kind: 'heading', level: 2, text: 'Figures' });
    for (const figure of figures) {
      blocks.push({
        kind: 'figure',
        caption: figure.caption,
        svg: figure.svg,
        png: `figures/${figure.name}.png`,
        svgFile: `figures/${figure.name}.svg`,
      });
    }
  }

  blocks.push({ kind: 'heading', level: 2, text: 'Cells: draws, subsets and timings' });
  blocks.push({
    kind: 'paragraph',
    text:
      'The training ids of every draw are in `subsets.json` (keyed target/mode/init/fraction/draw); ' +
      '`report.json` gives each subset a hash, equal for equal subsets.',
  });
  blocks.push({
    kind: 'table',
    header: ['Target', 'Mode', 'Init', 'Fraction', 'Training images per draw', 'Val AUC', 'Test AUC', 'Seconds'],
    rows: report.cells
      .slice()
      .sort(
        (a, b) =>
          report.targets.findIndex((t) => t.target === a.target) -
            report.targets.findIndex((t) => t.target === b.target) ||
          MODES.indexOf(a.mode) - MODES.indexOf(b.mode) ||
          a.fraction - b.fraction ||
          (a.init === b.init ? 0 : a.init === 'moco' ? -1 : 1),
      )
      .map((c) => [
        c.target,
        c.mode,
        names[c.init],
        formatFraction(c.fraction),
        c.draws.length === 0 ? DASH : c.draws.map((d) => d.trainSize).join(', '),
        c.draws.length === 0 ? DASH : c.draws.map((d) => d.valAuc.toFixed(3)).join(', '),
        c.draws.length === 0 ? DASH : c.draws.map((d) => (d.testAuc === null ? DASH : d.testAuc.toFixed(3))).join(', '),
        c.seconds.toFixed(1),
      ]),
    rightAligned: [false, false, false, true, true, true, true, true],
  });

  const timings = Object.entries(report.timings);
  if (timings.length > 0) {
    blocks.push({ kind: 'heading', level: 2, text: 'Timings' });
    blocks.push({
      kind: 'table',
      header: ['Phase', 'Seconds', 'h:mm:ss'],
      rows: timings.map(([phase, seconds]) => [phase, seconds.toFixed(1), formatSeconds(seconds)]),
      rightAligned: [false, true, true],
    });
  }

  blocks.push({ kind: 'heading', level: 2, text: 'Settings' });
  blocks.push({ kind: 'paragraph', text: 'The study ran with exactly these settings:' });
  blocks.push({ kind: 'code', language: 'json', text: JSON.stringify(report.settings, null, 2) });
  blocks.push({
    kind: 'paragraph',
    text:
      `Report: ${replicates} bootstrap resamples, seed ${seed}, level ${level}, scored per ${report.aggregation}` +
      `${options.rocDraws === 'all' ? ', ROC curves of every draw' : ''}.`,
  });
  return blocks;
}

/** What {@link writeReport} wrote. */
export interface WrittenReport {
  report: StudyReport;
  /** Paths written, absolute. */
  files: string[];
}

/**
 * Writes the report of `results` into `dir`: `report.md`, `report.html`,
 * `report.json`, `subsets.json` and `figures/` (`.svg`, `.png`, `.vl.json`).
 * Partial results (a grid still running) give a partial report.
 */
export async function writeReport(
  results: StudyResults,
  dir: string,
  options: ReportOptions = {},
): Promise<WrittenReport> {
  const scored = score(results, options);
  const figures = options.figures === false ? [] : await drawFigures(scored, options);
  const report = scored.report;
  report.figures = figures.flatMap((f) => [`figures/${f.name}.svg`, `figures/${f.name}.png`]);

  const files: string[] = [];
  const write = async (path: string, data: string | Buffer): Promise<void> => {
    await writeFile(path, data);
    files.push(path);
  };
  await mkdir(dir, { recursive: true });
  if (figures.length > 0) await mkdir(join(dir, 'figures'), { recursive: true });
  for (const figure of figures) {
    await write(join(dir, 'figures', `${figure.name}.svg`), figure.svg);
    await write(join(dir, 'figures', `${figure.name}.png`), figure.png);
    await write(join(dir, 'figures', `${figure.name}.vl.json`), `${JSON.stringify(figure.spec)}\n`);
  }

  const subsets: Record<string, string[]> = {};
  for (const cell of results.cells) {
    for (const draw of cell.draws) {
      subsets[`${cellKey(cell.target, cell.mode, cell.init, cell.fraction)}/${draw.draw}`] = draw.trainIds;
    }
  }
  await write(join(dir, 'subsets.json'), `${JSON.stringify(subsets)}\n`);

  const blocks = buildBlocks(report, figures, options);
  await write(join(dir, 'report.md'), toMarkdown(blocks));
  await write(join(dir, 'report.html'), toHtml(`Study report: ${report.name}`, blocks));
  await write(join(dir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
  return { report, files };
}
