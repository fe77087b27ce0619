/**
 * Neural-network building blocks, as `torch.nn`: the `Module` base class with
 * named parameters, buffers and PyTorch-compatible state dicts, the layers the
 * models need, and the initializers of `torch.nn.init`.
 */
export {
  Module,
  StateDictError,
  type StateDict,
  type LoadStateDictOptions,
  type LoadStateDictReport,
  type ShapeMismatch,
} from './module.js';
export { Conv2d, type Conv2dLayerOptions } from './conv.js';
export { BatchNorm2d, type BatchNormOptions } from './batchnorm.js';
export { Linear } from './linear.js';
export { ReLU, Dropout, Identity, Flatten } from './activation.js';
export { MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, type PoolOptions } from './pooling.js';
export { Sequential } from './container.js';
export * as init from './init.js';
