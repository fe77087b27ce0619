/**
 * Downstream evaluation as in MoCo-CXR: a linear probe on frozen features and
 * end-to-end fine-tuning, at label fractions with several draws each, scored
 * by test AUC with bootstrap confidence intervals.
 *
 * ```ts
 * const data = await prepareDownstreamData({ train: 'tb:train', test: 'tb:test', valSplit: 0.1, ... });
 * const features = await backboneFeatures(data, { init: 'moco:last.pt', arch: 'resnet18', imageSize: 224, seed: 0 });
 * const cell = await linearProbe({ features, task: data.task, fraction: 0.01, draw: 0, seed: 0 });
 * console.log(cell.testAuc);
 * ```
 */
export {
  checkFraction,
  epochsForFraction,
  evaluationSteps,
  labelledRows,
  testPredictions,
  TopCheckpoints,
  type CellOptions,
  type DownstreamMode,
  type DownstreamResult,
  type EpochSummary,
  type Evaluation,
  type Kept,
  type TestPredictions,
} from './cell.js';
export {
  createBackbone,
  drawTrainingSet,
  initFingerprint,
  parseInit,
  prepareDownstreamData,
  type DataOptions,
  type DataSplit,
  type DownstreamData,
  type DrawOptions,
  type InitSpec,
} from './setup.js';
export { evaluationView, mapImages, type EvalViewOptions, type ImageSet } from '../data/images.js';
export {
  backboneFeatures,
  extractFeatures,
  featureKey,
  type FeatureOptions,
  type FeatureSet,
  type SplitFeatures,
} from './features.js';
export {
  fitLinearHead,
  LINEAR_PROBES,
  linearProbe,
  predictLinear,
  type LinearProbeKind,
  type HeadWeights,
  type LinearFit,
  type LinearFitOptions,
  type LinearProbeOptions,
  type LinearTrainingSet,
  type LinearValidationSet,
} from './linear.js';
export {
  DEFAULT_L2_GRID,
  fitLogistic,
  logisticLogits,
  logisticObjective,
  minimizeLbfgs,
  selectLogistic,
  standardize,
  standardizer,
  type LbfgsOptions,
  type LbfgsResult,
  type LogisticData,
  type LogisticFit,
  type LogisticPathPoint,
  type LogisticProblem,
  type LogisticSelection,
  type ObjectiveWithGradient,
  type Standardizer,
} from './logistic.js';
export { BN_STATS, finetune, finetuneAugmentation, type BnStatsPolicy, type FinetuneOptions } from './finetune.js';
export {
  CLASSIFIER_FORMAT,
  readClassifier,
  writeClassifier,
  type ClassifierInfo,
  type LoadedClassifier,
} from './classifier-file.js';
export {
  DOWNSTREAM_DEFAULTS,
  downstreamMetrics,
  gridCells,
  resolveDownstreamConfig,
  runDownstream,
  type DownstreamConfig,
  type DownstreamHooks,
  type DownstreamInput,
  type DownstreamMetrics,
  type DownstreamRun,
  type FractionMetrics,
} from './runner.js';
export { Progress, formatDuration, type ProgressOptions } from '../util/progress.js';
