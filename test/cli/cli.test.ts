import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { after, describe, test } from 'node:test';

import { sourceCacheFolder } from '../../src/data/cache-folder.js';
import { auc, bootstrapAuc } from '../../src/eval/index.js';
import type { StudyReport } from '../../src/study/report.js';
import type { StudyResults } from '../../src/study/results.js';
import { type CliRun, runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/oracle.js';

const cli = (...args: string[]): CliRun => runCli(args);

test('doctor reports the engine and exits 0', () => {
  const { status, stdout } = cli('doctor', '--json');
  assert.equal(status, 0);
  const report = JSON.parse(stdout) as { libtorch: string; threads: number; selfTest: string; devices: string[] };
  assert.match(report.libtorch, /^\d+\.\d+/);
  assert.ok(report.threads >= 1);
  assert.equal(report.selfTest, 'ok');
  assert.ok(report.devices.includes('cpu'));
});

test('an unknown command exits 2 with a message', () => {
  const { status, stderr } = cli('no-such-command');
  assert.equal(status, 2);
  assert.match(stderr, /unknown command 'no-such-command'/);
});

describe('demo --quick', () => {
  const dir = tempDir();
  after(() => dir.cleanup());
  const out = join(dir.path, 'demo');

  test('runs the whole grid and writes a report whose numbers equal the predictions', () => {
    const first = cli('demo', '--quick', '--plain', '--out', out);
    assert.equal(first.status, 0, first.stderr);
    for (const file of ['report.md', 'report.html', 'report.json', 'figures/auc-by-fraction.png']) {
      assert.ok(existsSync(join(out, file)), file);
    }
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as StudyResults;
    // {MoCo, baseline} × {linear, fine-tune} × two fractions, one draw each.
    assert.equal(results.cells.length, 8);
    const test = results.tests.source!;
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as StudyReport;
    for (const cell of results.cells) {
      assert.equal(cell.draws.length, 1);
      const scores = cell.draws[0]!.scores;
      assert.equal(scores.length, test.ids.length);
      // Phantoms are one image per study, so the study score is the image score.
      const expected = bootstrapAuc([scores], test.labels, {
        replicates: report.bootstrap.replicates,
        seed: report.bootstrap.seed,
      });
      const table = report.tables.find((t) => t.mode === cell.mode)!;
      const row = table.rows.find((r) => r.fraction === cell.fraction)!;
      const reported = cell.init === 'moco' ? row.moco : row.baseline;
      assert.ok(reported !== null);
      assert.equal(reported.estimate, auc(scores, test.labels));
      assert.equal(reported.lower, expected.lower);
      assert.equal(reported.upper, expected.upper);
    }
    assert.match(first.stdout, /MoCo \| baseline \| MoCo - baseline/);
    // The demo's linear cells are the converged probe, and the report says so.
    for (const init of ['moco', 'baseline']) {
      const run = JSON.parse(readFileSync(join(out, 'source', `linear-${init}`, 'config.json'), 'utf8')) as {
        probe: string;
      };
      assert.equal(run.probe, 'lbfgs');
    }
    assert.match(readFileSync(join(out, 'report.md'), 'utf8'), /fitted to convergence by L-BFGS/);
  });

  test('a rerun reuses the pretraining and every finished cell', () => {
    const again = cli('demo', '--quick', '--plain', '--out', out);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stderr, /pretraining: reusing/);
    assert.equal((again.stderr.match(/cells already finished/g) ?? []).length, 4);
    assert.doesNotMatch(again.stderr, /test AUC [\d.]+, [\d.]+ s/);
  });
});

describe('pretraining caches', () => {
  const dir = tempDir('moco-cli-caches-');
  after(() => dir.cleanup());

  test('two data sets in one cache folder keep a cache each, neither evicting the other', () => {
    const cacheDir = join(dir.path, 'cache');
    const pretrain = (data: string, out: string): CliRun =>
      cli(
        'pretrain',
        '--data',
        data,
        '--image-size',
        '32',
        '--batch-size',
        '4',
        '--queue',
        '8',
        '--max-steps',
        '1',
        '--cache-dir',
        cacheDir,
        '--out',
        join(dir.path, out),
      );
    const sets = ['phantom:24,1,40', 'phantom:20,1,40,posed'];
    for (const [i, data] of sets.entries()) {
      const run = pretrain(data, `run-${i}`);
      assert.equal(run.status, 0, run.stderr);
    }
    const folders = readdirSync(cacheDir).sort();
    assert.deepEqual(folders, sets.map((data) => basename(sourceCacheFolder(cacheDir, data, 32))).sort());
    const counts = folders.map(
      (folder) =>
        (JSON.parse(readFileSync(join(cacheDir, folder, 'index.json'), 'utf8')) as { ids: string[] }).ids.length,
    );
    assert.deepEqual(counts.sort(), [20, 24]);
  });
});
