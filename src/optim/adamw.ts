/**
 * AdamW: Adam with decoupled weight decay, step for step as PyTorch 1.13's
 * `torch.optim.AdamW`.
 */
import { ADAM_FIELDS, AdamBase, type AdamGroup } from './adam.js';
import type { GroupKey, ParamsInput } from './optimizer.js';

// PyTorch 1.13's AdamW group, in its order (it differs from Adam's).
const ADAMW_KEYS: readonly GroupKey<AdamGroup>[] = [
  ADAM_FIELDS.lr,
  ADAM_FIELDS.betas,
  ADAM_FIELDS.eps,
  ADAM_FIELDS.weightDecay,
  ADAM_FIELDS.amsgrad,
  { key: 'foreach', fixed: null },
  ADAM_FIELDS.maximize,
  { key: 'capturable', fixed: false },
];

/**
 * AdamW (Loshchilov & Hutter): the Adam update of `Adam`, except that weight
 * decay does not enter the gradient; each step first shrinks the parameters,
 * `param *= 1 - lr * weightDecay`. The default weightDecay is 0.01, as in
 * PyTorch.
 */
export class AdamW extends AdamBase {
  constructor(params: ParamsInput<AdamGroup>, options: Partial<Omit<AdamGroup, 'params'>> = {}) {
    super(params, {
      lr: options.lr ?? 1e-3,
      betas: options.betas ?? [0.9, 0.999],
      eps: options.eps ?? 1e-8,
      weightDecay: options.weightDecay ?? 1e-2,
      amsgrad: options.amsgrad ?? false,
      maximize: options.maximize ?? false,
    });
  }

  protected get groupKeys(): readonly GroupKey<AdamGroup>[] {
    return ADAMW_KEYS;
  }

  protected get decoupledWeightDecay(): boolean {
    return true;
  }
}
