/**
 * Process groups over c10d with two ranks on loopback: the collectives give
 * the values worked out by hand, the event loop turns while they run, a
 * PyTorch rank (`init_process_group("gloo")`) and ours share one group, and a
 * rank that dies makes the other fail quickly with its rank named.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

import { ProcessGroup, readLaunchEnv } from '../../src/distributed/index.js';
import * as torch from '../../src/torch/index.js';
import { freePort, lastJson, rankEnv, runRanks, tsNode } from './fixtures/ranks.js';

const here = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
const collectives = here('collectives.ts');
const pythonRank = here('python_rank.py');
const PYTHON = '/usr/bin/python3';
const hasTorchPython = spawnSync(PYTHON, ['-c', 'import torch.distributed as d; assert d.is_available()']).status === 0;

/** What every rank of a 2-rank group must hold after the fixture's collectives (worked out by hand). */
const EXPECTED = {
  size: 2,
  sum: [1 + 2, 10 + 20, 0 - 1],
  avg: [(1 + 2) / 2, (0 + 2) / 2],
  max: [1, 5],
  cast: [7, 8, 9],
  castInt: [6, 1], // rank 1's [1·5 + 1, 1]
  gathered: [
    [0.5, 0.5],
    [2.5, 2.5],
  ],
  // Each rank's [[r, r+100], [r+200, r+300]]ᵀ, flattened in row order.
  gatheredWide: [
    [0, 200, 100, 300],
    [1, 201, 101, 301],
  ],
};

function checkRank(result: Record<string, unknown>, rank: number): void {
  const { ticks: _ticks, ...values } = result;
  assert.deepEqual(values, { rank, ...EXPECTED }, `rank ${rank}`);
}

test('the launch environment is read and checked, naming the variable at fault', () => {
  const env = readLaunchEnv({ RANK: '1', WORLD_SIZE: '2', MASTER_ADDR: 'h', MASTER_PORT: '123' });
  assert.equal(env.rank, 1);
  assert.equal(env.localRank, 1);
  assert.equal(env.agentStore, false);
  assert.throws(() => readLaunchEnv({ WORLD_SIZE: '2', MASTER_ADDR: 'h', MASTER_PORT: '1' }), /RANK is not set/);
  assert.throws(() => readLaunchEnv({ RANK: '2', WORLD_SIZE: '2', MASTER_ADDR: 'h', MASTER_PORT: '1' }), /RANK=2/);
  assert.throws(() => readLaunchEnv({ RANK: '0', WORLD_SIZE: 'two' }), /WORLD_SIZE='two'/);
  assert.throws(() => readLaunchEnv({ RANK: '0', WORLD_SIZE: '2', MASTER_PORT: '1' }), /MASTER_ADDR/);
  const elastic = readLaunchEnv({
    RANK: '0',
    WORLD_SIZE: '2',
    MASTER_ADDR: 'h',
    MASTER_PORT: '1',
    TORCHELASTIC_USE_AGENT_STORE: 'True',
    TORCHELASTIC_RESTART_COUNT: '3',
  });
  assert.equal(elastic.agentStore, true);
  assert.equal(elastic.restartCount, 3);
});

test(
  'a group of one reduces to itself; bad ranks and a dead store are errors, not hangs',
  { timeout: 30_000 },
  async () => {
    assert.ok(ProcessGroup.available, 'the addon is built with c10d');
    await assert.rejects(ProcessGroup.init({ rank: 2, worldSize: 2 }), /rank must be in \[0, 1\]/);
    // Debian's libtorch has no NCCL: the build says so and how to get it.
    await assert.rejects(
      ProcessGroup.init({ rank: 0, worldSize: 1, backend: 'nccl' }),
      /NCCL backend is not in this build.*LIBTORCH=\/path MOCO_CXR_NCCL=1/,
    );
    const port = await freePort();
    // Rank 1 with no rank 0 serving the store: it gives up at the timeout and says where it looked.
    await assert.rejects(
      ProcessGroup.init({ rank: 1, worldSize: 2, port, timeoutMs: 1500, deviceHost: '127.0.0.1' }),
      new RegExp(`rank 1 of 2 could not join the group: could not reach the rendezvous store at 127.0.0.1:${port}`),
    );
  },
);

test(
  'a file store joins two ranks (here in one process: each waits on its own worker thread)',
  { timeout: 30_000 },
  async () => {
    const file = join(tmpdir(), `moco-cxr-filestore-${process.pid}`);
    rmSync(file, { force: true });
    try {
      const groups = await Promise.all(
        [0, 1].map((rank) =>
          ProcessGroup.init({ rank, worldSize: 2, file, deviceHost: '127.0.0.1', timeoutMs: 20_000 }),
        ),
      );
      const values = [torch.tensor([1, 2], [2]), torch.tensor([10, 20], [2])];
      await Promise.all(groups.map((g, r) => g.allreduce(values[r]!, 'avg')));
      for (const v of values) assert.deepEqual(Array.from(v.data() as Float32Array), [5.5, 11]);
      await Promise.all(groups.map((g) => g.barrier()));
      for (const g of groups) g.destroy();
      torch.dispose(values);
    } finally {
      rmSync(file, { force: true });
    }
  },
);

test(
  'two ranks agree on allreduce, broadcast, allgather and barrier, with the event loop turning',
  { timeout: 60_000 },
  async () => {
    const port = await freePort();
    const results = await runRanks(
      [tsNode(collectives), tsNode(collectives)],
      [rankEnv(0, 2, port), rankEnv(1, 2, port)],
      50_000,
    );
    for (const result of results) {
      assert.equal(result.code, 0, `rank ${result.rank} failed:\n${result.stderr}`);
      const out = lastJson(result);
      checkRank(out, result.rank);
      if (result.rank === 0)
        assert.ok((out.ticks as number) > 10, `the event loop turned ${out.ticks as number} times`);
    }
  },
);

test(
  'a PyTorch rank and a moco-cxr rank share one group',
  { timeout: 60_000, skip: !hasTorchPython && 'no torch in /usr/bin/python3' },
  async () => {
    // Python serves the store as rank 0, ours joins as rank 1; then the other way round.
    for (const pythonIs of [0, 1]) {
      const port = await freePort();
      const commands = [0, 1].map((rank) => (rank === pythonIs ? [PYTHON, pythonRank] : tsNode(collectives)));
      const results = await runRanks(commands, [rankEnv(0, 2, port), rankEnv(1, 2, port)], 40_000);
      for (const result of results) {
        assert.equal(result.code, 0, `rank ${result.rank} (python is ${pythonIs}) failed:\n${result.stderr}`);
        checkRank(lastJson(result), result.rank);
      }
    }
  },
);

test('a rank that dies makes the other fail within seconds, naming it', { timeout: 60_000 }, async () => {
  const port = await freePort();
  const results = await runRanks(
    [tsNode(collectives, 'die-after-join'), tsNode(collectives, 'die-after-join')],
    [
      rankEnv(0, 2, port, { MOCO_CXR_DIST_TIMEOUT_MS: '20000' }),
      rankEnv(1, 2, port, { MOCO_CXR_DIST_TIMEOUT_MS: '20000' }),
    ],
    50_000,
  );
  assert.equal(results[1]!.code, 3);
  const survivor = results[0]!;
  assert.equal(survivor.code, 1, survivor.stderr);
  const out = lastJson(survivor);
  assert.match(out.error as string, /allreduce failed on rank 0 of 2: rank 1 stopped answering/);
  assert.ok((out.seconds as number) < 15, `took ${out.seconds as number} s`);
});
