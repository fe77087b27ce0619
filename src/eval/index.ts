/** Evaluation: exact AUC, ROC curves, bootstrap CIs and paired differences. */
export { auc, rocCurve, type RocPoint } from './auc.js';
export { bootstrapAuc, bootstrapAucDifference, quantile, type BootstrapOptions, type Interval } from './bootstrap.js';
export { aggregateByStudy } from './studies.js';
export { scoreOverDraws, type DrawScores, type ScoredDraws } from './draws.js';
