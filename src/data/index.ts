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
  SHENZHEN_LABEL_FRACTIONS,
  writeDraw,
  type DrawUnit,
  type FractionOptions,
  type LabelDraw,
  type SavedDraw,
} from './fractions.js';
export { patientSplit, SHENZHEN_SPLIT, type PatientSplit, type SplitOptions } from './splits.js';
