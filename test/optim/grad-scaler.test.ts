/**
 * The float16 loss scaler's state: its state functions, its place in a
 * pretraining checkpoint (PyTorch's `scaler` entry), and — on CUDA — a
 * resumed fp16 run that carries its scale on.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { restorePretrainCheckpoint, writePretrainCheckpoint } from '../../src/moco/checkpoint.js';
import { MoCo } from '../../src/moco/model.js';
import { resolvePretrainConfig } from '../../src/moco/pretrain.js';
import { Adam, createScheduler } from '../../src/optim/index.js';
import * as torch from '../../src/torch/index.js';
import { GradScaler } from '../../src/optim/grad-scaler.js';
import { oracleMissing, runPython, tempDir } from '../helpers/oracle.js';

const state = { scale: 1024, growth_factor: 2, backoff_factor: 0.5, growth_interval: 100, _growth_tracker: 37 };

test('a scaler gives back the state it was loaded with, and refuses a malformed one by key', () => {
  const scaler = new GradScaler('cpu');
  assert.deepEqual(scaler.stateDict(), {
    scale: 65536,
    growth_factor: 2,
    backoff_factor: 0.5,
    growth_interval: 2000,
    _growth_tracker: 0,
  });
  scaler.loadStateDict(state);
  assert.deepEqual(scaler.stateDict(), state);
  assert.equal(scaler.factor, 1024);
  assert.throws(() => scaler.loadStateDict({ ...state, scale: -1 }, 'x.pt: scaler'), /x\.pt: scaler: 'scale' must be/);
  assert.throws(() => scaler.loadStateDict({ ...state, _growth_tracker: 1.5 }), /'_growth_tracker' must be/);
  assert.throws(() => scaler.loadStateDict(null), /expected a dict/);
  scaler.dispose();
});

describe('the loss scale in a pretraining checkpoint', () => {
  const dir = tempDir();
  after(() => dir.cleanup());
  const file = join(dir.path, 'last.pt');
  const config = resolvePretrainConfig({ data: 'phantom:8', imageSize: 32, batchSize: 4, queue: 8 });

  function parts(): {
    model: MoCo;
    optimizer: Adam;
    scheduler: ReturnType<typeof createScheduler>;
    scaler: GradScaler;
  } {
    torch.manualSeed(0);
    const model = new MoCo({ arch: 'resnet18', queueSize: 8 });
    const optimizer = new Adam(model.parameters(), { lr: 1e-4 });
    const scheduler = createScheduler(optimizer, { kind: 'constant' });
    return { model, optimizer, scheduler, scaler: new GradScaler('cpu') };
  }

  test('is written under PyTorch names and restored on resume', () => {
    const saved = parts();
    saved.scaler.loadStateDict(state);
    writePretrainCheckpoint(file, saved, config, { epoch: 1, batch: 2, step: 6 });
    const fresh = parts();
    const restored = restorePretrainCheckpoint(file, fresh);
    assert.deepEqual(restored, { position: { epoch: 1, batch: 2, step: 6 }, scalerRestored: true });
    assert.deepEqual(fresh.scaler.stateDict(), state);
    for (const p of [saved, fresh]) {
      p.model.dispose();
      p.scaler.dispose();
    }
  });

  test('reads in PyTorch as GradScaler.state_dict() writes it', { skip: oracleMissing() }, () => {
    const types = runPython<Record<string, string>>(
      `
import torch
s = torch.load(INPUT)['scaler']
OUTPUT = {k: type(v).__name__ + ':' + str(v) for k, v in s.items()}
`,
      file,
    );
    assert.deepEqual(types, {
      scale: 'float:1024.0',
      growth_factor: 'float:2.0',
      backoff_factor: 'float:0.5',
      growth_interval: 'int:100',
      _growth_tracker: 'int:37',
    });
  });
});

const noCuda = torch.buildInfo().cudaAvailable ? undefined : 'fp16 pretraining needs a CUDA device; there is none here';

test('an fp16 run resumed from its checkpoint continues with its loss scale (CUDA)', { skip: noCuda }, () => {
  const dir = tempDir();
  try {
    const settings = (out: string, steps: number): string[] => [
      ...['pretrain', '--data', 'phantom:32,7,32', '--image-size', '32', '--batch-size', '8', '--queue', '16'],
      ...['--epochs', '2', '--log-every', '1', '--device', 'cuda', '--precision', 'fp16'],
      ...['--cache-dir', join(dir.path, 'cache'), '--out', out, '--max-steps', String(steps)],
    ];
    const cli = (...args: string[]): void => {
      const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args], { encoding: 'utf8' });
      assert.equal(result.status, 0, result.stderr);
    };
    const whole = join(dir.path, 'whole');
    const split = join(dir.path, 'split');
    cli(...settings(whole, 6));
    cli(...settings(split, 3));
    cli(...settings(split, 6), '--resume');
    const scalerOf = (run: string): unknown => {
      const saved = torch.load(join(run, 'last.pt')) as Record<string, unknown>;
      const scaler = saved.scaler;
      torch.dispose(saved);
      return scaler;
    };
    assert.deepEqual(scalerOf(split), scalerOf(whole));
    const losses = (run: string): number[] =>
      readFileSync(join(run, 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((line) => (JSON.parse(line) as { loss: number }).loss);
    const [a, b] = [losses(whole), losses(split)];
    assert.equal(b.length, 6);
    // The resumed steps repeat the uninterrupted ones, up to float16's resolution
    // (2^-10 relative): cuDNN may pick kernels that do not add in a fixed order.
    for (let i = 0; i < 6; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-3 * Math.abs(a[i]!), `step ${i + 1}`);
  } finally {
    dir.cleanup();
  }
});
