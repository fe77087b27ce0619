/**
 * DenseNet (Huang et al., 2017) with torchvision 0.14's module tree, parameter
 * names and initialization: `features.conv0, norm0, relu0, pool0,
 * denseblock1.denselayer1.{norm1, conv1, norm2, conv2}, transition1, ...,
 * norm5` and `classifier`.
 */
import { ReLU } from '../nn/activation.js';
import { BatchNorm2d } from '../nn/batchnorm.js';
import { Sequential } from '../nn/container.js';
import { Conv2d } from '../nn/conv.js';
import { constant_, kaimingNormal_ } from '../nn/init.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { AvgPool2d, MaxPool2d } from '../nn/pooling.js';
import { adaptiveAvgPool2d, cat, dispose, dropout, type Tensor } from '../torch/index.js';
import { advance, Backbone, type ModelOptions } from './backbone.js';

/** BN-ReLU-Conv1×1 (bottleneck) then BN-ReLU-Conv3×3, producing `growthRate` new channels. */
export class DenseLayer extends Module {
  readonly norm1: BatchNorm2d;
  readonly relu1: ReLU;
  readonly conv1: Conv2d;
  readonly norm2: BatchNorm2d;
  readonly relu2: ReLU;
  readonly conv2: Conv2d;

  constructor(
    inputFeatures: number,
    growthRate: number,
    bottleneckFactor: number,
    readonly dropRate: number,
  ) {
    super();
    const width = bottleneckFactor * growthRate;
    this.norm1 = this.registerModule('norm1', new BatchNorm2d(inputFeatures));
    this.relu1 = this.registerModule('relu1', new ReLU(true));
    this.conv1 = this.registerModule('conv1', new Conv2d(inputFeatures, width, 1, { bias: false }));
    this.norm2 = this.registerModule('norm2', new BatchNorm2d(width));
    this.relu2 = this.registerModule('relu2', new ReLU(true));
    this.conv2 = this.registerModule('conv2', new Conv2d(width, growthRate, 3, { padding: 1, bias: false }));
  }

  /** New features from all earlier feature maps of the block (concatenated along channels). */
  forwardAll(inputs: Tensor[]): Tensor {
    const joined = inputs.length === 1 ? (inputs[0] as Tensor) : cat(inputs, 1);
    let out = this.norm1.forward(joined);
    if (joined !== inputs[0]) joined.dispose();
    out.relu_();
    out = advance(out, this.conv1.forward(out));
    out = advance(out, this.norm2.forward(out)).relu_();
    out = advance(out, this.conv2.forward(out));
    if (this.dropRate > 0) out = advance(out, dropout(out, this.dropRate, this.training));
    return out;
  }

  override forward(input: Tensor): Tensor {
    return this.forwardAll([input]);
  }
}

/** Dense layers, each fed the concatenation of the block input and all earlier layers' outputs. */
export class DenseBlock extends Module {
  constructor(layers: number, inputFeatures: number, growthRate: number, bottleneckFactor: number, dropRate: number) {
    super();
    for (let i = 0; i < layers; i++) {
      const layer = new DenseLayer(inputFeatures + i * growthRate, growthRate, bottleneckFactor, dropRate);
      this.registerModule(`denselayer${i + 1}`, layer);
    }
  }

  override forward(input: Tensor): Tensor {
    const maps = [input];
    try {
      for (const layer of this.children()) maps.push((layer as DenseLayer).forwardAll(maps));
      return cat(maps, 1);
    } finally {
      dispose(maps.slice(1));
    }
  }
}

/** BN-ReLU-Conv1×1 halving the channels, then 2×2 average pooling. */
function transition(inputFeatures: number, outputFeatures: number): Sequential {
  return Sequential.named([
    ['norm', new BatchNorm2d(inputFeatures)],
    ['relu', new ReLU(true)],
    ['conv', new Conv2d(inputFeatures, outputFeatures, 1, { bias: false })],
    ['pool', new AvgPool2d(2, { stride: 2 })],
  ]);
}

/** Settings of a DenseNet beyond `ModelOptions`. */
export interface DenseNetConfig {
  growthRate: number;
  blockLayers: number[];
  initFeatures: number;
  bottleneckFactor: number;
  dropRate: number;
}

/** A DenseNet; build one with `densenet121`. */
export class DenseNet extends Backbone {
  readonly featureDim: number;
  readonly classifierName = 'classifier' as const;
  readonly stemName = 'features.conv0';
  /** The convolutional trunk, registered as `features` (the name torchvision's state dicts use). */
  readonly trunk: Sequential;

  constructor(
    readonly arch: string,
    config: DenseNetConfig,
    options: ModelOptions = {},
  ) {
    super();
    const { growthRate, blockLayers, initFeatures, bottleneckFactor, dropRate } = config;
    const inChannels = options.inChannels ?? 3;
    const trunk = Sequential.named([
      ['conv0', new Conv2d(inChannels, initFeatures, 7, { stride: 2, padding: 3, bias: false })],
      ['norm0', new BatchNorm2d(initFeatures)],
      ['relu0', new ReLU(true)],
      ['pool0', new MaxPool2d(3, { stride: 2, padding: 1 })],
    ]);
    let features = initFeatures;
    blockLayers.forEach((layers, i) => {
      trunk.registerModule(
        `denseblock${i + 1}`,
        new DenseBlock(layers, features, growthRate, bottleneckFactor, dropRate),
      );
      features += layers * growthRate;
      if (i !== blockLayers.length - 1) {
        trunk.registerModule(`transition${i + 1}`, transition(features, Math.floor(features / 2)));
        features = Math.floor(features / 2);
      }
    });
    trunk.registerModule('norm5', new BatchNorm2d(features));
    this.trunk = this.registerModule('features', trunk);
    this.featureDim = features;
    this.registerModule('classifier', new Linear(features, options.numClasses ?? 1000));

    for (const module of this.modules()) {
      if (module instanceof Conv2d) this.initConv(module);
      else if (module instanceof BatchNorm2d && module.weight !== null && module.bias !== null) {
        constant_(module.weight, 1);
        constant_(module.bias, 0);
      } else if (module instanceof Linear && module.bias !== null) {
        constant_(module.bias, 0);
      }
    }
  }

  protected initConv(conv: Conv2d): void {
    kaimingNormal_(conv.weight);
  }

  featureMap(input: Tensor): Tensor {
    let out = this.forwardStem(input);
    for (const [name, module] of this.trunk.namedChildren()) {
      if (name !== 'conv0') out = advance(out, module.forward(out));
    }
    return out.relu_();
  }

  features(input: Tensor): Tensor {
    let out = this.featureMap(input);
    out = advance(out, adaptiveAvgPool2d(out, 1));
    return advance(out, out.flatten(1));
  }
}

/** DenseNet-121: growth 32, blocks [6, 12, 24, 16], 64 initial features, 1024 features. */
export function densenet121(options: ModelOptions = {}): DenseNet {
  return new DenseNet(
    'densenet121',
    { growthRate: 32, blockLayers: [6, 12, 24, 16], initFeatures: 64, bottleneckFactor: 4, dropRate: 0 },
    options,
  );
}
