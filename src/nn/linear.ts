/** Fully connected layer, as `torch.nn.Linear`. */
import { empty, linear, type Tensor } from '../torch/index.js';
import { defaultLayerInit_ } from './init.js';
import { Module } from './module.js';

/**
 * `y = x Wᵀ + b` with `weight` `[outFeatures, inFeatures]` and optional `bias`
 * `[outFeatures]`, initialized as PyTorch does by default.
 */
export class Linear extends Module {
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: { bias?: boolean } = {},
  ) {
    super();
    const weight = empty([outFeatures, inFeatures]);
    const bias = options.bias === false ? null : empty([outFeatures]);
    defaultLayerInit_(weight, bias);
    this.registerParameter('weight', weight);
    this.registerParameter('bias', bias);
  }

  /** `[outFeatures, inFeatures]` */
  get weight(): Tensor {
    return this.param('weight');
  }

  /** `[outFeatures]`, or null without bias. */
  get bias(): Tensor | null {
    return this.optionalParam('bias');
  }

  override forward(input: Tensor): Tensor {
    return linear(input, this.weight, this.bias);
  }

  override extraRepr(): string {
    return `in_features=${this.inFeatures}, out_features=${this.outFeatures}, bias=${this.bias === null ? 'False' : 'True'}`;
  }
}
