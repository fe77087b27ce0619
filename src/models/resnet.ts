/**
 * ResNet (He et al., 2016) with torchvision 0.14's module tree, parameter names
 * and initialization: `conv1, bn1, relu, maxpool, layer1..layer4, avgpool, fc`,
 * blocks with `downsample.0` (1×1 conv) and `downsample.1` (BatchNorm).
 */
import { BatchNorm2d } from '../nn/batchnorm.js';
import { Conv2d } from '../nn/conv.js';
import { Sequential } from '../nn/container.js';
import { ReLU } from '../nn/activation.js';
import { constant_, kaimingNormal_ } from '../nn/init.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { AdaptiveAvgPool2d, MaxPool2d } from '../nn/pooling.js';
import type { Tensor } from '../torch/index.js';
import { advance, Backbone, type ModelOptions } from './backbone.js';

function conv3x3(inPlanes: number, outPlanes: number, stride = 1): Conv2d {
  return new Conv2d(inPlanes, outPlanes, 3, { stride, padding: 1, bias: false });
}

function conv1x1(inPlanes: number, outPlanes: number, stride = 1): Conv2d {
  return new Conv2d(inPlanes, outPlanes, 1, { stride, bias: false });
}

/** Adds the shortcut (the input, or its downsampled projection) to `out`, in place. */
function addShortcut(out: Tensor, input: Tensor, downsample: Module | null): void {
  if (downsample === null) {
    out.add_(input);
    return;
  }
  const identity = downsample.forward(input);
  out.add_(identity);
  identity.dispose();
}

/** Two 3×3 convolutions with a shortcut (ResNet18/34). */
export class BasicBlock extends Module {
  static readonly expansion = 1;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly relu: ReLU;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly downsample: Module | null;

  constructor(inPlanes: number, planes: number, stride = 1, downsample: Module | null = null) {
    super();
    this.conv1 = this.registerModule('conv1', conv3x3(inPlanes, planes, stride));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(planes));
    this.relu = this.registerModule('relu', new ReLU(true));
    this.conv2 = this.registerModule('conv2', conv3x3(planes, planes));
    this.bn2 = this.registerModule('bn2', new BatchNorm2d(planes));
    this.downsample = downsample === null ? null : this.registerModule('downsample', downsample);
  }

  override forward(input: Tensor): Tensor {
    let out = this.conv1.forward(input);
    out = advance(out, this.bn1.forward(out)).relu_();
    out = advance(out, this.conv2.forward(out));
    out = advance(out, this.bn2.forward(out));
    addShortcut(out, input, this.downsample);
    return out.relu_();
  }
}

/** 1×1 reduce, 3×3, 1×1 expand (×4) with a shortcut (ResNet50 and deeper). */
export class Bottleneck extends Module {
  static readonly expansion = 4;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly conv3: Conv2d;
  readonly bn3: BatchNorm2d;
  readonly relu: ReLU;
  readonly downsample: Module | null;

  constructor(inPlanes: number, planes: number, stride = 1, downsample: Module | null = null) {
    super();
    const width = planes;
    this.conv1 = this.registerModule('conv1', conv1x1(inPlanes, width));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(width));
    this.conv2 = this.registerModule('conv2', conv3x3(width, width, stride));
    this.bn2 = this.registerModule('bn2', new BatchNorm2d(width));
    this.conv3 = this.registerModule('conv3', conv1x1(width, planes * Bottleneck.expansion));
    this.bn3 = this.registerModule('bn3', new BatchNorm2d(planes * Bottleneck.expansion));
    this.relu = this.registerModule('relu', new ReLU(true));
    this.downsample = downsample === null ? null : this.registerModule('downsample', downsample);
  }

  override forward(input: Tensor): Tensor {
    let out = this.conv1.forward(input);
    out = advance(out, this.bn1.forward(out)).relu_();
    out = advance(out, this.conv2.forward(out));
    out = advance(out, this.bn2.forward(out)).relu_();
    out = advance(out, this.conv3.forward(out));
    out = advance(out, this.bn3.forward(out));
    addShortcut(out, input, this.downsample);
    return out.relu_();
  }
}

type BlockClass = (typeof BasicBlock | typeof Bottleneck) & {
  new (inPlanes: number, planes: number, stride?: number, downsample?: Module | null): Module;
};

/** A ResNet; build one with `resnet18`, `resnet34` or `resnet50`. */
export class ResNet extends Backbone {
  readonly featureDim: number;
  readonly classifierName = 'fc' as const;
  readonly stemName = 'conv1';
  readonly bn1: BatchNorm2d;
  readonly relu: ReLU;
  readonly maxpool: MaxPool2d;
  readonly layers: [Sequential, Sequential, Sequential, Sequential];
  readonly avgpool: AdaptiveAvgPool2d;

  constructor(
    readonly arch: string,
    block: BlockClass,
    blocksPerStage: [number, number, number, number],
    options: ModelOptions = {},
  ) {
    super();
    const numClasses = options.numClasses ?? 1000;
    let inPlanes = 64;
    this.registerModule(
      'conv1',
      new Conv2d(options.inChannels ?? 3, inPlanes, 7, { stride: 2, padding: 3, bias: false }),
    );
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(inPlanes));
    this.relu = this.registerModule('relu', new ReLU(true));
    this.maxpool = this.registerModule('maxpool', new MaxPool2d(3, { stride: 2, padding: 1 }));

    const makeStage = (planes: number, blocks: number, stride: number): Sequential => {
      const outPlanes = planes * block.expansion;
      // The projection is built before the blocks, as torchvision does, so the
      // random draws of the default initialization come in the same order.
      const downsample =
        stride !== 1 || inPlanes !== outPlanes
          ? new Sequential(conv1x1(inPlanes, outPlanes, stride), new BatchNorm2d(outPlanes))
          : null;
      const stage = new Sequential(new block(inPlanes, planes, stride, downsample));
      inPlanes = outPlanes;
      for (let i = 1; i < blocks; i++) stage.append(new block(inPlanes, planes));
      return stage;
    };
    this.layers = [
      this.registerModule('layer1', makeStage(64, blocksPerStage[0], 1)),
      this.registerModule('layer2', makeStage(128, blocksPerStage[1], 2)),
      this.registerModule('layer3', makeStage(256, blocksPerStage[2], 2)),
      this.registerModule('layer4', makeStage(512, blocksPerStage[3], 2)),
    ];
    this.avgpool = this.registerModule('avgpool', new AdaptiveAvgPool2d(1));
    this.featureDim = 512 * block.expansion;
    this.registerModule('fc', new Linear(this.featureDim, numClasses));

    for (const module of this.modules()) {
      if (module instanceof Conv2d) this.initConv(module);
      else if (module instanceof BatchNorm2d && module.weight !== null && module.bias !== null) {
        constant_(module.weight, 1);
        constant_(module.bias, 0);
      }
    }
  }

  protected initConv(conv: Conv2d): void {
    kaimingNormal_(conv.weight, { mode: 'fanOut', nonlinearity: 'relu' });
  }

  /** The first convolution. */
  get conv1(): Conv2d {
    return this.stem;
  }

  /** The classifier layer (a Linear unless replaced). */
  get fc(): Module {
    return this.classifier;
  }

  set fc(module: Module) {
    this.classifier = module;
  }

  featureMap(input: Tensor): Tensor {
    let out = this.forwardStem(input);
    out = advance(out, this.bn1.forward(out)).relu_();
    out = advance(out, this.maxpool.forward(out));
    for (const stage of this.layers) out = advance(out, stage.forward(out));
    return out;
  }

  features(input: Tensor): Tensor {
    let out = this.featureMap(input);
    out = advance(out, this.avgpool.forward(out));
    return advance(out, out.flatten(1));
  }
}

/** ResNet-18: BasicBlocks [2, 2, 2, 2], 512 features. */
export function resnet18(options: ModelOptions = {}): ResNet {
  return new ResNet('resnet18', BasicBlock, [2, 2, 2, 2], options);
}

/** ResNet-34: BasicBlocks [3, 4, 6, 3], 512 features. */
export function resnet34(options: ModelOptions = {}): ResNet {
  return new ResNet('resnet34', BasicBlock, [3, 4, 6, 3], options);
}

/** ResNet-50: Bottlenecks [3, 4, 6, 3], 2048 features. */
export function resnet50(options: ModelOptions = {}): ResNet {
  return new ResNet('resnet50', Bottleneck, [3, 4, 6, 3], options);
}
