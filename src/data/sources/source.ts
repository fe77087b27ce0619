/**
 * What a source is: a data set's own format turned into records. Sources are
 * named on the command line as `KIND:PATH` and opened by `openSource`.
 */
import { type XrayRecord } from '../records.js';
import { type FileLabelCounts, type UncertaintyOption } from './labels.js';

/** Options every source accepts; each source reads the ones that apply to it. */
export interface SourceOptions {
  /** What uncertain (`-1`) labels become, for all tasks or per task (default `ignore`: masked). */
  uncertain?: UncertaintyOption;
  /** What blank labels become: `zeros` (default, negative) or `ignore` (masked). */
  blank?: 'zeros' | 'ignore';
  /** Keep only frontal images (the same as `views: ['frontal']`); records whose view is unknown are dropped too. */
  frontalOnly?: boolean;
  /** Keep only these views (`frontal`, `lateral`); records whose view is unknown are dropped too. */
  views?: readonly string[];
  /**
   * Keep only these projections, as the source writes them (`AP`, `PA`; MIMIC's `LATERAL`, PadChest's
   * `AP_horizontal`), in any case; records whose projection is unknown are dropped too.
   */
  projections?: readonly string[];
  /** Folder that image paths in a CSV are relative to, instead of the one found from the CSV's place. */
  imageRoot?: string;
  /** `csv:` the column holding image paths (default `Path`, else `path`). */
  pathColumn?: string;
  /** `csv:` the label columns (default: every column but the path, patient and study columns). */
  labelColumns?: readonly string[];
  /**
   * A regular expression whose first capture group is the patient id, matched against each image's id
   * (its path as the data set names it), for file names no source knows; it overrides the source's own.
   */
  patientPattern?: string;
  /** `csv:` the column holding patient ids (default: one patient per row). */
  patientColumn?: string;
  /** `csv:` the column holding study ids (default: one study per row). */
  studyColumn?: string;
  /** The official part of a data set that ships one (`nih:` train or test; `mimic:` train, validate or test). */
  split?: string;
  /** `vindr:` how many of an image's radiologists must mark a finding for it to be positive (default 1: any). */
  minReaders?: number;
}

/** A file a source saw and did not take, and why. */
export interface SkippedFile {
  path: string;
  reason: string;
}

/** A data set opened as records. */
export interface Source {
  /** The kind, as in `chexpert`. */
  kind: string;
  /** What followed `KIND:`, as given. */
  location: string;
  /** Label names, in the source's own order; every record's `labels` has exactly these keys. */
  tasks: string[];
  /** The task a binary classifier trains on where the source implies one (`Tuberculosis`, `PNEUMONIA`). */
  defaultTask?: string;
  records: XrayRecord[];
  /** For labels read from a file: how often each value stands there (over the records kept). */
  fileCounts?: Record<string, FileLabelCounts>;
  /** Files seen and not taken. */
  skipped?: SkippedFile[];
  /** How patient ids were found, in words: "column 'Patient ID'", "file names (NIH ...)", "one per image". */
  patientRule?: string;
}

/**
 * Opens one kind of source. `location` is what followed `KIND:` (a path for
 * the file-based kinds; any text a kind defines otherwise, as `N,seed`). The
 * filters in `options` (`frontalOnly`, `projections`) are applied again by
 * `openSource`, so a factory need not apply them unless it counts something
 * that must reflect them.
 */
export type SourceFactory = (location: string, options: SourceOptions) => Promise<Source> | Source;

/** A registered kind: its factory and a one-line description for help and errors. */
export interface SourceKind {
  kind: string;
  summary: string;
  open: SourceFactory;
}

/**
 * The kinds that read each kind-specific option; `openSource` refuses one given
 * to a built-in kind that would ignore it. Options not listed apply to every
 * kind: the view, projection and patient-pattern filters, and the label
 * policies (`uncertain`, `blank`), which change nothing where a source has no
 * uncertain or blank labels, so that one policy can be given for several sources.
 */
export const OPTION_KINDS: Readonly<Partial<Record<keyof SourceOptions, readonly string[]>>> = {
  split: ['nih', 'mimic'],
  minReaders: ['vindr'],
  imageRoot: ['chexpert', 'csv', 'nih', 'vindr', 'mimic', 'padchest', 'phantom'],
  pathColumn: ['csv'],
  labelColumns: ['csv'],
  patientColumn: ['csv'],
  studyColumn: ['csv'],
};

/** The views a record may have. */
export const VIEWS: readonly string[] = ['frontal', 'lateral'];

/** Whether a record passes the view and projection filters of `options`. */
export function passesFilters(
  view: string | undefined,
  projection: string | undefined,
  options: SourceOptions,
): boolean {
  if (options.frontalOnly === true && view !== 'frontal') return false;
  if (options.views !== undefined && (view === undefined || !options.views.includes(view))) return false;
  if (options.projections !== undefined) {
    if (projection === undefined) return false;
    const upper = projection.toUpperCase();
    if (!options.projections.some((wanted) => wanted.toUpperCase() === upper)) return false;
  }
  return true;
}

/** Throws unless every view in `options.views` is one of {@link VIEWS}. */
export function checkViewOption(options: SourceOptions, where: string): void {
  for (const view of options.views ?? []) {
    if (!VIEWS.includes(view)) throw new Error(`${where}: unknown view '${view}'; expected ${VIEWS.join(' or ')}`);
  }
}
