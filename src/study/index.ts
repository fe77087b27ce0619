/** The paper's protocol as one grid, and its report. */
export { runStudy, type StudyHooks, type StudyOutcome } from './grid.js';
export {
  readStudyConfig,
  resolveStudyConfig,
  type StudyConfig,
  type StudyTarget,
  type StudyTraining,
} from './config.js';
export { writeReport, summarizeStudy, type ReportOptions, type WrittenReport } from './report.js';
export type { StudyResults, StudyCell, StudyDraw, StudyTestSet, TrainingMode, Initialization } from './results.js';
export { demoStudyConfig } from './demo.js';
