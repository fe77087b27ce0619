/**
 * A description of a source: counts of images, patients, studies, labels and
 * views, and what the image headers of a capped sample say.
 */
import { type XrayRecord } from '../records.js';
import { countLabels, type FileLabelCounts, type LabelCounts } from './labels.js';
import { decodeResized } from '../decode.js';
import { errorText, ImageDecodeError, NOT_FOUND } from '../image-error.js';
import { readImageHeader } from './probe.js';
import { type SkippedFile, type Source } from './source.js';

/** What checking a sample of images found. */
export interface ProbeReport {
  /** Images checked: decoded as the image cache decodes them, and their headers read. */
  probed: number;
  /** Images in the source. */
  of: number;
  /** `WxH` → images. */
  sizes: Record<string, number>;
  /** `8-bit`, `16-bit`, ... → images. */
  depths: Record<string, number>;
  /** Channels (1 grey, 3 colour) → images. */
  channels: Record<string, number>;
  /** Format (`png`, `jpeg`, `dicom`) → images. */
  formats: Record<string, number>;
  /** Images that will not decode (the cache would skip them), with why: `not found`, `DICOM file is truncated (…)`. */
  unreadable: { id: string; path: string; error: string }[];
}

/** One label's counts: after the policies, and as written in the file where labels come from one. */
export interface LabelSummary extends LabelCounts {
  file?: FileLabelCounts;
}

/** The description `moco-cxr data` prints. */
export interface SourceSummary {
  kind: string;
  location: string;
  images: number;
  patients: number;
  /** How patients were found: a column, a file-name rule, a pattern, or one per image. */
  patientRule: string;
  studies: number;
  tasks: string[];
  defaultTask?: string;
  labels: Record<string, LabelSummary>;
  /** `frontal` / `lateral` / `unknown` → images. */
  views: Record<string, number>;
  /** `AP`, `PA`, ... / `unknown` → images. */
  projections: Record<string, number>;
  skipped: SkippedFile[];
  probe?: ProbeReport;
}

/** The error recorded for an image whose file is not there. */
export const NO_SUCH_FILE = NOT_FOUND;

/**
 * One warning line for the files a source saw and did not take (hidden files,
 * broken links, non-images), counted by reason; undefined when there were none.
 */
export function skippedNote(source: Source, spec: string): string | undefined {
  const skipped = source.skipped ?? [];
  if (skipped.length === 0) return undefined;
  const reasons: Record<string, number> = {};
  for (const entry of skipped) tally(reasons, entry.reason);
  const counts = Object.entries(reasons)
    .sort((a, b) => b[1] - a[1])
    .map(([reason, count]) => `${count} ${reason}`)
    .join(', ');
  const files = skipped.length === 1 ? 'file' : 'files';
  return `data: warning: ${skipped.length} ${files} in ${spec} not taken (${counts}); 'moco-cxr data ${spec}' lists them`;
}

function tally(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

/**
 * Picks `limit` records spread evenly over the list, so that a capped probe of
 * a source listed folder by folder sees every folder.
 */
export function spreadSample<T>(items: readonly T[], limit: number): T[] {
  if (limit >= items.length) return [...items];
  return Array.from({ length: limit }, (_, i) => items[Math.floor((i * items.length) / limit)] as T);
}

/** The side images are decoded to when checked: any size decodes the file in full, a small one resizes fast. */
const CHECK_SIZE = 16;

/**
 * Checks up to `limit` images (spread over the source), `concurrency` at a
 * time: each is decoded with the image cache's own decode, so that what is
 * called readable here is what the cache will store, and its header is read
 * for the sizes, depths, channels and formats.
 */
export async function probeImages(
  records: readonly XrayRecord[],
  { limit, concurrency = 8 }: { limit: number; concurrency?: number },
): Promise<ProbeReport> {
  const sample = spreadSample(records, limit);
  const report: ProbeReport = {
    probed: sample.length,
    of: records.length,
    sizes: {},
    depths: {},
    channels: {},
    formats: {},
    unreadable: [],
  };
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < sample.length) {
      const record = sample[next++] as XrayRecord;
      try {
        await decodeResized(record.path, { size: CHECK_SIZE });
        const header = await readImageHeader(record.path);
        tally(report.sizes, `${header.width}x${header.height}`);
        tally(report.depths, `${header.bits}-bit`);
        tally(report.channels, String(header.channels));
        tally(report.formats, header.format);
      } catch (error) {
        const reason = error instanceof ImageDecodeError ? error.reason : `header unreadable (${errorText(error)})`;
        report.unreadable.push({ id: record.id, path: record.path, error: reason });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  // Decodes failing at the same moment can take each other's libvips message: ask again, one at a time.
  if (concurrency > 1) {
    for (const entry of report.unreadable) {
      await decodeResized(entry.path, { size: CHECK_SIZE }).catch((error: unknown) => {
        if (error instanceof ImageDecodeError) entry.error = error.reason;
      });
    }
  }
  // Workers finish out of order; list unreadable files in source order.
  const position = new Map(sample.map((record, i) => [record.id, i]));
  report.unreadable.sort((a, b) => (position.get(a.id) ?? 0) - (position.get(b.id) ?? 0));
  return report;
}

/** Describes `source`; with `probe` set, also checks up to `probe` images (`Infinity`: all). */
export async function summarizeSource(source: Source, { probe = 0 }: { probe?: number } = {}): Promise<SourceSummary> {
  const { records } = source;
  const views: Record<string, number> = {};
  const projections: Record<string, number> = {};
  const patients = new Set<string>();
  const studies = new Set<string>();
  for (const record of records) {
    patients.add(record.patientId);
    studies.add(record.studyId);
    tally(views, record.view ?? 'unknown');
    tally(projections, record.projection ?? 'unknown');
  }
  const counts = countLabels(records, source.tasks);
  const labels: Record<string, LabelSummary> = {};
  for (const task of source.tasks) {
    const file = source.fileCounts?.[task];
    labels[task] = { ...(counts[task] as LabelCounts), ...(file === undefined ? {} : { file }) };
  }
  return {
    kind: source.kind,
    location: source.location,
    images: records.length,
    patients: patients.size,
    patientRule: source.patientRule ?? 'one per image',
    studies: studies.size,
    tasks: source.tasks,
    ...(source.defaultTask === undefined ? {} : { defaultTask: source.defaultTask }),
    labels,
    views,
    projections,
    skipped: source.skipped ?? [],
    ...(probe > 0 ? { probe: await probeImages(records, { limit: probe }) } : {}),
  };
}
