/**
 * Resuming and restarting a pretraining run folder through the CLI: what a
 * resume may change, what an interrupted save leaves behind, and what a fresh
 * start finds. Each run is a few steps of 32 px phantoms.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  watch,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { resnet18 } from '../../src/models/index.js';
import * as torch from '../../src/torch/index.js';
import { tempDir } from '../helpers/oracle.js';

const CLI = ['--import', 'tsx', 'src/cli/run.ts'];

function cli(...args: string[]): { status: number | null; stderr: string } {
  const result = spawnSync(process.execPath, [...CLI, ...args], { encoding: 'utf8' });
  return { status: result.status, stderr: result.stderr };
}

interface MetricsRow {
  step: number;
  loss?: number;
}

function metrics(run: string): MetricsRow[] {
  return readFileSync(join(run, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as MetricsRow);
}

const temporaries = (run: string): string[] => readdirSync(run).filter((name) => name.endsWith('.tmp'));

describe('pretrain run folders', () => {
  const dir = tempDir();
  after(() => dir.cleanup());
  // 32 phantoms in batches of 8: four steps an epoch.
  const settings = (out: string): string[] => [
    '--data',
    'phantom:32,7,32',
    '--image-size',
    '32',
    '--batch-size',
    '8',
    '--queue',
    '16',
    '--epochs',
    '2',
    '--log-every',
    '1',
    '--cache-dir',
    join(dir.path, 'cache'),
    '--out',
    out,
  ];
  const run = join(dir.path, 'run');

  test('a first run of one epoch saves its checkpoint', () => {
    const first = cli('pretrain', ...settings(run), '--max-steps', '4');
    assert.equal(first.status, 0, first.stderr);
    assert.ok(existsSync(join(run, 'last.pt')));
  });

  test('resume refuses settings that change the run, lists each, and leaves config.json alone', () => {
    const before = readFileSync(join(run, 'config.json'), 'utf8');
    const changed = cli(
      'pretrain',
      ...settings(run),
      '--resume',
      '--batch-size',
      '16',
      '--weight-decay',
      '0.01',
      '--temperature',
      '0.1',
    );
    assert.equal(changed.status, 1, changed.stderr);
    assert.match(changed.stderr, /was started with other settings/);
    assert.match(changed.stderr, /batchSize: 8 → 16/);
    assert.match(changed.stderr, /weightDecay: 0.0001 → 0.01/);
    assert.match(changed.stderr, /temperature: 0.2 → 0.1/);
    assert.match(
      changed.stderr,
      /only epochs, gradSync, workers, device, out, cacheDir, checkpointEvery, logEvery, maxSteps, memoryFormat, monitor, monitorTask may change/,
    );
    assert.equal(readFileSync(join(run, 'config.json'), 'utf8'), before);

    // Settings not given come from the run's record, so only the one given differs.
    const short = cli('pretrain', '--out', run, '--resume', '--optimizer', 'sgd');
    assert.equal(short.status, 1, short.stderr);
    assert.match(short.stderr, /optimizer: "adam" → "sgd"/);
    assert.doesNotMatch(short.stderr, /batchSize|data:/);
  });

  test('a start without --resume in a folder with a checkpoint is refused, naming the choices', () => {
    const again = cli('pretrain', ...settings(run), '--max-steps', '4');
    assert.equal(again.status, 1);
    assert.match(again.stderr, /already holds a checkpoint: pass --resume .* another --out.*\(it holds last\.pt\)/);
  });

  test('resume removes stale temporary files and cuts metrics back to the checkpoint', () => {
    // What repeated kill -9 during saves left: temporary checkpoints of dead
    // processes, and rows of steps after the checkpoint (step 4) written twice.
    const stale = ['.last.pt.999999.0123abcd.tmp', 'checkpoint_0001.pt.tmp'];
    for (const name of stale) writeFileSync(join(run, name), Buffer.alloc(4096));
    writeFileSync(join(run, 'notes.txt'), 'mine');
    const rows = metrics(run);
    assert.deepEqual(
      rows.map((row) => row.step),
      [1, 2, 3, 4],
    );
    const lost = '{"step":5,"epoch":1,"batch":0,"loss":9}\n{"step":6,"epoch":1,"batch":1,"loss":9}\n';
    appendFileSync(join(run, 'metrics.jsonl'), lost + lost + '{"step":5,"ep');

    // The epochs may grow: a schedule of steps does not depend on them.
    const resumed = cli('pretrain', ...settings(run), '--resume', '--epochs', '3', '--max-steps', '6');
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr, /removed 2 temporary file/);
    assert.match(resumed.stderr, /epochs: 2 → 3/);
    assert.match(resumed.stderr, /metrics: removed 5 rows after step 4/);
    assert.deepEqual(temporaries(run), []);
    assert.equal(readFileSync(join(run, 'notes.txt'), 'utf8'), 'mine');
    const after = metrics(run);
    assert.deepEqual(
      after.map((row) => row.step),
      [1, 2, 3, 4, 5, 6],
    );
    assert.deepEqual(after.slice(0, 4), rows);
    assert.ok(after.slice(4).every((row) => row.loss !== 9));
    assert.equal((JSON.parse(readFileSync(join(run, 'config.json'), 'utf8')) as { epochs: number }).epochs, 3);
  });

  test('resume with a file that is not a pretraining checkpoint names it and what was expected', () => {
    const other = join(dir.path, 'weights-only');
    mkdirSync(other);
    const net = resnet18();
    torch.save(net.stateDict(), join(other, 'last.pt'));
    net.dispose();
    const result = cli('pretrain', ...settings(other), '--resume');
    assert.equal(result.status, 1);
    assert.match(result.stderr, new RegExp(`${join(other, 'last.pt')} is not a moco-cxr pretraining checkpoint`));
    assert.match(result.stderr, /expected a dict with state_dict, optimizer, scheduler, epoch, batch, step/);
    assert.match(result.stderr, /only weights .*conv1\.weight/);
    assert.match(result.stderr, /--init/);
  });

  test('kill -9 during the first checkpoint write, then a fresh start: no temporary file, one row per step', async () => {
    const killed = join(dir.path, 'killed');
    mkdirSync(killed);
    const child = spawn(process.execPath, [...CLI, 'pretrain', ...settings(killed)], { stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((done) => child.on('exit', (_code, signal) => done(signal)));
    // The save's temporary file appears when the first epoch ends; kill the
    // process the moment it does, while the 184 MB are being written.
    const watcher = watch(killed, (_event, name) => {
      if (name !== null && /^\.last\.pt\.\d+\.[0-9a-f]+\.tmp$/.test(name)) child.kill('SIGKILL');
    });
    const signal = await exited;
    watcher.close();
    assert.equal(signal, 'SIGKILL');
    assert.equal(existsSync(join(killed, 'last.pt')), false);
    assert.equal(temporaries(killed).length, 1);
    assert.deepEqual(
      metrics(killed).map((row) => row.step),
      [1, 2, 3, 4],
    );
    // Its pid is free now; a copy under a live pid (ours) must be left alone.
    const foreign = `.last.pt.${process.pid}.00ff00ff.tmp`;
    cpSync(join(killed, temporaries(killed)[0]!), join(killed, foreign));

    const fresh = cli('pretrain', ...settings(killed), '--max-steps', '2');
    assert.equal(fresh.status, 0, fresh.stderr);
    assert.match(fresh.stderr, /holds no checkpoint: starting afresh \(discarded 4 metrics rows/);
    assert.deepEqual(temporaries(killed), [foreign]);
    assert.deepEqual(
      metrics(killed).map((row) => row.step),
      [1, 2],
    );
  });
});
