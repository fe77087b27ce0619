/**
 * The two linear probes side by side on one starting point: MoCo-CXR's Adam
 * protocol and the converged logistic regression (L-BFGS, L2 on validation),
 * on the same frozen features and the same label draws; test AUC (mean over
 * draws, bootstrap CI), the paired difference, and wall time per cell.
 *
 *   node --import tsx bench/experiments/probes.ts --init moco:RUN/last.pt \
 *     --train tb:DATA/train --test tb:DATA/test --val-split 0.15 --fractions 0.0625,0.25,1 --draws 4 \
 *     --image-size 64 --cache-size 72 --normalize moco-cxr
 */
import { parseArgs } from 'node:util';

import { log, TARGET_DATA_OPTIONS, targetData } from './target-data.js';
import { backboneFeatures } from '../../src/downstream/index.js';
import { type LinearProbeKind, linearProbe } from '../../src/downstream/linear.js';
import { type NormalizationName } from '../../src/data/augment.js';
import { bootstrapAuc, bootstrapAucDifference } from '../../src/eval/bootstrap.js';

const { values } = parseArgs({
  options: {
    ...TARGET_DATA_OPTIONS,
    init: { type: 'string', default: 'random' },
    fractions: { type: 'string', default: '0.0625,0.25,1' },
    draws: { type: 'string', default: '4' },
    'image-size': { type: 'string', default: '64' },
    normalize: { type: 'string', default: 'moco-cxr' },
    'features-dir': { type: 'string' },
    label: { type: 'string', default: '' },
  },
});
if (values.train === undefined || values.test === undefined) throw new Error('--train and --test are required');

const data = await targetData(values);
const features = await backboneFeatures(data, {
  init: values.init,
  arch: 'resnet18',
  imageSize: Number(values['image-size']),
  normalize: values.normalize as NormalizationName,
  seed: 0,
  dir: values['features-dir'],
  log,
});
const f3 = (x: number): string => x.toFixed(3);
try {
  for (const fraction of values.fractions.split(',').map(Number)) {
    const draws = fraction === 1 ? 1 : Number(values.draws);
    const scores: Record<LinearProbeKind, number[][]> = { adam: [], lbfgs: [] };
    const seconds: Record<LinearProbeKind, number> = { adam: 0, lbfgs: 0 };
    const l2: number[] = [];
    let labels: number[] = [];
    for (let draw = 0; draw < draws; draw++) {
      for (const probe of ['adam', 'lbfgs'] as const) {
        const cell = await linearProbe({
          features,
          task: data.task,
          fraction,
          draw,
          seed: 0,
          probe,
          plainProgress: true,
          log,
        });
        scores[probe].push(cell.test.scores);
        seconds[probe] += cell.seconds;
        labels = cell.test.labels;
        if (cell.l2 !== undefined) l2.push(cell.l2);
      }
    }
    const adam = bootstrapAuc(scores.adam, labels, { replicates: 1000, seed: 0 });
    const lbfgs = bootstrapAuc(scores.lbfgs, labels, { replicates: 1000, seed: 0 });
    const diff = bootstrapAucDifference(scores.lbfgs, scores.adam, labels, { replicates: 1000, seed: 0 });
    console.log(
      `| ${values.label} | ${values.init === 'random' ? 'random' : 'MoCo'} | ${fraction * 100}% | ${draws} | ` +
        `${f3(adam.estimate)} (${f3(adam.lower)}, ${f3(adam.upper)}) | ${f3(lbfgs.estimate)} (${f3(lbfgs.lower)}, ${f3(lbfgs.upper)}) | ` +
        `${diff.estimate >= 0 ? '+' : '−'}${f3(Math.abs(diff.estimate))} (${f3(diff.lower)}, ${f3(diff.upper)}) | ` +
        `${(seconds.adam / draws).toFixed(2)} s | ${(seconds.lbfgs / draws).toFixed(2)} s | ${l2.map((v) => v.toExponential(0)).join(', ')} |`,
    );
  }
} finally {
  features.dispose();
}
