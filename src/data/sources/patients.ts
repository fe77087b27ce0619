/**
 * Patients from file names: the name rules sources know (NIH's
 * `00001234_005.png`), and a user's pattern (`patientPattern`, a regular
 * expression whose first capture group is the patient id) for the names none
 * of them knows.
 */
import { type XrayRecord } from '../records.js';

/**
 * Patient and study from an NIH ChestX-ray14 file name, or undefined when the
 * name is not one: `00001234_005.png` → patient `00001234`, study
 * `00001234_005` (the patient's follow-up 5; each follow-up is one visit).
 */
export function parseNihName(name: string): { patientId: string; studyId: string } | undefined {
  const match = /^(\d{8})_(\d{3})\.[a-z]+$/i.exec(name);
  if (match === null) return undefined;
  return { patientId: match[1] as string, studyId: `${match[1]}_${match[2]}` };
}

/** Compiles a patient pattern, or throws naming it and what it lacks (after `where`, when given). */
export function compilePatientPattern(pattern: string, where = ''): RegExp {
  const at = where === '' ? '' : `${where}: `;
  let regex: RegExp;
  try {
    regex = new RegExp(pattern);
  } catch (error) {
    throw new Error(`${at}patientPattern '${pattern}' is not a regular expression: ${(error as Error).message}`);
  }
  // A pattern's capture groups: one more than the alternatives of the empty string's match.
  const groups = new RegExp(`${pattern}|`).exec('')?.length ?? 1;
  if (groups < 2) {
    throw new Error(`${at}patientPattern '${pattern}' has no capture group; put the patient id in (...)`);
  }
  return regex;
}

/**
 * Sets each record's patient from `pattern` matched against its id (the path
 * as the data set names it: relative to the folder given, or as the CSV writes
 * it). An id the pattern does not match, or whose first group is empty, is an
 * error naming the id, so that no image silently becomes its own patient.
 * Studies the source left as one per image stay so.
 */
export function applyPatientPattern(records: XrayRecord[], pattern: string, where: string): void {
  const regex = compilePatientPattern(pattern, where);
  for (const record of records) {
    const patient = regex.exec(record.id)?.[1];
    if (patient === undefined || patient === '') {
      throw new Error(
        `${where}: patientPattern '${pattern}' finds no patient id in '${record.id}' (the first capture group must match)`,
      );
    }
    record.patientId = patient;
  }
}
