/**
 * The learning-rate scheduler base, with PyTorch 1.13's stepping rules: the
 * constructor makes the first step (epoch 0), and each `step()` advances one
 * epoch and writes the new rate into every parameter group's `lr`.
 */
import { entriesOf, expectDict, expectNumber, getKey, hasKey, type DictLike } from './dict.js';
import type { HasParamGroups, ParamGroup } from './optimizer.js';

/**
 * Sets the learning rate of an optimizer's groups epoch by epoch. Call
 * `step()` once at the END of every epoch, after that epoch's optimizer
 * steps: epoch e then trains with the rate of `lastEpoch === e`. (Stepping
 * once per iteration instead is fine too; the schedule's unit is then the
 * iteration.)
 *
 * Subclasses set their own fields and then call `initialStep()` at the end of
 * their constructor (PyTorch does it in the base constructor; in JavaScript a
 * subclass's fields do not exist yet at that point).
 */
export abstract class LRScheduler {
  readonly optimizer: HasParamGroups;
  /** Each group's starting learning rate (its `initialLr`). */
  baseLrs: number[];
  /** The epoch whose rate the groups now hold (-1 before the first step). */
  lastEpoch: number;
  /** How many times `step()` has run, the constructor's own step included. */
  protected stepCount = 0;
  private lastLr: number[] = [];

  /**
   * @param lastEpoch -1 starts a schedule (each group's `initialLr` is set
   * from its `lr`); a later epoch resumes one, and then every group must
   * already carry `initialLr` (from a loaded optimizer state).
   */
  protected constructor(optimizer: HasParamGroups, lastEpoch = -1) {
    this.optimizer = optimizer;
    if (!Number.isInteger(lastEpoch) || lastEpoch < -1) {
      throw new RangeError(`${this.name}: lastEpoch must be an integer >= -1, got ${lastEpoch}`);
    }
    optimizer.paramGroups.forEach((group, i) => {
      if (lastEpoch === -1) group.initialLr ??= group.lr;
      else if (group.initialLr === undefined) {
        throw new Error(
          `${this.name}: resuming at lastEpoch ${lastEpoch} needs initialLr in param group ${i}; ` +
            'load the optimizer state saved with the schedule first',
        );
      }
    });
    this.baseLrs = optimizer.paramGroups.map((group) => group.initialLr as number);
    this.lastEpoch = lastEpoch;
  }

  /** The class name used in messages ('Adam', 'MultiStepLR'...). */
  protected get name(): string {
    return this.constructor.name;
  }

  /** The rates for `lastEpoch`, computed from the groups' current rates as PyTorch does. */
  protected abstract computeLr(): number[];

  /** This schedule's own settings, under PyTorch's names and in its order. */
  protected abstract ownState(): Record<string, unknown>;

  /** Reads this schedule's own settings from a state dict (keys that are absent stay). */
  protected abstract readOwnState(dict: DictLike): void;

  /** The constructor's step, to epoch lastEpoch + 1. */
  protected initialStep(): void {
    this.stepCount = 0;
    this.step();
  }

  /** Advances one epoch and sets each group's `lr`. */
  step(): void {
    this.stepCount += 1;
    this.lastEpoch += 1;
    const rates = this.computeLr();
    this.optimizer.paramGroups.forEach((group, i) => {
      group.lr = rates[i] as number;
    });
    this.lastLr = this.optimizer.paramGroups.map((group) => group.lr);
  }

  /** The rates the last `step()` set, one per group. */
  getLastLr(): number[] {
    return [...this.lastLr];
  }

  /** The groups' current rates. */
  protected currentLrs(): number[] {
    return this.optimizer.paramGroups.map((group: ParamGroup) => group.lr);
  }

  /**
   * The scheduler's state under PyTorch's names (`last_epoch`, `base_lrs`,
   * `_step_count`, `_last_lr` and the schedule's settings), so it round-trips
   * through a checkpoint and loads into the same PyTorch scheduler.
   */
  stateDict(): Record<string, unknown> {
    return {
      ...this.ownState(),
      base_lrs: [...this.baseLrs],
      last_epoch: this.lastEpoch,
      verbose: false,
      _step_count: this.stepCount,
      _get_lr_called_within_step: false,
      _last_lr: [...this.lastLr],
    };
  }

  /**
   * Restores a state from `stateDict()` (or PyTorch's). As in PyTorch, the
   * groups' learning rates are not touched: they come with the optimizer's
   * own state. To resume, build the optimizer and the scheduler, then load
   * the optimizer's state, then the scheduler's (building the scheduler after
   * loading the optimizer would apply its first step to the loaded rates).
   */
  loadStateDict(dict: unknown): void {
    const saved = expectDict(dict, `${this.name}.loadStateDict`);
    const where = `${this.name} state dict`;
    const numbers = (key: string): number[] | undefined => {
      if (!hasKey(saved, key)) return undefined;
      const value = getKey(saved, key);
      if (!Array.isArray(value)) throw new TypeError(`${where}.${key}: expected a list of numbers`);
      return value.map((v: unknown, i) => expectNumber(v, `${where}.${key}[${i}]`));
    };
    const integer = (key: string): number | undefined => {
      if (!hasKey(saved, key)) return undefined;
      const n = expectNumber(getKey(saved, key), `${where}.${key}`);
      if (!Number.isInteger(n)) throw new TypeError(`${where}.${key}: expected an integer, got ${n}`);
      return n;
    };
    const groups = this.optimizer.paramGroups.length;
    const baseLrs = numbers('base_lrs');
    const lastLr = numbers('_last_lr');
    for (const [key, list] of [
      ['base_lrs', baseLrs],
      ['_last_lr', lastLr],
    ] as const) {
      if (list !== undefined && list.length !== groups) {
        throw new Error(`${where}.${key}: it has ${list.length} entries but the optimizer has ${groups} group(s)`);
      }
    }
    const lastEpoch = integer('last_epoch');
    const stepCount = integer('_step_count');
    this.readOwnState(saved);
    if (baseLrs !== undefined) this.baseLrs = baseLrs;
    if (lastLr !== undefined) this.lastLr = lastLr;
    if (lastEpoch !== undefined) this.lastEpoch = lastEpoch;
    if (stepCount !== undefined) this.stepCount = stepCount;
  }
}

/**
 * A dict of integer -> count, such as MultiStepLR's milestones: a Map or
 * object, or PyTorch's `collections.Counter` as `torch.load(..., {
 * unknownClasses: 'keep' })` returns it.
 */
export function integerCounts(value: unknown, where: string): Map<number, number> {
  const counts = new Map<number, number>();
  const counter = value as { pythonClass?: unknown; args?: unknown } | null;
  if (counter?.pythonClass === 'collections.Counter' && Array.isArray(counter.args)) {
    value = counter.args.length === 0 ? new Map() : (counter.args[0] as unknown);
  }
  for (const [key, count] of entriesOf(expectDict(value, where))) {
    const k = expectNumber(typeof key === 'string' ? Number(key) : key, `${where} key`);
    counts.set(k, expectNumber(count, `${where}[${String(key)}]`));
  }
  return counts;
}
