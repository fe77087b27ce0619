/**
 * The options of a source, declared once: `moco-cxr data`'s flags and help
 * come from this table, and anything else that opens a source from settings
 * (a YAML block, a study's data target) can check and convert them with
 * {@link resolveSourceOptions}. Lists are written comma-separated (on the
 * command line a list flag may also be repeated).
 */
import { parsingProblem, resolve, type Setting, type SettingsOf } from '../../config/settings.js';
import { UNCERTAINTY_POLICIES, type UncertaintyPolicy } from './labels.js';
import { compilePatientPattern } from './patients.js';
import { type SourceOptions, VIEWS } from './source.js';

/**
 * Reads the uncertainty setting: `ones`, or per task `Pleural Effusion=ones,Edema=zeros`
 * (a bare policy in the list sets the tasks not named). Throws naming the part it cannot read.
 */
export function parseUncertainty(text: string): Record<string, UncertaintyPolicy> {
  const policies: Record<string, UncertaintyPolicy> = {};
  for (const part of text.split(',').map((p) => p.trim())) {
    const equals = part.lastIndexOf('=');
    const task = equals < 0 ? '*' : part.slice(0, equals).trim();
    const policy = equals < 0 ? part : part.slice(equals + 1).trim();
    if (!(UNCERTAINTY_POLICIES as readonly string[]).includes(policy)) {
      throw new Error(`uncertain '${part}': expected ${UNCERTAINTY_POLICIES.join(', ')} or TASK=POLICY`);
    }
    policies[task] = policy as UncertaintyPolicy;
  }
  return policies;
}

/** A comma-separated list, trimmed, empty parts dropped. */
export function listSetting(text: string): string[] {
  return text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '');
}

function checkViews(text: string): string | undefined {
  const wrong = listSetting(text).find((view) => !VIEWS.includes(view));
  return wrong === undefined ? undefined : `: unknown view '${wrong}'; expected ${VIEWS.join(' or ')}`;
}

/**
 * Every option a source takes. Which kinds read each is said in its help and
 * checked by `openSource` (see `OPTION_KINDS` in source.ts).
 */
export const SOURCE_SETTINGS = [
  {
    key: 'uncertain',
    type: 'string',
    optional: 'ignore: masked',
    check: (value: string) => parsingProblem('uncertain', () => parseUncertainty(value)),
    help: 'uncertain (-1) labels: ones, zeros or ignore; TASK=POLICY,... per task',
  },
  {
    key: 'blank',
    type: 'string',
    oneOf: ['zeros', 'ignore'] as const,
    optional: 'zeros',
    help: 'blank labels: zeros (negative) or ignore (masked)',
  },
  { key: 'frontalOnly', flag: 'frontal', type: 'boolean', optional: 'all views', help: 'frontal images only' },
  {
    key: 'views',
    flag: 'view',
    type: 'string',
    optional: 'all',
    check: checkViews,
    help: 'these views only (frontal, lateral); images of unknown view are dropped',
  },
  {
    key: 'projections',
    flag: 'projection',
    type: 'string',
    optional: 'all',
    help: 'these projections only, as the source writes them (any case)',
  },
  {
    key: 'split',
    type: 'string',
    optional: 'every image',
    help: 'the official part: nih: train or test; mimic: train, validate or test',
  },
  {
    key: 'minReaders',
    type: 'int',
    range: 'positive',
    optional: '1: any reader',
    help: 'vindr: positive when at least N of the readers marked the finding',
  },
  {
    key: 'imageRoot',
    type: 'string',
    optional: "the label file's folder",
    help: 'the folder image paths start from',
  },
  {
    key: 'patientPattern',
    type: 'string',
    optional: "the source's own",
    check: (value: string) => parsingProblem('patientPattern', () => compilePatientPattern(value)),
    help: 'patient id = first capture group of REGEX on the image ids (paths)',
  },
  { key: 'pathColumn', type: 'string', optional: 'Path, else path', help: 'csv: the image path column' },
  {
    key: 'labelColumns',
    flag: 'labels',
    type: 'string',
    optional: 'every other column',
    help: 'csv: the label columns',
  },
  { key: 'patientColumn', type: 'string', optional: 'one patient per row', help: 'csv: the patient id column' },
  { key: 'studyColumn', type: 'string', optional: 'one study per row', help: 'csv: the study id column' },
] as const satisfies readonly Setting[];

/** The source options as settings: what a YAML block or a study target holds. */
export type SourceSettings = SettingsOf<typeof SOURCE_SETTINGS>;

/** The keys of {@link SOURCE_SETTINGS}. */
export const SOURCE_SETTING_KEYS: readonly string[] = SOURCE_SETTINGS.map((setting) => setting.key);

/** The settings whose value is a comma-separated list (a repeated flag adds to it). */
export const LIST_SETTING_KEYS: ReadonlySet<string> = new Set(['uncertain', 'views', 'projections', 'labelColumns']);

/** Turns checked settings into the options `openSource` takes. */
export function sourceOptionsOf(settings: SourceSettings): SourceOptions {
  const options: SourceOptions = {};
  if (settings.uncertain !== undefined) options.uncertain = parseUncertainty(settings.uncertain);
  if (settings.blank !== undefined) options.blank = settings.blank;
  if (settings.frontalOnly !== undefined) options.frontalOnly = settings.frontalOnly;
  if (settings.views !== undefined) options.views = listSetting(settings.views);
  if (settings.projections !== undefined) options.projections = listSetting(settings.projections);
  if (settings.split !== undefined) options.split = settings.split;
  if (settings.minReaders !== undefined) options.minReaders = settings.minReaders;
  if (settings.imageRoot !== undefined) options.imageRoot = settings.imageRoot;
  if (settings.patientPattern !== undefined) options.patientPattern = settings.patientPattern;
  if (settings.pathColumn !== undefined) options.pathColumn = settings.pathColumn;
  if (settings.labelColumns !== undefined) options.labelColumns = listSetting(settings.labelColumns);
  if (settings.patientColumn !== undefined) options.patientColumn = settings.patientColumn;
  if (settings.studyColumn !== undefined) options.studyColumn = settings.studyColumn;
  return options;
}

/**
 * Checks source settings (keys of {@link SOURCE_SETTINGS}; any other key is
 * refused) and converts them to `openSource`'s options. Errors name the key,
 * after `where` (e.g. a file and block).
 */
export function resolveSourceOptions(partial: Readonly<Record<string, unknown>>, where = ''): SourceOptions {
  return sourceOptionsOf(resolve(SOURCE_SETTINGS, partial, where));
}
