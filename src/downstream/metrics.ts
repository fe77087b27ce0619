/**
 * A downstream run's metrics: per label fraction, each draw's AUC, their mean
 * and the bootstrap CI of the mean (per image, and per study where studies
 * hold several images), and the summary printed at the end of a run.
 */
import { type Interval } from '../eval/bootstrap.js';
import { scoreOverDraws } from '../eval/draws.js';
import { type DownstreamMode, type DownstreamResult } from './cell.js';

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

/** The metrics as lines of text. */
export function summaryTable(metrics: DownstreamMetrics): string {
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
