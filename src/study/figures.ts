/**
 * The report's figures as Vega-Lite specifications, rendered on the server to
 * SVG by Vega (no browser, no canvas) and to PNG from that SVG by sharp
 * (librsvg). Two kinds, as in the paper: AUC against the label fraction on a
 * log axis with confidence bars for both initializations, one panel per
 * (target, mode); and ROC curves at chosen fractions.
 */
import type { TopLevelSpec } from 'vega-lite';

import type { RocPoint } from '../eval/index.js';
import type { Initialization } from './results.js';

/** Display names of the two initializations, in legend order. */
export interface InitNames {
  moco: string;
  baseline: string;
}

/** One plotted AUC with its interval. */
export interface FractionPoint {
  init: Initialization;
  fraction: number;
  estimate: number;
  lower: number;
  upper: number;
}

/** One panel of the AUC-by-fraction figure: a (target, mode). */
export interface FractionPanel {
  title: string;
  points: FractionPoint[];
}

/** One ROC curve: a draw of a cell. */
export interface RocSeries {
  init: Initialization;
  draw: number;
  points: RocPoint[];
}

/** One panel of a ROC figure: one fraction, curves of both initializations. */
export interface RocPanel {
  title: string;
  series: RocSeries[];
  /** One line of text per initialization, printed inside the panel (e.g. its AUC). */
  notes: { init: Initialization; text: string }[];
}

/** Colours that stay apart in grey print and for common colour blindness. */
const COLORS: Record<Initialization, string> = { moco: '#d1495b', baseline: '#3b6ea5' };
const SHAPES: Record<Initialization, string> = { moco: 'circle', baseline: 'square' };
const FONT = 'DejaVu Sans, Helvetica, Arial, sans-serif';

const BASE_CONFIG = {
  background: 'white',
  font: FONT,
  padding: 12,
  view: { stroke: '#c8ccd0' },
  title: { fontSize: 15, subtitleFontSize: 12, subtitleColor: '#555', anchor: 'start' as const, offset: 10 },
  axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal' as const, gridColor: '#eceff1' },
  header: { labelFontSize: 12, titleFontSize: 12 },
  legend: { labelFontSize: 12, titleFontSize: 12, titleFontWeight: 'normal' as const, symbolSize: 90 },
  concat: { spacing: 28 },
};

function colorEncoding(names: InitNames, legend = true): Record<string, unknown> {
  return {
    field: 'initName',
    type: 'nominal',
    title: 'Initialization',
    scale: { domain: [names.moco, names.baseline], range: [COLORS.moco, COLORS.baseline] },
    legend: legend ? { orient: 'bottom', direction: 'horizontal' } : null,
  };
}

/** Percent label of a fraction as Vega's expression language writes it: 0.001 → "0.1%". */
const PERCENT_LABEL = "format(datum.value * 100, '~g') + '%'";

/**
 * AUC against label fraction: one panel per (target, mode) in a grid of
 * `columns`, log x axis ticked at the fractions measured, points with 95% CI
 * bars, the two initializations nudged apart horizontally so their bars do
 * not overlap.
 */
export function aucByFractionSpec(
  panels: readonly FractionPanel[],
  names: InitNames,
  options: { columns: number; title: string; subtitle: string },
): TopLevelSpec {
  const views = panels.map((panel) => {
    const fractions = [...new Set(panel.points.map((p) => p.fraction))].sort((a, b) => a - b);
    const low = fractions[0] ?? 0.001;
    const high = fractions[fractions.length - 1] ?? 1;
    const span = Math.log10(high / low);
    const padDecades = Math.max(0.2, span * 0.09);
    const nudge = 10 ** Math.max(0.015, (span + 2 * padDecades) * 0.014);
    const values = panel.points.map((p) => ({
      initName: names[p.init],
      fraction: p.fraction,
      x: p.init === 'moco' ? p.fraction / nudge : p.fraction * nudge,
      estimate: p.estimate,
      lower: p.lower,
      upper: p.upper,
    }));
    const x = {
      field: 'x',
      type: 'quantitative',
      title: 'Label fraction (log scale)',
      scale: { type: 'log', domain: [low / 10 ** padDecades, high * 10 ** padDecades] },
      axis: { values: fractions, labelExpr: PERCENT_LABEL, grid: true, labelOverlap: 'greedy' },
    };
    const color = colorEncoding(names);
    return {
      title: { text: panel.title, fontSize: 13, fontWeight: 'normal' },
      width: 320,
      height: 230,
      data: { values },
      layer: [
        {
          mark: { type: 'errorbar', ticks: { size: 7 }, thickness: 1.5 },
          encoding: {
            x,
            y: { field: 'lower', type: 'quantitative', title: 'Test AUC (95% CI)', scale: { zero: false, padding: 6 } },
            y2: { field: 'upper' },
            color,
          },
        },
        {
          mark: { type: 'line', strokeWidth: 1.8, opacity: 0.85 },
          encoding: { x, y: { field: 'estimate', type: 'quantitative' }, color },
        },
        {
          mark: { type: 'point', filled: true, size: 70, opacity: 1 },
          encoding: {
            x,
            y: { field: 'estimate', type: 'quantitative' },
            color,
            shape: {
              field: 'initName',
              type: 'nominal',
              title: 'Initialization',
              scale: { domain: [names.moco, names.baseline], range: [SHAPES.moco, SHAPES.baseline] },
            },
            tooltip: [
              { field: 'initName', title: 'Init' },
              { field: 'fraction', format: '.2~%', title: 'Fraction' },
              { field: 'estimate', format: '.3f', title: 'AUC' },
              { field: 'lower', format: '.3f' },
              { field: 'upper', format: '.3f' },
            ],
          },
        },
      ],
    };
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: options.title, subtitle: options.subtitle },
    columns: options.columns,
    concat: views,
    config: BASE_CONFIG,
  } as TopLevelSpec;
}

/**
 * ROC curves: one panel per fraction, every series a line coloured by its
 * initialization (several draws of one init share its colour, drawn lighter),
 * the chance diagonal dashed, and each init's note inside the panel.
 */
export function rocSpec(panels: readonly RocPanel[], names: InitNames, options: { title: string; subtitle: string }) {
  const views = panels.map((panel) => {
    const draws = new Set(panel.series.map((s) => `${s.init}/${s.draw}`)).size;
    const several = draws > 2;
    const values = panel.series.flatMap((s) =>
      s.points.map((p, order) => ({
        initName: names[s.init],
        series: `${s.init}/${s.draw}`,
        order,
        fpr: p.falsePositiveRate,
        tpr: p.truePositiveRate,
      })),
    );
    const notes = panel.notes.map((note, i) => ({
      initName: names[note.init],
      text: note.text,
      fpr: 0.97,
      tpr: 0.05 + 0.075 * (panel.notes.length - 1 - i),
    }));
    const axis = { values: [0, 0.2, 0.4, 0.6, 0.8, 1], grid: true, labelFlush: false };
    return {
      title: { text: panel.title, fontSize: 13, fontWeight: 'normal' },
      width: 270,
      height: 270,
      layer: [
        {
          data: { values: [{ a: 0, b: 0, a2: 1, b2: 1 }] },
          mark: { type: 'rule', strokeDash: [4, 4], color: '#9aa0a6' },
          encoding: {
            x: { field: 'a', type: 'quantitative', scale: { domain: [0, 1] } },
            y: { field: 'b', type: 'quantitative', scale: { domain: [0, 1] } },
            x2: { field: 'a2' },
            y2: { field: 'b2' },
          },
        },
        {
          data: { values },
          mark: { type: 'line', strokeWidth: several ? 1.2 : 2, opacity: several ? 0.55 : 0.95 },
          encoding: {
            x: { field: 'fpr', type: 'quantitative', title: 'False positive rate', axis },
            y: { field: 'tpr', type: 'quantitative', title: 'True positive rate', axis },
            color: colorEncoding(names, false),
            detail: { field: 'series', type: 'nominal' },
            order: { field: 'order', type: 'quantitative' },
          },
        },
        {
          data: { values: notes },
          mark: { type: 'text', align: 'right', baseline: 'middle', fontSize: 11.5 },
          encoding: {
            x: { field: 'fpr', type: 'quantitative' },
            y: { field: 'tpr', type: 'quantitative' },
            text: { field: 'text' },
            color: colorEncoding(names, false),
          },
        },
      ],
    };
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: options.title, subtitle: options.subtitle },
    hconcat: views,
    config: BASE_CONFIG,
  } as TopLevelSpec;
}

/**
 * Advance widths (per 1000 em) of printable ASCII in DejaVu Sans and DejaVu
 * Sans Bold, the font the figures name first. Without a canvas, Vega guesses
 * every character at 0.8 em, which leaves wide empty margins and makes its
 * label-overlap test drop axis labels that would fit; real widths keep the
 * layout tight.
 */
const REGULAR_WIDTHS = [
  317, 400, 459, 837, 636, 950, 779, 274, 390, 390, 500, 837, 317, 360, 317, 336, 636, 636, 636, 636, 636, 636, 636,
  636, 636, 636, 336, 336, 837, 837, 837, 530, 1000, 684, 686, 698, 770, 631, 575, 774, 751, 294, 294, 655, 557, 862,
  748, 787, 603, 787, 694, 634, 610, 731, 684, 988, 685, 610, 685, 390, 336, 390, 837, 500, 500, 612, 634, 549, 634,
  615, 352, 634, 633, 277, 277, 579, 277, 974, 633, 611, 634, 634, 411, 520, 392, 633, 591, 817, 591, 591, 524, 636,
  336, 636, 837,
];
const BOLD_WIDTHS = [
  348, 456, 520, 837, 695, 1001, 872, 306, 457, 457, 522, 837, 379, 415, 379, 365, 695, 695, 695, 695, 695, 695, 695,
  695, 695, 695, 399, 399, 837, 837, 837, 580, 1000, 773, 762, 733, 830, 683, 683, 820, 836, 372, 372, 774, 637, 995,
  836, 850, 732, 850, 770, 720, 682, 812, 773, 1103, 770, 724, 725, 457, 365, 457, 837, 500, 500, 674, 715, 592, 715,
  678, 435, 715, 711, 342, 342, 665, 342, 1041, 711, 687, 715, 715, 493, 595, 478, 711, 651, 923, 645, 651, 582, 711,
  365, 711, 837,
];
/** The few non-ASCII characters the report's text uses: [regular, bold]. */
const OTHER_WIDTHS: Record<string, [number, number]> = {
  '−': [837, 837],
  '·': [317, 379],
  '—': [1000, 1000],
  '–': [500, 500],
  '’': [317, 379],
};

/** Width in pixels of `text` set in DejaVu Sans at `fontSize`. */
export function textWidth(text: string, fontSize: number, bold = false): number {
  const table = bold ? BOLD_WIDTHS : REGULAR_WIDTHS;
  let total = 0;
  for (const char of text) {
    const code = char.codePointAt(0) as number;
    total += table[code - 32] ?? OTHER_WIDTHS[char]?.[bold ? 1 : 0] ?? 640;
  }
  return (total * fontSize) / 1000;
}

interface TextItem {
  fontSize?: number;
  fontWeight?: string | number;
}

function measureText(item: TextItem, text: unknown): number {
  const value = typeof text === 'string' ? text.trim() : typeof text === 'number' ? String(text) : '';
  const weight = item.fontWeight;
  const bold = weight === 'bold' || weight === 'bolder' || (typeof weight === 'number' && weight >= 600);
  return textWidth(value, item.fontSize ?? 11, bold);
}

/** A rendered figure. */
export interface RenderedFigure {
  svg: string;
  png: Buffer;
}

/**
 * Renders a Vega-Lite spec to SVG and to PNG at `scale` times the SVG's size.
 * Vega and sharp load on first use, so importing the report costs nothing
 * until a figure is drawn.
 */
export async function renderFigure(spec: TopLevelSpec, scale = 2): Promise<RenderedFigure> {
  const [vega, vegaLite, sharpModule] = await Promise.all([import('vega'), import('vega-lite'), import('sharp')]);
  // Vega's documented hook for measuring text where no canvas is present.
  (vega as unknown as { textMetrics: { width: (item: TextItem, text: unknown) => number } }).textMetrics.width =
    measureText;
  const compiled = vegaLite.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    // librsvg reads the SVG at `density` dots per inch; 72 is one pixel per unit.
    const png = await sharpModule
      .default(Buffer.from(svg, 'utf8'), { density: 72 * scale })
      .png()
      .toBuffer();
    return { svg, png };
  } finally {
    view.finalize();
  }
}
