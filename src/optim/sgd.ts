/**
 * Stochastic gradient descent with momentum, dampening, Nesterov momentum,
 * L2 weight decay and maximization, step for step as PyTorch 1.13's
 * `torch.optim.SGD`.
 */
import { keep } from '../torch/memory.js';
import type { Tensor } from '../torch/tensor.js';
import { expectBoolean, expectNumber, getKey, hasKey, type DictLike } from './dict.js';
import * as foreach from '../torch/foreach.js';
import { Optimizer, stateTensorLike, type GroupKey, type ParamGroup, type ParamsInput } from './optimizer.js';

/** The options of an SGD parameter group. */
export interface SGDGroup extends ParamGroup {
  /** Momentum factor (0: plain SGD, no buffer). */
  momentum: number;
  /** Dampening of the momentum: the buffer adds `(1 - dampening) * grad`. */
  dampening: number;
  /** L2 penalty added to the gradient: `grad + weightDecay * param`. */
  weightDecay: number;
  /** Nesterov momentum (needs momentum > 0 and dampening 0). */
  nesterov: boolean;
  /** Ascend the objective instead of descending it. */
  maximize: boolean;
}

/** A parameter's SGD state: its momentum buffer, or null when the group has no momentum. */
export interface SGDState {
  momentumBuffer: Tensor | null;
}

const GROUP_KEYS: readonly GroupKey<SGDGroup>[] = [
  { key: 'lr', option: 'lr', read: (g) => g.lr, write: (g, v, at) => (g.lr = expectNumber(v, at)) },
  {
    key: 'momentum',
    option: 'momentum',
    read: (g) => g.momentum,
    write: (g, v, at) => (g.momentum = expectNumber(v, at)),
  },
  {
    key: 'dampening',
    option: 'dampening',
    read: (g) => g.dampening,
    write: (g, v, at) => (g.dampening = expectNumber(v, at)),
  },
  {
    key: 'weight_decay',
    option: 'weightDecay',
    read: (g) => g.weightDecay,
    write: (g, v, at) => (g.weightDecay = expectNumber(v, at)),
  },
  {
    key: 'nesterov',
    option: 'nesterov',
    read: (g) => g.nesterov,
    write: (g, v, at) => (g.nesterov = expectBoolean(v, at)),
  },
  {
    key: 'maximize',
    option: 'maximize',
    read: (g) => g.maximize,
    write: (g, v, at) => (g.maximize = expectBoolean(v, at)),
  },
  { key: 'foreach', fixed: null },
  { key: 'differentiable', fixed: false },
];

/**
 * SGD: `buf = momentum * buf + (1 - dampening) * g` (the first step copies
 * g), then `param -= lr * (nesterov ? g + momentum * buf : buf)`, where g is
 * the gradient (negated when maximizing) plus `weightDecay * param`.
 *
 * ```ts
 * const opt = new optim.SGD(net.parameters(), { lr: 0.1, momentum: 0.9, weightDecay: 1e-4 });
 * ```
 */
export class SGD extends Optimizer<SGDGroup, SGDState> {
  constructor(params: ParamsInput<SGDGroup>, options: Partial<Omit<SGDGroup, 'params'>> = {}) {
    super(params, {
      lr: options.lr ?? 1e-3,
      momentum: options.momentum ?? 0,
      dampening: options.dampening ?? 0,
      weightDecay: options.weightDecay ?? 0,
      nesterov: options.nesterov ?? false,
      maximize: options.maximize ?? false,
    });
  }

  protected get groupKeys(): readonly GroupKey<SGDGroup>[] {
    return GROUP_KEYS;
  }

  protected checkGroup(group: SGDGroup, where: string): void {
    if (!(group.lr >= 0)) throw new RangeError(`${where}: lr must be >= 0, got ${group.lr}`);
    if (!(group.momentum >= 0)) throw new RangeError(`${where}: momentum must be >= 0, got ${group.momentum}`);
    if (!(group.weightDecay >= 0)) {
      throw new RangeError(`${where}: weightDecay must be >= 0, got ${group.weightDecay}`);
    }
    if (group.nesterov && (group.momentum <= 0 || group.dampening !== 0)) {
      throw new RangeError(`${where}: Nesterov momentum needs momentum > 0 and dampening 0`);
    }
  }

  protected stepGroup(group: SGDGroup): void {
    const params: Tensor[] = [];
    const grads: Tensor[] = [];
    for (const param of group.params) {
      const grad = param.grad;
      if (grad === null) continue;
      params.push(param);
      grads.push(grad);
    }
    if (params.length === 0) return;

    // d is the gradient the update uses; `fresh` says whether it is ours to change in place.
    let d = grads;
    let fresh = false;
    if (group.maximize) {
      d = foreach.neg(d);
      fresh = true;
    }
    if (group.weightDecay !== 0) {
      if (fresh) foreach.addList_(d, params, group.weightDecay);
      else d = foreach.addList(d, params, group.weightDecay);
      fresh = true;
    }

    if (group.momentum !== 0) {
      const bufs: Tensor[] = [];
      const running: Tensor[] = [];
      const runningD: Tensor[] = [];
      for (const [i, param] of params.entries()) {
        const state = this.state.get(param);
        const di = d[i] as Tensor;
        if (state?.momentumBuffer != null) {
          running.push(state.momentumBuffer);
          runningD.push(di);
          bufs.push(state.momentumBuffer);
        } else {
          // The first step starts the buffer at the gradient itself.
          const buf = keep(di.clone());
          if (state === undefined) this.state.set(param, { momentumBuffer: buf });
          else state.momentumBuffer = buf;
          bufs.push(buf);
        }
      }
      foreach.mulScalar_(running, group.momentum);
      foreach.addList_(running, runningD, 1 - group.dampening);
      if (group.nesterov) {
        if (fresh) foreach.addList_(d, bufs, group.momentum);
        else d = foreach.addList(d, bufs, group.momentum);
      } else {
        d = bufs;
      }
    } else {
      // PyTorch records an empty buffer for each stepped parameter; the state dict shows it.
      for (const param of params) if (!this.state.has(param)) this.state.set(param, { momentumBuffer: null });
    }

    foreach.addList_(params, d, -group.lr);
  }

  protected packState(state: SGDState): Record<string, Tensor | null> {
    return { momentum_buffer: state.momentumBuffer === null ? null : state.momentumBuffer.clone() };
  }

  protected unpackState(entry: DictLike, param: Tensor, where: string): SGDState {
    const saved = hasKey(entry, 'momentum_buffer') ? getKey(entry, 'momentum_buffer') : null;
    if (saved === null || saved === undefined) return { momentumBuffer: null };
    return { momentumBuffer: stateTensorLike(param, saved, `${where}.momentum_buffer`) };
  }

  protected disposeState(state: SGDState): void {
    state.momentumBuffer?.dispose();
    state.momentumBuffer = null;
  }
}
