/**
 * The `moco-cxr` command line as a test runs it: from the TypeScript sources,
 * in a child process, to its end. A run that hangs is killed (and so fails its
 * test) instead of holding the suite.
 */
import { spawnSync } from 'node:child_process';

/** node's arguments that start the CLI from the sources. */
export const CLI_ARGS = ['--import', 'tsx', 'src/cli/run.ts'];

/** What a finished CLI run printed and returned. */
export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `moco-cxr ...args`; killed after `timeoutMs` (default 10 minutes: a loaded machine is slow, a hang is not). */
export function runCli(args: readonly string[], options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): CliRun {
  const result = spawnSync(process.execPath, [...CLI_ARGS, ...args], {
    encoding: 'utf8',
    timeout: options.timeoutMs ?? 600_000,
    killSignal: 'SIGKILL',
    ...(options.env === undefined ? {} : { env: options.env }),
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}
