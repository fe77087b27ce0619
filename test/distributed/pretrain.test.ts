/**
 * Data-parallel pretraining: two ranks with a global batch of 16 (8 each)
 * compute what one process computes with the batch of 16 split into two
 * BatchNorm groups with shuffled keys — the same losses, weights, running
 * statistics and queue, within float32 rounding — and rank 0 alone writes the
 * checkpoint, in the one-process format, which a one-process run resumes. A
 * rank that crashes stops the other, which names it.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';

import { MoCo } from '../../src/moco/model.js';
import { pretrain, type PretrainConfig } from '../../src/moco/pretrain.js';
import * as torch from '../../src/torch/index.js';
import { tempDir } from '../helpers/oracle.js';
import { chainLength, EPS32, tolerance } from '../helpers/tolerance.js';
import { freePort, lastJson, rankEnv, runRanks, tsNode } from './fixtures/ranks.js';

const rankScript = fileURLToPath(new URL('./fixtures/pretrain-rank.ts', import.meta.url));

describe('data-parallel pretraining', () => {
  const dir = tempDir();
  after(() => dir.cleanup());
  const settings = (out: string): Partial<PretrainConfig> & { data: string } => ({
    data: 'phantom:64,5,64',
    imageSize: 32,
    cacheSize: 64,
    batchSize: 16,
    queue: 32,
    epochs: 1,
    maxSteps: 2,
    logEvery: 1,
    // SGD: its update is linear in the gradient, so rounding in the gradients
    // stays rounding in the weights (Adam's first steps divide tiny gradients
    // by their own size, and amplify their last bits).
    optimizer: 'sgd',
    lr: 0.01,
    seed: 3,
    cacheDir: join(dir.path, 'cache'),
    out: join(dir.path, out),
  });
  const quiet = { log: () => undefined, plainProgress: true };

  function lossesOf(run: string): number[] {
    return readFileSync(join(dir.path, run, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as { loss: number }).loss);
  }

  test('two ranks × 8 equal one process × 16 with split-batch BN over 2 groups', { timeout: 160_000 }, async () => {
    // The one-process run goes alongside the two ranks, with as many threads as each (one).
    const port = await freePort();
    const config = JSON.stringify(settings('two'));
    const single = JSON.stringify({ ...settings('one'), shuffleBn: 'split:2' });
    const [ranks, [one]] = await Promise.all([
      runRanks(
        [tsNode(rankScript, config), tsNode(rankScript, config)],
        [rankEnv(0, 2, port), rankEnv(1, 2, port)],
        150_000,
      ),
      runRanks([tsNode(rankScript, single)], [{ ...process.env, MOCO_CXR_THREADS: '1' }], 150_000),
    ]);
    assert.equal(one!.code, 0, one!.stderr);
    for (const r of ranks) assert.equal(r.code, 0, `rank ${r.rank}:\n${r.stderr}`);
    // Every rank saw the same (reduced) losses; rank 0 wrote them.
    assert.deepEqual(lastJson(ranks[0]!).losses, lastJson(ranks[1]!).losses);
    const a = lossesOf('one');
    const b = lossesOf('two');
    assert.equal(b.length, 2);
    const probe = new MoCo({ arch: 'resnet18', dim: 128, queueSize: 32 });
    const chain = chainLength(probe.encoderQ.parameters().map((p) => p.shape));
    for (let i = 0; i < 2; i++) {
      const tol = tolerance(a[i]!, { ops: chain });
      assert.ok(Math.abs(a[i]! - b[i]!) <= tol, `step ${i + 1}: loss ${a[i]} vs ${b[i]} (tolerance ${tol})`);
    }
    // The checkpoint: rank 0's, with the one-process run's keys and shapes.
    const x = torch.load(join(dir.path, 'one', 'last.pt')) as { state_dict: Record<string, torch.Tensor> };
    const y = torch.load(join(dir.path, 'two', 'last.pt')) as { state_dict: Record<string, torch.Tensor> };
    assert.deepEqual(Object.keys(y.state_dict), Object.keys(x.state_dict));
    // Weights: the runs differ by rounding only, far less than training moved them
    // (a missing gradient average, a different shuffle or a rank's own queue
    // would make the difference as large as the movement). The start is the
    // seeded initialization both runs made.
    torch.manualSeed(3);
    const start = new MoCo({ arch: 'resnet18', dim: 128, queueSize: 32 }).stateDict();
    let moved = 0;
    let apart = 0;
    for (const [key, value] of Object.entries(x.state_dict)) {
      const other = y.state_dict[key]!;
      if (key.endsWith('num_batches_tracked') || key.endsWith('queue_ptr')) {
        assert.equal(other.item(), value.item(), key);
        continue;
      }
      const initial = start[key.slice('module.'.length)]!;
      moved += torch.tidy(() => value.sub(initial).pow(2).sum().item());
      apart += torch.tidy(() => value.sub(other).pow(2).sum().item());
    }
    const ratio = Math.sqrt(apart / moved);
    // Rounding: relative error of the gradients ~ eps32 · sqrt(chain) per step, times a generous 16 · 2 steps.
    const bound = 16 * 2 * EPS32 * Math.sqrt(chain);
    assert.ok(
      ratio <= bound,
      `the runs differ by ${ratio.toExponential(3)} of the movement (bound ${bound.toExponential(3)})`,
    );
    assert.ok(moved > 0);
    torch.dispose([x, y, start]);
    probe.dispose();
  });

  test('a world-size-2 checkpoint resumes in one process', { timeout: 60_000 }, async () => {
    assert.ok(existsSync(join(dir.path, 'two', 'last.pt')), 'the two-rank run left its checkpoint');
    const resumed = await pretrain(
      { ...settings('two'), maxSteps: 3, shuffleBn: 'split:2' },
      { ...quiet, resume: true },
    );
    assert.equal(resumed.status, 'finished');
    assert.equal(resumed.steps, 3);
    assert.equal(lossesOf('two').length, 3);
  });

  test('a rank that crashes mid-run stops the other, which names it', { timeout: 60_000 }, async () => {
    const port = await freePort();
    const config = JSON.stringify({ ...settings('crash'), maxSteps: 0 });
    const env = { MOCO_CXR_TEST_DIE_AT: '1:1', MOCO_CXR_DIST_TIMEOUT_MS: '30000' };
    const ranks = await runRanks(
      [tsNode(rankScript, config), tsNode(rankScript, config)],
      [rankEnv(0, 2, port, env), rankEnv(1, 2, port, env)],
      50_000,
    );
    assert.equal(ranks[1]!.code, 7);
    assert.equal(ranks[0]!.code, 2, ranks[0]!.stderr);
    assert.match(lastJson(ranks[0]!).error as string, /failed on rank 0 of 2: rank 1 stopped answering/);
  });
});
