/**
 * Label fractions: seeded subsets of a training set (0.1%, 1%, 10%, 100% in
 * the paper, several draws each), per image or per patient, and their record
 * as a JSON file of ids, so that a result can be traced to its exact subset.
 *
 * Size: `max(1, Math.round(fraction × units))` units, where a unit is an image
 * (`per: 'image'`) or a patient with all of their images (`per: 'patient'`);
 * `Math.round` rounds halves up. With `keepBothClasses` one more unit may be
 * added when a single unit cannot carry both classes.
 *
 * Order: units are sorted by id and shuffled by a generator seeded from
 * (seed, draw), and the first units are taken. The fraction does not enter
 * the seed, so for one (seed, draw) a smaller fraction's subset lies inside a
 * larger one's (up to the swaps `keepBothClasses` makes): comparisons across
 * fractions then differ by labels added, not by a different sample.
 */
import { readFile, writeFile } from 'node:fs/promises';

import { combineSeeds, Prng } from './prng.js';
import { checkTask, groupByPatient, type XrayRecord } from './records.js';

/** What a draw samples: images, or patients with all of their images. */
export type DrawUnit = 'patient' | 'image';

/** Which subset to draw. */
export interface FractionOptions {
  /** Share of the units to keep, in (0, 1]. */
  fraction: number;
  /** Which draw of this fraction, 0, 1, 2, ... (different draws, different subsets). */
  draw: number;
  /** The experiment's seed. */
  seed: number;
  /** Sample images or patients. */
  per: DrawUnit;
  /** The task the subset is for (needed by `keepBothClasses`). */
  task?: string;
  /** Make sure the subset holds at least one positive and one negative label of `task`. */
  keepBothClasses?: boolean;
}

/** A drawn subset and what it was drawn with. */
export interface LabelDraw extends FractionOptions {
  /** Images or patients drawn. */
  units: number;
  /** The records drawn, in the order they came in. */
  records: XrayRecord[];
}

/** How many draws of each fraction: the paper's CheXpert protocol. */
export const PAPER_LABEL_FRACTIONS: readonly { fraction: number; draws: number }[] = [
  { fraction: 0.001, draws: 5 },
  { fraction: 0.01, draws: 5 },
  { fraction: 0.1, draws: 5 },
  { fraction: 1, draws: 1 },
];

/** Keeps the draw generator apart from other users of the same seed. */
const FRACTION_STREAM = 0x66726163;

/** The number of units a fraction keeps (see the module comment for the rounding). */
export function fractionSize(fraction: number, units: number): number {
  if (!(fraction > 0 && fraction <= 1)) throw new RangeError(`fraction must be in (0, 1], got ${fraction}`);
  return Math.min(units, Math.max(1, Math.round(fraction * units)));
}

const classesOf = (records: readonly XrayRecord[], task: string): [boolean, boolean] => {
  let negative = false;
  let positive = false;
  for (const record of records) {
    const value = record.labels[task];
    if (value === null || value === undefined || Number.isNaN(value)) continue;
    if (value > 0.5) positive = true;
    else negative = true;
  }
  return [negative, positive];
};

/**
 * Draws the subset described by `options` from `records`; the same records,
 * seed and draw give the same subset, whatever order the records come in.
 */
export function labelFraction(records: readonly XrayRecord[], options: FractionOptions): LabelDraw {
  const { fraction, draw, seed, per, task, keepBothClasses = false } = options;
  if (!Number.isSafeInteger(draw) || draw < 0) throw new RangeError(`draw must be an integer ≥ 0, got ${draw}`);
  if (per !== 'patient' && per !== 'image')
    throw new RangeError(`per must be 'patient' or 'image', got '${String(per)}'`);
  if (records.length === 0) throw new RangeError('cannot draw from no records');
  if (keepBothClasses && task === undefined) throw new Error('keepBothClasses needs the task whose classes to keep');
  if (task !== undefined) checkTask(records, task);

  const units: XrayRecord[][] =
    per === 'patient'
      ? [...groupByPatient(records).values()]
      : [...records].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map((record) => [record]);
  const order = new Prng(combineSeeds(seed, draw, FRACTION_STREAM)).shuffle(units);
  const chosen = order.slice(0, fractionSize(fraction, units.length));
  if (keepBothClasses) includeBothClasses(chosen, order, task as string);

  const kept = new Set(chosen.flat());
  return {
    fraction,
    draw,
    seed,
    per,
    ...(task === undefined ? {} : { task }),
    keepBothClasses,
    units: chosen.length,
    records: records.filter((record) => kept.has(record)),
  };
}

/**
 * Swaps units into `chosen` from further down `order` until both classes of
 * `task` are present: the first later unit carrying the missing class replaces
 * the last chosen unit whose removal loses no class, or is added when every
 * chosen unit is needed (a single unit with one class).
 */
function includeBothClasses(chosen: XrayRecord[][], order: readonly XrayRecord[][], task: string): void {
  for (const wanted of [0, 1] as const) {
    if (classesOf(chosen.flat(), task)[wanted]) continue;
    const taken = new Set(chosen);
    const candidate = order.find((unit) => !taken.has(unit) && classesOf(unit, task)[wanted]);
    if (candidate === undefined) {
      const name = wanted === 1 ? 'positive' : 'negative';
      throw new Error(`keepBothClasses: no ${name} label of '${task}' in any of the ${order.length} units`);
    }
    const present = classesOf(chosen.flat(), task);
    let victim = -1;
    for (let i = chosen.length - 1; i >= 0 && victim < 0; i--) {
      const rest = classesOf(chosen.filter((_, j) => j !== i).flat(), task);
      if (rest.every((has, c) => has || !present[c])) victim = i;
    }
    if (victim >= 0) chosen.splice(victim, 1, candidate);
    else chosen.push(candidate);
  }
}

/**
 * Every draw of a protocol (default: the paper's 0.1% ×5, 1% ×5, 10% ×5,
 * 100% ×1), in protocol order.
 */
export function labelFractionDraws(
  records: readonly XrayRecord[],
  options: Omit<FractionOptions, 'fraction' | 'draw'> & { protocol?: readonly { fraction: number; draws: number }[] },
): LabelDraw[] {
  const { protocol = PAPER_LABEL_FRACTIONS, ...rest } = options;
  return protocol.flatMap(({ fraction, draws }) =>
    Array.from({ length: draws }, (_, draw) => labelFraction(records, { ...rest, fraction, draw })),
  );
}

/** A draw as written to a file: its options and the ids of its records. */
export interface SavedDraw extends FractionOptions {
  format: 'moco-cxr-draw';
  version: 1;
  /** The source it was drawn from, as named (`chexpert:/data/train.csv`), when known. */
  source?: string;
  units: number;
  /** Record ids, in the order of the records. */
  ids: string[];
}

/** The JSON form of a draw. */
export function savedDraw(draw: LabelDraw, source?: string): SavedDraw {
  const { records, ...options } = draw;
  return {
    format: 'moco-cxr-draw',
    version: 1,
    ...(source === undefined ? {} : { source }),
    ...options,
    ids: records.map((record) => record.id),
  };
}

/** Writes a draw to `file` as JSON (see {@link SavedDraw}). */
export async function writeDraw(file: string, draw: LabelDraw, source?: string): Promise<void> {
  await writeFile(file, `${JSON.stringify(savedDraw(draw, source), null, 1)}\n`);
}

/** Reads a draw written by {@link writeDraw}; errors name the file and what is wrong. */
export async function readDraw(file: string): Promise<SavedDraw> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new Error(`draw file ${file}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const saved = value as Partial<SavedDraw> | null;
  if (saved === null || typeof saved !== 'object' || saved.format !== 'moco-cxr-draw') {
    throw new Error(`draw file ${file}: not a draw (expected "format": "moco-cxr-draw")`);
  }
  if (saved.version !== 1) throw new Error(`draw file ${file}: version ${String(saved.version)}, expected 1`);
  if (!Array.isArray(saved.ids) || !saved.ids.every((id) => typeof id === 'string')) {
    throw new Error(`draw file ${file}: "ids" must be a list of record ids`);
  }
  return saved as SavedDraw;
}

/**
 * The records of a saved draw, in the order of `records`. Every saved id must
 * be among them: a draw read against another version of the data is an error
 * naming the ids it cannot find.
 */
export function recordsOfDraw(saved: SavedDraw, records: readonly XrayRecord[], file = 'draw'): XrayRecord[] {
  const wanted = new Set(saved.ids);
  const found = records.filter((record) => wanted.has(record.id));
  if (found.length !== wanted.size) {
    const have = new Set(found.map((record) => record.id));
    const missing = saved.ids.filter((id) => !have.has(id));
    throw new Error(
      `${file}: ${missing.length} of its ${wanted.size} ids are not in the source, e.g. ${missing.slice(0, 3).join(', ')}`,
    );
  }
  return found;
}
