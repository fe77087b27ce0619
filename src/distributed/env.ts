/**
 * The launch environment torchrun sets for each rank, read and checked in one
 * place: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
 * MASTER_PORT, and torchelastic's agent store (TORCHELASTIC_USE_AGENT_STORE,
 * TORCHELASTIC_RESTART_COUNT). GLOO_SOCKET_IFNAME picks the network interface.
 */

/** Where a rank stands and how it meets the others. */
export interface LaunchEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
  /** torchelastic's agent serves the store: every rank is a client under `/worker/attempt_<n>`. */
  agentStore: boolean;
  restartCount: number;
  /** GLOO_SOCKET_IFNAME, or undefined for the host name's address. */
  socketInterface: string | undefined;
}

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number | undefined, min: number): number {
  const text = env[name];
  if (text === undefined || text === '') {
    if (fallback === undefined) throw new Error(`distributed: environment variable ${name} is not set`);
    return fallback;
  }
  if (!/^\d+$/.test(text.trim()) || Number(text) < min) {
    throw new Error(`distributed: environment variable ${name}='${text}' is not an integer >= ${min}`);
  }
  return Number(text);
}

/** True when the environment asks for more than one process (WORLD_SIZE > 1). */
export function isDistributedEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.WORLD_SIZE !== undefined && env.WORLD_SIZE !== '' && env.WORLD_SIZE !== '1';
}

/** Reads the launch environment; a missing or malformed variable is an error naming it. */
export function readLaunchEnv(env: NodeJS.ProcessEnv = process.env): LaunchEnv {
  const worldSize = integer(env, 'WORLD_SIZE', 1, 1);
  const rank = integer(env, 'RANK', worldSize === 1 ? 0 : undefined, 0);
  if (rank >= worldSize) throw new Error(`distributed: RANK=${rank} is not below WORLD_SIZE=${worldSize}`);
  const localRank = integer(env, 'LOCAL_RANK', rank, 0);
  const localWorldSize = integer(env, 'LOCAL_WORLD_SIZE', worldSize, 1);
  const masterPort = integer(env, 'MASTER_PORT', worldSize === 1 ? 29500 : undefined, 1);
  if (masterPort > 65535) throw new Error(`distributed: MASTER_PORT=${masterPort} is not a port (1-65535)`);
  const masterAddr = env.MASTER_ADDR ?? (worldSize === 1 ? '127.0.0.1' : undefined);
  if (masterAddr === undefined || masterAddr === '') {
    throw new Error('distributed: environment variable MASTER_ADDR is not set');
  }
  const agentStore = env.TORCHELASTIC_USE_AGENT_STORE === 'True';
  const restartCount = integer(env, 'TORCHELASTIC_RESTART_COUNT', 0, 0);
  const socketInterface = env.GLOO_SOCKET_IFNAME === '' ? undefined : env.GLOO_SOCKET_IFNAME;
  return {
    rank,
    worldSize,
    localRank,
    localWorldSize,
    masterAddr,
    masterPort,
    agentStore,
    restartCount,
    socketInterface,
  };
}
