/** Data: sources, label fractions, splits (and the image path: decode, cache, loader, augmentations). */
export * from './sources/index.js';
export { groupByPatient, checkTask, type LabelValue, type XrayRecord } from './records.js';
export { combineSeeds, Prng } from './prng.js';
export {
  fractionSize,
  labelFraction,
  labelFractionDraws,
  PAPER_LABEL_FRACTIONS,
  readDraw,
  recordsOfDraw,
  savedDraw,
  writeDraw,
  type DrawUnit,
  type FractionOptions,
  type LabelDraw,
  type SavedDraw,
} from './fractions.js';
export { patientSplit, SHENZHEN_SPLIT, type PatientSplit, type SplitOptions } from './splits.js';
export {
  applyWindow,
  decodeImage,
  decodeResized,
  detectFormat,
  dicomToGrey,
  readDicom,
  toUint8,
  type DicomImage,
  type DicomWindow,
  type FitMode,
  type GreyImage,
  type ImageFormat,
  type ResizeOptions,
} from './decode.js';
export {
  buildCache,
  cacheFingerprint,
  ImageCache,
  type BuildProgress,
  type BuildStats,
  type CacheOptions,
  type CacheRecord,
  type SkippedImage,
} from './cache.js';
export {
  affineAugment,
  affineMatrices,
  Augmentation,
  crop,
  hflip,
  mocoCxrAugmentation,
  normalize,
  NORMALIZATIONS,
  resize,
  rotate,
  type AffineParams,
  type AugmentationOptions,
  type NormalizationName,
  type NormalizeStats,
} from './augment.js';
export { evaluationView, mapImages, type EvalViewOptions, type ImageSet } from './images.js';
export { BatchLoader, type Batch, type BatchAugmentation, type LoaderOptions, type LoaderRecord } from './loader.js';
export {
  generatePhantoms,
  openPhantoms,
  parsePhantomLocation,
  PHANTOM_TASKS,
  phantomLabels,
  phantomNoiseSeed,
  phantomParams,
  renderPhantoms,
  writePhantoms,
  type PhantomOptions,
  type PhantomParams,
} from './phantoms.js';
export {
  preprocessingEntry,
  readCheckpointPreprocessing,
  readPreprocessing,
  withCheckpointPreprocessing,
  type Preprocessing,
} from './preprocessing.js';
