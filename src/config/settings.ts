/**
 * Declared settings: one table per entry point lists each setting once (its
 * key, command-line flag, type, default or "required", check and help), and
 * the configuration type, the defaults, the validation, the CLI flags and
 * `--help` all derive from it. This module imports nothing of the library, so
 * every floor may declare its table beside the code that uses it.
 */

/** How a setting's value is written; 'numbers' and 'strings' are lists, on the command line comma-separated. */
export type SettingType = 'string' | 'int' | 'number' | 'boolean' | 'numbers' | 'strings';

/** The values a number takes: above 0, or 0 and above. */
export type SettingRange = 'positive' | 'non-negative';

/** One setting of an entry point. */
export interface Setting {
  /** The camelCase key of the configuration object and of YAML files. */
  readonly key: string;
  /** The kebab-case command-line flag; default the key in kebab case; `null` for a YAML-only setting. */
  readonly flag?: string | null;
  readonly type: SettingType;
  /** The value when none is given (absent only where `required` is set). */
  readonly default?: string | number | boolean | readonly number[] | readonly string[];
  /** What a missing required setting should be, in words ("--data KIND:PATH is required (...)"). */
  readonly required?: string;
  /** A setting that may stay unset (neither default nor required): what unset means, for `--help`. */
  readonly optional?: string;
  /** For numbers: the lower bound. */
  readonly range?: SettingRange;
  /** For numbers: the largest value, and why (said when a value passes it). */
  readonly max?: number;
  readonly maxReason?: string;
  /** For text (and each item of a list of text): the only values accepted. */
  readonly oneOf?: readonly string[];
  /**
   * A further check of a well-typed value: the problem in words, or undefined
   * when it is fine. The message is the key, then the problem ("must be...",
   * or ": unknown model 'vgg'").
   */
  readonly check?: (value: never) => string | undefined;
  /** A line of help (the default is added by {@link helpLine}). */
  readonly help: string;
  /** How `--help` states the default, where the value alone would not say it ("the image size"). */
  readonly defaultHelp?: string;
  /** Whether a resumed run may change it (it decides how the run is computed or reported, not what). */
  readonly resumable?: boolean;
}

/** A setting's value type. */
type ValueOf<S> = S extends { readonly type: 'strings' }
  ? S extends { readonly oneOf: readonly (infer U)[] }
    ? U[]
    : string[]
  : S extends { readonly oneOf: readonly (infer U)[] }
    ? U
    : S extends { readonly type: 'int' | 'number' }
      ? number
      : S extends { readonly type: 'boolean' }
        ? boolean
        : S extends { readonly type: 'numbers' }
          ? number[]
          : string;

/** The configuration a table declares: every key with its value type (optional ones may be undefined). */
export type SettingsOf<T extends readonly Setting[]> = {
  -readonly [S in T[number] as S extends { readonly optional: string } ? never : S['key']]: ValueOf<S>;
} & { -readonly [S in T[number] as S extends { readonly optional: string } ? S['key'] : never]?: ValueOf<S> };

/** The keys of a table that have a default. */
type DefaultedKeys<T extends readonly Setting[]> = Extract<T[number], { readonly default: unknown }>['key'];

/** The defaults a table declares. */
export type DefaultsOf<T extends readonly Setting[]> = Pick<SettingsOf<T>, DefaultedKeys<T> & keyof SettingsOf<T>>;

/** The kebab-case flag of a setting, or undefined for a YAML-only one. */
export function flagName(setting: Setting): string | undefined {
  if (setting.flag === null) return undefined;
  return setting.flag ?? setting.key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** The defaults of a table, as an object. */
export function defaultsOf<const T extends readonly Setting[]>(table: T): DefaultsOf<T> {
  const out: Record<string, unknown> = {};
  for (const setting of table) if (setting.default !== undefined) out[setting.key] = setting.default;
  return out as DefaultsOf<T>;
}

/** What a value of the setting is, in words: "a positive integer". */
export function valueWords(setting: Pick<Setting, 'type' | 'range' | 'oneOf'>): string {
  if (setting.type === 'strings') {
    const item = setting.oneOf === undefined ? 'text' : setting.oneOf.map((v) => `'${v}'`).join(', ');
    return `a list of ${item}`;
  }
  if (setting.oneOf !== undefined) return `one of ${setting.oneOf.map((v) => `'${v}'`).join(', ')}`;
  if (setting.type === 'boolean') return 'true or false';
  if (setting.type === 'string') return 'text';
  if (setting.type === 'numbers') return 'a list of numbers, such as 0.1,1';
  const kind = setting.type === 'int' ? 'integer' : 'number';
  if (setting.range === undefined) return setting.type === 'int' ? 'an integer' : 'a number';
  return `a ${setting.range} ${kind}`;
}

/** The problem with `value` as the setting's value, in words, or undefined when it is fine. */
export function problemWith(setting: Setting, value: unknown): string | undefined {
  const shown = typeof value === 'string' ? `'${value}'` : (JSON.stringify(value) ?? String(value));
  const expected = `must be ${valueWords(setting)}, got ${shown}`;
  switch (setting.type) {
    case 'boolean':
      if (typeof value !== 'boolean') return expected;
      break;
    case 'numbers':
      if (!Array.isArray(value) || value.length === 0 || value.some((n) => typeof n !== 'number')) return expected;
      break;
    case 'strings':
      if (!Array.isArray(value) || value.length === 0 || value.some((v) => typeof v !== 'string')) return expected;
      if (setting.oneOf !== undefined && value.some((v) => !setting.oneOf!.includes(v as string))) return expected;
      break;
    case 'string':
      if (typeof value !== 'string') return expected;
      if (setting.oneOf !== undefined && !setting.oneOf.includes(value)) return expected;
      break;
    default: {
      if (typeof value !== 'number' || !Number.isFinite(value)) return expected;
      if (setting.type === 'int' && !Number.isInteger(value)) return expected;
      if (setting.range === 'positive' && !(value > 0)) return expected;
      if (setting.range === 'non-negative' && !(value >= 0)) return expected;
      if (setting.max !== undefined && value > setting.max) {
        return `is ${value}, above the limit of ${setting.max}${setting.maxReason === undefined ? '' : ` (${setting.maxReason})`}`;
      }
    }
  }
  return setting.check?.(value as never);
}

/** Comma-separated numbers as a list (a part that is no number becomes NaN, for the check to name). */
function numberList(text: string): number[] {
  return text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')
    .map((part) => (part === '' ? NaN : Number(part)));
}

/** Comma-separated text as a list. */
function textList(text: string): string[] {
  return text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '');
}

/**
 * Refuses keys of `partial` that `keys` does not hold, naming the first one
 * (after `where` and the block's `prefix`, as in "study.yaml: training.lr").
 */
export function refuseUnknownKeys(
  keys: readonly string[],
  partial: Readonly<Record<string, unknown>>,
  where = '',
  prefix = '',
): void {
  for (const key of Object.keys(partial)) {
    if (!keys.includes(key) && partial[key] !== undefined) {
      throw new RangeError(`${where}unknown key '${prefix}${key}'; known keys: ${keys.join(', ')}`);
    }
  }
}

/**
 * Fills a table's defaults into `partial` and checks every value, throwing a
 * RangeError that names the key (after `where`, e.g. a file, and `prefix`, the
 * block inside it, as in "training.") and what was expected. Keys the table
 * does not declare are refused.
 */
export function resolve<const T extends readonly Setting[]>(
  table: T,
  partial: Readonly<Record<string, unknown>>,
  where = '',
  prefix = '',
): SettingsOf<T> {
  refuseUnknownKeys(
    table.map((s) => s.key),
    partial,
    where,
    prefix,
  );
  const out: Record<string, unknown> = {};
  for (const setting of table) {
    let value = partial[setting.key] ?? setting.default;
    if (setting.type === 'numbers' && typeof value === 'string') value = numberList(value);
    if (setting.type === 'strings' && typeof value === 'string') value = textList(value);
    if (value === undefined) {
      if (setting.optional !== undefined) continue;
      throw new RangeError(`${where}${setting.required ?? `${prefix}${setting.key} is required`}`);
    }
    const problem = problemWith(setting, value);
    if (problem !== undefined)
      throw new RangeError(`${where}${prefix}${setting.key}${problem.startsWith(':') ? '' : ' '}${problem}`);
    out[setting.key] = value;
  }
  return out as SettingsOf<T>;
}

/**
 * A setting declared elsewhere, adapted to another entry point: `changes`
 * replace its fields (another default, help, or `flag: null` for a YAML-only
 * block). So an entry point that runs another one's code (a study running
 * downstream cells) reuses that one's declaration instead of repeating it.
 */
export function adapt<const S extends Setting, const C extends Partial<Setting>>(
  setting: S,
  changes: C,
): Omit<S, keyof C> & C {
  return { ...setting, ...changes } as Omit<S, keyof C> & C;
}

/** A setting made optional: unset means what `meaning` says (its default, if any, is dropped). */
export function optionalAs<const S extends Setting>(
  setting: S,
  meaning: string,
  changes: Partial<Setting> = {},
): Omit<S, 'default' | 'defaultHelp' | 'required'> & { readonly optional: string } {
  const { default: _default, defaultHelp: _help, required: _required, ...rest } = setting;
  return { ...rest, ...changes, optional: meaning } as Omit<S, 'default' | 'defaultHelp' | 'required'> & {
    readonly optional: string;
  };
}

/** The settings of `table` with the given keys, in the order of `keys`. */
export function pick<const T extends readonly Setting[], const K extends T[number]['key']>(
  table: T,
  keys: readonly K[],
): Extract<T[number], { readonly key: K }>[] {
  return keys.map((key) => {
    const setting = table.find((s) => s.key === key);
    if (setting === undefined) throw new Error(`no setting '${key}'`);
    return setting as Extract<T[number], { readonly key: K }>;
  });
}

/** A command-line flag of a setting (the shape `cli/options.ts` parses). */
export interface SettingFlag {
  name: string;
  key: string;
  type: Exclude<SettingType, 'numbers' | 'strings'>;
  help: string;
  range?: SettingRange;
  max?: number;
  maxReason?: string;
}

/** The help line of a setting: its help and, unless required, its default. */
export function helpLine(setting: Setting): string {
  if (setting.optional !== undefined) return `${setting.help} (default ${setting.optional})`;
  if (setting.default === undefined || setting.type === 'boolean') return setting.help;
  const value =
    setting.defaultHelp ??
    (setting.default === ''
      ? undefined
      : Array.isArray(setting.default)
        ? setting.default.join(',')
        : String(setting.default));
  return value === undefined ? setting.help : `${setting.help} (default ${value})`;
}

/** The command-line flags of a table (YAML-only settings have none). */
export function flagsOf(table: readonly Setting[]): SettingFlag[] {
  const flags: SettingFlag[] = [];
  for (const setting of table) {
    const name = flagName(setting);
    if (name === undefined) continue;
    flags.push({
      name,
      key: setting.key,
      // A list is written as comma-separated text on the command line.
      type: setting.type === 'numbers' || setting.type === 'strings' ? 'string' : setting.type,
      help: helpLine(setting),
      ...(setting.range === undefined ? {} : { range: setting.range }),
      ...(setting.max === undefined ? {} : { max: setting.max }),
      ...(setting.maxReason === undefined ? {} : { maxReason: setting.maxReason }),
    });
  }
  return flags;
}

/** The keys a resumed run may change. */
export function resumableKeys<const T extends readonly Setting[]>(table: T): T[number]['key'][] {
  return table.filter((s) => s.resumable === true).map((s) => s.key);
}

/**
 * The problem a parser finds in a value, for a setting's `check`: its error
 * message without the leading key (the resolver puts the key in front).
 */
export function parsingProblem(key: string, parse: () => unknown): string | undefined {
  try {
    parse();
    return undefined;
  } catch (error) {
    return (error as Error).message.replace(new RegExp(`^${key} `), '');
  }
}
