/**
 * A description of a source: counts of images, patients, studies, labels and
 * views, and what the image headers of a capped sample say.
 */
import { type XrayRecord } from '../records.js';
import { countLabels, type FileLabelCounts, type LabelCounts } from './labels.js';
import { readImageHeader } from './probe.js';
import { type SkippedFile, type Source } from './source.js';

/** What reading the headers of a sample of images found. */
export interface ProbeReport {
  /** Images whose header was read (or tried). */
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
  /** Images whose header could not be read, with why. */
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
export const NO_SUCH_FILE = 'no such file';

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

/** Reads the headers of up to `limit` images (spread over the source), `concurrency` at a time. */
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
        const header = await readImageHeader(record.path);
        tally(report.sizes, `${header.width}x${header.height}`);
        tally(report.depths, `${header.bits}-bit`);
        tally(report.channels, String(header.channels));
        tally(report.formats, header.format);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        const missing =
          (error as NodeJS.ErrnoException).code === 'ENOENT' || message.startsWith('Input file is missing');
        report.unreadable.push({ id: record.id, path: record.path, error: missing ? NO_SUCH_FILE : message });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  // Workers finish out of order; list unreadable files in source order.
  const position = new Map(sample.map((record, i) => [record.id, i]));
  report.unreadable.sort((a, b) => (position.get(a.id) ?? 0) - (position.get(b.id) ?? 0));
  return report;
}

/** Describes `source`; with `probe` set, also reads up to `probe` image headers. */
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
