import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { type CliRun, runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/oracle.js';

const cli = (...args: string[]): CliRun => runCli(args);

describe('moco-cxr linear / finetune', () => {
  const dir = tempDir();
  after(() => dir.cleanup());
  const out = join(dir.path, 'run');
  const args = [
    '--train',
    'phantom:40,51,64',
    '--test',
    'phantom:20,52,64',
    '--image-size',
    '56',
    '--cache-size',
    '64',
    '--fractions',
    '0.25,1',
    '--draws',
    '2',
    '--epochs',
    '3',
    '--bootstrap',
    '100',
    '--cache-dir',
    join(dir.path, 'cache'),
    '--out',
    out,
  ];

  test('linear writes its run folder, and a rerun skips the finished cells', () => {
    const first = cli('linear', ...args);
    assert.equal(first.status, 0, first.stderr);
    for (const file of ['config.json', 'cells.jsonl', 'metrics.json']) assert.ok(existsSync(join(out, file)), file);
    assert.deepEqual(readdirSync(join(out, 'draws')).sort(), ['f0.25-d0.json', 'f0.25-d1.json', 'f1-d0.json']);
    assert.deepEqual(readdirSync(join(out, 'predictions')).sort(), ['f0.25-d0.jsonl', 'f0.25-d1.jsonl', 'f1-d0.jsonl']);
    assert.equal(readdirSync(join(out, 'features')).length, 1);
    assert.match(first.stderr, /linear fraction 0\.25 draw 1: \d+ images, val AUC/);
    const summary = JSON.parse(first.stdout) as { runDir: string; metrics: { fraction: number; meanAuc: number }[] };
    assert.deepEqual(
      summary.metrics.map((m) => m.fraction),
      [0.25, 1],
    );
    const cells = readFileSync(join(out, 'cells.jsonl'), 'utf8');

    const again = cli('linear', ...args);
    assert.equal(again.status, 0, again.stderr);
    assert.doesNotMatch(again.stderr, /linear fraction .* draw \d+:/, 'no cell runs again');
    assert.match(again.stderr, /3 of 3 cells already finished in .*: not run again/);
    assert.equal(readFileSync(join(out, 'cells.jsonl'), 'utf8'), cells);
    assert.deepEqual(JSON.parse(again.stdout), summary);
  });

  test('bad inputs give clear errors', () => {
    const noTest = cli('linear', '--train', 'phantom:10');
    assert.equal(noTest.status, 1);
    assert.match(noTest.stderr, /the test source is required \(--test KIND:PATH\)/);

    const badFraction = cli('finetune', '--train', 'phantom:10', '--test', 'phantom:10', '--fractions', '0.01,2');
    assert.equal(badFraction.status, 1);
    assert.match(badFraction.stderr, /fractions: each fraction must be in \(0, 1\], got 2/);

    const badTask = cli('linear', ...args.slice(0, 4), '--task', 'Nodule', '--out', join(dir.path, 'other'));
    assert.equal(badTask.status, 1);
    assert.match(badTask.stderr, /task 'Nodule' is not a label of phantom:40,51,64; its labels are: Pleural Effusion/);

    const help = cli('finetune', '--help');
    assert.equal(help.status, 0);
    assert.match(help.stdout, /usage: moco-cxr finetune --train KIND:PATH --test KIND:PATH/);
  });
});
