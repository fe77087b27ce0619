/**
 * `moco-cxr demo`: the study in miniature on built-in phantom radiographs —
 * MoCo pretraining, linear probes and fine-tuning at a few label fractions
 * against random initialization, and the report — with progress throughout.
 */
import { resolve } from 'node:path';

import { type Interval } from '../eval/bootstrap.js';
import { demoStudyConfig } from '../study/demo.js';
import { formatDifference, formatFraction, formatInterval } from '../study/report.js';
import { runStudy } from '../study/grid.js';
import type { Command } from './command.js';
import { parseCommandLine, withInterrupt } from './options.js';

export const command: Command = {
  async run(argv) {
    const { values, positionals } = parseCommandLine(argv, {
      out: { type: 'string', default: 'runs/demo', value: 'a folder' },
      quick: { type: 'boolean' },
      seed: { type: 'string', default: '0', value: 'a non-negative integer' },
      plain: { type: 'boolean' },
      help: { type: 'boolean' },
    });
    if (positionals.length > 0) throw new TypeError(`unexpected argument '${positionals[0]}'`);
    if (values.help === true) {
      console.log('usage: moco-cxr demo [--quick] [--out DIR] [--seed S] [--plain]');
      return 0;
    }
    const seed = Number(values.seed);
    if (!Number.isInteger(seed) || seed < 0)
      throw new TypeError(`--seed must be a non-negative integer, got '${values.seed}'`);
    const out = resolve(values.out ?? 'runs/demo');
    const config = demoStudyConfig({ out, quick: values.quick === true, seed });
    const started = performance.now();
    const outcome = await withInterrupt((signal) => runStudy(config, { signal, plainProgress: values.plain === true }));
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
