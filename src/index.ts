/**
 * moco-cxr: MoCo v2 self-supervised pretraining and evaluation of chest X-ray
 * models, over libtorch.
 */
export * as torch from './torch/index.js';
export * as optim from './optim/index.js';
export * as nn from './nn/index.js';
export * as models from './models/index.js';
export * as data from './data/index.js';
export * as moco from './moco/index.js';
export * as evaluate from './eval/index.js';
export * as study from './study/index.js';
export * as downstream from './downstream/index.js';
export * as distributed from './distributed/index.js';
export { finetune, linearProbe, runDownstream } from './downstream/index.js';
export * as predict from './predict/index.js';
export * as exporting from './export/index.js';
export { exportModel, exportOnnx, serveFolder } from './export/index.js';
