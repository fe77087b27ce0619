/**
 * A thin launcher, as torchrun without elasticity: starts `nprocPerNode`
 * processes on this machine with the environment torchrun gives its workers
 * (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR,
 * MASTER_PORT, TORCHELASTIC_RESTART_COUNT, OMP_NUM_THREADS), and supervises
 * them: the first that fails stops the others and its exit code is the
 * launcher's; Ctrl-C is passed on to every process (each saves at the same
 * step), a second one kills them. Rank 0 serves the rendezvous store, as under
 * `torch.distributed.launch`; nothing here opens a socket.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';

import { defaultsOf, resolve, type Setting, type SettingsOf } from '../config/settings.js';

/** The launcher's settings (flags of `moco-cxr launch`). */
export const LAUNCH_SETTINGS = [
  { key: 'nprocPerNode', type: 'int', range: 'positive', default: 1, help: 'processes to start on this machine' },
  { key: 'nnodes', type: 'int', range: 'positive', default: 1, help: 'machines taking part' },
  {
    key: 'nodeRank',
    type: 'int',
    range: 'non-negative',
    default: 0,
    help: "this machine's index among them (node 0 runs rank 0, which serves the store)",
  },
  { key: 'masterAddr', type: 'string', default: '127.0.0.1', help: 'address of node 0, reachable from every node' },
  {
    key: 'masterPort',
    type: 'int',
    range: 'positive',
    max: 65535,
    maxReason: 'a TCP port',
    default: 29500,
    help: 'port of the rendezvous store on node 0',
  },
  {
    key: 'threads',
    type: 'int',
    range: 'non-negative',
    default: 0,
    defaultHelp: "0: this machine's cores divided among its processes",
    help: 'engine threads of each process',
  },
] as const satisfies readonly Setting[];

export type LaunchConfig = SettingsOf<typeof LAUNCH_SETTINGS>;
export const LAUNCH_DEFAULTS = defaultsOf(LAUNCH_SETTINGS);

/** Checks a launch configuration; a problem names the setting. */
export function resolveLaunchConfig(partial: Partial<LaunchConfig>): LaunchConfig {
  const config = resolve(LAUNCH_SETTINGS, partial);
  if (config.nodeRank >= config.nnodes) {
    throw new RangeError(`nodeRank (${config.nodeRank}) must be below nnodes (${config.nnodes})`);
  }
  return config;
}

/** The environment of local process `local` (torchrun's names and values). */
export function workerEnv(
  config: LaunchConfig,
  local: number,
  base: NodeJS.ProcessEnv = process.env,
): NodeJS.ProcessEnv {
  const threads =
    config.threads > 0 ? config.threads : Math.max(1, Math.floor(availableParallelism() / config.nprocPerNode));
  const rank = config.nodeRank * config.nprocPerNode + local;
  return {
    ...base,
    RANK: String(rank),
    LOCAL_RANK: String(local),
    GROUP_RANK: String(config.nodeRank),
    ROLE_RANK: String(rank),
    WORLD_SIZE: String(config.nnodes * config.nprocPerNode),
    LOCAL_WORLD_SIZE: String(config.nprocPerNode),
    ROLE_WORLD_SIZE: String(config.nnodes * config.nprocPerNode),
    MASTER_ADDR: config.masterAddr,
    MASTER_PORT: String(config.masterPort),
    TORCHELASTIC_RESTART_COUNT: '0',
    TORCHELASTIC_MAX_RESTARTS: '0',
    OMP_NUM_THREADS: String(threads),
    MOCO_CXR_THREADS: String(threads),
  };
}

/** How a launch ended. */
export interface LaunchResult {
  /** 0 when every process succeeded; else the first failure's exit code (128 + signal number for a signal). */
  code: number;
  /** The first rank that failed, and how. */
  failed?: { rank: number; code: number | null; signal: NodeJS.Signals | null };
  message: string;
}

/** Hooks of {@link launch}. */
export interface LaunchHooks {
  /** Fires on Ctrl-C: passed on to every process. */
  signal?: AbortSignal;
  /** Catch this process's SIGINT and SIGTERM: the first is passed on, a second kills the processes. */
  handleSignals?: boolean;
  log?: (line: string) => void;
  /** Seconds the others get to stop after one failed, before they are killed. */
  graceSeconds?: number;
}

const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = {
  SIGINT: 2,
  SIGKILL: 9,
  SIGTERM: 15,
  SIGABRT: 6,
  SIGSEGV: 11,
};

/**
 * Starts `command` (`[file, ...args]`) once per local rank and waits for all.
 * Rank 0's output goes to this process's; the others' lines are prefixed with
 * their rank.
 */
export async function launch(config: LaunchConfig, command: string[], hooks: LaunchHooks = {}): Promise<LaunchResult> {
  const log = hooks.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const grace = (hooks.graceSeconds ?? 10) * 1000;
  if (command.length === 0) throw new Error('launch: no command to run (give it after --)');
  const children: ChildProcess[] = [];
  let failed: LaunchResult['failed'];
  let interrupted = 0;
  let killTimer: NodeJS.Timeout | undefined;
  const stopAll = (signal: NodeJS.Signals): void => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  const onAbort = (): void => {
    interrupted++;
    if (interrupted === 1) {
      log('launch: interrupt: every process finishes its step and saves (Ctrl-C again to kill them)');
      stopAll('SIGINT');
    } else {
      stopAll('SIGKILL');
    }
  };
  // Each process leads its own process group, so that a terminal's Ctrl-C
  // reaches them once, through here, not twice.
  for (let local = 0; local < config.nprocPerNode; local++) {
    const rank = config.nodeRank * config.nprocPerNode + local;
    const child = spawn(command[0]!, command.slice(1), {
      env: workerEnv(config, local),
      stdio: rank === 0 ? ['inherit', 'inherit', 'inherit'] : ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    if (rank !== 0) {
      for (const [stream, out] of [
        [child.stdout!, process.stdout],
        [child.stderr!, process.stderr],
      ] as const) {
        let rest = '';
        stream.on('data', (chunk: Buffer) => {
          const lines = (rest + chunk.toString()).split(/\r?\n|\r/);
          rest = lines.pop() ?? '';
          for (const line of lines) if (line !== '') out.write(`[rank ${rank}] ${line}\n`);
        });
        stream.on('end', () => rest !== '' && out.write(`[rank ${rank}] ${rest}\n`));
      }
    }
    children.push(child);
  }
  hooks.signal?.addEventListener('abort', onAbort);
  if (hooks.handleSignals === true) {
    process.on('SIGINT', onAbort);
    process.on('SIGTERM', onAbort);
  }
  // Without the launcher, the processes must not live on: end them when it exits.
  const onExit = (): void => stopAll('SIGKILL');
  process.on('exit', onExit);
  try {
    await Promise.all(
      children.map(
        (child, local) =>
          new Promise<void>((resolveExit) => {
            const rank = config.nodeRank * config.nprocPerNode + local;
            child.on('error', (error) => {
              log(`launch: rank ${rank} could not start '${command[0]}': ${error.message}`);
              failed ??= { rank, code: 127, signal: null };
              stopAll('SIGTERM');
              resolveExit();
            });
            child.on('exit', (code, signal) => {
              if ((code !== 0 || signal !== null) && failed === undefined && interrupted === 0) {
                failed = { rank, code, signal };
                log(
                  `launch: rank ${rank} (pid ${child.pid}) ${signal !== null ? `was killed by ${signal}` : `exited with code ${code}`}; stopping the other processes`,
                );
                stopAll('SIGTERM');
                killTimer = setTimeout(() => stopAll('SIGKILL'), grace);
              }
              resolveExit();
            });
          }),
      ),
    );
  } finally {
    if (killTimer !== undefined) clearTimeout(killTimer);
    hooks.signal?.removeEventListener('abort', onAbort);
    process.off('SIGINT', onAbort);
    process.off('SIGTERM', onAbort);
    process.off('exit', onExit);
  }
  if (failed !== undefined) {
    const code = failed.code ?? 128 + (SIGNAL_NUMBERS[failed.signal!] ?? 1);
    const how = failed.signal !== null ? `was killed by ${failed.signal}` : `exited with code ${failed.code}`;
    return { code: code === 0 ? 1 : code, failed, message: `launch: rank ${failed.rank} ${how}` };
  }
  if (interrupted > 0) {
    const codes = children.map((c) => c.exitCode ?? 130);
    return { code: codes.find((c) => c !== 0) ?? 0, message: 'launch: interrupted; every process stopped' };
  }
  return { code: 0, message: `launch: all ${config.nprocPerNode} processes finished` };
}
