/**
 * Learning-rate schedules. StepLR, MultiStepLR, ConstantLR and
 * CosineAnnealingLR follow PyTorch 1.13's recursive rules exactly (so a run
 * gives PyTorch's rates to the last bit of a double); WarmupCosineLR, linear
 * warmup then cosine decay, is defined by its closed formula. Call `step()`
 * once at the end of every epoch.
 */
import { expectNumber, getKey, hasKey, type DictLike } from './dict.js';
import type { HasParamGroups } from './optimizer.js';
import { integerCounts, LRScheduler } from './scheduler.js';

function positiveInteger(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${what} must be a positive integer, got ${value}`);
  return value;
}

function readNumber(dict: DictLike, key: string, where: string): number | undefined {
  return hasKey(dict, key) ? expectNumber(getKey(dict, key), `${where}.${key}`) : undefined;
}

/** Multiplies the rate by `gamma` every `stepSize` epochs. */
export class StepLR extends LRScheduler {
  stepSize: number;
  gamma: number;

  constructor(optimizer: HasParamGroups, options: { stepSize: number; gamma?: number; lastEpoch?: number }) {
    super(optimizer, options.lastEpoch);
    this.stepSize = positiveInteger(options.stepSize, 'StepLR: stepSize');
    this.gamma = options.gamma ?? 0.1;
    this.initialStep();
  }

  protected computeLr(): number[] {
    const lrs = this.currentLrs();
    if (this.lastEpoch === 0 || this.lastEpoch % this.stepSize !== 0) return lrs;
    return lrs.map((lr) => lr * this.gamma);
  }

  protected ownState(): Record<string, unknown> {
    return { step_size: this.stepSize, gamma: this.gamma };
  }

  protected readOwnState(dict: DictLike): void {
    this.stepSize = readNumber(dict, 'step_size', 'StepLR state dict') ?? this.stepSize;
    this.gamma = readNumber(dict, 'gamma', 'StepLR state dict') ?? this.gamma;
  }
}

/**
 * Multiplies the rate by `gamma` at each milestone epoch (a milestone listed
 * twice applies gamma twice). MoCo-CXR: `{ milestones: [12, 18, 24], gamma: 0.1 }`.
 */
export class MultiStepLR extends LRScheduler {
  /** Milestone epoch -> how many times it was listed (PyTorch's Counter). */
  milestones: Map<number, number>;
  gamma: number;

  constructor(optimizer: HasParamGroups, options: { milestones: number[]; gamma?: number; lastEpoch?: number }) {
    super(optimizer, options.lastEpoch);
    this.milestones = new Map();
    for (const epoch of options.milestones) {
      if (!Number.isInteger(epoch) || epoch < 0) {
        throw new RangeError(`MultiStepLR: milestones must be epoch numbers, got ${epoch}`);
      }
      this.milestones.set(epoch, (this.milestones.get(epoch) ?? 0) + 1);
    }
    this.gamma = options.gamma ?? 0.1;
    this.initialStep();
  }

  protected computeLr(): number[] {
    const lrs = this.currentLrs();
    const count = this.milestones.get(this.lastEpoch);
    if (count === undefined) return lrs;
    return lrs.map((lr) => lr * this.gamma ** count);
  }

  protected ownState(): Record<string, unknown> {
    return { milestones: new Map(this.milestones), gamma: this.gamma };
  }

  protected readOwnState(dict: DictLike): void {
    if (hasKey(dict, 'milestones')) {
      this.milestones = integerCounts(getKey(dict, 'milestones'), 'MultiStepLR state dict.milestones');
    }
    this.gamma = readNumber(dict, 'gamma', 'MultiStepLR state dict') ?? this.gamma;
  }
}

/**
 * PyTorch's ConstantLR: the rate times `factor` until epoch `totalIters`, then
 * the rate itself. `{ factor: 1 }` keeps the rate constant throughout.
 */
export class ConstantLR extends LRScheduler {
  factor: number;
  totalIters: number;

  constructor(optimizer: HasParamGroups, options: { factor?: number; totalIters?: number; lastEpoch?: number } = {}) {
    super(optimizer, options.lastEpoch);
    this.factor = options.factor ?? 1 / 3;
    if (!(this.factor > 0 && this.factor <= 1)) {
      throw new RangeError(`ConstantLR: factor must be in (0, 1], got ${this.factor}`);
    }
    this.totalIters = options.totalIters ?? 5;
    if (!Number.isInteger(this.totalIters) || this.totalIters < 0) {
      throw new RangeError(`ConstantLR: totalIters must be an integer >= 0, got ${this.totalIters}`);
    }
    this.initialStep();
  }

  protected computeLr(): number[] {
    const lrs = this.currentLrs();
    if (this.lastEpoch === 0) return lrs.map((lr) => lr * this.factor);
    if (this.lastEpoch !== this.totalIters) return lrs;
    return lrs.map((lr) => lr * (1 / this.factor));
  }

  protected ownState(): Record<string, unknown> {
    return { factor: this.factor, total_iters: this.totalIters };
  }

  protected readOwnState(dict: DictLike): void {
    this.factor = readNumber(dict, 'factor', 'ConstantLR state dict') ?? this.factor;
    this.totalIters = readNumber(dict, 'total_iters', 'ConstantLR state dict') ?? this.totalIters;
  }
}

/**
 * Cosine annealing from each group's initial rate down to `etaMin` over
 * `tMax` epochs: `etaMin + (base - etaMin) (1 + cos(π e / tMax)) / 2` (computed
 * by PyTorch's recursive rule, which climbs back up after tMax).
 */
export class CosineAnnealingLR extends LRScheduler {
  tMax: number;
  etaMin: number;

  constructor(optimizer: HasParamGroups, options: { tMax: number; etaMin?: number; lastEpoch?: number }) {
    super(optimizer, options.lastEpoch);
    this.tMax = positiveInteger(options.tMax, 'CosineAnnealingLR: tMax');
    this.etaMin = options.etaMin ?? 0;
    this.initialStep();
  }

  protected computeLr(): number[] {
    const { lastEpoch: e, tMax, etaMin } = this;
    const lrs = this.currentLrs();
    if (e === 0) return lrs;
    if (this.stepCount === 1 && e > 0) {
      return this.baseLrs.map((base) => etaMin + ((base - etaMin) * (1 + Math.cos((e * Math.PI) / tMax))) / 2);
    }
    if ((e - 1 - tMax) % (2 * tMax) === 0) {
      return lrs.map((lr, i) => lr + (((this.baseLrs[i] as number) - etaMin) * (1 - Math.cos(Math.PI / tMax))) / 2);
    }
    return lrs.map(
      (lr) =>
        ((1 + Math.cos((Math.PI * e) / tMax)) / (1 + Math.cos((Math.PI * (e - 1)) / tMax))) * (lr - etaMin) + etaMin,
    );
  }

  protected ownState(): Record<string, unknown> {
    return { T_max: this.tMax, eta_min: this.etaMin };
  }

  protected readOwnState(dict: DictLike): void {
    this.tMax = readNumber(dict, 'T_max', 'CosineAnnealingLR state dict') ?? this.tMax;
    this.etaMin = readNumber(dict, 'eta_min', 'CosineAnnealingLR state dict') ?? this.etaMin;
  }
}

/** Options of `WarmupCosineLR`. */
export interface WarmupCosineOptions {
  /** Epochs of linear warmup (0: none). */
  warmupEpochs?: number;
  /** Epoch at which the cosine reaches etaMin (it stays there after). */
  totalEpochs: number;
  /** The final rate. */
  etaMin?: number;
  /** The rate at epoch 0 as a fraction of the base rate; default 1 / (warmupEpochs + 1). */
  warmupStartFactor?: number;
  lastEpoch?: number;
}

/**
 * Linear warmup, then cosine decay, in closed form. With W warmup epochs, T
 * total epochs, start factor s and base rate b, epoch e gets
 * - e < W: `b (s + (1 - s) e / W)`, rising linearly to b;
 * - W <= e: `etaMin + (b - etaMin) (1 + cos(π min(e - W, T - W) / (T - W))) / 2`.
 * With W = 0 it is cosine annealing over T epochs that stays at etaMin after T.
 */
export class WarmupCosineLR extends LRScheduler {
  warmupEpochs: number;
  totalEpochs: number;
  etaMin: number;
  warmupStartFactor: number;

  constructor(optimizer: HasParamGroups, options: WarmupCosineOptions) {
    super(optimizer, options.lastEpoch);
    this.warmupEpochs = options.warmupEpochs ?? 0;
    if (!Number.isInteger(this.warmupEpochs) || this.warmupEpochs < 0) {
      throw new RangeError(`WarmupCosineLR: warmupEpochs must be an integer >= 0, got ${this.warmupEpochs}`);
    }
    this.totalEpochs = positiveInteger(options.totalEpochs, 'WarmupCosineLR: totalEpochs');
    if (this.totalEpochs <= this.warmupEpochs) {
      throw new RangeError(
        `WarmupCosineLR: totalEpochs (${this.totalEpochs}) must exceed warmupEpochs (${this.warmupEpochs})`,
      );
    }
    this.etaMin = options.etaMin ?? 0;
    this.warmupStartFactor = options.warmupStartFactor ?? 1 / (this.warmupEpochs + 1);
    if (!(this.warmupStartFactor >= 0 && this.warmupStartFactor <= 1)) {
      throw new RangeError(`WarmupCosineLR: warmupStartFactor must be in [0, 1], got ${this.warmupStartFactor}`);
    }
    this.initialStep();
  }

  /** The rate of a group with base rate `base` at epoch `epoch`. */
  rateAt(base: number, epoch: number): number {
    const { warmupEpochs: w, totalEpochs: t, etaMin, warmupStartFactor: s } = this;
    if (epoch < w) return base * (s + ((1 - s) * epoch) / w);
    const progress = Math.min(epoch - w, t - w) / (t - w);
    return etaMin + ((base - etaMin) * (1 + Math.cos(Math.PI * progress))) / 2;
  }

  protected computeLr(): number[] {
    return this.baseLrs.map((base) => this.rateAt(base, this.lastEpoch));
  }

  protected ownState(): Record<string, unknown> {
    return {
      warmup_epochs: this.warmupEpochs,
      total_epochs: this.totalEpochs,
      eta_min: this.etaMin,
      warmup_start_factor: this.warmupStartFactor,
    };
  }

  protected readOwnState(dict: DictLike): void {
    const where = 'WarmupCosineLR state dict';
    this.warmupEpochs = readNumber(dict, 'warmup_epochs', where) ?? this.warmupEpochs;
    this.totalEpochs = readNumber(dict, 'total_epochs', where) ?? this.totalEpochs;
    this.etaMin = readNumber(dict, 'eta_min', where) ?? this.etaMin;
    this.warmupStartFactor = readNumber(dict, 'warmup_start_factor', where) ?? this.warmupStartFactor;
  }
}

/** A schedule described as data (as in a run's config file). */
export type ScheduleSpec =
  | { kind: 'constant' }
  | { kind: 'step'; stepSize: number; gamma?: number }
  | { kind: 'multistep'; milestones: number[]; gamma?: number }
  | { kind: 'cosine'; epochs: number; warmupEpochs?: number; etaMin?: number; warmupStartFactor?: number };

/**
 * Builds the scheduler a spec describes: 'constant' keeps the rate,
 * 'step'/'multistep' decay it by gamma, 'cosine' anneals it over `epochs`
 * (after `warmupEpochs` of linear warmup when given).
 */
export function createScheduler(optimizer: HasParamGroups, spec: ScheduleSpec): LRScheduler {
  switch (spec.kind) {
    case 'constant':
      return new ConstantLR(optimizer, { factor: 1, totalIters: 0 });
    case 'step':
      return new StepLR(optimizer, { stepSize: spec.stepSize, gamma: spec.gamma });
    case 'multistep':
      return new MultiStepLR(optimizer, { milestones: spec.milestones, gamma: spec.gamma });
    case 'cosine':
      if ((spec.warmupEpochs ?? 0) === 0 && spec.warmupStartFactor === undefined) {
        return new CosineAnnealingLR(optimizer, { tMax: spec.epochs, etaMin: spec.etaMin });
      }
      return new WarmupCosineLR(optimizer, {
        totalEpochs: spec.epochs,
        warmupEpochs: spec.warmupEpochs,
        etaMin: spec.etaMin,
        warmupStartFactor: spec.warmupStartFactor,
      });
    default: {
      const kind = (spec as { kind: unknown }).kind;
      throw new TypeError(`unknown schedule kind '${String(kind)}': expected constant, step, multistep or cosine`);
    }
  }
}
