/**
 * The study across two ranks (`moco-cxr launch --nproc-per-node 2 -- study`):
 * the pretraining runs data-parallel, the downstream cells are spread over
 * the ranks and gathered, and rank 0 writes one report — whose cells are the
 * ones a one-process study gives from the same checkpoint (each cell is
 * deterministic per seed, and both run on one engine thread). A rerun finds
 * every cell finished.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/oracle.js';
import { freePort } from './fixtures/ranks.js';

interface StudyDraw {
  draw: number;
  trainIds: string[];
  valAuc: number;
  scores: number[];
}
interface StudyCellRecord {
  target: string;
  mode: string;
  init: string;
  fraction: number;
  draws: StudyDraw[];
}

describe('a study across two ranks', () => {
  const dir = tempDir();
  after(() => dir.cleanup());
  const cache = join(dir.path, 'cache');

  function studyFile(name: string, folder: string, pretrain: Record<string, unknown>): string {
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
        'modes: [linear, finetune]',
        'fractions: [0.5]',
        'draws: 2',
        'bootstrap: 20',
        'training: { linear-epochs: 2, finetune-epochs: 1, ensemble: 1, batch-size: 8 }',
        'targets:',
        '  - { name: source, train: "phantom:24,21,32", test: "phantom:16,22,32", task: Pleural Effusion }',
      ].join('\n'),
    );
    return file;
  }
  // Each draw's numbers, without its time.
  const cellsOf = (folder: string): StudyCellRecord[] =>
    (JSON.parse(readFileSync(join(folder, 'results.json'), 'utf8')) as { cells: StudyCellRecord[] }).cells.map(
      (cell) => ({
        ...cell,
        draws: cell.draws.map(({ draw, trainIds, valAuc, scores }) => ({ draw, trainIds, valAuc, scores })),
      }),
    );
  const reportOf = (folder: string): unknown => {
    const report = JSON.parse(readFileSync(join(folder, 'report.json'), 'utf8')) as Record<string, unknown>;
    // Times and the settings (the pretrain block, the folder) differ between the runs; every number of the tables is kept.
    return JSON.parse(
      JSON.stringify(report, (key, value: unknown) =>
        ['timings', 'settings', 'createdAt', 'seconds'].includes(key) ? undefined : value,
      ),
    );
  };

  test('gives the cells and report of one process; a rerun finds them finished', { timeout: 240_000 }, async () => {
    const two = join(dir.path, 'two');
    const file = studyFile('two', two, { data: 'phantom:32,7,32', 'batch-size': 8, queue: 16, epochs: 1 });
    const port = await freePort();
    const env = { ...process.env, GLOO_SOCKET_IFNAME: 'lo' };
    const launched = ['launch', '--nproc-per-node', '2', '--threads', '1', '--master-port', String(port)];
    const run = runCli([...launched, '--', 'study', '--config', file, '--plain'], { env, timeoutMs: 200_000 });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /data-parallel: 2 processes \(gloo\)/);
    // Both ranks ran cells.
    assert.match(run.stderr, /\[rank 1\] .*finetune/);

    const one = join(dir.path, 'one');
    const single = runCli(
      ['study', '--config', studyFile('one', one, { checkpoint: join(two, 'pretrain', 'last.pt') }), '--plain'],
      { env: { ...process.env, MOCO_CXR_THREADS: '1' }, timeoutMs: 200_000 },
    );
    assert.equal(single.status, 0, single.stderr);
    const a = cellsOf(one);
    const b = cellsOf(two);
    assert.equal(a.length, 4); // 2 modes × 2 starts, of 2 draws each
    assert.deepEqual(b, a);
    assert.deepEqual(reportOf(two), reportOf(one));

    const again = runCli([...launched, '--', 'study', '--config', file, '--plain'], { env, timeoutMs: 200_000 });
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stderr, /pretraining: reusing/);
    assert.match(again.stderr, /2 of 2 cells already finished/);
    assert.doesNotMatch(again.stderr, /fraction [\d.]+ draw \d+: \d+ images/);
    assert.deepEqual(cellsOf(two), a);
  });
});
