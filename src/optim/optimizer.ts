/**
 * The optimizer base: parameter groups, per-parameter state, zeroGrad, and
 * state dicts in PyTorch's own layout, so that an optimizer state saved here
 * loads in PyTorch (`optimizer.load_state_dict`) and the other way round.
 */
import { aten } from '../torch/aten.js';
import { keep, tidy } from '../torch/memory.js';
import { noGrad } from '../torch/runtime.js';
import { isTensor, type Tensor } from '../torch/tensor.js';
import {
  describe,
  entriesOf,
  expectDict,
  expectIntegers,
  expectNumber,
  expectTensor,
  getKey,
  hasKey,
  integerKey,
  requireKey,
  type DictLike,
} from './dict.js';
import * as foreach from '../torch/foreach.js';

/** The options every parameter group carries. */
export interface ParamGroup {
  /** The tensors this group updates (leaf tensors). */
  params: Tensor[];
  /** Learning rate; schedulers rewrite it. */
  lr: number;
  /** The learning rate a schedule started from (PyTorch's `initial_lr`); set by the first scheduler. */
  initialLr?: number;
}

/** A parameter group as given to a constructor: its params, and any options that differ from the defaults. */
export type ParamGroupInput<G extends ParamGroup> = { params: Tensor[] } & Partial<Omit<G, 'params'>>;

/** What an optimizer accepts: a list of tensors (one group) or a list of groups. */
export type ParamsInput<G extends ParamGroup> = Tensor[] | ParamGroupInput<G>[];

/**
 * An optimizer state in PyTorch's layout: `state` maps a parameter's index
 * (counted across groups in order) to its state, and each group lists its
 * options under PyTorch's names plus `params`, the indices of its tensors.
 */
export interface OptimizerStateDict {
  state: Map<number, Record<string, Tensor | null>>;
  param_groups: Record<string, unknown>[];
}

/**
 * How one group option appears in a state dict, under PyTorch's name. An
 * option without `read` is one this library does not implement (`foreach`,
 * `capturable`...): it is written as `fixed`, or as the value a loaded dict
 * carried, so that a dict survives a round trip unchanged.
 */
export interface GroupKey<G extends ParamGroup> {
  key: string;
  /** The option's name in a group here (`weightDecay` for `weight_decay`), when it is one. */
  option?: string;
  read?: (group: G) => unknown;
  write?: (group: G, value: unknown, where: string) => void;
  fixed?: unknown;
}

/** Anything an LR scheduler can drive: parameter groups with a learning rate. */
export interface HasParamGroups {
  readonly paramGroups: ParamGroup[];
}

/**
 * Base of SGD, Adam and AdamW. `G` is the group type (its options), `S` the
 * state kept per parameter. State tensors are owned by the optimizer: they
 * survive enclosing `tidy` scopes and are freed by `dispose()`.
 */
export abstract class Optimizer<G extends ParamGroup = ParamGroup, S extends object = object>
  implements HasParamGroups
{
  /** The parameter groups; change `lr` (or any option) here between steps. */
  readonly paramGroups: G[] = [];
  /** Per-parameter state, made on a parameter's first step. */
  readonly state = new Map<Tensor, S>();
  /** Options a group takes when it does not set them. */
  readonly defaults: Readonly<Omit<G, 'params'>>;
  /** Each group's key order in a state dict, and the keys this library does not implement, as loaded. */
  private readonly layout = new WeakMap<G, GroupLayout>();

  protected constructor(params: ParamsInput<G>, defaults: Omit<G, 'params'>) {
    this.defaults = defaults;
    if (!Array.isArray(params) || params.length === 0) {
      throw new TypeError(`${this.name}: expected a non-empty list of tensors or of parameter groups`);
    }
    const groups: ParamGroupInput<G>[] = isTensorList(params)
      ? [{ params } as ParamGroupInput<G>]
      : (params as ParamGroupInput<G>[]);
    for (const group of groups) this.addParamGroup(group);
  }

  /** The class name used in messages ('Adam', 'MultiStepLR'...). */
  protected get name(): string {
    return this.constructor.name;
  }

  /** The group options in PyTorch's order, under PyTorch's names. */
  protected abstract get groupKeys(): readonly GroupKey<G>[];

  /** Throws when a group's options are out of range. */
  protected abstract checkGroup(group: G, where: string): void;

  /** Updates the parameters of one group (runs under noGrad, inside a tidy scope). */
  protected abstract stepGroup(group: G): void;

  /** The state of one parameter as PyTorch names it, as new tensors the caller owns. */
  protected abstract packState(state: S): Record<string, Tensor | null>;

  /** Reads one parameter's state from a dict into new tensors this optimizer owns. */
  protected abstract unpackState(entry: DictLike, param: Tensor, where: string): S;

  /** Frees one parameter's state. */
  protected abstract disposeState(state: S): void;

  /** Adds a parameter group; options it leaves out take the defaults. */
  addParamGroup(input: ParamGroupInput<G>): void {
    const where = `${this.name} param group ${this.paramGroups.length}`;
    if (!Array.isArray(input.params as unknown) || !isTensorList(input.params)) {
      throw new TypeError(`${where}: 'params' must be a list of tensors`);
    }
    const group = {} as G;
    // Copy list options (betas) so that groups never share one array.
    for (const [key, value] of [...Object.entries(this.defaults), ...Object.entries(input)] as [string, unknown][]) {
      if (value !== undefined) (group as Record<string, unknown>)[key] = copyList(value);
    }
    group.params = [...input.params];
    this.checkGroup(group, where);
    // PyTorch keeps a group's options in the order it was given them, then the defaults it filled in.
    const pythonName = new Map(this.groupKeys.map((field) => [field.option, field.key]));
    pythonName.set('initialLr', 'initial_lr');
    const order: string[] = [];
    for (const [key, value] of Object.entries(input) as [string, unknown][]) {
      const name = pythonName.get(key);
      if (value !== undefined && name !== undefined) order.push(name);
    }
    const seen = new Set<Tensor>(this.paramGroups.flatMap((g) => g.params));
    for (const [i, param] of group.params.entries()) {
      if (param.isDisposed) throw new TypeError(`${where}: params[${i}] has been disposed`);
      if (!param.isLeaf) throw new TypeError(`${where}: params[${i}] is not a leaf tensor and cannot be optimized`);
      if (seen.has(param)) throw new TypeError(`${where}: params[${i}] appears in more than one place`);
      seen.add(param);
    }
    this.paramGroups.push(group);
    this.layout.set(group, { order, carried: new Map() });
  }

  /**
   * Clears the gradients of every parameter: zeroes them in one native call
   * (PyTorch 1.13's default), or drops them when `setToNone` is true. A
   * parameter with no gradient is skipped by `step()`, while one with a zero
   * gradient is still stepped (Adam moves it by its momentum).
   */
  zeroGrad(setToNone = false): void {
    tidy(() => {
      const grads: Tensor[] = [];
      for (const group of this.paramGroups) {
        for (const param of group.params) {
          const grad = param.grad;
          if (grad === null) continue;
          if (setToNone) param.grad = null;
          else grads.push(grad);
        }
      }
      foreach.zero_(grads);
    });
  }

  /** Updates every parameter that has a gradient; runs without recording autograd. */
  step(): void {
    noGrad(() =>
      tidy(() => {
        for (const group of this.paramGroups) this.stepGroup(group);
      }),
    );
  }

  /**
   * The optimizer's state in PyTorch's layout (see `OptimizerStateDict`). The
   * tensors are copies owned by the caller: free them with `torch.dispose()`
   * once saved.
   */
  stateDict(): OptimizerStateDict {
    const index = new Map<Tensor, number>();
    const paramGroups = this.paramGroups.map((group) => {
      const packed: Record<string, unknown> = {};
      const { order, carried } = this.layout.get(group) ?? { order: [], carried: new Map<string, unknown>() };
      const keys = new Set([...order, ...this.groupKeys.map((field) => field.key), 'initial_lr', ...carried.keys()]);
      const fields = new Map(this.groupKeys.map((field) => [field.key, field]));
      for (const key of keys) {
        const field = fields.get(key);
        if (key === 'initial_lr') {
          if (group.initialLr !== undefined) packed[key] = group.initialLr;
        } else if (field?.read !== undefined) packed[key] = field.read(group);
        else if (carried.has(key)) packed[key] = carried.get(key);
        else if (field !== undefined) packed[key] = field.fixed;
      }
      packed.params = group.params.map((param) => {
        let i = index.get(param);
        if (i === undefined) index.set(param, (i = index.size));
        return i;
      });
      return packed;
    });
    const state = new Map<number, Record<string, Tensor | null>>();
    noGrad(() => {
      for (const [param, paramState] of this.state) {
        const i = index.get(param);
        if (i !== undefined) state.set(i, this.packState(paramState));
      }
    });
    return { state, param_groups: paramGroups };
  }

  /**
   * Replaces the optimizer's options and state with a saved state dict (from
   * `stateDict()`, or a PyTorch optimizer's `state_dict()` read with
   * `torch.load`). Groups must match in number and size; parameters pair up by
   * position. The dict's tensors are copied (cast to each parameter's dtype and
   * device, except `step`), so the caller still owns them. On an error nothing
   * changes.
   */
  loadStateDict(dict: unknown): void {
    const root = expectDict(dict, `${this.name}.loadStateDict`);
    const where = 'optimizer state dict';
    const savedGroups = requireKey(root, 'param_groups', where);
    if (!Array.isArray(savedGroups)) {
      throw new TypeError(`${where}.param_groups: expected a list, got ${describe(savedGroups)}`);
    }
    if (savedGroups.length !== this.paramGroups.length) {
      throw new Error(
        `${where}: it has ${savedGroups.length} parameter group(s) but this ${this.name} has ${this.paramGroups.length}`,
      );
    }
    const byIndex = new Map<number, Tensor>();
    const staged = savedGroups.map((raw, gi) => {
      const group = this.paramGroups[gi] as G;
      const at = `${where}.param_groups[${gi}]`;
      const saved = expectDict(raw, at);
      const ids = expectIntegers(requireKey(saved, 'params', at), `${at}.params`);
      if (ids.length !== group.params.length) {
        throw new Error(
          `${at}: it lists ${ids.length} parameters but this ${this.name}'s group has ${group.params.length}`,
        );
      }
      ids.forEach((id, j) => byIndex.set(id, group.params[j] as Tensor));
      return this.readGroup(saved, group, at);
    });
    const state = new Map<Tensor, S>();
    noGrad(() => {
      try {
        const savedState = expectDict(requireKey(root, 'state', where), `${where}.state`);
        for (const [key, value] of entriesOf(savedState)) {
          const at = `${where}.state[${String(key)}]`;
          const param = byIndex.get(integerKey(key, at));
          if (param === undefined) throw new Error(`${at}: no parameter group lists parameter ${String(key)}`);
          state.set(param, this.unpackState(expectDict(value, at), param, at));
        }
      } catch (error) {
        for (const paramState of state.values()) this.disposeState(paramState);
        throw error;
      }
    });
    for (const paramState of this.state.values()) this.disposeState(paramState);
    this.state.clear();
    for (const [param, paramState] of state) this.state.set(param, paramState);
    staged.forEach(({ options, layout }, gi) => {
      const group = this.paramGroups[gi] as G;
      delete group.initialLr;
      Object.assign(group, options);
      this.layout.set(group, layout);
    });
  }

  /** Frees the state tensors; the optimizer starts afresh on its next step. */
  dispose(): void {
    for (const paramState of this.state.values()) this.disposeState(paramState);
    this.state.clear();
  }

  /** Reads one saved group's options onto a copy of `group` (checked), and the keys to carry. */
  private readGroup(saved: DictLike, group: G, where: string): { options: Omit<G, 'params'>; layout: GroupLayout } {
    const draft = { ...this.defaults, params: group.params } as G;
    for (const [key, value] of Object.entries(draft) as [string, unknown][]) {
      if (key !== 'params') (draft as Record<string, unknown>)[key] = copyList(value);
    }
    const carried = new Map<string, unknown>();
    const known = new Set(['params', 'initial_lr']);
    requireKey(saved, 'lr', where);
    for (const field of this.groupKeys) {
      known.add(field.key);
      if (!hasKey(saved, field.key)) continue;
      const value = getKey(saved, field.key);
      if (field.write !== undefined) field.write(draft, value, `${where}.${field.key}`);
      else carried.set(field.key, value);
    }
    if (hasKey(saved, 'initial_lr')) {
      draft.initialLr = expectNumber(getKey(saved, 'initial_lr'), `${where}.initial_lr`);
    }
    for (const [key, value] of entriesOf(saved)) {
      if (typeof key === 'string' && !known.has(key)) carried.set(key, value);
    }
    this.checkGroup(draft, where);
    const { params: _params, ...options } = draft;
    const order = entriesOf(saved)
      .map(([key]) => key)
      .filter((key): key is string => typeof key === 'string' && key !== 'params');
    return { options, layout: { order, carried } };
  }
}

/** A group's key order in a state dict, and the values of keys this library does not implement. */
interface GroupLayout {
  order: string[];
  carried: Map<string, unknown>;
}

/** Copies a saved state tensor into a new tensor like `param` (its dtype and device), which the optimizer owns. */
export function stateTensorLike(param: Tensor, value: unknown, where: string): Tensor {
  const saved = expectTensor(value, where);
  const want = param.shape;
  const got = saved.shape;
  if (want.length !== got.length || want.some((size, i) => size !== got[i])) {
    throw new Error(`${where}: shape [${got.join(', ')}] does not match its parameter's [${want.join(', ')}]`);
  }
  return keep((aten.emptyLike([param]) as Tensor).copy_(saved));
}

/** A copy of an array option (so that groups never share one), or the value itself. */
function copyList(value: unknown): unknown {
  return Array.isArray(value) ? [...(value as unknown[])] : value;
}

function isTensorList(values: readonly unknown[]): values is Tensor[] {
  return values.every(isTensor);
}
