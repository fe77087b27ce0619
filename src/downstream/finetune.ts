/**
 * End-to-end fine-tuning: the whole network trained from its starting weights
 * on a label fraction, with MoCo-CXR's flip and rotation augmentation (no
 * colour jitter), Adam lr 1e-4 at batch 16, masked BCE-with-logits, and the
 * test prediction averaged over the checkpoints with the best validation AUC
 * (kept in memory, on the CPU).
 */
import { type BatchAugmentation, BatchLoader } from '../data/loader.js';
import { mocoCxrAugmentation, type NormalizationName } from '../data/augment.js';
import { combineSeeds } from '../data/prng.js';
import { type Backbone } from '../models/index.js';
import { BatchNorm2d } from '../nn/batchnorm.js';
import { Adam } from '../optim/index.js';
import * as torch from '../torch/index.js';
import { abortError } from '../util/abort.js';
import {
  BN_STATS,
  type BnStatsPolicy,
  bestText,
  type CellOptions,
  checkCellOptions,
  type DownstreamResult,
  type EpochSummary,
  epochsForFraction,
  evaluationSteps,
  labelledRows,
  safeAuc,
} from './cell.js';
import { mapImages } from '../data/images.js';
import { Progress } from '../util/progress.js';
import { writeClassifier } from './classifier-file.js';
import { cellResult, ModelSelection } from './selection.js';
import { DOWNSTREAM_DEFAULTS } from './settings.js';
import { createBackbone, type DataSplit, type DownstreamData, drawTrainingSet } from './setup.js';

export { BN_STATS, type BnStatsPolicy } from './cell.js';

type Tensor = torch.Tensor;
type Weights = Record<string, Tensor>;

/** Options of one fine-tuning cell. */
export interface FinetuneOptions extends CellOptions {
  data: DownstreamData;
  /** 'random', a weights file (MoCo checkpoint, torchvision, ours), or NAME:FILE. */
  init: string;
  arch: string;
  /** Side of the training crop and of the evaluation view. */
  imageSize: number;
  /** Normalization of both views (default 'imagenet', as MoCo-CXR's supervised code). */
  normalize?: NormalizationName;
  device?: string;
  /** Images per forward pass when scoring validation and test (default 64). */
  evalBatchSize?: number;
  /**
   * The training augmentation (default: flip p = 0.5, rotation ±10°, random
   * crop of `imageSize` from the cached squares, grey to 3 channels, normalized).
   */
  augment?: BatchAugmentation;
  /** Evaluations without improvement before stopping (default: train every epoch). */
  patience?: number;
  /**
   * Where to write the checkpoint with the best validation AUC as a classifier
   * file (weights, task, preprocessing: see `classifier-file.ts`); none when undefined.
   */
  modelFile?: string;
  /** What happens to the BatchNorm running statistics the starting weights carry (default 'keep'); see {@link BN_STATS}. */
  bnStats?: BnStatsPolicy;
  /** The pretrained layers' learning rate as a multiple of the new head's `lr` (default 1: one rate). */
  trunkLr?: number;
  /** Epochs over which the learning rate rises linearly from 0 to its value, step by step (default 0). */
  warmup?: number;
}

export function batchNorms(model: Backbone): BatchNorm2d[] {
  return model.modules().filter((module): module is BatchNorm2d => module instanceof BatchNorm2d);
}

/** Training mode, with BatchNorm layers left in evaluation mode under the 'frozen' policy. */
export function trainMode(model: Backbone, policy: BnStatsPolicy): void {
  model.train();
  if (policy === 'frozen') for (const bn of batchNorms(model)) bn.eval();
}

/**
 * Replaces every BatchNorm layer's running statistics with their average over
 * one pass of `loader`'s epoch 0 (a cumulative average, as PyTorch's
 * `momentum=None`), without gradients.
 */
export async function recomputeBatchNorm(model: Backbone, loader: BatchLoader, device: torch.Device): Promise<void> {
  const layers = batchNorms(model);
  const saved = layers.map((bn) => bn.momentum);
  model.train();
  for (const bn of layers) {
    bn.resetRunningStats();
    (bn as { momentum: number | null }).momentum = null;
  }
  try {
    for await (const batch of loader.epoch(0)) {
      try {
        torch.noGrad(() => torch.tidy(() => void model.forward(batch.images.to(device))));
      } finally {
        batch.dispose();
      }
    }
  } finally {
    layers.forEach((bn, i) => ((bn as { momentum: number | null }).momentum = saved[i] as number | null));
  }
}

/** The optimizer's parameter groups: the new head at `lr`, the pretrained layers at `lr × trunkLr`. */
export function parameterGroups(model: Backbone, lr: number, trunkLr: number): { params: Tensor[]; lr: number }[] {
  if (trunkLr === 1) return [{ params: model.parameters(), lr }];
  const head = new Set(model.classifier.parameters());
  const trunk = model.parameters().filter((parameter) => !head.has(parameter));
  return [
    { params: trunk, lr: lr * trunkLr },
    { params: [...head], lr },
  ];
}

/** The augmentation fine-tuning uses unless told otherwise. */
export function finetuneAugmentation(imageSize: number, normalize: NormalizationName = 'imagenet'): BatchAugmentation {
  return mocoCxrAugmentation(imageSize, { normalize });
}

function snapshot(model: Backbone): Weights {
  return torch.noGrad(() =>
    torch.tidy(() => {
      const out: Weights = {};
      for (const [key, value] of Object.entries(model.stateDict())) {
        out[key] = value.device === 'cpu' ? value.clone() : value.to('cpu');
      }
      return out;
    }),
  );
}

/**
 * One fine-tuning cell: draws the training subset, trains the whole network,
 * evaluates on the validation set at the end of each epoch (and every
 * `evalEvery` images within long epochs), keeps the best checkpoints, and
 * predicts the test set with their average.
 */
export async function finetune(options: FinetuneOptions): Promise<DownstreamResult> {
  checkCellOptions(options);
  const started = performance.now();
  const { data, fraction, draw, seed } = options;
  const task = data.task;
  const device = torch.checkDevice(options.device ?? 'cpu');
  const batchSize = options.batchSize ?? DOWNSTREAM_DEFAULTS.batchSize;
  const records =
    options.trainRecords === undefined
      ? drawTrainingSet(data.train.records, { task, fraction, draw, seed, per: options.per ?? DOWNSTREAM_DEFAULTS.per })
          .records
      : [...options.trainRecords];
  const epochCount = options.epochs ?? epochsForFraction(fraction);
  const evalView = {
    imageSize: options.imageSize,
    normalize: options.normalize,
    batchSize: options.evalBatchSize,
    device,
    signal: options.signal,
  };
  const val = labelledRows(data.val.records, task);
  const valSplit: DataSplit = { records: val.rows.map((row) => data.val.records[row]!), cache: data.val.cache };
  const testRows = labelledRows(data.test.records, task).rows;
  const testSplit: DataSplit = { records: testRows.map((row) => data.test.records[row]!), cache: data.test.cache };

  const loader = new BatchLoader(data.train.cache, {
    batchSize,
    seed: combineSeeds(seed, draw),
    records,
    tasks: [task],
    augment: options.augment ?? finetuneAugmentation(options.imageSize, options.normalize),
  });
  if (loader.missing.length > 0) {
    throw new Error(`${loader.missing.length} training records have no cached image, e.g. '${loader.missing[0]}'`);
  }
  const stepsPerEpoch = loader.batchesPerEpoch;
  const evalAt = evaluationSteps(stepsPerEpoch, batchSize, options.evalEvery ?? DOWNSTREAM_DEFAULTS.evalEvery);

  const bnStats = options.bnStats ?? 'keep';
  const trunkLr = options.trunkLr ?? 1;
  const warmup = options.warmup ?? 0;
  if (!BN_STATS.includes(bnStats))
    throw new RangeError(`bnStats must be one of ${BN_STATS.join(', ')}, got '${bnStats}'`);
  if (!(trunkLr > 0)) throw new RangeError(`trunkLr must be positive, got ${trunkLr}`);
  if (!(Number.isInteger(warmup) && warmup >= 0))
    throw new RangeError(`warmup must be a non-negative integer, got ${warmup}`);
  const model = createBackbone(options.init, options.arch, { numClasses: 1, seed, log: options.log });
  const selection = new ModelSelection<Weights>(
    options.ensemble ?? DOWNSTREAM_DEFAULTS.ensemble,
    options.patience,
    (item) => torch.dispose(item),
  );
  const progress = new Progress(`finetune ${options.init} f=${fraction} draw ${draw}`, epochCount * stepsPerEpoch, {
    plain: options.plainProgress,
  });
  const score = async (split: DataSplit): Promise<Float32Array> => {
    model.eval();
    try {
      const logits = await mapImages(split, (images) => model.forward(images).view(-1).sigmoid(), evalView);
      try {
        return logits.data() as Float32Array;
      } finally {
        logits.dispose();
      }
    } finally {
      trainMode(model, bnStats);
    }
  };

  try {
    model.to(device);
    if (bnStats === 'reset') for (const bn of batchNorms(model)) bn.resetRunningStats();
    if (bnStats === 'recompute') await recomputeBatchNorm(model, loader, device);
    trainMode(model, bnStats);
    const lr = options.lr ?? DOWNSTREAM_DEFAULTS.lr;
    const groups = parameterGroups(model, lr, trunkLr);
    const optimizer = new Adam(groups, { lr });
    const warmupSteps = warmup * stepsPerEpoch;
    const epochs: EpochSummary[] = [];
    let step = 0;
    let stop = false;
    for (let epoch = 1; epoch <= epochCount && !stop; epoch++) {
      let trainSeconds = 0;
      let lossSum = 0;
      let labelled = 0;
      let images = 0;
      let windowStart = performance.now();
      for await (const batch of loader.epoch(epoch - 1)) {
        try {
          const known = torch.tidy(() => (batch.labelMask as Tensor).sum().item());
          step++;
          images += batch.ids.length;
          if (warmupSteps > 0) {
            const factor = Math.min(1, step / warmupSteps);
            optimizer.paramGroups.forEach((group, g) => (group.lr = (groups[g] as { lr: number }).lr * factor));
          }
          if (known > 0) {
            lossSum += torch.tidy(() => {
              const logits = model.forward(batch.images.to(device));
              const sum = torch.binaryCrossEntropyWithLogits(logits, (batch.labels as Tensor).to(device), {
                weight: (batch.labelMask as Tensor).to(device),
                reduction: 'sum',
              });
              optimizer.zeroGrad();
              sum.div(known).backward();
              optimizer.step();
              return sum.item();
            });
            labelled += known;
          }
        } finally {
          batch.dispose();
        }
        trainSeconds += (performance.now() - windowStart) / 1000;
        progress.update(
          (epoch - 1) * stepsPerEpoch + batch.index + 1,
          `epoch ${epoch}/${epochCount} loss ${(lossSum / Math.max(labelled, 1)).toFixed(4)} ` +
            `${(images / trainSeconds).toFixed(1)} img/s best val AUC ${bestText(selection.best)}`,
        );
        if (options.signal?.aborted === true) throw abortError();
        if (evalAt.has(batch.index + 1)) {
          const valAuc = safeAuc(await score(valSplit), val.labels);
          stop = selection.evaluate(epoch, step, valAuc, () => snapshot(model));
          if (stop) break;
        }
        windowStart = performance.now();
      }
      const summary = {
        epoch,
        trainLoss: labelled > 0 ? lossSum / labelled : NaN,
        seconds: trainSeconds,
        imagesPerSecond: images / trainSeconds,
      };
      epochs.push(summary);
      options.onEpoch?.(summary);
    }

    const kept = selection.selected('fine-tuning');
    if (options.modelFile !== undefined) {
      const best = kept[0]!;
      writeClassifier(options.modelFile, best.item, {
        arch: options.arch,
        tasks: [task],
        // The views it was trained and selected on (finetuneAugmentation, evalView); a custom augment is the caller's.
        preprocessing: { normalize: options.normalize ?? 'imagenet', imageSize: options.imageSize, channels: 3 },
        origin: { init: options.init, fraction, draw, epoch: best.epoch, step: best.step, val_auc: best.valAuc },
      });
    }
    const sum = new Float64Array(testSplit.records.length);
    for (const entry of kept) {
      model.loadStateDict(entry.item);
      const probabilities = await score(testSplit);
      for (let i = 0; i < sum.length; i++) sum[i]! += probabilities[i]!;
    }
    return cellResult({
      mode: 'finetune',
      init: options.init,
      task,
      fraction,
      draw,
      records,
      kept,
      epochs,
      evaluations: selection.evaluations,
      testRecords: data.test.records,
      probabilities: Array.from(sum, (value) => value / kept.length),
      started,
    });
  } finally {
    progress.finish();
    selection.dispose();
    model.dispose();
  }
}
