/**
 * What the linear probe and fine-tuning share: the result of one cell of the
 * label-fraction grid, the options of a cell, MoCo-CXR's epochs per fraction,
 * the evaluation schedule, and model selection on validation AUC with the
 * test prediction averaged over the best checkpoints.
 */
import { type DrawUnit } from '../data/fractions.js';
import { type XrayRecord } from '../data/records.js';
import { auc } from '../eval/auc.js';

/** Which downstream evaluation: a linear head on frozen features, or the whole network. */
export type DownstreamMode = 'linear' | 'finetune';

/** Test-set predictions of a cell, one entry per test image with a known label. */
export interface TestPredictions {
  ids: string[];
  studyIds: string[];
  /** 0 or 1. */
  labels: number[];
  /** Predicted probability of the positive class. */
  scores: number[];
}

/** One evaluation on the validation set during training. */
export interface Evaluation {
  /** The epoch it happened in, from 1. */
  epoch: number;
  /** Optimizer steps done so far. */
  step: number;
  valAuc: number;
}

/** What an epoch did. */
export interface EpochSummary {
  /** From 1. */
  epoch: number;
  /** Mean training loss over the epoch's labelled examples. */
  trainLoss: number;
  seconds: number;
  /** Training images per second. */
  imagesPerSecond: number;
}

/** The outcome of one (init, fraction, draw) cell. */
export interface DownstreamResult {
  mode: DownstreamMode;
  /** The starting weights as given ('random', a file, NAME:FILE). */
  init: string;
  task: string;
  fraction: number;
  draw: number;
  /** The records trained on. */
  trainIds: string[];
  /** Validation AUC of the best checkpoint. */
  valAuc: number;
  /** Epoch (from 1) of the best checkpoint. */
  bestEpoch: number;
  /** Epochs trained. */
  epochs: number;
  /** Epochs (from 1) of the checkpoints whose test predictions were averaged, best first. */
  ensembleEpochs: number[];
  test: TestPredictions;
  /** AUC of `test.scores` per image. */
  testAuc: number;
  seconds: number;
  history: { epochs: EpochSummary[]; evaluations: Evaluation[] };
  /** The L2 strength chosen on validation, where the head was fitted by L-BFGS (`probe: lbfgs`). */
  l2?: number;
}

/** Options every cell takes. */
export interface CellOptions {
  /** Label fraction of the training pool, in (0, 1]. */
  fraction: number;
  /** Which draw of the fraction, from 0. */
  draw: number;
  /** Seed of the draw, the data order and the new layers' initialization. */
  seed: number;
  /** Draw images or patients (default 'patient'). */
  per?: DrawUnit;
  /** The training subset, when the caller drew it (default: drawn from fraction, draw, seed, per). */
  trainRecords?: readonly XrayRecord[];
  /** Epochs; default {@link epochsForFraction}. */
  epochs?: number;
  /** Adam's learning rate (default 1e-4, MoCo-CXR's). */
  lr?: number;
  /** Mini-batch size (default 16, MoCo-CXR's). */
  batchSize?: number;
  /** Checkpoints (best by validation AUC) whose test predictions are averaged (default 10). */
  ensemble?: number;
  /** Training images between evaluations within an epoch (default 8192); every epoch's end is evaluated too. */
  evalEvery?: number;
  /** Stops the cell at the next step; the cell then throws an AbortError. */
  signal?: AbortSignal;
  log?: (line: string) => void;
  /** Force plain progress lines. */
  plainProgress?: boolean;
  /** Called after each epoch. */
  onEpoch?: (summary: EpochSummary) => void;
}

/**
 * MoCo-CXR's epochs for a label fraction: ⌊5·4^(log₈(1/f))⌋ = ⌊5·(1/f)^(2/3)⌋,
 * so that fewer labels train longer: 500, 107, 23 and 5 epochs for 0.1%, 1%,
 * 10% and 100% (a tiny tolerance keeps 0.1% at 500 despite float rounding).
 */
export function epochsForFraction(fraction: number): number {
  checkFraction(fraction);
  return Math.max(1, Math.floor(5 * Math.pow(1 / fraction, 2 / 3) + 1e-9));
}

/** Throws unless `fraction` is in (0, 1]. */
export function checkFraction(fraction: number, where = 'fraction'): void {
  if (!(typeof fraction === 'number' && fraction > 0 && fraction <= 1)) {
    throw new RangeError(`${where} must be in (0, 1], got ${String(fraction)}`);
  }
}

/** Checks a cell's numeric options, naming the option. */
export function checkCellOptions(options: CellOptions): void {
  checkFraction(options.fraction);
  if (!Number.isSafeInteger(options.draw) || options.draw < 0) {
    throw new RangeError(`draw must be a non-negative integer, got ${options.draw}`);
  }
  for (const key of ['epochs', 'batchSize', 'ensemble', 'evalEvery'] as const) {
    const value = options[key];
    if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
      throw new RangeError(`${key} must be a positive integer, got ${value}`);
    }
  }
  if (options.lr !== undefined && !(options.lr > 0)) throw new RangeError(`lr must be positive, got ${options.lr}`);
}

/**
 * The rows of `records` whose label of `task` is known, with those labels:
 * masked (uncertain-ignored) labels are left out of evaluation, as MoCo-CXR does.
 */
export function labelledRows(records: readonly XrayRecord[], task: string): { rows: number[]; labels: number[] } {
  const rows: number[] = [];
  const labels: number[] = [];
  records.forEach((record, i) => {
    const value = record.labels[task];
    if (value === null || value === undefined) return;
    rows.push(i);
    labels.push(value > 0.5 ? 1 : 0);
  });
  return { rows, labels };
}

/** Labels and mask of `records` for `task`, as rows of a `[N, 1]` float tensor. */
export function labelArrays(
  records: readonly XrayRecord[],
  task: string,
): { labels: Float32Array; mask: Float32Array } {
  const labels = new Float32Array(records.length);
  const mask = new Float32Array(records.length);
  records.forEach((record, i) => {
    const value = record.labels[task];
    if (value === null || value === undefined) return;
    labels[i] = value > 0.5 ? 1 : 0;
    mask[i] = 1;
  });
  return { labels, mask };
}

/** AUC, or NaN where it is undefined (one class). */
export function safeAuc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  try {
    return auc(scores, labels);
  } catch {
    return NaN;
  }
}

/** A best-so-far AUC for progress lines ('n/a' before the first evaluation). */
export function bestText(best: number): string {
  return Number.isFinite(best) ? best.toFixed(4) : 'n/a';
}

/** A checkpoint kept for the ensemble. */
export interface Kept<T> {
  epoch: number;
  step: number;
  valAuc: number;
  item: T;
}

/**
 * Keeps the `size` checkpoints with the highest validation AUC (MoCo-CXR keeps
 * its top 10 and averages their test predictions). On a tie the later
 * checkpoint ranks first: a small validation set often saturates (AUC 1 for
 * many epochs), and the checkpoint trained longer at the same validation AUC
 * is the better one. A checkpoint is copied only when it enters the top.
 */
export class TopCheckpoints<T> {
  private readonly kept: Kept<T>[] = [];

  constructor(
    private readonly size: number,
    private readonly release: (item: T) => void,
  ) {}

  /** Offers a checkpoint; `snapshot` is called only if it is kept. Returns whether it was. */
  offer(epoch: number, step: number, valAuc: number, snapshot: () => T): boolean {
    if (Number.isNaN(valAuc)) return false;
    const worst = this.kept[this.kept.length - 1];
    if (this.kept.length >= this.size && worst !== undefined && valAuc < worst.valAuc) return false;
    const entry = { epoch, step, valAuc, item: snapshot() };
    const at = this.kept.findIndex((other) => valAuc >= other.valAuc);
    this.kept.splice(at < 0 ? this.kept.length : at, 0, entry);
    while (this.kept.length > this.size) this.release((this.kept.pop() as Kept<T>).item);
    return true;
  }

  /** The kept checkpoints, best first. */
  get entries(): readonly Kept<T>[] {
    return this.kept;
  }

  /** Frees every kept checkpoint. */
  dispose(): void {
    for (const entry of this.kept.splice(0)) this.release(entry.item);
  }
}

/**
 * The steps after which a run evaluates: every `evalEvery` training images
 * within an epoch, and at each epoch's end.
 */
export function evaluationSteps(stepsPerEpoch: number, batchSize: number, evalEvery: number): Set<number> {
  const every = Math.max(1, Math.round(evalEvery / batchSize));
  const steps = new Set<number>();
  for (let s = every; s < stepsPerEpoch; s += every) steps.add(s);
  steps.add(stepsPerEpoch);
  return steps;
}

/**
 * The test predictions of a cell: `scores` holds one score per test record
 * with a known label, in record order (the rows {@link labelledRows} gives).
 */
export function testPredictions(
  records: readonly XrayRecord[],
  task: string,
  scores: ArrayLike<number>,
): { test: TestPredictions; testAuc: number } {
  const { rows, labels } = labelledRows(records, task);
  if (scores.length !== rows.length) {
    throw new RangeError(`${scores.length} test scores for ${rows.length} labelled test images`);
  }
  const test: TestPredictions = {
    ids: rows.map((row) => (records[row] as XrayRecord).id),
    studyIds: rows.map((row) => (records[row] as XrayRecord).studyId),
    labels,
    scores: Array.from(scores),
  };
  return { test, testAuc: safeAuc(test.scores, test.labels) };
}

/**
 * What fine-tuning does with the BatchNorm running statistics of its starting
 * weights: `keep` trains from them (PyTorch's default when a checkpoint is
 * loaded); `reset` sets them to mean 0, variance 1 first; `recompute`
 * replaces them, before the first step, by the exact average over one
 * pass of the training images as training augments them (train-mode
 * forward, no gradient); `frozen` keeps every BatchNorm layer in evaluation mode
 * throughout, normalizing by the pretrained statistics and never updating them.
 */
export const BN_STATS = ['keep', 'reset', 'recompute', 'frozen'] as const;
export type BnStatsPolicy = (typeof BN_STATS)[number];

/** The two linear probes (see `LinearProbeOptions.probe` in linear.ts). */
export const LINEAR_PROBES = ['adam', 'lbfgs'] as const;
export type LinearProbeKind = (typeof LINEAR_PROBES)[number];
