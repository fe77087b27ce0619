/**
 * The report's figures: test AUC by label fraction for every (target, mode),
 * and ROC curves at the smallest and largest fraction of each.
 */
import { rocCurve, type Interval } from '../eval/index.js';
import {
  aucByFractionSpec,
  renderFigure,
  rocSpec,
  type FractionPanel,
  type RocPanel,
  type RocSeries,
} from './figures.js';
import { cellKey, formatFraction, MODE_TITLES, targetTitle } from './format.js';
import type { DrawSummary, ReportOptions, Scored } from './scoring.js';

function slug(text: string): string {
  return (
    text
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-|-$/g, '') || 'target'
  );
}

/** One rendered figure: its file name (without extension), caption, SVG, PNG and Vega-Lite spec. */
export interface FigureFile {
  name: string;
  caption: string;
  svg: string;
  png: Buffer;
  spec: unknown;
}

/** Draws the figures of a scored study. */
export async function drawFigures(scored: Scored, options: ReportOptions): Promise<FigureFile[]> {
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
