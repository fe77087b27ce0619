/**
 * Patient-disjoint splits: train / validation (/ test) sets that never share a
 * patient, drawn by seed, optionally redrawn until each part's positive rate
 * is close to the whole set's (the paper's Shenzhen split: 65/15/20, redrawn
 * until the classes are balanced).
 *
 * Sizes, in patients: validation `round(valFraction × P)` and test
 * `round(testFraction × P)`, each at least 1 when its fraction is above 0;
 * train takes the rest and must keep at least one patient.
 */
import { combineSeeds, Prng } from './prng.js';
import { checkTask, groupByPatient, type XrayRecord } from './records.js';

/** How to split. */
export interface SplitOptions {
  /** Share of patients for validation, in [0, 1). */
  valFraction: number;
  /** Share of patients for test, in [0, 1) (default 0). */
  testFraction?: number;
  seed: number;
  /**
   * Redraw until, in every non-empty part, the share of positives among the
   * labelled images of `task` is within `tolerance` (default 0.02) of the
   * whole set's; give up after `maxAttempts` (default 1000).
   */
  balance?: { task: string; tolerance?: number; maxAttempts?: number };
}

/** A split and the attempt that produced it (1 unless balancing redrew). */
export interface PatientSplit {
  train: XrayRecord[];
  validation: XrayRecord[];
  test: XrayRecord[];
  attempts: number;
}

/** The paper's Shenzhen proportions: 65% train, 15% validation, 20% test. */
export const SHENZHEN_SPLIT = { valFraction: 0.15, testFraction: 0.2 } as const;

const SPLIT_STREAM = 0x73706c74;

function partSize(fraction: number, patients: number, name: string): number {
  if (!(fraction >= 0 && fraction < 1)) throw new RangeError(`${name} must be in [0, 1), got ${fraction}`);
  return fraction === 0 ? 0 : Math.max(1, Math.round(fraction * patients));
}

function positiveRate(records: readonly XrayRecord[], task: string): number | undefined {
  let labelled = 0;
  let positive = 0;
  for (const record of records) {
    const value = record.labels[task];
    if (value === null || value === undefined || Number.isNaN(value)) continue;
    labelled++;
    if (value > 0.5) positive++;
  }
  return labelled === 0 ? undefined : positive / labelled;
}

/**
 * Splits `records` by patient. The same records and seed give the same split,
 * whatever order the records come in; each part keeps the input order.
 */
export function patientSplit(records: readonly XrayRecord[], options: SplitOptions): PatientSplit {
  const { valFraction, testFraction = 0, seed, balance } = options;
  const patients = [...groupByPatient(records).values()];
  const nVal = partSize(valFraction, patients.length, 'valFraction');
  const nTest = partSize(testFraction, patients.length, 'testFraction');
  if (nVal + nTest >= patients.length) {
    throw new RangeError(
      `cannot split ${patients.length} patients into ${nVal} validation and ${nTest} test and keep any for training`,
    );
  }
  const maxAttempts = balance?.maxAttempts ?? 1000;
  const tolerance = balance?.tolerance ?? 0.02;
  let target: number | undefined;
  if (balance !== undefined) {
    checkTask(records, balance.task);
    target = positiveRate(records, balance.task);
    if (target === undefined) throw new Error(`balance: no labelled images of '${balance.task}'`);
  }
  for (let attempt = 1; attempt <= (balance === undefined ? 1 : maxAttempts); attempt++) {
    const order = new Prng(combineSeeds(seed, attempt, SPLIT_STREAM)).shuffle([...patients]);
    const partOf = new Map<XrayRecord, 'train' | 'validation' | 'test'>();
    order.forEach((group, i) => {
      const part = i < nVal ? 'validation' : i < nVal + nTest ? 'test' : 'train';
      for (const record of group) partOf.set(record, part);
    });
    const split: PatientSplit = { train: [], validation: [], test: [], attempts: attempt };
    for (const record of records) split[partOf.get(record) as 'train' | 'validation' | 'test'].push(record);
    if (balance === undefined) return split;
    const balanced = [split.train, split.validation, split.test].every((part) => {
      if (part.length === 0) return true;
      const rate = positiveRate(part, balance.task);
      return rate !== undefined && Math.abs(rate - (target as number)) <= tolerance;
    });
    if (balanced) return split;
  }
  throw new Error(
    `no split within ${maxAttempts} attempts has every part's '${balance?.task}' positive rate within ` +
      `${tolerance} of ${(target as number).toFixed(3)}; raise balance.tolerance or maxAttempts`,
  );
}
