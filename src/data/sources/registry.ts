/**
 * The kinds of source, and `openSource`, which parses `KIND:PATH` and opens it.
 *
 * A kind is added with `registerSource(kind, summary, factory)`, either from
 * the module that defines it (imported before `openSource` runs) or as one
 * line in `BUILT_IN` below, loaded lazily so that opening a CSV never loads
 * an image generator.
 */
import { type XrayRecord } from '../records.js';
import { applyPatientPattern } from './patients.js';
import {
  checkViewOption,
  OPTION_KINDS,
  passesFilters,
  type Source,
  type SourceFactory,
  type SourceKind,
  type SourceOptions,
} from './source.js';

type Loader = () => Promise<SourceFactory>;

const BUILT_IN: Record<string, { summary: string; load: Loader }> = {
  chexpert: {
    summary: 'CheXpert train.csv / valid.csv (.csv.gz too), 14 observations',
    load: async () => (await import('./chexpert.js')).openChexpert,
  },
  nih: {
    summary: 'NIH ChestX-ray14 Data_Entry_2017(_v2020).csv(.gz), 14 findings; --split',
    load: async () => (await import('./nih.js')).openNih,
  },
  vindr: {
    summary: 'VinDr-CXR train.csv, a row per finding per reader; train/ID.dicom; --min-readers',
    load: async () => (await import('./vindr.js')).openVindr,
  },
  mimic: {
    summary: 'MIMIC-CXR-JPG folder: chexpert, metadata, split tables; files/pXX/...; --split',
    load: async () => (await import('./mimic.js')).openMimic,
  },
  padchest: {
    summary: "PadChest's PADCHEST_chest_x_ray_images_labels_*.csv(.gz); 16-bit PNGs",
    load: async () => (await import('./padchest.js')).openPadchest,
  },
  tb: {
    summary: 'Shenzhen (CHNCXR_*) and Montgomery (MCUCXR_*) tuberculosis PNGs, recursively',
    load: async () => (await import('./tb.js')).openTb,
  },
  folder: {
    summary: 'one sub-folder per class (NORMAL/, PNEUMONIA/), labels one-hot per class',
    load: async () => (await import('./folder.js')).openFolder,
  },
  csv: {
    summary: 'any CSV: a path column, label columns, optional patient and study columns',
    load: async () => (await import('./csv.js')).openCsv,
  },
  phantom: {
    summary: 'N[,SEED[,SIZE]] synthetic chest radiographs, labelled Pleural Effusion and Cardiomegaly',
    load: async () => (await import('../phantoms.js')).openPhantoms,
  },
};

const registered = new Map<string, SourceKind>();

/** Adds (or replaces) a kind of source. Kinds are lower-case words: `[a-z][a-z0-9-]*`. */
export function registerSource(kind: string, summary: string, open: SourceFactory): void {
  if (!/^[a-z][a-z0-9-]*$/.test(kind)) throw new Error(`source kind '${kind}' must match [a-z][a-z0-9-]*`);
  registered.set(kind, { kind, summary, open });
}

/** Every kind, with its one-line summary, sorted by name. */
export function sourceKinds(): { kind: string; summary: string }[] {
  const kinds = new Map<string, string>();
  for (const [kind, entry] of Object.entries(BUILT_IN)) kinds.set(kind, entry.summary);
  for (const [kind, entry] of registered) kinds.set(kind, entry.summary);
  return [...kinds].map(([kind, summary]) => ({ kind, summary })).sort((a, b) => (a.kind < b.kind ? -1 : 1));
}

async function factoryFor(kind: string): Promise<SourceFactory | undefined> {
  const added = registered.get(kind);
  if (added !== undefined) return added.open;
  const builtIn = BUILT_IN[kind];
  return builtIn === undefined ? undefined : await builtIn.load();
}

/** Splits `KIND:PATH`; errors name what was expected and list the kinds. */
export function parseSourceSpec(spec: string): { kind: string; location: string } {
  const match = /^([a-z][a-z0-9-]*):(.*)$/s.exec(spec);
  const kinds = sourceKinds()
    .map((entry) => entry.kind)
    .join(', ');
  if (match === null) throw new Error(`source '${spec}': expected KIND:PATH, where KIND is one of ${kinds}`);
  const kind = match[1] as string;
  const location = match[2] as string;
  if (location === '') throw new Error(`source '${spec}': nothing after '${kind}:', expected a path`);
  return { kind, location };
}

/**
 * Opens a source named as `KIND:PATH` (e.g. `chexpert:/data/CheXpert-v1.0-small/train.csv`),
 * applies the view filters and checks that record ids are unique.
 */
export async function openSource(spec: string, options: SourceOptions = {}): Promise<Source> {
  const { kind, location } = parseSourceSpec(spec);
  const open = await factoryFor(kind);
  if (open === undefined) {
    const kinds = sourceKinds()
      .map((entry) => `  ${entry.kind.padEnd(9)} ${entry.summary}`)
      .join('\n');
    throw new Error(`source '${spec}': unknown kind '${kind}'; the kinds are:\n${kinds}`);
  }
  checkViewOption(options, `source '${spec}'`);
  if (!registered.has(kind)) checkOptionKinds(kind, options, spec);
  const source = await open(location, options);
  const records = source.records.filter((record) => passesFilters(record.view, record.projection, options));
  if (records.length === 0) {
    const filters = filterNames(options);
    // A factory may have applied the filters itself, so "none found" and "none left" read alike here.
    throw new Error(
      filters === ''
        ? `source '${spec}': no images found`
        : `source '${spec}': no images pass the filters (${filters})${unknownNote(source.records, options)}`,
    );
  }
  checkUniqueIds(records, spec);
  if (options.patientPattern !== undefined) {
    applyPatientPattern(records, options.patientPattern, `source '${spec}'`);
    return { ...source, records, patientRule: `pattern '${options.patientPattern}' on the image ids` };
  }
  return { ...source, records };
}

/** Throws when an option only other kinds read is given, so that it cannot pass unnoticed. */
function checkOptionKinds(kind: string, options: SourceOptions, spec: string): void {
  for (const [key, kinds] of Object.entries(OPTION_KINDS)) {
    if (options[key as keyof SourceOptions] === undefined || kinds.includes(kind)) continue;
    throw new Error(`source '${spec}': option ${key} applies to ${kinds.join(', ')} sources, not ${kind}`);
  }
}

/** Why filters may have left nothing: how many images the source gives no view or projection for. */
function unknownNote(records: readonly XrayRecord[], options: SourceOptions): string {
  const notes: string[] = [];
  const noView = records.filter((record) => record.view === undefined).length;
  const noProjection = records.filter((record) => record.projection === undefined).length;
  if ((options.frontalOnly === true || options.views !== undefined) && noView > 0) {
    notes.push(`${noView} of ${records.length} images have no view in this source`);
  }
  if (options.projections !== undefined && noProjection > 0) {
    notes.push(`${noProjection} of ${records.length} have no projection`);
  }
  return notes.length === 0 ? '' : `; ${notes.join(', ')}`;
}

function filterNames(options: SourceOptions): string {
  const names: string[] = [];
  if (options.frontalOnly === true) names.push('frontal only');
  if (options.views !== undefined) names.push(`views ${options.views.join('/')}`);
  if (options.projections !== undefined) names.push(`projections ${options.projections.join('/')}`);
  return names.join(', ');
}

function checkUniqueIds(records: readonly XrayRecord[], spec: string): void {
  const seen = new Set<string>();
  for (const record of records) {
    if (seen.has(record.id)) throw new Error(`source '${spec}': image '${record.id}' is listed twice`);
    seen.add(record.id);
  }
}
