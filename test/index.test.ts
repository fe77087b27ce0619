/**
 * The package entry reaches the downstream half: a linear probe from
 * `import { linearProbe } from 'moco-cxr'`, on features made by hand.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { type data, downstream, finetune, linearProbe, runDownstream, torch } from '../src/index.js';

type XrayRecord = data.XrayRecord;

/** Records labelled by the sign of the first feature, with features `[n, 4]` that separate them. */
function split(name: string, count: number): downstream.SplitFeatures {
  const records: XrayRecord[] = [];
  const values = new Float32Array(count * 4);
  for (let i = 0; i < count; i++) {
    const positive = i % 2 === 0;
    records.push({
      id: `${name}/${i}.png`,
      path: `/nowhere/${name}/${i}.png`,
      labels: { Finding: positive ? 1 : 0 },
      patientId: `${name}-patient-${i}`,
      studyId: `${name}-study-${i}`,
    });
    values.set([positive ? 1 + (i % 5) / 10 : -1 - (i % 7) / 10, Math.sin(i), Math.cos(i), (i % 3) - 1], i * 4);
  }
  return { records, features: torch.tensor(values, [count, 4]) };
}

test('linearProbe, finetune and runDownstream are exported from the package entry, and a probe runs', async () => {
  assert.equal(typeof finetune, 'function');
  assert.equal(typeof runDownstream, 'function');
  assert.equal(downstream.linearProbe, linearProbe);
  const splits = { train: split('train', 40), val: split('val', 16), test: split('test', 20) };
  const features: downstream.FeatureSet = {
    init: 'hand-made',
    arch: 'none',
    key: 'hand-made',
    featureDim: 4,
    ...splits,
    reused: false,
    dispose: () => torch.dispose(Object.values(splits).map((s) => s.features)),
  };
  try {
    const cell = await linearProbe({
      features,
      task: 'Finding',
      fraction: 0.5,
      draw: 0,
      seed: 0,
      epochs: 20,
      lr: 0.1,
      plainProgress: true,
    });
    assert.equal(cell.mode, 'linear');
    assert.equal(cell.trainIds.length, 20);
    assert.equal(cell.test.ids.length, 20);
    assert.equal(cell.testAuc, 1);
  } finally {
    features.dispose();
  }
});
