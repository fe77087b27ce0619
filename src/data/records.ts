/**
 * The record: one image of a data set, with its labels and the patient and
 * study it belongs to. Every source turns its data set's own format into these.
 */

/**
 * A label value: `1` positive, `0` negative, `null` masked (uncertain under the
 * `ignore` policy, or blank under `blank: 'ignore'`). A masked label is kept in
 * the record so that training can mask it out of the loss and evaluation can
 * drop it; it is never a guess. `null` rather than `NaN` because it survives
 * JSON, and a draw or a run folder is written as JSON.
 */
export type LabelValue = number | null;

/** One image of a data set. */
export interface XrayRecord {
  /**
   * Stable within its source and across machines: the path as the data set
   * names it (CheXpert's CSV path, or the path relative to the folder given),
   * so that a saved draw of ids can be read back on another machine.
   */
  id: string;
  /** Absolute path of the image file. */
  path: string;
  /** Task name → label value (see {@link LabelValue}). Every record of a source has the same keys. */
  labels: Record<string, LabelValue>;
  /** Who the image is of; splits and per-patient draws never separate one patient's images. */
  patientId: string;
  /** The study (visit) the image belongs to; a study's prediction is the max over its images. */
  studyId: string;
  /** `frontal` or `lateral` where the source says so. */
  view?: string;
  /** `AP`, `PA`, `LL`, ... where the source says so. */
  projection?: string;
  /** Pixel width, where known without decoding. */
  width?: number;
  /** Pixel height, where known without decoding. */
  height?: number;
}

/**
 * Records grouped by patient, patients in code-unit order of their ids (so
 * that seeded draws over them do not depend on the order records came in),
 * each patient's records in their input order.
 */
export function groupByPatient<R extends XrayRecord>(records: readonly R[]): Map<string, R[]> {
  const groups = new Map<string, R[]>();
  for (const record of records) {
    const group = groups.get(record.patientId);
    if (group === undefined) groups.set(record.patientId, [record]);
    else group.push(record);
  }
  const ids = [...groups.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return new Map(ids.map((id) => [id, groups.get(id) as R[]]));
}

/** Throws unless `task` is a label of the records, listing the labels there are. */
export function checkTask(records: readonly XrayRecord[], task: string): void {
  const first = records[0];
  if (first !== undefined && !(task in first.labels)) {
    throw new Error(`no task '${task}' in these records; their labels are: ${Object.keys(first.labels).join(', ')}`);
  }
}
