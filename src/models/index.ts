/**
 * Image models with torchvision's structure and parameter names (ResNet 18 /
 * 34 / 50, DenseNet-121), a registry by name, and weight loading from
 * torchvision, MoCo and MoCo-CXR files.
 */
export { Backbone, type GreyMode, type ModelOptions } from './backbone.js';
export { ResNet, BasicBlock, Bottleneck, resnet18, resnet34, resnet50 } from './resnet.js';
export { DenseNet, DenseBlock, DenseLayer, densenet121, type DenseNetConfig } from './densenet.js';
export { createModel, modelNames } from './registry.js';
export { inferArchitecture, loadWeights, type LoadWeightsOptions, type LoadWeightsReport } from './weights.js';
