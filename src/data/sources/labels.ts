/**
 * Label cells as CheXpert-style CSVs write them (`1.0`, `0.0`, `-1.0`, blank),
 * and the policies that turn uncertain and blank cells into training labels.
 */
import { type LabelValue } from '../records.js';

/**
 * What an uncertain (`-1`) label becomes: `ones` positive (U-Ones), `zeros`
 * negative (U-Zeros), `ignore` masked (U-Ignore: kept in the data, left out of
 * the loss and of evaluation).
 */
export type UncertaintyPolicy = 'ones' | 'zeros' | 'ignore';

/**
 * What a blank label becomes: `zeros` negative (CheXpert's convention, which
 * the paper follows: a finding the report does not mention is taken as
 * absent), `ignore` masked.
 */
export type BlankPolicy = 'zeros' | 'ignore';

export const UNCERTAINTY_POLICIES: readonly UncertaintyPolicy[] = ['ones', 'zeros', 'ignore'];
export const BLANK_POLICIES: readonly BlankPolicy[] = ['zeros', 'ignore'];

/** The policy for uncertain labels when none is given: mask them, inventing nothing. */
export const DEFAULT_UNCERTAINTY_POLICY: UncertaintyPolicy = 'ignore';

/**
 * Uncertainty policy for every task, or per task; in a per-task map the key
 * `*` sets the policy of the tasks not named.
 */
export type UncertaintyOption = UncertaintyPolicy | Readonly<Record<string, UncertaintyPolicy>>;

/** A cell's meaning in the file, before any policy. */
export const Cell = { Negative: 0, Positive: 1, Uncertain: 2, Blank: 3, Invalid: 4 } as const;
/** One of the {@link Cell} codes. */
export type Cell = (typeof Cell)[keyof typeof Cell];

/**
 * Reads a label cell. The accepted spellings are CheXpert's `1.0`, `0.0`,
 * `-1.0` and the empty cell, and the same numbers without the `.0`.
 */
export function readCell(text: string): Cell {
  switch (text) {
    case '1.0':
    case '1':
      return Cell.Positive;
    case '0.0':
    case '0':
      return Cell.Negative;
    case '':
      return Cell.Blank;
    case '-1.0':
    case '-1':
      return Cell.Uncertain;
    default:
      return Cell.Invalid;
  }
}

/** What the accepted spellings are, for error messages. */
export const CELL_SPELLINGS = '1.0, 0.0, -1.0 or blank';

/** How often each value stands in the file for one label, before any policy. */
export interface FileLabelCounts {
  positive: number;
  negative: number;
  uncertain: number;
  blank: number;
}

/** Counts of one label across records, after the policies: masked is `null`. */
export interface LabelCounts {
  positive: number;
  negative: number;
  masked: number;
}

/** Turns cells into label values for one task under its policies. */
export class CellMapper {
  private readonly values: LabelValue[];

  constructor(uncertain: UncertaintyPolicy, blank: BlankPolicy) {
    this.values = [0, 1, uncertain === 'ignore' ? null : uncertain === 'ones' ? 1 : 0, blank === 'ignore' ? null : 0];
  }

  /** The label value of a valid cell. */
  map(cell: Cell): LabelValue {
    return this.values[cell] ?? null;
  }
}

/**
 * Resolves the uncertainty option to one policy per task. A per-task map that
 * names a task the source lacks is an error listing the tasks, so that a
 * misspelt observation cannot pass unnoticed.
 */
export function uncertaintyPerTask(
  option: UncertaintyOption | undefined,
  tasks: readonly string[],
  where: string,
): UncertaintyPolicy[] {
  if (option === undefined) return tasks.map(() => DEFAULT_UNCERTAINTY_POLICY);
  if (typeof option === 'string') return tasks.map(() => checkPolicy(option, where));
  for (const name of Object.keys(option)) {
    if (name !== '*' && !tasks.includes(name)) {
      throw new Error(`${where}: uncertainty policy for unknown task '${name}'; tasks are: ${tasks.join(', ')}`);
    }
  }
  const rest = option['*'] ?? DEFAULT_UNCERTAINTY_POLICY;
  return tasks.map((task) => checkPolicy(option[task] ?? rest, where));
}

function checkPolicy(policy: string, where: string): UncertaintyPolicy {
  if (!(UNCERTAINTY_POLICIES as readonly string[]).includes(policy)) {
    throw new Error(`${where}: unknown uncertainty policy '${policy}'; expected ${UNCERTAINTY_POLICIES.join(', ')}`);
  }
  return policy as UncertaintyPolicy;
}

/** Checks a blank policy, defaulting to `zeros`. */
export function blankPolicy(option: string | undefined, where: string): BlankPolicy {
  if (option === undefined) return 'zeros';
  if (!(BLANK_POLICIES as readonly string[]).includes(option)) {
    throw new Error(`${where}: unknown blank policy '${option}'; expected ${BLANK_POLICIES.join(', ')}`);
  }
  return option as BlankPolicy;
}

/** Counts positive, negative and masked values of every task over `records`. */
export function countLabels(
  records: readonly { labels: Record<string, LabelValue> }[],
  tasks: readonly string[],
): Record<string, LabelCounts> {
  const counts: Record<string, LabelCounts> = {};
  for (const task of tasks) counts[task] = { positive: 0, negative: 0, masked: 0 };
  for (const record of records) {
    for (const task of tasks) {
      const value = record.labels[task];
      const count = counts[task] as LabelCounts;
      if (value === null || value === undefined || Number.isNaN(value)) count.masked++;
      else if (value > 0.5) count.positive++;
      else count.negative++;
    }
  }
  return counts;
}
