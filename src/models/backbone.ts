/**
 * What the image models share: a feature extractor ending in a pooled vector,
 * a replaceable classifier layer, and the handling of grey (1-channel) input.
 */
import { Conv2d } from '../nn/conv.js';
import { Module } from '../nn/module.js';
import { conv2d, type Tensor } from '../torch/index.js';

/** Options every model constructor takes. */
export interface ModelOptions {
  /** Outputs of the classifier layer. Default 1000 (ImageNet). */
  numClasses?: number;
  /** Channels of the first convolution: 3 for RGB, 1 for grey. Default 3. */
  inChannels?: number;
}

/**
 * How a model built for RGB takes grey images:
 * - 'repeat': the first convolution keeps its 3 input channels and the model
 *   repeats the grey channel 3 times in `forward` (what MoCo-CXR and
 *   torchvision pipelines do by converting grey images to RGB);
 * - 'sum': the first convolution's weights are summed over the RGB axis into a
 *   1-channel convolution, which gives the same outputs for the same weights at
 *   a third of that layer's cost, but trains differently (one weight where
 *   'repeat' has three, each stepped on its own).
 */
export type GreyMode = 'sum' | 'repeat';

/** Replaces `old` with a convolution of the same geometry taking `inChannels` channels. */
function convWithInputs(old: Conv2d, inChannels: number): Conv2d {
  return new Conv2d(inChannels, old.outChannels, old.kernelSize, {
    stride: old.stride,
    padding: old.padding,
    dilation: old.dilation,
    groups: old.groups,
    bias: old.bias !== null,
  });
}

/** Base class of the image models (ResNet, DenseNet). */
export abstract class Backbone extends Module {
  /** The architecture's name in the model registry, e.g. 'resnet18'. */
  abstract readonly arch: string;
  /** Length of the vector `features()` returns (512 for ResNet18, 2048 for ResNet50, 1024 for DenseNet121). */
  abstract readonly featureDim: number;
  /** Name of the classifier child ('fc' in ResNet, 'classifier' in DenseNet), as in torchvision's state dicts. */
  abstract readonly classifierName: 'fc' | 'classifier';
  /** Dotted path of the first convolution ('conv1' in ResNet, 'features.conv0' in DenseNet). */
  abstract readonly stemName: string;

  /** When set, 1-channel input is repeated to the first convolution's 3 channels (see `GreyMode`). */
  repeatGreyInput = false;

  /** The pooled feature vector `[N, featureDim]`: everything up to and including the global average pool. */
  abstract features(input: Tensor): Tensor;

  /**
   * The last convolutional block's output `[N, featureDim, h, w]`, the map
   * `features()` averages: ResNet's `layer4`, DenseNet's `features` (ending in
   * `norm5`) followed by its ReLU. Grad-CAM weighs this map.
   */
  abstract featureMap(input: Tensor): Tensor;

  /** Initializes a convolution the way the model initializes all of its convolutions (also a rebuilt stem). */
  protected abstract initConv(conv: Conv2d): void;

  /** The classifier layer: a Linear after construction; replace it (e.g. with an MLP head) by assigning. */
  get classifier(): Module {
    return this.child(this.classifierName);
  }

  set classifier(module: Module) {
    this.registerModule(this.classifierName, module);
  }

  /** The first convolution. */
  get stem(): Conv2d {
    const stem = this.getSubmodule(this.stemName);
    if (!(stem instanceof Conv2d)) throw new Error(`${this.arch}: '${this.stemName}' is not a Conv2d`);
    return stem;
  }

  /** Channels the model's input must have. */
  get inputChannels(): number {
    return this.repeatGreyInput ? 1 : this.stem.inChannels;
  }

  /**
   * Makes the model take `channels`-channel input. For grey input (1) with
   * 'repeat' the first convolution gets 3 channels and the input is repeated;
   * otherwise the first convolution gets `channels` channels. A rebuilt
   * convolution is freshly initialized (load weights afterwards).
   */
  setInputChannels(channels: number, greyMode: GreyMode = 'repeat'): void {
    const repeat = channels === 1 && greyMode === 'repeat';
    const convChannels = repeat ? 3 : channels;
    const old = this.stem;
    if (old.inChannels !== convChannels) {
      const conv = convWithInputs(old, convChannels);
      this.initConv(conv);
      const cut = this.stemName.lastIndexOf('.');
      const parent = cut < 0 ? this : this.getSubmodule(this.stemName.slice(0, cut));
      parent.registerModule(this.stemName.slice(cut + 1), conv);
      conv.train(this.training);
      old.dispose();
    }
    this.repeatGreyInput = repeat;
  }

  override forward(input: Tensor): Tensor {
    const features = this.features(input);
    const out = this.classifier.forward(features);
    features.dispose();
    return out;
  }

  /**
   * Runs the first convolution. Grey input to a model in 'repeat' mode is not
   * copied to 3 channels: since conv(repeat(x), W) = conv(x, W summed over its
   * input channels), the convolution runs on the single channel with the
   * summed weights, which gives the same output and, through autograd, the
   * same gradient for each of the three channel weights, for a third of the work.
   */
  protected forwardStem(input: Tensor): Tensor {
    if (input.ndim !== 4) {
      throw new RangeError(`${this.arch}: expected input [N, C, H, W], got [${input.shape.join(', ')}]`);
    }
    const stem = this.stem;
    const channels = input.shape[1] as number;
    if (this.repeatGreyInput && channels === 1 && stem.inChannels !== 1) {
      const summed = stem.weight.sum(1, true);
      const out = conv2d(input, summed, stem.bias, {
        stride: stem.stride,
        padding: stem.padding,
        dilation: stem.dilation,
        groups: stem.groups,
      });
      summed.dispose();
      return out;
    }
    if (channels !== stem.inChannels) {
      const hint = channels === 1 ? " (for grey input use setInputChannels(1) or loadWeights' inputChannels)" : '';
      throw new RangeError(`${this.arch}: expected ${stem.inChannels}-channel input, got ${channels} channels${hint}`);
    }
    return stem.forward(input);
  }
}

/** Frees `old` (unless it is `keep`) and returns `next`: the step of a forward chain. */
export function advance(old: Tensor, next: Tensor, keep?: Tensor): Tensor {
  if (old !== keep && old !== next) old.dispose();
  return next;
}
