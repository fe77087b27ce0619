/**
 * Adam (and the machinery AdamW shares), step for step as PyTorch 1.13's
 * `torch.optim.Adam`: L2 weight decay added to the gradient, bias-corrected
 * moments, eps added after the square root, optional AMSGrad.
 */
import { scalar, zerosLike } from '../torch/creation.js';
import { keep } from '../torch/memory.js';
import { tuple } from '../torch/serialization.js';
import type { Tensor } from '../torch/tensor.js';
import { expectBoolean, expectNumber, expectPair, getKey, hasKey, requireKey, type DictLike } from './dict.js';
import * as foreach from '../torch/foreach.js';
import { Optimizer, stateTensorLike, type GroupKey, type ParamGroup, type ParamsInput } from './optimizer.js';

/** The options of an Adam or AdamW parameter group. */
export interface AdamGroup extends ParamGroup {
  /** Decay rates of the first and second moment averages. */
  betas: [number, number];
  /** Added to the denominator after the square root. */
  eps: number;
  /** Adam: L2 penalty added to the gradient. AdamW: decoupled decay, `param *= 1 - lr * weightDecay`. */
  weightDecay: number;
  /** Normalize by the running maximum of the second moment (AMSGrad). */
  amsgrad: boolean;
  /** Ascend the objective instead of descending it. */
  maximize: boolean;
}

/**
 * A parameter's Adam state. `step` counts the updates this parameter has had
 * (PyTorch 1.13 keeps it in a float32 0-d tensor; it is a number here and
 * becomes that tensor in a state dict).
 */
export interface AdamState {
  step: number;
  expAvg: Tensor;
  expAvgSq: Tensor;
  /** Present once the group has stepped with AMSGrad. */
  maxExpAvgSq: Tensor | null;
}

/** Group keys Adam and AdamW share, by PyTorch name. */
export const ADAM_FIELDS = {
  lr: { key: 'lr', option: 'lr', read: (g) => g.lr, write: (g, v, at) => (g.lr = expectNumber(v, at)) },
  betas: {
    key: 'betas',
    option: 'betas',
    read: (g) => tuple(...g.betas),
    write: (g, v, at) => (g.betas = expectPair(v, at)),
  },
  eps: { key: 'eps', option: 'eps', read: (g) => g.eps, write: (g, v, at) => (g.eps = expectNumber(v, at)) },
  weightDecay: {
    key: 'weight_decay',
    option: 'weightDecay',
    read: (g) => g.weightDecay,
    write: (g, v, at) => (g.weightDecay = expectNumber(v, at)),
  },
  amsgrad: {
    key: 'amsgrad',
    option: 'amsgrad',
    read: (g) => g.amsgrad,
    write: (g, v, at) => (g.amsgrad = expectBoolean(v, at)),
  },
  maximize: {
    key: 'maximize',
    option: 'maximize',
    read: (g) => g.maximize,
    write: (g, v, at) => (g.maximize = expectBoolean(v, at)),
  },
} satisfies Record<string, GroupKey<AdamGroup>>;

// PyTorch 1.13's Adam group, in its order (AdamW's differs).
const ADAM_KEYS: readonly GroupKey<AdamGroup>[] = [
  ADAM_FIELDS.lr,
  ADAM_FIELDS.betas,
  ADAM_FIELDS.eps,
  ADAM_FIELDS.weightDecay,
  ADAM_FIELDS.amsgrad,
  ADAM_FIELDS.maximize,
  { key: 'foreach', fixed: null },
  { key: 'capturable', fixed: false },
  { key: 'differentiable', fixed: false },
  { key: 'fused', fixed: false },
];

/** What Adam and AdamW share: state, checks, state dicts and the update. */
export abstract class AdamBase extends Optimizer<AdamGroup, AdamState> {
  /** Whether weight decay shrinks the parameters directly (AdamW) rather than adding to the gradient (Adam). */
  protected abstract get decoupledWeightDecay(): boolean;

  protected constructor(params: ParamsInput<AdamGroup>, defaults: Omit<AdamGroup, 'params'>) {
    super(params, defaults);
  }

  protected checkGroup(group: AdamGroup, where: string): void {
    if (!(group.lr >= 0)) throw new RangeError(`${where}: lr must be >= 0, got ${group.lr}`);
    if (!(group.eps >= 0)) throw new RangeError(`${where}: eps must be >= 0, got ${group.eps}`);
    const betas = group.betas as unknown;
    if (!Array.isArray(betas) || betas.length !== 2) {
      throw new TypeError(`${where}: betas must be a pair of numbers`);
    }
    group.betas.forEach((beta, i) => {
      if (!(beta >= 0 && beta < 1)) throw new RangeError(`${where}: betas[${i}] must be in [0, 1), got ${beta}`);
    });
    if (!(group.weightDecay >= 0)) {
      throw new RangeError(`${where}: weightDecay must be >= 0, got ${group.weightDecay}`);
    }
  }

  protected stepGroup(group: AdamGroup): void {
    const params: Tensor[] = [];
    const grads: Tensor[] = [];
    const states: AdamState[] = [];
    for (const param of group.params) {
      const grad = param.grad;
      if (grad === null) continue;
      params.push(param);
      grads.push(grad);
      states.push(this.stateFor(param, group.amsgrad));
    }
    if (params.length === 0) return;
    const [beta1, beta2] = group.betas;
    const { lr, weightDecay } = group;

    let g = group.maximize ? foreach.neg(grads) : grads;
    if (weightDecay !== 0) {
      if (this.decoupledWeightDecay) foreach.mulScalar_(params, 1 - lr * weightDecay);
      else if (group.maximize) foreach.addList_(g, params, weightDecay);
      else g = foreach.addList(g, params, weightDecay);
    }
    for (const state of states) state.step += 1;

    const expAvgs = states.map((s) => s.expAvg);
    const expAvgSqs = states.map((s) => s.expAvgSq);
    foreach.mulScalar_(expAvgs, beta1);
    foreach.addList_(expAvgs, g, 1 - beta1);
    foreach.mulScalar_(expAvgSqs, beta2);
    foreach.addcmul_(expAvgSqs, g, g, 1 - beta2);
    let second = expAvgSqs;
    if (group.amsgrad) {
      second = states.map((s) => s.maxExpAvgSq as Tensor);
      foreach.maximum_(second, expAvgSqs);
    }

    // Bias corrections depend on each parameter's step count; parameters that
    // joined late have fewer steps, so update each step count's set in turn.
    for (const indices of groupByStep(states)) {
      const step = (states[indices[0] as number] as AdamState).step;
      const pick = <T>(xs: T[]): T[] => (indices.length === xs.length ? xs : indices.map((i) => xs[i] as T));
      const stepSize = lr / (1 - beta1 ** step);
      const denom = foreach.sqrt(pick(second));
      foreach.divScalar_(denom, Math.sqrt(1 - beta2 ** step));
      foreach.addScalar_(denom, group.eps);
      foreach.addcdiv_(pick(params), pick(expAvgs), denom, -stepSize);
    }
  }

  /** The state of `param`, made (zeros) on its first step. */
  private stateFor(param: Tensor, amsgrad: boolean): AdamState {
    let state = this.state.get(param);
    if (state === undefined) {
      state = { step: 0, expAvg: keep(zerosLike(param)), expAvgSq: keep(zerosLike(param)), maxExpAvgSq: null };
      this.state.set(param, state);
    }
    if (amsgrad && state.maxExpAvgSq === null) state.maxExpAvgSq = keep(zerosLike(param));
    return state;
  }

  protected packState(state: AdamState): Record<string, Tensor | null> {
    const packed: Record<string, Tensor | null> = {
      step: scalar(state.step, { dtype: 'float32' }),
      exp_avg: state.expAvg.clone(),
      exp_avg_sq: state.expAvgSq.clone(),
    };
    if (state.maxExpAvgSq !== null) packed.max_exp_avg_sq = state.maxExpAvgSq.clone();
    return packed;
  }

  protected unpackState(entry: DictLike, param: Tensor, where: string): AdamState {
    const step = expectNumber(requireKey(entry, 'step', where), `${where}.step`);
    if (!Number.isInteger(step) || step < 0) throw new RangeError(`${where}.step: expected a count, got ${step}`);
    const made: Tensor[] = [];
    try {
      const like = (key: string): Tensor => {
        const t = stateTensorLike(param, requireKey(entry, key, where), `${where}.${key}`);
        made.push(t);
        return t;
      };
      const expAvg = like('exp_avg');
      const expAvgSq = like('exp_avg_sq');
      const max = getKey(entry, 'max_exp_avg_sq');
      const maxExpAvgSq = hasKey(entry, 'max_exp_avg_sq') && max !== null ? like('max_exp_avg_sq') : null;
      return { step, expAvg, expAvgSq, maxExpAvgSq };
    } catch (error) {
      for (const t of made) t.dispose();
      throw error;
    }
  }

  protected disposeState(state: AdamState): void {
    state.expAvg.dispose();
    state.expAvgSq.dispose();
    state.maxExpAvgSq?.dispose();
    state.maxExpAvgSq = null;
  }
}

/** Indices of `states` grouped by step count (one group in ordinary training). */
function groupByStep(states: readonly AdamState[]): number[][] {
  const first = states[0]?.step;
  if (states.every((s) => s.step === first)) return [states.map((_, i) => i)];
  const byStep = new Map<number, number[]>();
  states.forEach((s, i) => {
    const list = byStep.get(s.step);
    if (list === undefined) byStep.set(s.step, [i]);
    else list.push(i);
  });
  return [...byStep.values()];
}

/**
 * Adam (Kingma & Ba), as PyTorch 1.13 computes it. With g the gradient
 * (negated when maximizing) plus `weightDecay * param`, and t the step count:
 * `m = β1 m + (1-β1) g`, `v = β2 v + (1-β2) g²`, then
 * `param -= lr / (1-β1^t) · m / (sqrt(v) / sqrt(1-β2^t) + eps)`; AMSGrad
 * uses the running maximum of v in place of v.
 *
 * MoCo-CXR pretrains with `new optim.Adam(params, { lr: 1e-4, weightDecay: 1e-4 })`.
 */
export class Adam extends AdamBase {
  constructor(params: ParamsInput<AdamGroup>, options: Partial<Omit<AdamGroup, 'params'>> = {}) {
    super(params, {
      lr: options.lr ?? 1e-3,
      betas: options.betas ?? [0.9, 0.999],
      eps: options.eps ?? 1e-8,
      weightDecay: options.weightDecay ?? 0,
      amsgrad: options.amsgrad ?? false,
      maximize: options.maximize ?? false,
    });
  }

  protected get groupKeys(): readonly GroupKey<AdamGroup>[] {
    return ADAM_KEYS;
  }

  protected get decoupledWeightDecay(): boolean {
    return false;
  }
}
