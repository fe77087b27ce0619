/**
 * The command-line flags of the source options, derived from
 * `SOURCE_SETTINGS`: their parser options, their help lines, and their values
 * as `openSource`'s options, with errors that name the flag.
 */
import { flagName, helpLine, resolve, type Setting, valueWords } from '../config/settings.js';
import {
  LIST_SETTING_KEYS,
  SOURCE_SETTINGS,
  sourceOptionsOf,
  type SourceOptions,
  type SourceSettings,
} from '../data/sources/index.js';
import { type CommandLineOption } from './options.js';

/** What stands for a flag's value in help, where its type alone would not say: `--view frontal,lateral`. */
const VALUE_NAMES: Readonly<Record<string, string>> = {
  uncertain: 'POLICY',
  views: 'frontal,lateral',
  projections: 'AP,PA',
  split: 'NAME',
  imageRoot: 'DIR',
  patientPattern: 'REGEX',
  pathColumn: 'NAME',
  patientColumn: 'NAME',
  studyColumn: 'NAME',
};

/** How a setting's value is shown in help: `--min-readers N`. */
function valueName(setting: Setting): string {
  if (setting.type === 'boolean') return '';
  const named = VALUE_NAMES[setting.key];
  if (named !== undefined) return ` ${named}`;
  if (setting.type === 'int') return ' N';
  if (setting.oneOf !== undefined) return ` ${setting.oneOf.join('|')}`;
  return LIST_SETTING_KEYS.has(setting.key) ? ' A,B' : ' TEXT';
}

/** What a flag given without a value needed, for the parser's message: "a positive integer", "DIR". */
function valueNeeded(setting: Setting): string {
  if (setting.type === 'int' || setting.oneOf !== undefined) return valueWords(setting);
  return VALUE_NAMES[setting.key] ?? (LIST_SETTING_KEYS.has(setting.key) ? 'a comma-separated list' : 'text');
}

/** The parser options of the source flags (list flags may be repeated). */
export function sourceFlagOptions(): Record<string, CommandLineOption> {
  const options: Record<string, CommandLineOption> = {};
  for (const setting of SOURCE_SETTINGS as readonly Setting[]) {
    const name = flagName(setting) as string;
    options[name] =
      setting.type === 'boolean'
        ? { type: 'boolean' }
        : { type: 'string', multiple: LIST_SETTING_KEYS.has(setting.key), value: valueNeeded(setting) };
  }
  return options;
}

/** The help lines of the source flags, aligned at `width`. */
export function sourceFlagHelp(width = 27): string[] {
  return (SOURCE_SETTINGS as readonly Setting[]).map(
    (setting) => `  --${flagName(setting)}${valueName(setting)}`.padEnd(width) + helpLine(setting),
  );
}

/**
 * The source options given as flags (`values` as the parser returns them,
 * by flag name). Each is checked against its setting; an error names the flag.
 */
export function sourceOptionsFromFlags(values: Readonly<Record<string, unknown>>): SourceOptions {
  const partial: Record<string, unknown> = {};
  for (const setting of SOURCE_SETTINGS as readonly Setting[]) {
    const name = flagName(setting) as string;
    let value = values[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) value = LIST_SETTING_KEYS.has(setting.key) ? value.join(',') : value[value.length - 1];
    if (setting.type === 'int' && typeof value === 'string') {
      const number = value.trim() === '' ? NaN : Number(value);
      if (Number.isNaN(number)) throw new RangeError(`--${name} must be ${valueWords(setting)}, got '${value}'`);
      value = number;
    }
    try {
      resolve([setting], { [setting.key]: value });
    } catch (error) {
      const message = (error as Error).message;
      throw new RangeError(`--${name}${message.slice(setting.key.length)}`, { cause: error });
    }
    partial[setting.key] = value;
  }
  return sourceOptionsOf(resolve(SOURCE_SETTINGS, partial) as SourceSettings);
}
