/**
 * Controlled fine-tuning experiments: one target, one label fraction, a few
 * draws, MoCo start against random start, under variants of the fine-tuning
 * protocol (BatchNorm statistics, the trunk's learning rate, warm-up,
 * normalization). Each MoCo variant is compared with the random start
 * fine-tuned under the default protocol (the same draws), by the paired
 * bootstrap of the difference of mean-over-draws test AUC.
 *
 *   node --import tsx bench/experiments/finetune-from-moco.ts --moco RUN/last.pt \
 *     --train tb:DATA/train --test tb:DATA/test --fraction 0.25 --draws 2 --epochs 5,15 \
 *     --variants keep,recompute,frozen,trunk0.1,warmup
 */
import { parseArgs } from 'node:util';

import { log, TARGET_DATA_OPTIONS, targetData } from './target-data.js';
import { type NormalizationName } from '../../src/data/augment.js';
import { finetune, type FinetuneOptions } from '../../src/downstream/finetune.js';
import { bootstrapAuc, bootstrapAucDifference } from '../../src/eval/bootstrap.js';

const { values } = parseArgs({
  options: {
    ...TARGET_DATA_OPTIONS,
    moco: { type: 'string' },
    fraction: { type: 'string', default: '0.25' },
    draws: { type: 'string', default: '2' },
    epochs: { type: 'string', default: '5,15' },
    'image-size': { type: 'string', default: '64' },
    variants: { type: 'string', default: 'keep' },
    lr: { type: 'string', default: '1e-4' },
  },
});
if (values.moco === undefined || values.train === undefined || values.test === undefined) {
  throw new Error('--moco, --train and --test are required');
}

/** The protocol variants by name: the fine-tuning options each sets. */
const VARIANTS: Record<string, Partial<FinetuneOptions> & { normalize?: NormalizationName }> = {
  keep: {},
  reset: { bnStats: 'reset' },
  recompute: { bnStats: 'recompute' },
  frozen: { bnStats: 'frozen' },
  'trunk0.1': { trunkLr: 0.1 },
  warmup: { warmup: 1 },
  imagenet: { normalize: 'imagenet' },
  'lr1e-3': { lr: 1e-3 },
  'lr1e-5': { lr: 1e-5 },
};

const data = await targetData(values);
const fraction = Number(values.fraction);
const draws = Number(values.draws);
const f3 = (x: number): string => x.toFixed(3);
const signed = (x: number): string => `${x >= 0 ? '+' : '−'}${f3(Math.abs(x))}`;
const options = { replicates: 1000, seed: 0 };
const interval = (i: { estimate: number; lower: number; upper: number }): string =>
  `${f3(i.estimate)} (${f3(i.lower)}, ${f3(i.upper)})`;

/** Test scores of `draws` cells from `init` under `variant`, and the cells' minutes. */
async function cells(init: string, variant: Partial<FinetuneOptions>, epochs: number, name: string) {
  const scores: number[][] = [];
  let labels: number[] = [];
  let seconds = 0;
  for (let draw = 0; draw < draws; draw++) {
    const cell = await finetune({
      data,
      init,
      arch: 'resnet18',
      imageSize: Number(values['image-size']),
      normalize: 'moco-cxr',
      fraction,
      draw,
      seed: 0,
      epochs,
      lr: Number(values.lr),
      ensemble: 3,
      plainProgress: true,
      log,
      ...variant,
    });
    scores.push(cell.test.scores);
    labels = cell.test.labels;
    seconds += cell.seconds;
    log(`${name} ${init} epochs ${epochs} draw ${draw}: test AUC ${f3(cell.testAuc)} (best epoch ${cell.bestEpoch})`);
  }
  return { scores, labels, minutes: seconds / 60 };
}

// The baseline is the random start under the default protocol: each variant asks whether it
// lets the MoCo start beat the best-practice random start, on the same draws.
for (const epochs of values.epochs.split(',').map(Number)) {
  const random = await cells('random', {}, epochs, 'baseline');
  const randomCi = bootstrapAuc(random.scores, random.labels, options);
  console.log(`| random (default) | ${epochs} | — | ${interval(randomCi)} | — | ${random.minutes.toFixed(1)} min |`);
  for (const name of values.variants.split(',')) {
    const variant = VARIANTS[name];
    if (variant === undefined) throw new Error(`unknown variant '${name}'; known: ${Object.keys(VARIANTS).join(', ')}`);
    const moco = await cells(`moco:${values.moco}`, variant, epochs, name);
    const mocoCi = bootstrapAuc(moco.scores, moco.labels, options);
    const diff = bootstrapAucDifference(moco.scores, random.scores, random.labels, options);
    console.log(
      `| ${name} | ${epochs} | ${interval(mocoCi)} | ${interval(randomCi)} | ` +
        `${signed(diff.estimate)} (${f3(diff.lower)}, ${f3(diff.upper)}) | ${moco.minutes.toFixed(1)} min |`,
    );
  }
}
