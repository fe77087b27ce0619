/**
 * The launcher: it gives each process torchrun's environment and stops all
 * when one fails, with that rank's exit code and name; and the same group
 * forms under Debian's torchrun (its agent serves the store, so every rank
 * joins as a client under /worker/attempt_0).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

import { command as launchCommand } from '../../src/cli/launch.js';
import { launch, resolveLaunchConfig, workerEnv } from '../../src/distributed/launch.js';
import { freePort, runRanks, tsNode } from './fixtures/ranks.js';

const collectives = fileURLToPath(new URL('./fixtures/collectives.ts', import.meta.url));
const TORCHRUN = '/usr/bin/torchrun';

test('each process gets torchrun’s variables; bad settings name the flag', async () => {
  const config = resolveLaunchConfig({ nprocPerNode: 2, nnodes: 2, nodeRank: 1, masterAddr: '10.0.0.1', threads: 3 });
  const env = workerEnv(config, 1, {});
  assert.deepEqual(
    [env.RANK, env.LOCAL_RANK, env.WORLD_SIZE, env.LOCAL_WORLD_SIZE, env.GROUP_RANK, env.MASTER_ADDR, env.MASTER_PORT],
    ['3', '1', '4', '2', '1', '10.0.0.1', '29500'],
  );
  assert.equal(env.OMP_NUM_THREADS, '3');
  assert.throws(() => resolveLaunchConfig({ nnodes: 2, nodeRank: 2 }), /nodeRank \(2\) must be below nnodes \(2\)/);
  assert.equal(await launchCommand.run(['--nproc-per-node', '2']), 2);
});

test('a rank that fails stops the launch with its code, naming it', { timeout: 60_000 }, async () => {
  const port = await freePort();
  const lines: string[] = [];
  const config = resolveLaunchConfig({ nprocPerNode: 2, masterPort: port, threads: 1 });
  process.env.GLOO_SOCKET_IFNAME = 'lo';
  const result = await launch(config, tsNode(collectives, 'die-after-join'), { log: (l) => lines.push(l) });
  assert.equal(result.code, 3);
  assert.equal(result.failed?.rank, 1);
  assert.match(result.message, /rank 1 exited with code 3/);
  assert.ok(lines.some((l) => /rank 1 \(pid \d+\) exited with code 3; stopping the other processes/.test(l)));
});

test(
  'the group forms under torchrun --no_python',
  { timeout: 90_000, skip: !existsSync(TORCHRUN) && 'no torchrun' },
  async () => {
    const port = await freePort();
    // Debian's torchrun (PyTorch 1.13) spells its flags with underscores; on Python 3.11 it needs --redirects and --tee.
    const args = [
      '--no_python',
      '--nproc_per_node',
      '2',
      '--redirects',
      '1',
      '--tee',
      '1',
      '--master_port',
      String(port),
    ];
    const [run] = await runRanks(
      [[TORCHRUN, ...args, ...tsNode(collectives)]],
      [{ ...process.env, GLOO_SOCKET_IFNAME: 'lo', MOCO_CXR_THREADS: '1' }],
      80_000,
    );
    assert.equal(run!.code, 0, run!.stderr);
    const results = run!.stdout
      .split('\n')
      .map((line) => /^\[default(\d)\]:(\{.*\})$/.exec(line))
      .filter((m) => m !== null)
      .map((m) => JSON.parse(m[2]!) as { rank: number; sum: number[] });
    assert.deepEqual(results.map((r) => r.rank).sort(), [0, 1]);
    for (const r of results) assert.deepEqual(r.sum, [3, 30, -1]);
  },
);
