/**
 * Shared handling of command options: typed flags read from the command line
 * or a YAML config file, with errors that name the flag (or the file and key).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { parse as parseYaml } from 'yaml';

/** How a flag's text becomes a value. */
export type FlagType = 'string' | 'int' | 'number' | 'boolean';

/** The values a numeric flag takes: above 0, or 0 and above. */
export type FlagRange = 'positive' | 'non-negative';

/**
 * A flag: its kebab-case name on the command line, the config key it sets, a
 * line of help, and for numbers the range and largest value it accepts (so
 * that the error names the flag; the configuration checks them again).
 */
export interface Flag {
  name: string;
  key: string;
  type: FlagType;
  help: string;
  range?: FlagRange;
  max?: number;
  /** Why `max` is the limit, said when a value passes it. */
  maxReason?: string;
}

/** What a value of `type` is, in words: "an integer". */
function valueWords(type: FlagType, range?: FlagRange): string {
  const kind = type === 'int' ? 'integer' : type === 'number' ? 'number' : 'text';
  if (range === undefined) return type === 'int' ? 'an integer' : type === 'number' ? 'a number' : 'text';
  return `a ${range} ${kind}`;
}

/** A value as the user wrote it: command-line text bare, config values as YAML read them. */
function shown(raw: unknown): string {
  return typeof raw === 'string' && /^\S+$/.test(raw) ? raw : JSON.stringify(raw);
}

function checkRange(flag: Flag, value: number, where: string, raw: unknown): void {
  const low = flag.range === 'positive' ? !(value > 0) : flag.range === 'non-negative' ? !(value >= 0) : false;
  if (low) throw new RangeError(`${where}: expected ${valueWords(flag.type, flag.range)}, got ${shown(raw)}`);
  if (flag.max !== undefined && value > flag.max) {
    throw new RangeError(
      `${where}: ${shown(raw)} is above the limit of ${flag.max}` +
        (flag.maxReason === undefined ? '' : ` (${flag.maxReason})`),
    );
  }
}

function convert(flag: Flag, raw: unknown, where: string): unknown {
  if (flag.type === 'boolean') {
    if (typeof raw === 'boolean') return raw;
    throw new TypeError(`${where}: expected true or false, got ${shown(raw)}`);
  }
  if (flag.type === 'string') {
    if (typeof raw === 'string') return raw;
    if (typeof raw === 'number') return String(raw);
    throw new TypeError(`${where}: expected text, got ${shown(raw)}`);
  }
  const value = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
  if (!Number.isFinite(value)) {
    throw new TypeError(`${where}: expected ${valueWords(flag.type, flag.range)}, got ${shown(raw)}`);
  }
  if (flag.type === 'int' && !Number.isInteger(value)) {
    throw new TypeError(`${where}: expected ${valueWords('int', flag.range)}, got ${shown(raw)}`);
  }
  checkRange(flag, value, where, raw);
  return value;
}

/** Reads a YAML config file whose keys are flag names (kebab-case) or config keys (camelCase). */
export function readConfigFile(path: string, flags: readonly Flag[]): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`config ${path}: cannot read it (${(error as Error).message})`);
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (error) {
    throw new Error(`config ${path}: not valid YAML: ${(error as Error).message}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed))
    throw new Error(`config ${path}: expected a mapping of keys to values`);
  const out: Record<string, unknown> = {};
  for (const [key, raw] of Object.entries(parsed as Record<string, unknown>)) {
    const flag = flags.find((f) => f.name === key || f.key === key);
    if (flag === undefined) {
      throw new Error(`config ${path}: unknown key '${key}'; known keys: ${flags.map((f) => f.name).join(', ')}`);
    }
    out[flag.key] = convert(flag, raw, `config ${path}: key '${key}'`);
  }
  return out;
}

/**
 * Parses `argv` against `flags` (plus `--config FILE` and `--help`): values
 * from the config file first, then the command line over them.
 */
export function parseFlags(
  argv: string[],
  flags: readonly Flag[],
): { values: Record<string, unknown>; help: boolean; positionals: string[] } {
  const options: Record<string, CommandLineOption> = {
    config: { type: 'string', value: 'a YAML file' },
    help: { type: 'boolean' },
  };
  for (const flag of flags) {
    options[flag.name] =
      flag.type === 'boolean' ? { type: 'boolean' } : { type: 'string', value: valueWords(flag.type, flag.range) };
  }
  const { values, positionals } = parseCommandLine(argv, options);
  const config = typeof values.config === 'string' ? readConfigFile(values.config, flags) : {};
  for (const flag of flags) {
    const raw = values[flag.name];
    if (raw !== undefined) config[flag.key] = convert(flag, raw, `--${flag.name}`);
  }
  return { values: config, help: values.help === true, positionals };
}

/** An option of {@link parseCommandLine}: node's option, and what its value is in words ("an integer"). */
export type CommandLineOption = {
  type: 'string' | 'boolean';
  multiple?: boolean;
  short?: string;
  default?: string | boolean;
  value?: string;
};

type NodeOptions<T> = { [K in keyof T]: Omit<T[K], 'value'> };

/** What {@link parseCommandLine} returns: the values by option name (typed by the options) and the positionals. */
export interface ParsedCommandLine<T extends Record<string, CommandLineOption>> {
  values: {
    [K in keyof T]?: T[K]['type'] extends 'string'
      ? T[K]['multiple'] extends true
        ? string[]
        : string
      : T[K]['type'] extends 'boolean'
        ? boolean
        : string | boolean;
  };
  positionals: string[];
}

/** A negative number, as the value of a flag: `-1`, `-0.5`, `-1e-3`. */
const NEGATIVE_NUMBER = /^-(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?$/i;

/**
 * node's `parseArgs` (strict, positionals allowed) with the errors a user
 * should see: a flag that takes a value followed by a negative number takes
 * that number (`--lr -1`, to be judged by the flag's own check), and a flag
 * left without its value says so and what the value is ("--queue needs a
 * value (an integer)"), where `parseArgs` calls both "ambiguous".
 */
export function parseCommandLine<const T extends Record<string, CommandLineOption>>(
  argv: readonly string[],
  options: T,
) {
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      args.push(...argv.slice(i));
      break;
    }
    const name = arg.startsWith('--') && !arg.includes('=') ? arg.slice(2) : undefined;
    const option = name === undefined ? undefined : options[name];
    if (option?.type !== 'string') {
      args.push(arg);
      continue;
    }
    const next = argv[i + 1];
    const what = option.value === undefined ? '' : ` (${option.value})`;
    if (next === undefined || next === '--' || (next.startsWith('-') && !NEGATIVE_NUMBER.test(next))) {
      const hint =
        next !== undefined && next.startsWith('-') && !isOption(next, options)
          ? `; for a value starting with '-' write --${name}=${next}`
          : '';
      throw new TypeError(`--${name} needs a value${what}${hint}`);
    }
    args.push(`--${name}=${next}`);
    i++;
  }
  const nodeOptions = Object.fromEntries(
    Object.entries(options).map(([name, { value: _value, ...option }]) => [name, option]),
  ) as NodeOptions<T>;
  try {
    const { values, positionals } = parseArgs({ args, options: nodeOptions, allowPositionals: true, strict: true });
    return { values: values as ParsedCommandLine<T>['values'], positionals };
  } catch (error) {
    throw new TypeError((error as Error).message.replace(/\. To specify.*$/s, ''));
  }
}

function isOption(arg: string, options: Readonly<Record<string, CommandLineOption>>): boolean {
  const name = arg.replace(/^--?/, '').replace(/=.*$/s, '');
  return Object.hasOwn(options, name) || Object.values(options).some((option) => option.short === name);
}

/** The help text of a command. */
export function helpText(usage: string, flags: readonly Flag[]): string {
  const width = Math.max(...flags.map((f) => f.name.length)) + 4;
  const lines = flags.map((f) => `  --${f.name.padEnd(width)}${f.help}`);
  return `${usage}\n\noptions:\n${lines.join('\n')}\n  --${'config'.padEnd(width)}YAML file with any of these keys (the command line wins)\n`;
}

/**
 * Runs `work` with an AbortSignal that the first Ctrl-C or SIGTERM fires (so
 * the work can save and stop); a second one ends the process at once.
 *
 * The second signal is raised again with the system's default action rather
 * than `process.exit`: Node's exit first waits for the worker threads, and one
 * inside a long native call (an image decode) would hold it, so the process
 * would hang and ignore further signals. Dying of the signal keeps every file
 * as consistent as a kill: the cache and checkpoints are written to survive that.
 */
export async function withInterrupt<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (controller.signal.aborted) {
      // Without listeners the signal's default action is back: the kill below ends the process.
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.kill(process.pid, signal);
      return;
    }
    const name = signal === 'SIGINT' ? 'interrupt' : signal;
    process.stderr.write(`\n${name}: finishing the current step and saving (Ctrl-C again to quit at once)\n`);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await work(controller.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
