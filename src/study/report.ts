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
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { toHtml, toMarkdown } from './document.js';
import { cellKey } from './format.js';
import { buildBlocks } from './report-document.js';
import { drawFigures } from './report-figures.js';
import type { StudyResults } from './results.js';
import { score, type ReportOptions, type StudyReport } from './scoring.js';

export { formatDifference, formatFraction, formatInterval } from './format.js';
export {
  summarizeStudy,
  type CellSummary,
  type ComparisonRow,
  type ComparisonTable,
  type DrawSummary,
  type ReportOptions,
  type StudyReport,
  type TargetSummary,
} from './scoring.js';

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
