import assert from 'node:assert/strict';
import { test } from 'node:test';

import { MoCo } from '../../src/moco/model.js';
import { resolvePretrainConfig } from '../../src/moco/pretrain.js';
import * as torch from '../../src/torch/index.js';

test('autocast runs convolutions in bfloat16 on the CPU and restores float32 after', () => {
  torch.tidy(() => {
    const x = torch.randn([2, 3, 8, 8]);
    const w = torch.randn([4, 3, 3, 3]);
    const inside = torch.autocast('cpu', 'bfloat16', () => torch.conv2d(x, w));
    assert.equal(inside.dtype, 'bfloat16');
    const outside = torch.conv2d(x, w);
    assert.equal(outside.dtype, 'float32');
    // bfloat16 keeps about 3 significant digits.
    const error = inside.float().sub(outside).abs().max().item();
    const scale = outside.abs().max().item();
    assert.ok(error < scale * 0.02, `${error} vs ${scale}`);
  });
  assert.throws(() => torch.autocast('cpu', 'float16', () => 0), /bfloat16 only/);
});

test('a MoCo step under bfloat16 autocast gives nearly the float32 loss', () => {
  torch.manualSeed(0);
  const model = new MoCo({ queueSize: 16, dim: 16 });
  const q = torch.randn([4, 3, 64, 64]);
  const k = torch.randn([4, 3, 64, 64]);
  // Two identical models: one step each, on the same inputs.
  const state = torch.tidy(() => model.stateDict());
  const twin = new MoCo({ queueSize: 16, dim: 16 });
  torch.tidy(() => twin.loadStateDict(state));
  const full = torch.tidy(() => model.step(q, k).loss.item());
  const mixed = torch.tidy(() => torch.autocast('cpu', 'bfloat16', () => twin.step(q, k)).loss.item());
  assert.ok(Math.abs(full - mixed) < 0.05 * Math.abs(full), `${full} vs ${mixed}`);
  torch.dispose([q, k, state]);
  model.dispose();
  twin.dispose();
});

test('fp16 pretraining asks for a CUDA device', () => {
  assert.throws(() => resolvePretrainConfig({ data: 'x', precision: 'fp16' }), /needs a CUDA device/);
  assert.throws(() => resolvePretrainConfig({ data: 'x', precision: 'fp8' as 'fp16' }), /precision must be/);
});
