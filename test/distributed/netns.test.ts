/**
 * Two machines, as two network namespaces joined by a veth pair (10.77.x.1
 * and 10.77.x.2): a rank in each joins the group through the store on the
 * first one's address, and Gloo connects over the named interface
 * (GLOO_SOCKET_IFNAME) — the multi-node path, with no loopback between them.
 * Needs root (CAP_NET_ADMIN) and `ip`; skipped otherwise.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { lastJson, rankEnv, runRanks, tsNode } from './fixtures/ranks.js';

const collectives = fileURLToPath(new URL('./fixtures/collectives.ts', import.meta.url));
const tag = process.pid % 200;
const names = [`mococxr${process.pid}a`, `mococxr${process.pid}b`];
const veth = [`mcx${tag}a`, `mcx${tag}b`];
const address = [`10.77.${tag}.1`, `10.77.${tag}.2`];

function ip(...args: string[]): boolean {
  return spawnSync('ip', args, { stdio: 'ignore' }).status === 0;
}

const canNetns = process.getuid?.() === 0 && ip('netns', 'add', names[0]!) && ip('netns', 'del', names[0]!);

describe('two hosts joined by a veth pair', { skip: !canNetns && 'needs root and ip netns' }, () => {
  before(() => {
    for (const ns of names) assert.ok(ip('netns', 'add', ns), `ip netns add ${ns}`);
    assert.ok(
      ip('link', 'add', veth[0]!, 'netns', names[0]!, 'type', 'veth', 'peer', 'name', veth[1]!, 'netns', names[1]!),
    );
    for (let i = 0; i < 2; i++) {
      assert.ok(ip('-n', names[i]!, 'addr', 'add', `${address[i]}/24`, 'dev', veth[i]!));
      assert.ok(ip('-n', names[i]!, 'link', 'set', veth[i]!, 'up'));
      assert.ok(ip('-n', names[i]!, 'link', 'set', 'lo', 'up'));
    }
  });
  after(() => {
    for (const ns of names) ip('netns', 'del', ns);
  });

  test('a rank on each host agrees on the collectives', { timeout: 60_000 }, async () => {
    const port = 29400 + tag;
    const results = await runRanks(
      [0, 1].map((rank) => ['ip', 'netns', 'exec', names[rank]!, ...tsNode(collectives)]),
      [0, 1].map((rank) =>
        rankEnv(rank, 2, port, { MASTER_ADDR: address[0], GLOO_SOCKET_IFNAME: veth[rank], LOCAL_RANK: '0' }),
      ),
      50_000,
    );
    for (const result of results) {
      assert.equal(result.code, 0, `rank ${result.rank}:\n${result.stderr}`);
      const out = lastJson(result);
      assert.equal(out.size, 2);
      assert.deepEqual(out.sum, [3, 30, -1]);
      assert.deepEqual(out.gathered, [
        [0.5, 0.5],
        [2.5, 2.5],
      ]);
    }
  });
});
