/** Parameter-free layers: activations, dropout, reshaping, identity. */
import { dropout, operator, relu, type Tensor } from '../torch/index.js';
import { Module } from './module.js';

const reluInPlace = operator('aten::relu_');
const alias = operator('aten::alias');
const dropoutInPlace = operator('aten::dropout_');

/**
 * `max(x, 0)`. With `inplace` the input's storage is overwritten (as
 * torchvision's models do to save memory); the result is still a new tensor
 * object that the caller owns.
 */
export class ReLU extends Module {
  constructor(readonly inplace = false) {
    super();
  }

  override forward(input: Tensor): Tensor {
    return this.inplace ? (reluInPlace([input]) as Tensor) : relu(input);
  }

  override extraRepr(): string {
    return this.inplace ? 'inplace=True' : '';
  }
}

/** Zeroes elements with probability `p` and scales the rest by 1/(1-p), in training mode only. */
export class Dropout extends Module {
  constructor(
    readonly p = 0.5,
    readonly inplace = false,
  ) {
    super();
    if (p < 0 || p > 1) throw new RangeError(`Dropout: p must be in [0, 1], got ${p}`);
  }

  override forward(input: Tensor): Tensor {
    if (this.inplace) return dropoutInPlace([input, this.p, this.training]) as Tensor;
    return dropout(input, this.p, this.training);
  }

  override extraRepr(): string {
    return `p=${this.p}, inplace=${this.inplace ? 'True' : 'False'}`;
  }
}

/** Passes the input through (as a new tensor object sharing its storage and its autograd history). */
export class Identity extends Module {
  override forward(input: Tensor): Tensor {
    return alias([input]) as Tensor;
  }
}

/** Flattens dimensions `startDim..endDim` into one (by default all but the batch dimension). */
export class Flatten extends Module {
  constructor(
    readonly startDim = 1,
    readonly endDim = -1,
  ) {
    super();
  }

  override forward(input: Tensor): Tensor {
    return input.flatten(this.startDim, this.endDim);
  }

  override extraRepr(): string {
    return `start_dim=${this.startDim}, end_dim=${this.endDim}`;
  }
}
