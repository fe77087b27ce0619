/**
 * The gradient allreduce overlapped with backward (c10d's Reducer) against the
 * one after backward, two ranks on loopback: a ResNet18 trained side by side
 * both ways for a few steps, under 'avg' and under 'sum' (with a rank that has
 * no loss in one step). With two ranks each reduced element is one addition
 * a + b in both paths, so the gradients and weights must be the same bits.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

import { freePort, lastJson, rankEnv, runRanks, tsNode } from './fixtures/ranks.js';

const rankScript = fileURLToPath(new URL('./fixtures/grad-sync-rank.ts', import.meta.url));

interface SyncStep {
  mode: string;
  buckets: number;
  launchedEarly: number;
  backwardMs: number;
  exposedMs: number;
}
interface RankOut {
  rank: number;
  steps: { overlap: SyncStep; after: SyncStep; gradDiff: number; weightDiff: number; gradSum: number }[];
  ticks: number;
  unusedError: string;
}

for (const op of ['avg', 'sum'] as const) {
  test(
    `'${op}': gradients reduced during backward equal those reduced after it, bit for bit`,
    { timeout: 120_000 },
    async () => {
      const port = await freePort();
      const results = await runRanks(
        [tsNode(rankScript, op), tsNode(rankScript, op)],
        [rankEnv(0, 2, port), rankEnv(1, 2, port)],
        110_000,
      );
      for (const result of results) assert.equal(result.code, 0, `rank ${result.rank} failed:\n${result.stderr}`);
      const [zero, one] = results.map((result) => lastJson(result) as unknown as RankOut) as [RankOut, RankOut];
      for (const out of [zero, one]) {
        assert.equal(out.steps.length, 3);
        out.steps.forEach((step, i) => {
          const where = `rank ${out.rank}, step ${i}`;
          assert.equal(step.gradDiff, 0, `${where}: the two paths' gradients differ by ${step.gradDiff}`);
          assert.equal(step.weightDiff, 0, `${where}: the two paths' weights differ by ${step.weightDiff}`);
          // ResNet18's 45 MB in a first bucket of 1 MB and then 25 MB ones.
          assert.ok(step.overlap.buckets >= 3, `${where}: ${step.overlap.buckets} buckets`);
          // The last layers' buckets went out while backward still had the first layers to do.
          assert.ok(
            step.overlap.launchedEarly >= 1 && step.overlap.launchedEarly < step.overlap.buckets,
            `${where}: ${step.overlap.launchedEarly} of ${step.overlap.buckets} buckets launched during backward`,
          );
          assert.equal(step.after.launchedEarly, 0);
        });
        // Backward ran off the JavaScript thread: timers fired while it ran.
        assert.ok(out.ticks > 0, `rank ${out.rank}: the event loop turned ${out.ticks} times during backward`);
        assert.match(out.unusedError, /1 of 2 parameters received no gradient in this backward pass/);
      }
      // The ranks saw different inputs: equal gradients mean they were reduced.
      assert.deepEqual(
        zero.steps.map((step) => step.gradSum),
        one.steps.map((step) => step.gradSum),
      );
    },
  );
}
