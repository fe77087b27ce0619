/**
 * Shared handling of command options: typed flags read from the command line
 * or a YAML config file, with errors that name the flag (or the file and key).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { parse as parseYaml } from 'yaml';

/** How a flag's text becomes a value. */
export type FlagType = 'string' | 'int' | 'number' | 'boolean';

/** A flag: its kebab-case name on the command line, the config key it sets, and a line of help. */
export interface Flag {
  name: string;
  key: string;
  type: FlagType;
  help: string;
}

function convert(flag: Flag, raw: unknown, where: string): unknown {
  if (flag.type === 'boolean') {
    if (typeof raw === 'boolean') return raw;
    throw new TypeError(`${where}: expected true or false, got ${JSON.stringify(raw)}`);
  }
  if (flag.type === 'string') {
    if (typeof raw === 'string') return raw;
    if (typeof raw === 'number') return String(raw);
    throw new TypeError(`${where}: expected text, got ${JSON.stringify(raw)}`);
  }
  const value = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
  if (!Number.isFinite(value)) throw new TypeError(`${where}: expected a number, got ${JSON.stringify(raw)}`);
  if (flag.type === 'int' && !Number.isInteger(value)) {
    throw new TypeError(`${where}: expected an integer, got ${JSON.stringify(raw)}`);
  }
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
  const options: Record<string, { type: 'string' | 'boolean' }> = {
    config: { type: 'string' },
    help: { type: 'boolean' },
  };
  for (const flag of flags) options[flag.name] = { type: flag.type === 'boolean' ? 'boolean' : 'string' };
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new TypeError((error as Error).message.replace(/\. To specify.*$/s, ''));
  }
  const { values, positionals } = parsed;
  const config = typeof values.config === 'string' ? readConfigFile(values.config, flags) : {};
  for (const flag of flags) {
    const raw = values[flag.name];
    if (raw !== undefined) config[flag.key] = convert(flag, raw, `--${flag.name}`);
  }
  return { values: config, help: values.help === true, positionals };
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
