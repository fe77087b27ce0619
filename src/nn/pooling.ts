/** Pooling layers, as `torch.nn.MaxPool2d`, `AvgPool2d` and `AdaptiveAvgPool2d`. */
import { adaptiveAvgPool2d, avgPool2d, maxPool2d, type Tensor } from '../torch/index.js';
import { Module } from './module.js';

type Pair = [number, number];

function pair(value: number | Pair): Pair {
  return typeof value === 'number' ? [value, value] : [value[0], value[1]];
}

/** Settings shared by the fixed-window pools. */
export interface PoolOptions {
  /** Step between windows; defaults to the kernel size. */
  stride?: number | Pair;
  padding?: number | Pair;
  /** Round the output size up instead of down. */
  ceilMode?: boolean;
}

/** Maximum over `kernelSize` windows. */
export class MaxPool2d extends Module {
  readonly kernelSize: Pair;
  readonly stride: Pair;
  readonly padding: Pair;
  readonly dilation: Pair;
  readonly ceilMode: boolean;

  constructor(kernelSize: number | Pair, options: PoolOptions & { dilation?: number | Pair } = {}) {
    super();
    this.kernelSize = pair(kernelSize);
    this.stride = pair(options.stride ?? kernelSize);
    this.padding = pair(options.padding ?? 0);
    this.dilation = pair(options.dilation ?? 1);
    this.ceilMode = options.ceilMode ?? false;
  }

  override forward(input: Tensor): Tensor {
    return maxPool2d(input, this.kernelSize, {
      stride: this.stride,
      padding: this.padding,
      dilation: this.dilation,
      ceilMode: this.ceilMode,
    });
  }

  override extraRepr(): string {
    return `kernel_size=${this.kernelSize[0]}, stride=${this.stride[0]}, padding=${this.padding[0]}, dilation=${this.dilation[0]}, ceil_mode=${this.ceilMode ? 'True' : 'False'}`;
  }
}

/** Mean over `kernelSize` windows. */
export class AvgPool2d extends Module {
  readonly kernelSize: Pair;
  readonly stride: Pair;
  readonly padding: Pair;
  readonly ceilMode: boolean;
  readonly countIncludePad: boolean;

  constructor(kernelSize: number | Pair, options: PoolOptions & { countIncludePad?: boolean } = {}) {
    super();
    this.kernelSize = pair(kernelSize);
    this.stride = pair(options.stride ?? kernelSize);
    this.padding = pair(options.padding ?? 0);
    this.ceilMode = options.ceilMode ?? false;
    this.countIncludePad = options.countIncludePad ?? true;
  }

  override forward(input: Tensor): Tensor {
    return avgPool2d(input, this.kernelSize, {
      stride: this.stride,
      padding: this.padding,
      ceilMode: this.ceilMode,
      countIncludePad: this.countIncludePad,
    });
  }

  override extraRepr(): string {
    return `kernel_size=${this.kernelSize[0]}, stride=${this.stride[0]}, padding=${this.padding[0]}`;
  }
}

/** Mean pooling to a fixed output size, whatever the input size. */
export class AdaptiveAvgPool2d extends Module {
  readonly outputSize: Pair;

  constructor(outputSize: number | Pair) {
    super();
    this.outputSize = pair(outputSize);
  }

  override forward(input: Tensor): Tensor {
    return adaptiveAvgPool2d(input, this.outputSize);
  }

  override extraRepr(): string {
    return `output_size=(${this.outputSize.join(', ')})`;
  }
}
