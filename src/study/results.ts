/**
 * What a study hands to its report: for every (target, mode, init, fraction)
 * the draws that were trained, each with its training subset and its scores on
 * the target's test set. Scores are per test image, in the order of the
 * target's `tests[target].ids`, so that every cell of a target is scored on the
 * same images and paired comparisons between cells are valid.
 */

/** How the supervised part trains: a linear head on frozen features, or the whole network. */
export type TrainingMode = 'linear' | 'finetune';

/** Where the backbone's weights come from: MoCo pretraining, or the same model without it. */
export type Initialization = 'moco' | 'baseline';

/** One trained model of a cell: a draw of the label fraction. */
export interface StudyDraw {
  /** Which draw of the fraction (0, 1, 2, ...). */
  draw: number;
  /** The training images (or patients' images) of this draw. */
  trainIds: string[];
  /** AUC on the validation set of the selected checkpoint(s). */
  valAuc: number;
  /** One score per test image, in the order of the target's test `ids`. */
  scores: number[];
  /** Wall-clock seconds spent training and scoring this draw. */
  seconds: number;
}

/** One (target, mode, init, fraction) of the grid, with all its draws. */
export interface StudyCell {
  /** `'source'` or the transfer target's name, e.g. `'tb'`. */
  target: string;
  /** The label the cell predicts, e.g. `'Pleural Effusion'`, `'Tuberculosis'`. */
  task: string;
  mode: TrainingMode;
  init: Initialization;
  /** Share of the training labels used, in (0, 1]. */
  fraction: number;
  draws: StudyDraw[];
}

/** A target's test set, shared by all of its cells. */
export interface StudyTestSet {
  /** Image ids, in the order of every cell's `scores`. */
  ids: string[];
  /** The study (visit) of each image; a study is scored by the max over its images. */
  studyIds: string[];
  /** 0 or 1 per image. */
  labels: number[];
}

/** Everything a study produced, as its report reads it. */
export interface StudyResults {
  name: string;
  /** ISO 8601 time the study started. */
  createdAt: string;
  /** The exact settings the study ran with, printed verbatim in the report. */
  settings: Record<string, unknown>;
  /** Per target (`'source'`, `'tb'`, ...). */
  tests: Record<string, StudyTestSet>;
  cells: StudyCell[];
  /** Seconds per phase, e.g. `{ pretrain, linear, finetune }`. */
  timings?: Record<string, number>;
}
