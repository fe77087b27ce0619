/**
 * End-to-end fine-tuning: the whole network trained from its starting weights
 * on a label fraction, with MoCo-CXR's flip and rotation augmentation (no
 * colour jitter), Adam lr 1e-4 at batch 16, masked BCE-with-logits, and the
 * test prediction averaged over the checkpoints with the best validation AUC
 * (kept in memory, on the CPU).
 *
 * In a process group it trains data-parallel, as PyTorch's
 * DistributedDataParallel without SyncBatchNorm: `batchSize` is the global
 * batch and each rank takes its rows of it; rank 0's parameters and buffers
 * go to every rank at the start; each rank divides its summed loss by the
 * labelled rows of the whole global batch and the gradients are summed, so
 * the step is the one-process step of the global batch even when the ranks'
 * shares differ (a short last batch, masked labels). BatchNorm layers in
 * training mode normalize by each rank's own rows, and their running
 * statistics are rank 0's (DDP's `broadcast_buffers`): rank 0's are sent to
 * all before every evaluation. Validation and test sets are scored in
 * shards and gathered, so every rank selects the same checkpoints and stops
 * at the same evaluation; rank 0 alone writes the classifier file.
 */
import {
  allreduceFlat,
  broadcastTensors,
  gatherShards,
  GradientSync,
  type GradSyncMode,
  type ProcessGroup,
  shardRange,
} from '../distributed/index.js';
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
  /**
   * Train data-parallel in this group (see the module's comment); every rank
   * calls `finetune` with the same options and gets the same result.
   */
  group?: ProcessGroup;
  /** In a group: reduce the gradients during backward ('overlap', the default) or after it; see `GradientSync`. */
  gradSync?: GradSyncMode;
  /** Called after every optimizer step with the mean loss of its labelled rows (over all ranks in a group). */
  onStep?: (step: number, loss: number) => void;
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
export async function recomputeBatchNorm(
  model: Backbone,
  loader: BatchLoader,
  device: torch.Device,
  group?: ProcessGroup,
): Promise<void> {
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
        // A rank's share of a short last batch may be empty.
        if (batch.images.size(0) > 0) torch.noGrad(() => torch.tidy(() => void model.forward(batch.images.to(device))));
      } finally {
        batch.dispose();
      }
    }
  } finally {
    layers.forEach((bn, i) => ((bn as { momentum: number | null }).momentum = saved[i] as number | null));
  }
  // In a group each rank averaged over its rows; the statistics are the mean of the ranks'.
  if (group !== undefined) {
    await allreduceFlat(
      group,
      layers.flatMap((bn) => [bn.runningMean, bn.runningVar].filter((t): t is Tensor => t !== null)),
      'avg',
    );
    await broadcastTensors(group, model.buffers());
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

/** One optimizer step's counts: the summed loss and labelled rows of the (global) batch, its rows, and the stop flag. */
interface StepCounts {
  lossSum: number;
  known: number;
  rows: number;
  stop: boolean;
}

/** What a training step needs: the model, its optimizer, where the batch goes, and the group (with its gradient sync) if any. */
interface StepContext {
  model: Backbone;
  optimizer: Adam;
  device: torch.Device;
  group: ProcessGroup | undefined;
  gradSync: GradientSync | undefined;
  signal: AbortSignal | undefined;
}

/** The summed masked BCE of a batch's labelled rows, with its graph (the caller frees it). */
function batchLossSum(model: Backbone, images: Tensor, labels: Tensor, mask: Tensor, device: torch.Device): Tensor {
  return torch.tidy(() =>
    torch.binaryCrossEntropyWithLogits(model.forward(images.to(device)), labels.to(device), {
      weight: mask.to(device),
      reduction: 'sum',
    }),
  );
}

/** One process: the mean loss over the batch's labelled rows, backward, optimizer step (none without labels). */
function singleStep(context: StepContext, images: Tensor, labels: Tensor, mask: Tensor): StepCounts {
  const { model, optimizer, device, signal } = context;
  const known = torch.tidy(() => mask.sum().item());
  const counts = { lossSum: 0, known, rows: images.size(0), stop: false };
  if (known > 0) {
    counts.lossSum = torch.tidy(() => {
      const sum = batchLossSum(model, images, labels, mask, device);
      optimizer.zeroGrad();
      sum.div(known).backward();
      optimizer.step();
      return sum.item();
    });
  }
  counts.stop = signal?.aborted === true;
  return counts;
}

/**
 * One data-parallel step: each rank's summed loss over its rows, the labelled
 * count, rows and stop flag summed over ranks in one allreduce (float64, so
 * that the counts stay exact), backward of this rank's sum divided by the
 * global count with the gradients summed across ranks (during backward or
 * after it, as `gradSync` says), optimizer step. Every rank
 * takes the same decisions: a global batch without labels makes no step.
 */
async function distributedStep(
  context: StepContext & { group: ProcessGroup; gradSync: GradientSync },
  images: Tensor,
  labels: Tensor,
  mask: Tensor,
): Promise<StepCounts> {
  const { model, optimizer, device, group, gradSync, signal } = context;
  const known = torch.tidy(() => mask.sum().item());
  const sum = known > 0 ? batchLossSum(model, images, labels, mask, device) : undefined;
  const stats = torch.tensor(
    new Float64Array([sum === undefined ? 0 : sum.item(), known, images.size(0), signal?.aborted === true ? 1 : 0]),
    [4],
  );
  try {
    await group.allreduce(stats, 'sum');
    const [lossSum, total, rows, stops] = Array.from(stats.data() as Float64Array) as [number, number, number, number];
    if (total > 0) {
      optimizer.zeroGrad();
      // A rank without labelled rows has no loss and takes part with zero gradients.
      const loss = sum === undefined ? undefined : torch.tidy(() => sum.div(total));
      try {
        await gradSync.backward(loss);
      } finally {
        loss?.dispose();
      }
      optimizer.step();
    }
    return { lossSum, known: total, rows, stop: stops > 0 };
  } finally {
    stats.dispose();
    sum?.dispose();
  }
}

/**
 * One fine-tuning cell: draws the training subset, trains the whole network,
 * evaluates on the validation set at the end of each epoch (and every
 * `evalEvery` images within long epochs), keeps the best checkpoints, and
 * predicts the test set with their average. With `group`, data-parallel (see
 * the module's comment).
 */
export async function finetune(options: FinetuneOptions): Promise<DownstreamResult> {
  checkCellOptions(options);
  const started = performance.now();
  const { data, fraction, draw, seed } = options;
  const group = options.group !== undefined && options.group.size > 1 ? options.group : undefined;
  const main = group === undefined || group.rank === 0;
  const task = data.task;
  const device = torch.checkDevice(options.device ?? 'cpu');
  const batchSize = options.batchSize ?? DOWNSTREAM_DEFAULTS.batchSize;
  if (group !== undefined && batchSize % group.size !== 0) {
    throw new RangeError(`batchSize ${batchSize} (the global batch) is not divisible by the ${group.size} processes`);
  }
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
    // In a group the ranks stop together, after the step in which any saw the signal, never inside a scoring.
    signal: group === undefined ? options.signal : undefined,
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
    shard: group === undefined ? undefined : { rank: group.rank, count: group.size },
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
  const model = createBackbone(options.init, options.arch, {
    numClasses: 1,
    seed,
    log: main ? options.log : undefined,
  });
  const selection = new ModelSelection<Weights>(
    options.ensemble ?? DOWNSTREAM_DEFAULTS.ensemble,
    options.patience,
    (item) => torch.dispose(item),
  );
  // Rank 0 speaks for the run.
  const progress = main
    ? new Progress(`finetune ${options.init} f=${fraction} draw ${draw}`, epochCount * stepsPerEpoch, {
        plain: options.plainProgress,
      })
    : { update: () => undefined, finish: () => undefined };
  const scoreRows = async (split: DataSplit): Promise<Float32Array> => {
    if (split.records.length === 0) return new Float32Array(0);
    const logits = await mapImages(split, (images) => model.forward(images).view(-1).sigmoid(), evalView);
    try {
      return (logits.data() as Float32Array).slice();
    } finally {
      logits.dispose();
    }
  };
  // In a group each rank scores its share of the set with rank 0's BatchNorm statistics, and all gather the scores.
  const score = async (split: DataSplit): Promise<Float32Array> => {
    model.eval();
    try {
      if (group === undefined) return await scoreRows(split);
      await broadcastTensors(group, model.buffers());
      const [from, to] = shardRange(split.records.length, group.rank, group.size);
      const mine = await scoreRows({ records: split.records.slice(from, to), cache: split.cache });
      return await gatherShards(group, mine);
    } finally {
      trainMode(model, bnStats);
    }
  };

  let gradSync: GradientSync | undefined;
  try {
    model.to(device);
    // As DDP does on wrapping a model: every replica starts from rank 0's parameters and buffers.
    if (group !== undefined) await broadcastTensors(group, [...model.parameters(), ...model.buffers()]);
    if (bnStats === 'reset') for (const bn of batchNorms(model)) bn.resetRunningStats();
    if (bnStats === 'recompute') await recomputeBatchNorm(model, loader, device, group);
    trainMode(model, bnStats);
    const lr = options.lr ?? DOWNSTREAM_DEFAULTS.lr;
    const groups = parameterGroups(model, lr, trunkLr);
    const optimizer = new Adam(groups, { lr });
    gradSync =
      group === undefined
        ? undefined
        : new GradientSync(group, model.parameters(), { mode: options.gradSync, op: 'sum' });
    const context: StepContext = { model, optimizer, device, group, gradSync, signal: options.signal };
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
        let counts: StepCounts;
        try {
          step++;
          if (warmupSteps > 0) {
            const factor = Math.min(1, step / warmupSteps);
            optimizer.paramGroups.forEach((g, i) => (g.lr = (groups[i] as { lr: number }).lr * factor));
          }
          const labels = batch.labels as Tensor;
          const mask = batch.labelMask as Tensor;
          counts =
            group === undefined || gradSync === undefined
              ? singleStep(context, batch.images, labels, mask)
              : await distributedStep({ ...context, group, gradSync }, batch.images, labels, mask);
        } finally {
          batch.dispose();
        }
        images += counts.rows;
        if (counts.known > 0) {
          lossSum += counts.lossSum;
          labelled += counts.known;
          options.onStep?.(step, counts.lossSum / counts.known);
        }
        trainSeconds += (performance.now() - windowStart) / 1000;
        progress.update(
          (epoch - 1) * stepsPerEpoch + batch.index + 1,
          `epoch ${epoch}/${epochCount} loss ${(lossSum / Math.max(labelled, 1)).toFixed(4)} ` +
            `${(images / trainSeconds).toFixed(1)} img/s best val AUC ${bestText(selection.best)}`,
        );
        // In a group the stop was agreed on in the step, so every rank stops after the same one.
        if (counts.stop) throw abortError();
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
    if (options.modelFile !== undefined && main) {
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
    gradSync?.dispose();
    model.dispose();
  }
}
