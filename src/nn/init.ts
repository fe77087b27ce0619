/**
 * Weight initialization, as `torch.nn.init`: the same formulas and the same
 * draws from the global generator, so that after `torch.manualSeed(s)` a model
 * built here starts from the values PyTorch gives it after `torch.manual_seed(s)`.
 */
import { noGrad, type Tensor } from '../torch/index.js';

/** Nonlinearities whose recommended gain `calculateGain` knows. */
export type Nonlinearity = 'linear' | 'conv2d' | 'sigmoid' | 'tanh' | 'relu' | 'leaky_relu' | 'selu';

/** The recommended gain for a nonlinearity (`param` is leaky ReLU's negative slope, default 0.01). */
export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  switch (nonlinearity) {
    case 'linear':
    case 'conv2d':
    case 'sigmoid':
      return 1;
    case 'tanh':
      return 5.0 / 3;
    case 'relu':
      return Math.sqrt(2.0);
    case 'leaky_relu': {
      const slope = param ?? 0.01;
      return Math.sqrt(2.0 / (1 + slope * slope));
    }
    case 'selu':
      return 3.0 / 4;
  }
}

/** `[fanIn, fanOut]` of a weight: input / output features times the kernel's area. */
export function calculateFanInAndFanOut(weight: Tensor): [number, number] {
  const shape = weight.shape;
  if (shape.length < 2) {
    throw new RangeError(`fan in and fan out need a tensor of at least 2 dimensions, got [${shape.join(', ')}]`);
  }
  const receptiveField = shape.slice(2).reduce((a, b) => a * b, 1);
  return [(shape[1] as number) * receptiveField, (shape[0] as number) * receptiveField];
}

/** Options of the Kaiming (He) initializers. */
export interface KaimingOptions {
  /** Negative slope of the rectifier after this layer (leaky ReLU); 0 by default. */
  a?: number;
  /** Preserve the variance of the forward pass ('fanIn', default) or of the backward pass ('fanOut'). */
  mode?: 'fanIn' | 'fanOut';
  nonlinearity?: Nonlinearity;
}

function kaimingStd(weight: Tensor, options: KaimingOptions): number {
  const [fanIn, fanOut] = calculateFanInAndFanOut(weight);
  const fan = (options.mode ?? 'fanIn') === 'fanIn' ? fanIn : fanOut;
  const gain = calculateGain(options.nonlinearity ?? 'leaky_relu', options.a ?? 0);
  return gain / Math.sqrt(fan);
}

/** Fills with U(-b, b), b = gain·√(3 / fan) (He et al., 2015). */
export function kaimingUniform_(weight: Tensor, options: KaimingOptions = {}): Tensor {
  const bound = Math.sqrt(3.0) * kaimingStd(weight, options);
  return noGrad(() => weight.uniform_(-bound, bound));
}

/** Fills with N(0, std²), std = gain / √fan (He et al., 2015). */
export function kaimingNormal_(weight: Tensor, options: KaimingOptions = {}): Tensor {
  const std = kaimingStd(weight, options);
  return noGrad(() => weight.normal_(0, std));
}

/** Fills with U(low, high). */
export function uniform_(tensor: Tensor, low = 0, high = 1): Tensor {
  return noGrad(() => tensor.uniform_(low, high));
}

/** Fills with N(mean, std²). */
export function normal_(tensor: Tensor, mean = 0, std = 1): Tensor {
  return noGrad(() => tensor.normal_(mean, std));
}

/** Fills with a constant. */
export function constant_(tensor: Tensor, value: number): Tensor {
  return noGrad(() => tensor.fill_(value));
}

/** Fills with zeros. */
export function zeros_(tensor: Tensor): Tensor {
  return noGrad(() => tensor.zero_());
}

/** Fills with ones. */
export function ones_(tensor: Tensor): Tensor {
  return constant_(tensor, 1);
}

/**
 * PyTorch's default for Linear and Conv layers: weight from Kaiming uniform
 * with a = √5 (which makes the bound 1/√fanIn), bias from U(±1/√fanIn).
 */
export function defaultLayerInit_(weight: Tensor, bias: Tensor | null): void {
  kaimingUniform_(weight, { a: Math.sqrt(5) });
  if (bias === null) return;
  const [fanIn] = calculateFanInAndFanOut(weight);
  if (fanIn === 0) return;
  const bound = 1 / Math.sqrt(fanIn);
  uniform_(bias, -bound, bound);
}
