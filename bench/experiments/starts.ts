/**
 * Several starting points under one linear probe, on the same frozen-feature
 * protocol and the same label draws: test AUC per start (mean over draws,
 * bootstrap CI) and each start's paired difference from a reference start.
 * Used to compare pretraining variants (image against patient positives, one
 * pretraining length against another) without the fine-tuning cost.
 *
 *   node --import tsx bench/experiments/starts.ts \
 *     --starts random=random,image=RUN_A/last.pt,patient=RUN_B/last.pt --reference image \
 *     --train tb:DATA/train --test tb:DATA/test --val-split 0.15 --fractions 0.0625,0.25,1 --draws 4 \
 *     --image-size 64 --cache-size 72 --normalize moco-cxr --probe lbfgs
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
    starts: { type: 'string' },
    reference: { type: 'string' },
    fractions: { type: 'string', default: '0.0625,0.25,1' },
    draws: { type: 'string', default: '4' },
    'image-size': { type: 'string', default: '64' },
    normalize: { type: 'string', default: 'moco-cxr' },
    probe: { type: 'string', default: 'lbfgs' },
    label: { type: 'string', default: '' },
  },
});
if (values.train === undefined || values.test === undefined || values.starts === undefined)
  throw new Error('--starts, --train and --test are required');
const starts = values.starts.split(',').map((entry) => {
  const at = entry.indexOf('=');
  if (at <= 0) throw new Error(`--starts: expected LABEL=random|FILE, got '${entry}'`);
  return { label: entry.slice(0, at), init: entry.slice(at + 1) };
});
const reference = values.reference ?? starts[0]!.label;
if (!starts.some((s) => s.label === reference)) throw new Error(`--reference '${reference}' is not one of --starts`);
const probe = values.probe as LinearProbeKind;

const data = await targetData(values);
const f3 = (x: number): string => x.toFixed(3);
const signed = (x: number): string => `${x >= 0 ? '+' : '−'}${f3(Math.abs(x))}`;
const fractions = values.fractions.split(',').map(Number);
/** scores[start][fraction] = one score list per draw */
const scores = new Map<string, number[][][]>();
let labels: number[] = [];
for (const start of starts) {
  const features = await backboneFeatures(data, {
    init: start.init,
    arch: 'resnet18',
    imageSize: Number(values['image-size']),
    normalize: values.normalize as NormalizationName,
    seed: 0,
    log,
  });
  try {
    const byFraction: number[][][] = [];
    for (const fraction of fractions) {
      const draws = fraction === 1 ? 1 : Number(values.draws);
      const perDraw: number[][] = [];
      for (let draw = 0; draw < draws; draw++) {
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
        perDraw.push(cell.test.scores);
        labels = cell.test.labels;
      }
      byFraction.push(perDraw);
    }
    scores.set(start.label, byFraction);
  } finally {
    features.dispose();
  }
}
console.log(`| target | fraction | draws | start | ${probe} probe AUC (95% CI) | − ${reference} (95% CI) |`);
console.log('| --- | ---: | ---: | --- | ---: | ---: |');
fractions.forEach((fraction, f) => {
  const ref = scores.get(reference)![f]!;
  for (const start of starts) {
    const own = scores.get(start.label)![f]!;
    const auc = bootstrapAuc(own, labels, { replicates: 1000, seed: 0 });
    const diff =
      start.label === reference
        ? '—'
        : (() => {
            const d = bootstrapAucDifference(own, ref, labels, { replicates: 1000, seed: 0 });
            return `${signed(d.estimate)} (${f3(d.lower)}, ${f3(d.upper)})`;
          })();
    console.log(
      `| ${values.label} | ${fraction * 100}% | ${own.length} | ${start.label} | ${f3(auc.estimate)} (${f3(auc.lower)}, ${f3(auc.upper)}) | ${diff} |`,
    );
  }
});
