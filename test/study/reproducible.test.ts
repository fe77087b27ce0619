/**
 * Same seed, same machine, same thread count → the same numbers: two
 * pretrainings from the command line give bit-identical weights, optimizer
 * state and losses, and two fine-tunings from that checkpoint give identical
 * predictions. (Across machines the float kernels can differ; the README's
 * "Reproducibility" says what and why.)
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { load } from '../../src/torch/serialization.js';
import { Tensor } from '../../src/torch/index.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/oracle.js';

/** Every tensor of a loaded checkpoint by its path in the file (`state_dict.encoder_q.conv1.weight`, …). */
function tensorsOf(value: unknown, path = '', into = new Map<string, Tensor>()): Map<string, Tensor> {
  if (value instanceof Tensor) into.set(path, value);
  else if (value instanceof Map) for (const [k, v] of value) tensorsOf(v, `${path}.${String(k)}`, into);
  else if (Array.isArray(value)) value.forEach((v, i) => tensorsOf(v, `${path}.${i}`, into));
  else if (value !== null && typeof value === 'object')
    for (const [k, v] of Object.entries(value)) tensorsOf(v, `${path}.${k}`, into);
  return into;
}

function bytesOf(tensor: Tensor): Buffer {
  const data = tensor.data();
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

describe('reproducibility on one machine', () => {
  const dir = tempDir();
  after(() => dir.cleanup());
  const env = { ...process.env, OMP_NUM_THREADS: '2' };
  const pretrain = (out: string): void => {
    const run = runCli(
      [
        'pretrain',
        '--data',
        'phantom:48,61,40',
        '--image-size',
        '32',
        '--cache-size',
        '40',
        '--batch-size',
        '8',
        '--queue',
        '32',
        '--epochs',
        '1',
        '--max-steps',
        '4',
        '--log-every',
        '1',
        '--cache-dir',
        join(dir.path, 'cache'),
        '--out',
        out,
      ],
      { env },
    );
    assert.equal(run.status, 0, run.stderr);
  };

  test('two pretrainings with one seed give identical weights, optimizer state and losses', () => {
    const [a, b] = [join(dir.path, 'a'), join(dir.path, 'b')];
    pretrain(a);
    pretrain(b);
    const losses = (run: string): number[] =>
      readFileSync(join(run, 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((line) => (JSON.parse(line) as { loss: number }).loss);
    assert.equal(losses(a).length, 4);
    assert.deepEqual(losses(a), losses(b));
    const first = tensorsOf(load(join(a, 'last.pt')));
    const second = tensorsOf(load(join(b, 'last.pt')));
    assert.ok(first.size > 100, `${first.size} tensors`);
    assert.deepEqual([...first.keys()], [...second.keys()]);
    for (const [key, tensor] of first) assert.ok(bytesOf(tensor).equals(bytesOf(second.get(key)!)), `${key} differs`);
  });

  test('two fine-tunings from that checkpoint give identical test predictions', () => {
    const finetune = (out: string): string => {
      const run = runCli(
        [
          'finetune',
          '--init',
          join(dir.path, 'a', 'last.pt'),
          '--train',
          'phantom:40,62,40',
          '--test',
          'phantom:20,63,40',
          '--cache-size',
          '40',
          '--fractions',
          '1',
          '--draws',
          '1',
          '--epochs',
          '2',
          '--bootstrap',
          '50',
          '--cache-dir',
          join(dir.path, 'cache'),
          '--out',
          out,
        ],
        { env },
      );
      assert.equal(run.status, 0, run.stderr);
      return readFileSync(join(out, 'predictions', 'f1-d0.jsonl'), 'utf8');
    };
    const first = finetune(join(dir.path, 'fa'));
    assert.equal(first.trim().split('\n').length, 20);
    assert.equal(finetune(join(dir.path, 'fb')), first);
  });
});
