/**
 * A target's own `modes`: through `moco-cxr study --config`, a transfer target
 * that lists only `linear` gets linear cells and a linear table, and neither
 * fine-tuning cells nor a fine-tuning table, while the source runs both modes.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/oracle.js';

describe('study target modes', () => {
  const dir = tempDir();
  after(() => dir.cleanup());

  test('a target with modes: [linear] is probed and not fine-tuned', () => {
    const out = join(dir.path, 'study');
    const file = join(dir.path, 'study.yaml');
    writeFileSync(
      file,
      [
        `out: ${out}`,
        'image-size: 32',
        `cache-dir: ${join(dir.path, 'cache')}`,
        'pretrain: { data: "phantom:32,7,32", batch-size: 8, queue: 16, epochs: 1, log-every: 1 }',
        'modes: [linear, finetune]',
        'fractions: [1]',
        'bootstrap: 20',
        'training: { linear-epochs: 2, finetune-epochs: 1, ensemble: 1 }',
        'targets:',
        '  - { name: source, train: "phantom:24,21,32", test: "phantom:16,22,32", task: Pleural Effusion }',
        '  - name: heart',
        '    train: "phantom:80,23,32"',
        '    test: "phantom:24,24,32"',
        '    task: Cardiomegaly',
        '    modes: [linear]',
      ].join('\n'),
    );
    const run = runCli(['study', '--config', file, '--plain']);
    assert.equal(run.status, 0, run.stderr);
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as {
      cells: { target: string; mode: string; init: string }[];
    };
    const ran = (target: string, mode: string): string[] =>
      results.cells
        .filter((c) => c.target === target && c.mode === mode)
        .map((c) => c.init)
        .sort();
    assert.deepEqual(ran('source', 'linear'), ['baseline', 'moco']);
    assert.deepEqual(ran('source', 'finetune'), ['baseline', 'moco']);
    assert.deepEqual(ran('heart', 'linear'), ['baseline', 'moco']);
    assert.deepEqual(ran('heart', 'finetune'), []);
    const report = readFileSync(join(out, 'report.md'), 'utf8');
    // The report's sections: the heart's holds a linear-probe table only; every cell is listed by mode.
    const heart = report.slice(report.indexOf('### heart: Cardiomegaly'), report.indexOf('## Figures'));
    assert.match(heart, /Linear probe/);
    assert.doesNotMatch(heart, /Fine-tuning/);
    assert.match(report, /^\| heart \| linear \|/m);
    assert.doesNotMatch(report, /^\| heart \| finetune \|/m);
    assert.match(report, /^\| source \| finetune \|/m);
  });
});
