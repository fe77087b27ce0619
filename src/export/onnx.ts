/**
 * ONNX export of a backbone with its classification head, written from the
 * module tree (libtorch 1.13 has no C++ ONNX exporter): ResNet 18/34/50 and
 * DenseNet-121 as torchvision builds them, in inference (eval) semantics.
 *
 * The graph takes grey images `[batch, 1, height, width]` as float32 in 0..1
 * (a page divides its 8-bit pixels by 255) and does the normalization itself:
 * one Mul and one Add whose `[1, 3, 1, 1]` constants broadcast the single grey
 * channel to the three the first convolution takes, as the training pipeline
 * replicates grey to RGB. BatchNorm layers stay BatchNormalization nodes (not
 * folded into the convolutions), so every initializer is a tensor of the
 * state dict under its own name; runtimes fold them when they optimize.
 * Outputs: `logits` and `probabilities` (sigmoid, one per task) `[batch,
 * tasks]`, and with `withFeatures` the last block's feature map `features`
 * `[batch, channels, h, w]` (what the global average pool reads), from which
 * a linear head's class activation maps follow without gradients.
 */
import { NORMALIZATIONS, type NormalizationName, type NormalizeStats } from '../data/augment.js';
import type { Backbone } from '../models/backbone.js';
import { DenseBlock, DenseLayer, DenseNet } from '../models/densenet.js';
import { BasicBlock, Bottleneck, ResNet } from '../models/resnet.js';
import { Dropout, Flatten, Identity, ReLU } from '../nn/activation.js';
import { BatchNorm2d } from '../nn/batchnorm.js';
import { Sequential } from '../nn/container.js';
import { Conv2d } from '../nn/conv.js';
import { Linear } from '../nn/linear.js';
import type { Module } from '../nn/module.js';
import { AdaptiveAvgPool2d, AvgPool2d, MaxPool2d } from '../nn/pooling.js';
import { noGrad } from '../torch/index.js';
import { GraphBuilder } from './graph.js';
import { DATA_TYPE, encodeModel, type Dimension, type ValueInfoMessage } from './onnx-proto.js';

/** The operator set the graph is written against (every operator used has kept its meaning since). */
export const ONNX_OPSET = 17;
/** The IR version of the file (8: ONNX 1.10 and later, onnxruntime 1.10 and later). */
export const ONNX_IR_VERSION = 8;

/** Names of the graph's input and outputs. */
export const ONNX_NAMES = {
  input: 'image',
  logits: 'logits',
  probabilities: 'probabilities',
  features: 'features',
} as const;

/** Options of {@link exportOnnx}. */
export interface OnnxExportOptions {
  /** Normalization the model was trained with, applied inside the graph (default 'imagenet'). */
  normalize?: NormalizationName | NormalizeStats;
  /** One name per classifier output, in order (default `class 0`, `class 1`, ...). */
  tasks?: readonly string[];
  /** The side the model was trained at, recorded in the metadata for a caller's resize (default 320). */
  imageSize?: number;
  /** Adds the `features` output (the last block's feature map). */
  withFeatures?: boolean;
  /** More `metadata_props` entries. */
  metadata?: Readonly<Record<string, string>>;
  /** `producer_version`, e.g. the package's version (default '0'). */
  producerVersion?: string;
}

/** What {@link exportOnnx} made. */
export interface OnnxExport {
  /** The `.onnx` file's bytes. */
  bytes: Uint8Array;
  /** The `metadata_props` written, as an object. */
  metadata: Record<string, string>;
  /** Number of graph nodes. */
  nodes: number;
}

type Graph = GraphBuilder;

function conv(g: Graph, module: Conv2d, input: string, name: string): string {
  const inputs = [input, g.weight(`${name}.weight`, module.weight)];
  if (module.bias !== null) inputs.push(g.weight(`${name}.bias`, module.bias));
  const [ph, pw] = module.padding;
  return g.node('Conv', inputs, name, {
    kernel_shape: module.kernelSize,
    strides: module.stride,
    pads: [ph, pw, ph, pw],
    dilations: module.dilation,
    group: module.groups,
  });
}

function batchNorm(g: Graph, module: BatchNorm2d, input: string, name: string): string {
  const mean = module.runningMean;
  const variance = module.runningVar;
  if (mean === null || variance === null) {
    throw new Error(`ONNX export: '${name}' keeps no running statistics, so it has no inference form`);
  }
  const n = module.numFeatures;
  const scale =
    module.weight === null
      ? g.constant(`${name}.weight`, new Float32Array(n).fill(1), [n])
      : g.weight(`${name}.weight`, module.weight);
  const bias =
    module.bias === null ? g.constant(`${name}.bias`, new Float32Array(n), [n]) : g.weight(`${name}.bias`, module.bias);
  const inputs = [
    input,
    scale,
    bias,
    g.weight(`${name}.running_mean`, mean),
    g.weight(`${name}.running_var`, variance),
  ];
  return g.node('BatchNormalization', inputs, name, { epsilon: { float: module.eps } });
}

function relu(g: Graph, input: string, name: string): string {
  return g.node('Relu', [input], name);
}

function maxPool(g: Graph, module: MaxPool2d, input: string, name: string): string {
  const [ph, pw] = module.padding;
  return g.node('MaxPool', [input], name, {
    kernel_shape: module.kernelSize,
    strides: module.stride,
    pads: [ph, pw, ph, pw],
    dilations: module.dilation,
    ceil_mode: module.ceilMode ? 1 : 0,
  });
}

function avgPool(g: Graph, module: AvgPool2d, input: string, name: string): string {
  const [ph, pw] = module.padding;
  return g.node('AveragePool', [input], name, {
    kernel_shape: module.kernelSize,
    strides: module.stride,
    pads: [ph, pw, ph, pw],
    ceil_mode: module.ceilMode ? 1 : 0,
    count_include_pad: module.countIncludePad ? 1 : 0,
  });
}

/** BatchNorm then ReLU, the pair every block opens or closes with. */
function normRelu(g: Graph, module: BatchNorm2d, input: string, name: string): string {
  return relu(g, batchNorm(g, module, input, name), `${name}.relu`);
}

function basicBlock(g: Graph, block: BasicBlock, input: string, name: string): string {
  let out = normRelu(g, block.bn1, conv(g, block.conv1, input, `${name}.conv1`), `${name}.bn1`);
  out = batchNorm(g, block.bn2, conv(g, block.conv2, out, `${name}.conv2`), `${name}.bn2`);
  return relu(g, g.node('Add', [out, shortcut(g, block.downsample, input, name)], `${name}.add`), `${name}.relu`);
}

function bottleneck(g: Graph, block: Bottleneck, input: string, name: string): string {
  let out = normRelu(g, block.bn1, conv(g, block.conv1, input, `${name}.conv1`), `${name}.bn1`);
  out = normRelu(g, block.bn2, conv(g, block.conv2, out, `${name}.conv2`), `${name}.bn2`);
  out = batchNorm(g, block.bn3, conv(g, block.conv3, out, `${name}.conv3`), `${name}.bn3`);
  return relu(g, g.node('Add', [out, shortcut(g, block.downsample, input, name)], `${name}.add`), `${name}.relu`);
}

/** The block's input, or its projection (`downsample.0` convolution, `downsample.1` BatchNorm). */
function shortcut(g: Graph, downsample: Module | null, input: string, name: string): string {
  if (downsample === null) return input;
  const [projection, norm] = downsample.children();
  if (!(projection instanceof Conv2d) || !(norm instanceof BatchNorm2d) || downsample.children().length !== 2) {
    throw new Error(`ONNX export: '${name}.downsample' is not a convolution then a BatchNorm`);
  }
  return batchNorm(g, norm, conv(g, projection, input, `${name}.downsample.0`), `${name}.downsample.1`);
}

function resnetTrunk(g: Graph, model: ResNet, input: string): string {
  let out = normRelu(g, model.bn1, conv(g, model.stem, input, 'conv1'), 'bn1');
  out = maxPool(g, model.maxpool, out, 'maxpool');
  model.layers.forEach((stage, s) => {
    for (const [index, block] of stage.namedChildren()) {
      const name = `layer${s + 1}.${index}`;
      if (block instanceof BasicBlock) out = basicBlock(g, block, out, name);
      else if (block instanceof Bottleneck) out = bottleneck(g, block, out, name);
      else throw new Error(`ONNX export: '${name}' is a ${block.constructor.name}, not a ResNet block`);
    }
  });
  if (!(model.avgpool instanceof AdaptiveAvgPool2d) || model.avgpool.outputSize.some((side) => side !== 1)) {
    throw new Error('ONNX export: the ResNet must end in a global average pool');
  }
  return out;
}

function denseLayer(g: Graph, layer: DenseLayer, input: string, name: string): string {
  let out = normRelu(g, layer.norm1, input, `${name}.norm1`);
  out = normRelu(g, layer.norm2, conv(g, layer.conv1, out, `${name}.conv1`), `${name}.norm2`);
  // Dropout is the identity at inference.
  return conv(g, layer.conv2, out, `${name}.conv2`);
}

function denseBlock(g: Graph, block: DenseBlock, input: string, name: string): string {
  const maps = [input];
  for (const [index, layer] of block.namedChildren()) {
    if (!(layer instanceof DenseLayer)) throw new Error(`ONNX export: '${name}.${index}' is not a dense layer`);
    const joined = maps.length === 1 ? input : g.node('Concat', maps, `${name}.${index}.cat`, { axis: 1 });
    maps.push(denseLayer(g, layer, joined, `${name}.${index}`));
  }
  return g.node('Concat', maps, `${name}.cat`, { axis: 1 });
}

function densenetTrunk(g: Graph, model: DenseNet, input: string): string {
  let out = input;
  for (const [child, module] of model.trunk.namedChildren()) {
    const name = `features.${child}`;
    if (child === 'conv0') out = conv(g, model.stem, out, name);
    else if (module instanceof BatchNorm2d) out = batchNorm(g, module, out, name);
    else if (module instanceof ReLU) out = relu(g, out, name);
    else if (module instanceof MaxPool2d) out = maxPool(g, module, out, name);
    else if (module instanceof DenseBlock) out = denseBlock(g, module, out, name);
    else if (module instanceof Sequential && child.startsWith('transition')) {
      const parts = new Map(module.namedChildren());
      const [norm, conv1x1, pool] = [parts.get('norm'), parts.get('conv'), parts.get('pool')];
      if (!(norm instanceof BatchNorm2d) || !(conv1x1 instanceof Conv2d) || !(pool instanceof AvgPool2d)) {
        throw new Error(`ONNX export: '${name}' is not norm, relu, conv, pool`);
      }
      out = avgPool(g, pool, conv(g, conv1x1, normRelu(g, norm, out, `${name}.norm`), `${name}.conv`), `${name}.pool`);
    } else throw new Error(`ONNX export: '${name}' is a ${module.constructor.name}, which the exporter does not write`);
  }
  // DenseNet's forward applies a ReLU after norm5 before pooling.
  return relu(g, out, 'features.relu');
}

/** The classifier: a Linear, or a Sequential of Linear, ReLU, Dropout, Identity and Flatten layers. */
function head(g: Graph, module: Module, input: string, name: string): string {
  if (module instanceof Linear) {
    const inputs = [input, g.weight(`${name}.weight`, module.weight)];
    if (module.bias !== null) inputs.push(g.weight(`${name}.bias`, module.bias));
    return g.node('Gemm', inputs, name, { transB: 1 });
  }
  if (module instanceof Sequential) {
    let out = input;
    for (const [index, child] of module.namedChildren()) out = head(g, child, out, `${name}.${index}`);
    return out;
  }
  if (module instanceof ReLU) return relu(g, input, name);
  if (module instanceof Dropout || module instanceof Identity || module instanceof Flatten) return input;
  throw new Error(
    `ONNX export: the classifier holds a ${module.constructor.name} ('${name}'), which the exporter does not write`,
  );
}

/** The number of outputs of the classifier (its last Linear's). */
export function classifierOutputs(model: Backbone): number {
  const linears = model.classifier.modules().filter((m): m is Linear => m instanceof Linear);
  const last = linears[linears.length - 1];
  if (last === undefined) throw new Error(`ONNX export: the ${model.arch} classifier holds no Linear layer`);
  return last.outFeatures;
}

function valueInfo(name: string, dims: (number | string)[], docString: string): ValueInfoMessage {
  const dim: Dimension[] = dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d }));
  return { name, type: { tensorType: { elemType: DATA_TYPE.float, shape: { dim } } }, docString };
}

function normalizationStats(normalize: NormalizationName | NormalizeStats): NormalizeStats {
  if (typeof normalize !== 'string') return normalize;
  const stats = Object.hasOwn(NORMALIZATIONS, normalize) ? NORMALIZATIONS[normalize] : undefined;
  if (stats === undefined) {
    throw new RangeError(`normalize: unknown '${normalize}'; known: ${Object.keys(NORMALIZATIONS).join(', ')}`);
  }
  return stats;
}

/**
 * Writes `model` (a ResNet or DenseNet from `src/models/`, with its
 * classifier) as an ONNX model: see this module's description for the graph's
 * input, normalization and outputs. The model's weights are read, not changed.
 */
export function exportOnnx(model: Backbone, options: OnnxExportOptions = {}): OnnxExport {
  const classes = classifierOutputs(model);
  const tasks = options.tasks ?? Array.from({ length: classes }, (_, i) => `class ${i}`);
  if (tasks.length !== classes) {
    throw new RangeError(`ONNX export: ${tasks.length} task names for a classifier with ${classes} outputs`);
  }
  const stats = normalizationStats(options.normalize ?? 'imagenet');
  const channels = model.stem.inChannels;
  if (stats.mean.length !== stats.std.length || (stats.mean.length !== 1 && stats.mean.length !== channels)) {
    throw new RangeError(
      `ONNX export: ${stats.mean.length} normalization means for a first convolution of ${channels} input channels`,
    );
  }
  const g = new GraphBuilder();
  const input = g.reserve(ONNX_NAMES.input);
  const pick = (values: readonly number[], c: number): number => values[values.length === 1 ? 0 : c] as number;
  // The same float32 constants, in the same form (x · 1/std + (−mean/std)), as the training pipeline's normalize.
  const scale = Float32Array.from({ length: channels }, (_, c) => 1 / pick(stats.std, c));
  const shift = Float32Array.from({ length: channels }, (_, c) => -pick(stats.mean, c) / pick(stats.std, c));
  let out = g.node('Mul', [input, g.constant('normalize.scale', scale, [1, channels, 1, 1])], 'normalize.mul');
  out = g.node('Add', [out, g.constant('normalize.shift', shift, [1, channels, 1, 1])], 'normalize.add');

  const trunk = noGrad(() => {
    if (model instanceof ResNet) return resnetTrunk(g, model, out);
    if (model instanceof DenseNet) return densenetTrunk(g, model, out);
    throw new Error(`ONNX export: ${model.arch} is neither a ResNet nor a DenseNet`);
  });
  const pooled = g.node('GlobalAveragePool', [trunk], 'avgpool');
  const flat = g.node('Flatten', [pooled], 'flatten', { axis: 1 });
  const logitsRaw = noGrad(() => head(g, model.classifier, flat, model.classifierName));
  const logits = g.node('Identity', [logitsRaw], ONNX_NAMES.logits);
  const probabilities = g.node('Sigmoid', [logits], ONNX_NAMES.probabilities);
  const outputs = [
    valueInfo(logits, ['batch', classes], 'one logit per task'),
    valueInfo(probabilities, ['batch', classes], 'sigmoid of the logits: the probability of each task'),
  ];
  if (options.withFeatures === true) {
    const features = g.node('Identity', [trunk], ONNX_NAMES.features);
    outputs.push(
      valueInfo(
        features,
        ['batch', model.featureDim, 'feature_height', 'feature_width'],
        "the last block's feature map, before the global average pool",
      ),
    );
  }

  const metadata: Record<string, string> = {
    'moco_cxr.arch': model.arch,
    'moco_cxr.tasks': JSON.stringify(tasks),
    'moco_cxr.image_size': String(options.imageSize ?? 320),
    'moco_cxr.input':
      'grey images [batch, 1, height, width], float32 in 0..1 (8-bit pixels / 255), resized so the shorter side is ' +
      'the image size and centre-cropped to a square; normalization is inside the graph',
    'moco_cxr.normalization': JSON.stringify({ mean: [...stats.mean], std: [...stats.std], inside_graph: true }),
    'moco_cxr.batchnorm': 'BatchNormalization nodes (not folded)',
    ...options.metadata,
  };
  const bytes = encodeModel({
    irVersion: ONNX_IR_VERSION,
    opsetImport: [{ domain: '', version: ONNX_OPSET }],
    producerName: 'moco-cxr',
    producerVersion: options.producerVersion ?? '0',
    docString: `${model.arch} with a ${classes}-output classifier`,
    graph: {
      name: model.arch,
      node: g.nodes,
      initializer: g.initializers,
      input: [valueInfo(input, ['batch', 1, 'height', 'width'], 'grey images in 0..1')],
      output: outputs,
    },
    metadataProps: Object.entries(metadata).map(([key, value]) => ({ key, value })),
  });
  return { bytes, metadata, nodes: g.nodes.length };
}
