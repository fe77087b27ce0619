/** 2-d convolution layer, as `torch.nn.Conv2d`. */
import { conv2d, empty, type Tensor } from '../torch/index.js';
import { defaultLayerInit_ } from './init.js';
import { Module } from './module.js';

type Pair = [number, number];

function pair(value: number | Pair): Pair {
  return typeof value === 'number' ? [value, value] : [value[0], value[1]];
}

/** Settings of a Conv2d beyond its channel counts and kernel size. */
export interface Conv2dLayerOptions {
  stride?: number | Pair;
  padding?: number | Pair;
  dilation?: number | Pair;
  groups?: number;
  /** Learn an additive bias (default true). */
  bias?: boolean;
}

/**
 * Convolution over `[N, C, H, W]` input. Parameters `weight`
 * `[outChannels, inChannels / groups, kH, kW]` and optional `bias`, initialized
 * as PyTorch does by default.
 */
export class Conv2d extends Module {
  readonly kernelSize: Pair;
  readonly stride: Pair;
  readonly padding: Pair;
  readonly dilation: Pair;
  readonly groups: number;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    kernelSize: number | Pair,
    options: Conv2dLayerOptions = {},
  ) {
    super();
    this.kernelSize = pair(kernelSize);
    this.stride = pair(options.stride ?? 1);
    this.padding = pair(options.padding ?? 0);
    this.dilation = pair(options.dilation ?? 1);
    this.groups = options.groups ?? 1;
    if (inChannels % this.groups !== 0 || outChannels % this.groups !== 0) {
      throw new RangeError(
        `Conv2d: channels (${inChannels} in, ${outChannels} out) must divide by groups ${this.groups}`,
      );
    }
    const weight = empty([outChannels, inChannels / this.groups, ...this.kernelSize]);
    const bias = options.bias === false ? null : empty([outChannels]);
    defaultLayerInit_(weight, bias);
    this.registerParameter('weight', weight);
    this.registerParameter('bias', bias);
  }

  /** `[outChannels, inChannels / groups, kH, kW]` */
  get weight(): Tensor {
    return this.param('weight');
  }

  /** `[outChannels]`, or null without bias. */
  get bias(): Tensor | null {
    return this.optionalParam('bias');
  }

  override forward(input: Tensor): Tensor {
    return conv2d(input, this.weight, this.bias, {
      stride: this.stride,
      padding: this.padding,
      dilation: this.dilation,
      groups: this.groups,
    });
  }

  override extraRepr(): string {
    const parts = [`${this.inChannels}, ${this.outChannels}`, `kernel_size=(${this.kernelSize.join(', ')})`];
    parts.push(`stride=(${this.stride.join(', ')})`);
    if (this.padding.some((p) => p !== 0)) parts.push(`padding=(${this.padding.join(', ')})`);
    if (this.dilation.some((d) => d !== 1)) parts.push(`dilation=(${this.dilation.join(', ')})`);
    if (this.groups !== 1) parts.push(`groups=${this.groups}`);
    if (this.bias === null) parts.push('bias=False');
    return parts.join(', ');
  }
}
