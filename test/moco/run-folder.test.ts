import assert from 'node:assert/strict';
import { test } from 'node:test';

import { PRETRAIN_DEFAULTS, resolvePretrainConfig } from '../../src/moco/pretrain.js';
import { settingChanges } from '../../src/moco/run-folder.js';

const stored = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  ...resolvePretrainConfig({ data: 'phantom:8', imageSize: 32, batchSize: 8, queue: 16 }),
  ...overrides,
});

test('more epochs extend a run on a step schedule but are refused on a cosine one, which spans them', () => {
  const next = resolvePretrainConfig({ data: 'phantom:8', imageSize: 32, batchSize: 8, queue: 16, epochs: 30 });
  assert.deepEqual(settingChanges(stored(), next, PRETRAIN_DEFAULTS), [
    { key: 'epochs', stored: 20, next: 30, refused: undefined },
  ]);
  const cosine = { ...next, schedule: 'cosine:2' };
  assert.deepEqual(settingChanges(stored({ schedule: 'cosine:2' }), cosine, PRETRAIN_DEFAULTS), [
    { key: 'epochs', stored: 20, next: 30, refused: "the 'cosine:2' schedule spans the epochs" },
  ]);
});

test("a key missing from an older run's record counts as that version's default", () => {
  const record = stored();
  delete record.precision;
  const same = resolvePretrainConfig({ data: 'phantom:8', imageSize: 32, batchSize: 8, queue: 16 });
  assert.deepEqual(settingChanges(record, same, PRETRAIN_DEFAULTS), []);
  assert.deepEqual(settingChanges(record, { ...same, precision: 'bf16' }, PRETRAIN_DEFAULTS), [
    { key: 'precision', stored: 'fp32', next: 'bf16', refused: 'it defines the run' },
  ]);
});
