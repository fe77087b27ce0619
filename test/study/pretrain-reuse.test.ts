/**
 * A study reuses the pretraining in its folder only when the study file's
 * pretrain settings are the ones it was made with, and its pretrain block
 * refuses unknown keys — through `moco-cxr study --config`.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { type CliRun, runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/oracle.js';

const cli = (...args: string[]): CliRun => runCli(args);

describe('study pretraining', () => {
  const dir = tempDir();
  after(() => dir.cleanup());
  const out = join(dir.path, 'study');
  const cache = join(dir.path, 'cache');

  function studyFile(name: string, pretrain: Record<string, unknown>, folder = out): string {
    const file = join(dir.path, `${name}.yaml`);
    const lines = Object.entries(pretrain).map(([key, value]) => `  ${key}: ${JSON.stringify(value)}`);
    writeFileSync(
      file,
      [
        `out: ${folder}`,
        'image-size: 32',
        `cache-dir: ${cache}`,
        'pretrain:',
        ...lines,
        'modes: [linear]',
        'fractions: [1]',
        'bootstrap: 20',
        'training: { linear-epochs: 2, ensemble: 1 }',
        'targets:',
        '  - { name: source, train: "phantom:24,21,32", test: "phantom:16,22,32", task: Pleural Effusion }',
      ].join('\n'),
    );
    return file;
  }
  const pretrain = { data: 'phantom:32,7,32', 'batch-size': 8, queue: 16, epochs: 1, 'log-every': 1 };

  test('an unknown key in the pretrain block names the file and the key', () => {
    const file = studyFile('typo', { ...pretrain, 'bacth-size': 8 }, join(dir.path, 'typo'));
    const result = cli('study', '--config', file);
    assert.equal(result.status, 1);
    assert.match(
      result.stderr,
      new RegExp(`study config ${file}: unknown key 'pretrain\\.bacthSize'; known keys: data, arch`),
    );
  });

  test('a finished pretraining is reused with the same settings and refused with others', () => {
    // The pretraining, made as the study would make it.
    const made = cli(
      ...['pretrain', '--data', pretrain.data, '--image-size', '32', '--batch-size', '8', '--queue', '16'],
      ...['--epochs', '1', '--log-every', '1', '--cache-dir', cache, '--out', join(out, 'pretrain')],
    );
    assert.equal(made.status, 0, made.stderr);

    const changed = cli('study', '--config', studyFile('changed', { ...pretrain, 'batch-size': 16, queue: 32 }));
    assert.equal(changed.status, 1, changed.stderr);
    assert.match(changed.stderr, /the pretraining in .*pretrain does not match the study's pretrain settings/);
    assert.match(changed.stderr, /batchSize: 8 → 16/);
    assert.match(changed.stderr, /queue: 16 → 32/);
    assert.doesNotMatch(changed.stderr, /pretraining: reusing/);

    const same = cli('study', '--config', studyFile('same', pretrain), '--plain');
    assert.equal(same.status, 0, same.stderr);
    assert.match(same.stderr, /pretraining: reusing .*last\.pt \(1 epochs\)/);
  });

  test("a rerun of a finished study reports the first run's start and real times", () => {
    const folder = join(dir.path, 'timed');
    const file = studyFile('timed', pretrain, folder);
    const first = cli('study', '--config', file, '--plain');
    assert.equal(first.status, 0, first.stderr);
    const read = (): { createdAt: string; timings: Record<string, number> } =>
      JSON.parse(readFileSync(join(folder, 'results.json'), 'utf8')) as {
        createdAt: string;
        timings: Record<string, number>;
      };
    const before = read();
    assert.ok(before.timings.pretrain! > 0, 'the study timed its own pretraining');
    assert.ok(before.timings.linear! > 0, 'and its cells');

    const again = cli('study', '--config', file, '--plain');
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stderr, /pretraining: reusing/);
    const after = read();
    assert.equal(after.createdAt, before.createdAt);
    assert.equal(after.timings.pretrain, before.timings.pretrain);
    assert.equal(after.timings.linear, before.timings.linear);
    assert.match(readFileSync(join(folder, 'report.md'), 'utf8'), new RegExp(`Study started ${before.createdAt}`));
  });
});
