/**
 * The demo's study: every phantom set moves with `--seed` (new phantoms, not
 * only new label draws), no two sets share a seed, and the study's training
 * block reaches each cell with the probe it names.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { parsePhantomLocation } from '../../src/data/phantoms.js';
import { demoStudyConfig } from '../../src/study/demo.js';
import { type StudyConfig } from '../../src/study/config.js';

/** Every phantom set of a demo study: pretraining, its monitor, and each target's train and test sets. */
function phantomSets(config: StudyConfig): ReturnType<typeof parsePhantomLocation>[] {
  const pretrain = config.pretrain as { data: string; monitor?: string };
  const specs = [pretrain.data, pretrain.monitor, ...config.targets.flatMap((t) => [t.train, t.test])];
  return specs
    .filter((spec): spec is string => spec !== undefined && spec !== '')
    .map((spec) => {
      assert.match(spec, /^phantom:/);
      return parsePhantomLocation(spec.slice('phantom:'.length));
    });
}

describe('demo study', () => {
  for (const quick of [false, true]) {
    test(`${quick ? 'quick' : 'full'}: --seed draws new phantoms for every set, each set its own seed`, () => {
      const seeds = [0, 1, 3].map((seed) => {
        const config = demoStudyConfig({ out: '/tmp/demo-config-test', quick, seed });
        assert.equal(config.seed, seed);
        assert.equal(config.training.probe, 'lbfgs');
        const sets = phantomSets(config);
        assert.ok(sets.length >= (quick ? 3 : 6));
        for (const set of sets) assert.equal(set.style, 'steady');
        const own = sets.map((s) => s.seed);
        assert.equal(new Set(own).size, own.length, `sets share a seed: ${own.join(', ')}`);
        return own;
      });
      for (let a = 0; a < seeds.length; a++) {
        for (let b = a + 1; b < seeds.length; b++) {
          for (const seed of seeds[a]!) assert.ok(!seeds[b]!.includes(seed), `seed ${seed} in two demo seeds`);
        }
      }
    });
  }
});
