/**
 * The linear probe: a single linear layer trained on frozen backbone features
 * (MoCo-CXR's "last layer" training), with BCE-with-logits over the known
 * labels, Adam, mini-batches of 16 and model selection on validation AUC.
 *
 * Why mini-batches on features held in memory: MoCo-CXR trains the last layer
 * with the backbone in the loop at batch 16, so the number of Adam steps per
 * epoch is (subset size / 16). Training on features keeps that protocol — same
 * batches, same steps, same learning rate — and only removes the backbone's
 * repeated forward passes, whose output never changes. A full-batch variant
 * would take 16× fewer steps at lr 1e-4 and underfit.
 */
import { combineSeeds, Prng } from '../data/prng.js';
import { type XrayRecord } from '../data/records.js';
import { Linear } from '../nn/linear.js';
import { Adam } from '../optim/index.js';
import * as torch from '../torch/index.js';
import { abortError } from '../util/abort.js';
import {
  type LinearProbeKind,
  bestText,
  type CellOptions,
  checkCellOptions,
  type DownstreamResult,
  type EpochSummary,
  epochsForFraction,
  type Evaluation,
  evaluationSteps,
  labelArrays,
  labelledRows,
  safeAuc,
} from './cell.js';
import { type FeatureSet } from './features.js';
import { Progress } from '../util/progress.js';
import { cellResult, ModelSelection } from './selection.js';
import { DOWNSTREAM_DEFAULTS } from './settings.js';
import { drawTrainingSet } from './setup.js';
import { selectLogistic } from './logistic.js';

export { LINEAR_PROBES, type LinearProbeKind } from './cell.js';

type Tensor = torch.Tensor;

/** Streams of the cell's seed, kept apart from the draw's and the loader's. */
const HEAD_INIT_STREAM = 0x68656164;
const ORDER_STREAM = 0x6f726472;

/** Training examples for a linear head. */
export interface LinearTrainingSet {
  /** float32 `[N, D]`. */
  features: Tensor;
  /** 0/1 per row (ignored where `mask` is 0). */
  labels: Float32Array;
  /** 1 where the label is known, 0 where it is masked out of the loss. */
  mask: Float32Array;
}

/** Validation examples: features `[M, D]` and their (known) labels. */
export interface LinearValidationSet {
  features: Tensor;
  labels: readonly number[];
}

/** Options of {@link fitLinearHead}. */
export interface LinearFitOptions {
  epochs: number;
  lr?: number;
  /** Mini-batch size (default 16). */
  batchSize?: number;
  /** Seeds the head's initialization and the order of examples. */
  seed: number;
  /** Checkpoints kept for the ensemble (default 10). */
  ensemble?: number;
  /** Training examples between evaluations within an epoch (default 8192); each epoch's end is evaluated. */
  evalEvery?: number;
  /** Stop after this many evaluations without a better validation AUC (default: never stop early). */
  patience?: number;
  signal?: AbortSignal;
  onEpoch?: (summary: EpochSummary, best: number) => void;
}

/** A head's weights at one checkpoint. */
export interface HeadWeights {
  weight: Tensor;
  bias: Tensor;
}

/** A trained head: the best checkpoints (best first) and what training did. */
export interface LinearFit {
  checkpoints: readonly { epoch: number; step: number; valAuc: number; item: HeadWeights }[];
  evaluations: Evaluation[];
  epochs: EpochSummary[];
  /** Frees the kept weights. */
  dispose(): void;
}

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Trains `Linear(D, 1)` on `train` with masked BCE-with-logits and Adam, and
 * keeps the checkpoints with the best validation AUC. Examples are visited in
 * an order drawn from the seed per epoch.
 */
export async function fitLinearHead(
  train: LinearTrainingSet,
  val: LinearValidationSet,
  options: LinearFitOptions,
): Promise<LinearFit> {
  const count = train.features.shape[0] as number;
  const dim = train.features.shape[1] as number;
  if (count === 0) throw new RangeError('linear head: no training examples');
  if (train.labels.length !== count || train.mask.length !== count) {
    throw new RangeError(`linear head: ${count} feature rows but ${train.labels.length} labels`);
  }
  if (val.features.shape[0] !== val.labels.length) {
    throw new RangeError(`linear head: ${val.features.shape[0]} validation rows but ${val.labels.length} labels`);
  }
  const batchSize = options.batchSize ?? DOWNSTREAM_DEFAULTS.batchSize;
  const stepsPerEpoch = Math.ceil(count / batchSize);
  const evalAt = evaluationSteps(stepsPerEpoch, batchSize, options.evalEvery ?? DOWNSTREAM_DEFAULTS.evalEvery);

  torch.manualSeed(combineSeeds(options.seed, HEAD_INIT_STREAM));
  const head = new Linear(dim, 1);
  const optimizer = new Adam(head.parameters(), { lr: options.lr ?? DOWNSTREAM_DEFAULTS.lr });
  const selection = new ModelSelection<HeadWeights>(
    options.ensemble ?? DOWNSTREAM_DEFAULTS.ensemble,
    options.patience,
    (item) => torch.dispose(item),
  );
  const labels = torch.tensor(train.labels, [count, 1]);
  const mask = torch.tensor(train.mask, [count, 1]);
  const epochs: EpochSummary[] = [];
  let step = 0;
  try {
    for (let epoch = 1; epoch <= options.epochs; epoch++) {
      const started = performance.now();
      const order = new Prng(combineSeeds(options.seed, epoch, ORDER_STREAM)).shuffle(
        Array.from({ length: count }, (_, i) => i),
      );
      const orderTensor = torch.tensor(BigInt64Array.from(order, BigInt), [count]);
      let lossSum = 0;
      let labelled = 0;
      let stop = false;
      try {
        for (let s = 0; s < stepsPerEpoch; s++) {
          const start = s * batchSize;
          const size = Math.min(batchSize, count - start);
          let known = 0;
          for (let k = start; k < start + size; k++) known += train.mask[order[k] as number] as number;
          step++;
          if (known > 0) {
            const loss = torch.tidy(() => {
              const rows = orderTensor.narrow(0, start, size);
              const logits = head.forward(train.features.indexSelect(0, rows));
              const sum = torch.binaryCrossEntropyWithLogits(logits, labels.indexSelect(0, rows), {
                weight: mask.indexSelect(0, rows),
                reduction: 'sum',
              });
              optimizer.zeroGrad();
              sum.div(known).backward();
              optimizer.step();
              return sum.item();
            });
            lossSum += loss;
            labelled += known;
          }
          if (evalAt.has(s + 1)) {
            stop = selection.evaluate(epoch, step, validationAuc(head, val), () => snapshot(head));
            if (stop) break;
          }
        }
      } finally {
        orderTensor.dispose();
      }
      const seconds = (performance.now() - started) / 1000;
      const summary = {
        epoch,
        trainLoss: labelled > 0 ? lossSum / labelled : NaN,
        seconds,
        imagesPerSecond: count / seconds,
      };
      epochs.push(summary);
      options.onEpoch?.(summary, selection.best);
      // Lets a Ctrl-C handler run between epochs.
      await yieldToEventLoop();
      if (options.signal?.aborted === true) throw abortError();
      if (stop) break;
    }
  } catch (error) {
    selection.dispose();
    throw error;
  } finally {
    torch.dispose([labels, mask]);
    head.dispose();
  }
  return {
    checkpoints: selection.kept,
    evaluations: selection.evaluations,
    epochs,
    dispose: () => selection.dispose(),
  };
}

function snapshot(head: Linear): HeadWeights {
  return torch.noGrad(() => ({ weight: head.weight.detach().clone(), bias: (head.bias as Tensor).detach().clone() }));
}

function validationAuc(head: Linear, val: LinearValidationSet): number {
  const scores = torch.noGrad(() => torch.tidy(() => head.forward(val.features).view(-1).data() as Float32Array));
  return safeAuc(scores, val.labels);
}

/** The mean over checkpoints of sigmoid(x·wᵀ + b) for each row of `features`. */
export function predictLinear(checkpoints: readonly HeadWeights[], features: Tensor): Float32Array {
  if (checkpoints.length === 0) throw new Error('linear head: no checkpoint to predict with');
  return torch.noGrad(() =>
    torch.tidy(() => {
      let sum: Tensor | undefined;
      for (const { weight, bias } of checkpoints) {
        const probability = torch.linear(features, weight, bias).sigmoid();
        sum = sum === undefined ? probability : sum.add(probability);
      }
      return (sum as Tensor).div(checkpoints.length).view(-1).data() as Float32Array;
    }),
  );
}

/** Options of one linear-probe cell. */
export interface LinearProbeOptions extends CellOptions {
  /** Frozen features of the backbone (see `backboneFeatures`). */
  features: FeatureSet;
  task: string;
  /** Evaluations without improvement before stopping (default: train every epoch). */
  patience?: number;
  /**
   * How the head is fitted: 'adam' is MoCo-CXR's protocol (mini-batch Adam for
   * the cell's epochs, checkpoints selected on validation AUC); 'lbfgs' fits
   * logistic regression on standardized features to convergence, its L2
   * strength chosen on validation AUC (see `selectLogistic`). Default 'adam'.
   */
  probe?: LinearProbeKind;
}

function rowsOf(records: readonly XrayRecord[], wanted: readonly XrayRecord[]): number[] {
  const index = new Map(records.map((record, i) => [record.id, i]));
  return wanted.map((record) => {
    const row = index.get(record.id);
    if (row === undefined) throw new Error(`training record '${record.id}' is not in the feature set's training pool`);
    return row;
  });
}

function selectRows(features: Tensor, rows: readonly number[]): Tensor {
  return torch.tidy(() => features.indexSelect(0, torch.tensor(BigInt64Array.from(rows, BigInt), [rows.length])));
}

/**
 * One linear-probe cell: draws the training subset, trains a linear head on
 * its frozen features, selects checkpoints on validation AUC, and predicts
 * the test set with the average of the selected heads.
 */
export async function linearProbe(options: LinearProbeOptions): Promise<DownstreamResult> {
  checkCellOptions(options);
  const started = performance.now();
  const { features, task, fraction, draw, seed } = options;
  const pool = features.train.records;
  const records =
    options.trainRecords === undefined
      ? drawTrainingSet(pool, { task, fraction, draw, seed, per: options.per ?? DOWNSTREAM_DEFAULTS.per }).records
      : [...options.trainRecords];
  if ((options.probe ?? 'adam') === 'lbfgs') return logisticCell(options, records, started);
  const epochCount = options.epochs ?? epochsForFraction(fraction);
  const { labels, mask } = labelArrays(records, task);
  const val = labelledRows(features.val.records, task);
  const tensors: Tensor[] = [];
  let fit: LinearFit | undefined;
  const progress = new Progress(`linear ${features.init} f=${fraction} draw ${draw}`, epochCount, {
    plain: options.plainProgress,
  });
  try {
    const trainFeatures = selectRows(features.train.features, rowsOf(pool, records));
    tensors.push(trainFeatures);
    const valFeatures = selectRows(features.val.features, val.rows);
    tensors.push(valFeatures);
    fit = await fitLinearHead(
      { features: trainFeatures, labels, mask },
      { features: valFeatures, labels: val.labels },
      {
        epochs: epochCount,
        lr: options.lr,
        batchSize: options.batchSize,
        seed: combineSeeds(seed, draw),
        ensemble: options.ensemble,
        evalEvery: options.evalEvery,
        patience: options.patience,
        signal: options.signal,
        onEpoch: (summary, best) => {
          options.onEpoch?.(summary);
          progress.update(summary.epoch, `loss ${summary.trainLoss.toFixed(4)} best val AUC ${bestText(best)}`);
        },
      },
    );
    const checkpoints = fit.checkpoints;
    if (checkpoints.length === 0) throw new Error('linear probe: no checkpoint has a validation AUC');
    const testRows = labelledRows(features.test.records, task).rows;
    const testFeatures = selectRows(features.test.features, testRows);
    tensors.push(testFeatures);
    const probabilities = predictLinear(
      checkpoints.map((entry) => entry.item),
      testFeatures,
    );
    return cellResult({
      mode: 'linear',
      init: features.init,
      task,
      fraction,
      draw,
      records,
      kept: checkpoints,
      epochs: fit.epochs,
      evaluations: fit.evaluations,
      testRecords: features.test.records,
      probabilities,
      started,
    });
  } finally {
    progress.finish();
    fit?.dispose();
    torch.dispose(tensors);
  }
}

/**
 * A linear-probe cell fitted by {@link selectLogistic}: one full-batch,
 * converged fit per L2 strength. In the result, each strength stands where an
 * epoch stands in an Adam cell (`history.epochs[i]` and `evaluations[i]` are
 * the i-th strength, strongest first; `bestEpoch` is the chosen one's index
 * from 1), and `l2` is the chosen strength.
 */
function logisticCell(options: LinearProbeOptions, records: readonly XrayRecord[], started: number): DownstreamResult {
  const { features, task, fraction, draw } = options;
  const { labels, mask } = labelArrays(records, task);
  const val = labelledRows(features.val.records, task);
  const testRows = labelledRows(features.test.records, task).rows;
  const rowsData = (matrix: Tensor, rows: readonly number[]): Float32Array =>
    torch.tidy(() => selectRows(matrix, rows).to('cpu').contiguous().data() as Float32Array);
  const dim = features.train.features.shape[1] as number;
  const trainX = rowsData(features.train.features, rowsOf(features.train.records, records));
  const valX = rowsData(features.val.features, val.rows);
  const testX = rowsData(features.test.features, testRows);
  const selection = selectLogistic(
    { x: trainX, n: records.length, d: dim, labels, mask },
    { x: valX, n: val.rows.length, d: dim, labels: val.labels },
    { auc: safeAuc },
  );
  if (options.signal?.aborted === true) throw abortError();
  const epochs: EpochSummary[] = selection.path.map((point, i) => ({
    epoch: i + 1,
    trainLoss: point.trainLoss,
    seconds: point.seconds,
    imagesPerSecond: records.length / Math.max(point.seconds, 1e-9),
  }));
  let step = 0;
  const evaluations = selection.path.map((point, i) => ({
    epoch: i + 1,
    step: (step += point.iterations),
    valAuc: point.valAuc,
  }));
  const chosen = selection.path[selection.chosen]!;
  const stoppedShort = (stalled: boolean): string[] =>
    selection.path
      .filter((point) => !point.converged && point.stalled === stalled)
      .map((point) => `${point.l2.toExponential(1)} (gradient ${point.gradMax.toExponential(1)})`);
  const unconverged = stoppedShort(false);
  const stalled = stoppedShort(true);
  options.log?.(
    `linear (L-BFGS) ${features.init} f=${fraction} draw ${draw}: L2 ${chosen.l2.toExponential(1)}, ` +
      `val AUC ${bestText(chosen.valAuc)}, ${chosen.iterations} iterations` +
      (unconverged.length > 0 ? `; not converged at L2 ${unconverged.join(', ')}` : '') +
      (stalled.length > 0 ? `; flat to float64 rounding before the tolerance at L2 ${stalled.join(', ')}` : ''),
  );
  const logits = selection.logits(testX, testRows.length);
  const probabilities = Array.from(logits, (z) => 1 / (1 + Math.exp(-z)));
  const kept = [
    { epoch: selection.chosen + 1, step: evaluations[selection.chosen]!.step, valAuc: chosen.valAuc, item: null },
  ];
  if (!Number.isFinite(chosen.valAuc)) throw new Error('linear probe: no L2 strength has a validation AUC');
  return {
    ...cellResult({
      mode: 'linear',
      init: features.init,
      task,
      fraction,
      draw,
      records,
      kept,
      epochs,
      evaluations,
      testRecords: features.test.records,
      probabilities,
      started,
    }),
    l2: chosen.l2,
  };
}
