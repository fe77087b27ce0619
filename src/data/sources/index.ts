/** Sources: data sets' own formats turned into records. */
export { openSource, parseSourceSpec, registerSource, sourceKinds } from './registry.js';
export type { SkippedFile, Source, SourceFactory, SourceKind, SourceOptions } from './source.js';
export { OPTION_KINDS, passesFilters, VIEWS } from './source.js';
export {
  BLANK_POLICIES,
  DEFAULT_UNCERTAINTY_POLICY,
  UNCERTAINTY_POLICIES,
  countLabels,
  type BlankPolicy,
  type FileLabelCounts,
  type LabelCounts,
  type UncertaintyOption,
  type UncertaintyPolicy,
} from './labels.js';
export { CHEXPERT_OBSERVATIONS } from './chexpert.js';
export { VINDR_DEFAULT_MIN_READERS, VINDR_FINDINGS } from './vindr.js';
export { MIMIC_SPLITS, MIMIC_TABLES } from './mimic.js';
export { PADCHEST_CSV, PADCHEST_NORMAL, parsePythonList } from './padchest.js';
export { NIH_CSV_NAMES, NIH_FINDINGS, NIH_SPLITS } from './nih.js';
export { TB_TASK } from './tb.js';
export { parseKermanyName } from './folder.js';
export { applyPatientPattern, compilePatientPattern, parseNihName } from './patients.js';
export { IMAGE_EXTENSIONS, isImageFile, listFiles, listFolder, type FolderListing } from './files.js';
export { readImageHeader, type ImageHeader } from './probe.js';
export {
  NO_SUCH_FILE,
  probeImages,
  skippedNote,
  spreadSample,
  summarizeSource,
  type LabelSummary,
  type ProbeReport,
  type SourceSummary,
} from './summary.js';
export {
  LIST_SETTING_KEYS,
  listSetting,
  parseUncertainty,
  resolveSourceOptions,
  SOURCE_SETTING_KEYS,
  SOURCE_SETTINGS,
  sourceOptionsOf,
  type SourceSettings,
} from './settings.js';
