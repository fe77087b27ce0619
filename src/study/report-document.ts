/**
 * The report as a document: headings, the comparison tables, figures, cells,
 * settings and timings, as blocks that `document.ts` turns into Markdown and HTML.
 */
import { type Block } from './document.js';
import {
  DASH,
  formatDifference,
  formatFraction,
  formatInterval,
  formatSeconds,
  MODE_TITLES,
  MODES,
  targetTitle,
} from './format.js';
import { type FigureFile } from './report-figures.js';
import type { ComparisonTable, ReportOptions, StudyReport } from './scoring.js';

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

/** Which linear probe the study's settings name (MoCo-CXR's Adam epochs unless `training.probe` says otherwise). */
function probeSentence(settings: Record<string, unknown>): string {
  const training = settings.training as { probe?: string } | undefined;
  return training?.probe === 'lbfgs'
    ? 'Linear probe: L2-regularized logistic regression on standardized frozen features, fitted to ' +
        'convergence by L-BFGS, its L2 strength chosen on validation AUC (`probe: lbfgs`).'
    : "Linear probe: MoCo-CXR's protocol, a linear layer trained by Adam for a fixed number of epochs " +
        '(`probe: adam`).';
}

/** The report document of `report` and its figures. */
export function buildBlocks(report: StudyReport, figures: readonly FigureFile[], options: ReportOptions): Block[] {
  const names = report.initNames;
  const { replicates, seed, level } = report.bootstrap;
  const percent = `${Number((level * 100).toPrecision(4))}%`;
  const blocks: Block[] = [{ kind: 'heading', level: 1, text: `Study report: ${report.name}` }];
  blocks.push({
    kind: 'paragraph',
    text:
      `Study started ${report.createdAt}. Test AUC of ${names.moco}-pretrained and ${names.baseline} models ` +
      'at each label fraction, with a linear probe and with end-to-end fine-tuning. ' +
      probeSentence(report.settings),
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
