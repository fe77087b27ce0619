/**
 * moco-cxr: MoCo v2 self-supervised pretraining and evaluation of chest X-ray
 * models, over libtorch.
 */
export * as torch from './torch/index.js';
export * as optim from './optim/index.js';
export * as nn from './nn/index.js';
export * as models from './models/index.js';
export * as data from './data/index.js';
