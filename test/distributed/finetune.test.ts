/**
 * Data-parallel fine-tuning: two ranks with a global batch of 16 (8 each, and
 * a short last batch split 2 / 3) compute what one process computes with the
 * batch of 16 — the same losses, test scores and weights within float32
 * rounding — and rank 0 alone writes the run folder. BatchNorm is `frozen`
 * (evaluation mode) here: in training mode each rank normalizes by its own
 * rows, as DDP without SyncBatchNorm does, which is another computation than
 * one process's batch of 16; frozen, every row's forward is independent of
 * its batch, so the split itself is what the comparison checks (the loss
 * divided by the labelled rows of the global batch, the gradient sum, the
 * sharded scoring). A rank that crashes stops the other, which names it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';

import { createBackbone } from '../../src/downstream/setup.js';
import * as torch from '../../src/torch/index.js';
import { tempDir } from '../helpers/oracle.js';
import { assertClose, chainLength, EPS32 } from '../helpers/tolerance.js';
import { freePort, lastJson, rankEnv, runRanks, tsNode } from './fixtures/ranks.js';

const rankScript = fileURLToPath(new URL('./fixtures/finetune-rank.ts', import.meta.url));

describe('data-parallel fine-tuning', () => {
  const dir = tempDir();
  after(() => dir.cleanup());
  const settings = (out: string): Record<string, unknown> => ({
    // 37 training images: batches of 16, 16 and 5 (the last split 2 / 3 over two ranks).
    train: 'phantom:37,21,32',
    val: 'phantom:12,23,32',
    test: 'phantom:16,22,32',
    task: 'Pleural Effusion',
    imageSize: 32,
    fractions: [1],
    draws: 1,
    epochs: 2,
    batchSize: 16,
    ensemble: 1,
    bnStats: 'frozen',
    init: 'random',
    arch: 'resnet18',
    seed: 5,
    bootstrap: 0,
    cacheDir: join(dir.path, 'cache'),
    out: join(dir.path, out),
  });
  const classifierWeights = (run: string): Record<string, torch.Tensor> =>
    (torch.load(join(dir.path, run, 'models', 'f1-d0.pt')) as { state_dict: Record<string, torch.Tensor> }).state_dict;

  test('two ranks × 8 equal one process × 16', { timeout: 160_000 }, async () => {
    // The one-process run goes after the ranks, so that it reuses the caches they made.
    const port = await freePort();
    const two = JSON.stringify(settings('two'));
    const ranks = await runRanks(
      [tsNode(rankScript, two), tsNode(rankScript, two)],
      [rankEnv(0, 2, port), rankEnv(1, 2, port)],
      150_000,
    );
    for (const r of ranks) assert.equal(r.code, 0, `rank ${r.rank}:\n${r.stderr}`);
    const [one] = await runRanks(
      [tsNode(rankScript, JSON.stringify(settings('one')))],
      [{ ...process.env, MOCO_CXR_THREADS: '1' }],
      150_000,
    );
    assert.equal(one!.code, 0, one!.stderr);
    const a = lastJson(one!) as { losses: number[]; scores: number[]; trainIds: string[] };
    const b = lastJson(ranks[0]!) as typeof a;
    // Every rank saw the same reduced losses and the same gathered scores.
    assert.deepEqual(lastJson(ranks[1]!), b);
    assert.deepEqual(b.trainIds, a.trainIds);
    assert.equal(a.losses.length, 6);
    assert.equal(b.losses.length, 6);

    const probe = createBackbone('random', 'resnet18', { numClasses: 1, seed: 5 });
    const chain = chainLength(probe.parameters().map((p) => p.shape));
    a.losses.forEach((loss, i) => assertClose(b.losses[i]!, loss, `step ${i + 1}: loss`, { ops: chain }));
    // Probabilities lie in [0, 1]: the chain's rounding on a scale of 1.
    assertClose(b.scores, a.scores, 'test scores', { ops: chain, scale: 1 });

    // Rank 0 alone wrote the run folder: one line per cell, one classifier file.
    assert.equal(
      readFileSync(join(dir.path, 'two', 'cells.jsonl'), 'utf8')
        .trim()
        .split('\n').length,
      1,
    );
    const x = classifierWeights('one');
    const y = classifierWeights('two');
    assert.deepEqual(Object.keys(y), Object.keys(x));
    // Weights, against how far training moved them: ranks that trained apart
    // (no gradient sum) or on the wrong rows would differ by a share of the
    // movement near 1. Rounding: the gradients' relative error is about
    // eps32 · sqrt(chain) per step, times 16 and the 6 steps. Adam moves a
    // weight by about lr · sign(gradient) at first, so one whose gradient is
    // within rounding of 0 may step either way in either run; each such weight
    // adds about 2 / sqrt(11 M) = 6e-4 of the movement, which the bound
    // absorbs for a few of them.
    const start = probe.stateDict();
    let moved = 0;
    let apart = 0;
    for (const [key, value] of Object.entries(x)) {
      if (key.endsWith('num_batches_tracked')) continue;
      moved += torch.tidy(() => value.sub(start[key]!).pow(2).sum().item());
      apart += torch.tidy(() => value.sub(y[key]!).pow(2).sum().item());
    }
    assert.ok(moved > 0);
    const ratio = Math.sqrt(apart / moved);
    if (process.env['TOLERANCE_REPORT'] === '1') process.stderr.write(`weights apart / moved: ${ratio}\n`);
    const bound = 16 * a.losses.length * EPS32 * Math.sqrt(chain);
    assert.ok(
      ratio <= bound,
      `the runs' weights differ by ${ratio.toExponential(3)} of the movement (bound ${bound.toExponential(3)})`,
    );
    torch.dispose([...Object.values(x), ...Object.values(y)]);
    probe.dispose();
  });

  test('a rank that crashes mid-cell stops the other, which names it', { timeout: 60_000 }, async () => {
    const port = await freePort();
    const config = JSON.stringify(settings('crash'));
    const env = { MOCO_CXR_TEST_DIE_AT: '1:2', MOCO_CXR_DIST_TIMEOUT_MS: '30000' };
    const ranks = await runRanks(
      [tsNode(rankScript, config), tsNode(rankScript, config)],
      [rankEnv(0, 2, port, env), rankEnv(1, 2, port, env)],
      50_000,
    );
    assert.equal(ranks[1]!.code, 7);
    assert.equal(ranks[0]!.code, 2, ranks[0]!.stderr);
    assert.match(lastJson(ranks[0]!).error as string, /failed on rank 0 of 2: rank 1 stopped answering/);
  });

  test(
    'linear cells spread over two ranks: a rank that dies between rounds is named',
    { timeout: 120_000 },
    async () => {
      const port = await freePort();
      // Four cells, two rounds: rank 1 exits once the first round's results are gathered.
      const config = JSON.stringify({ ...settings('spread'), fractions: [0.5], draws: 4, epochs: 1 });
      const env = { MOCO_CXR_TEST_DIE_AFTER_CELL: '1', MOCO_CXR_DIST_TIMEOUT_MS: '30000' };
      const ranks = await runRanks(
        [tsNode(rankScript, config, 'linear'), tsNode(rankScript, config, 'linear')],
        [rankEnv(0, 2, port, env), rankEnv(1, 2, port, env)],
        110_000,
      );
      assert.equal(ranks[1]!.code, 7);
      assert.equal(ranks[0]!.code, 2, ranks[0]!.stderr);
      assert.match(lastJson(ranks[0]!).error as string, /failed on rank 0 of 2: rank 1 stopped answering/);
      // The first round's two cells were recorded by rank 0 before the failure.
      assert.equal(
        readFileSync(join(dir.path, 'spread', 'cells.jsonl'), 'utf8')
          .trim()
          .split('\n').length,
        2,
      );
    },
  );
});
