/**
 * `moco-cxr demo`: the study in miniature on built-in phantom radiographs —
 * MoCo pretraining, linear probes and fine-tuning at a few label fractions
 * against random initialization, and the report — with progress throughout.
 */
import { resolve } from 'node:path';

import { type Interval } from '../eval/bootstrap.js';
import { flagsOf, resolve as resolveSettings } from '../config/settings.js';
import { DEMO_SETTINGS, demoStudyConfig } from '../study/demo.js';
import { formatDifference, formatFraction, formatInterval } from '../study/report.js';
import { runStudy } from '../study/grid.js';
import type { Command } from './command.js';
import { helpText, parseFlags, withInterrupt } from './options.js';

const FLAGS = flagsOf(DEMO_SETTINGS);

export const command: Command = {
  async run(argv) {
    const { values: given, help, positionals } = parseFlags(argv, FLAGS);
    if (positionals.length > 0) throw new TypeError(`unexpected argument '${positionals[0]}'`);
    if (help) {
      console.log(helpText('usage: moco-cxr demo [options]', FLAGS));
      return 0;
    }
    const values = resolveSettings(DEMO_SETTINGS, given);
    const config = demoStudyConfig({ out: resolve(values.out), quick: values.quick, seed: values.seed });
    const started = performance.now();
    const outcome = await withInterrupt((signal) => runStudy(config, { signal, plainProgress: values.plain }));
    const minutes = (performance.now() - started) / 60000;
    console.log(`${outcome.message} (${minutes.toFixed(1)} min)`);
    if (outcome.report !== undefined) {
      for (const table of outcome.report.report.tables) {
        console.log(`\n${table.target} (${table.task}), ${table.mode}: AUC  MoCo | baseline | MoCo - baseline`);
        for (const row of table.rows) {
          const auc = (i: Interval | null): string => (i === null ? '—' : formatInterval(i));
          const diff = row.difference === null ? '—' : formatDifference(row.difference);
          console.log(
            `  ${formatFraction(row.fraction).padStart(6)}  ${auc(row.moco)} | ${auc(row.baseline)} | ${diff}`,
          );
        }
      }
    }
    return outcome.status === 'finished' ? 0 : outcome.status === 'interrupted' ? 130 : 1;
  },
};
