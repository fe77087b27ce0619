/**
 * Bad input through the command line: each case ends with a message that
 * names the flag or file and what was expected, never an abort or a hang.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statfsSync,
  writeFileSync,
  writeSync,
  openSync,
  closeSync,
} from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';

import sharp from 'sharp';

import { sourceCacheFolder } from '../../src/data/cache-folder.js';
import { CLI_ARGS, type CliRun, runCli } from '../helpers/cli.js';
import { oracleMissing, runPython, tempDir } from '../helpers/oracle.js';

const cli = (...args: string[]): CliRun => runCli(args);

/** A CLI run in the background whose standard error can be waited on. */
class Running {
  readonly child: ChildProcess;
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: string[]) {
    this.child = spawn(process.execPath, [...CLI_ARGS, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (text: string) => (this.stderr += text));
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
  }

  /** Resolves once standard error matches `pattern`; after `ms` (or on exit) kills the process and rejects with what it printed. */
  async waitFor(pattern: RegExp, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pattern.test(this.stderr)) {
      if (Date.now() > deadline || this.child.exitCode !== null || this.child.signalCode !== null) {
        // A failed wait must not leave the process behind: the test file would never end.
        this.child.kill('SIGKILL');
        throw new Error(`no ${String(pattern)} within ${ms} ms; stderr:\n${this.stderr}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** How the process ended, or undefined when it is still running after `ms` (then it is killed). */
  async ended(ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null } | undefined> {
    const timeout = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), ms).unref());
    const outcome = await Promise.race([this.exited, timeout]);
    if (outcome === undefined) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
    return outcome;
  }
}

/** Writes `count` 8-bit grey PNGs of noise into two class folders under `root`. */
async function writeFolder(root: string, count: number, side: number): Promise<void> {
  for (const name of ['a', 'b']) mkdirSync(join(root, name), { recursive: true });
  let state = 12345;
  for (let i = 0; i < count; i++) {
    const pixels = Buffer.alloc(side * side);
    for (let p = 0; p < pixels.length; p++) {
      state = (state * 1103515245 + 12345) >>> 0;
      pixels[p] = state >>> 24;
    }
    await sharp(pixels, { raw: { width: side, height: side, channels: 1 } })
      .png()
      .toFile(join(root, i % 2 === 0 ? 'a' : 'b', `${String(i).padStart(4, '0')}.png`));
  }
}

const dir = tempDir('moco-cxr-bad-input-');
after(() => dir.cleanup());
const images = join(dir.path, 'images');
before(() => writeFolder(images, 200, 96));

describe('flags', () => {
  test('a negative number after a flag is its value, and the flag says what it expected', () => {
    for (const [args, expected] of [
      [['pretrain', '--data', 'phantom:8', '--lr', '-1'], /--lr: expected a positive number, got -1$/m],
      [
        ['pretrain', '--data', 'phantom:8', '--batch-size', '-4'],
        /--batch-size: expected a positive integer, got -4$/m,
      ],
      [['linear', '--train', 'phantom:8', '--test', 'phantom:8', '--lr', '-1e-3'], /--lr: expected a positive number/],
      [['pretrain', '--data', 'phantom:8', '--lr=-1'], /--lr: expected a positive number, got -1$/m],
    ] as const) {
      const { status, stderr } = cli(...args);
      assert.equal(status, 1, stderr);
      assert.match(stderr, expected);
      assert.doesNotMatch(stderr, /ambiguous/);
    }
  });

  test('a flag without its value says so and what the value is, in every command', () => {
    for (const [args, expected] of [
      [['pretrain', '--data', 'phantom:8', '--queue'], /--queue needs a value \(a positive integer\)/],
      [['pretrain', '--queue', '--lr', '0.1', '--data', 'phantom:8'], /--queue needs a value \(a positive integer\)/],
      [['linear', '--train'], /--train needs a value/],
      [['data', '--probe'], /--probe needs a value \(an integer ≥ 0 or 'all'\)/],
      [['data', '--probe', '--json', 'phantom:4'], /--probe needs a value/],
      [['demo', '--seed'], /--seed needs a value \(a non-negative integer\)/],
      [['demo', '--out'], /--out needs a value/],
    ] as const) {
      const { status, stderr } = cli(...args);
      assert.equal(status, 1, stderr);
      assert.match(stderr, expected);
      assert.doesNotMatch(stderr, /ambiguous/);
    }
  });

  test('image and cache sizes above 2048 px are refused with the reason, before any cache is made', () => {
    const cacheDir = join(dir.path, 'never-made');
    const run = (...args: string[]) => cli(...args, '--cache-dir', cacheDir, '--out', join(dir.path, 'run-big'));
    for (const size of ['100000', '99999999']) {
      const { status, stderr } = run('pretrain', '--data', `folder:${images}`, '--image-size', size);
      assert.equal(status, 1, stderr);
      assert.match(stderr, new RegExp(`--image-size: ${size} is above the limit of 2048 \\(chest X-ray models`));
      assert.doesNotMatch(stderr, /out of range|double free/);
    }
    const linear = run('linear', '--train', `folder:${images}`, '--test', `folder:${images}`, '--cache-size', '4096');
    assert.match(linear.stderr, /--cache-size: 4096 is above the limit of 2048/);
    const config = join(dir.path, 'big.yaml');
    writeFileSync(config, 'image-size: 100000\n');
    const fromFile = run('pretrain', '--data', `folder:${images}`, '--config', config);
    assert.match(fromFile.stderr, /config .*big\.yaml: key 'image-size': 100000 is above the limit of 2048/);
    const study = join(dir.path, 'study.yaml');
    const data = `folder:${images}`;
    writeFileSync(
      study,
      `image-size: 100000\ncache-dir: ${cacheDir}\npretrain:\n  data: ${data}\n` +
        `targets:\n  - name: source\n    train: ${data}\n    test: ${data}\n    task: a\n`,
    );
    const fromStudy = cli('study', '--config', study);
    assert.equal(fromStudy.status, 1, fromStudy.stderr);
    assert.match(fromStudy.stderr, /study\.yaml: imageSize is 100000, above the limit of 2048 \(chest X-ray models/);
    assert.ok(!existsSync(cacheDir), 'no cache folder was made');
  });
});

describe('files', () => {
  test('a cut .csv.gz names the file', () => {
    const whole = gzipSync('Path,Pleural Effusion\na.png,1\nb.png,0\n'.repeat(50));
    const cut = join(dir.path, 'train.csv.gz');
    writeFileSync(cut, whole.subarray(0, whole.length - 40));
    for (const kind of ['csv', 'chexpert']) {
      const { status, stderr } = cli('data', `${kind}:${cut}`);
      assert.equal(status, 1, stderr);
      assert.match(stderr, new RegExp(`${cut.replace(/[.]/g, '\\.')}: the gzip data is cut short`));
    }
  });

  test(
    'densenet121 weights given to a resnet18 run name both and the flag that fits',
    { skip: oracleMissing() },
    () => {
      const weights = join(dir.path, 'densenet121.pth');
      runPython(`import torch, torchvision\ntorch.save(torchvision.models.densenet121().state_dict(), INPUT)`, weights);
      const { status, stderr } = cli(
        'pretrain',
        '--data',
        `folder:${images}`,
        '--init',
        weights,
        '--arch',
        'resnet18',
        '--image-size',
        '32',
        '--batch-size',
        '4',
        '--queue',
        '8',
        '--cache-dir',
        join(dir.path, 'cache-init'),
        '--out',
        join(dir.path, 'run-init'),
      );
      assert.equal(status, 1, stderr);
      assert.match(
        stderr,
        new RegExp(
          `${weights.replace(/[.]/g, '\\.')}: these are densenet121 weights .*but the model is resnet18: ` +
            'set the architecture to densenet121 \\(--arch densenet121\\)',
        ),
      );
      assert.doesNotMatch(stderr, /strict: false/);
    },
  );
});

/** A tmpfs of `bytes` at a new folder, or why none could be mounted. */
function mountTmpfs(path: string, bytes: number): string | undefined {
  mkdirSync(path, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', path], { stdio: 'pipe' });
    return undefined;
  } catch (error) {
    return `cannot mount a small tmpfs to fill (${(error as Error).message.split('\n')[0]}); needs root`;
  }
}

/** Resolves once `path` exists and its text passes `ready`. */
async function waitForFile(path: string, ready: (text: string) => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(existsSync(path) && ready(readFileSync(path, 'utf8')))) {
    if (Date.now() > deadline) throw new Error(`${path} did not become ready within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** Writes a file of zeros into `folder` until its disk is full. */
function fillDisk(folder: string): string {
  const path = join(folder, 'filler');
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(64 * 1024);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    closeSync(fd);
  }
  return path;
}

describe('a cache on a small disk', () => {
  const disk = join(dir.path, 'disk');
  const unmountable = mountTmpfs(disk, 4 * 1024 * 1024);
  after(() => {
    if (unmountable === undefined) spawnSync('umount', [disk]);
  });
  const cacheFolder = (size: number): string => sourceCacheFolder(disk, `folder:${images}`, size);
  const pretrain = (...args: string[]): string[] => [
    'pretrain',
    '--data',
    `folder:${images}`,
    '--cache-dir',
    disk,
    '--batch-size',
    '4',
    '--queue',
    '8',
    '--workers',
    '1',
    ...args,
  ];

  test('is refused before it starts when it cannot fit, naming the folder and the bytes', { skip: unmountable }, () => {
    const free = statfsSync(disk).bavail * statfsSync(disk).bsize;
    const { status, stderr } = cli(...pretrain('--image-size', '256', '--out', join(dir.path, 'run-fit')));
    assert.equal(status, 1, stderr);
    assert.match(
      stderr,
      new RegExp(
        `image cache: ${cacheFolder(256)} needs 12\\.5 MiB \\(200 images of 256x256 bytes\\) ` +
          `but its disk has ${(free / 1024 / 1024).toFixed(1)} MiB free`,
      ),
    );
    assert.ok(!existsSync(join(cacheFolder(256), 'pixels.bin')));
  });

  test(
    'that fills up names the file and the full disk, and resumes once space is freed',
    { skip: unmountable },
    async () => {
      const run = new Running(pretrain('--image-size', '64', '--out', join(dir.path, 'run-full-1')));
      // Fill the disk once a few images are stored, so that there is something to resume.
      await waitForFile(join(cacheFolder(64), 'build.jsonl'), (text) => text.split('\n').length > 3, 60_000);
      const filler = fillDisk(disk);
      const ended = await run.ended(60_000);
      assert.deepEqual(ended, { code: 1, signal: null }, run.stderr);
      assert.match(
        run.stderr,
        new RegExp(
          `cannot write ${join(cacheFolder(64), 'pixels.bin')}: the disk is full \\(ENOSPC\\); free some space`,
        ),
      );
      rmSync(filler);
      const again = cli(...pretrain('--image-size', '64', '--max-steps', '1', '--out', join(dir.path, 'run-full-2')));
      assert.equal(again.status, 0, again.stderr);
      assert.match(again.stderr, /cache: resuming .*64px: 200 images at 64x64 \(crop\), \d+ already done/);
      assert.match(again.stderr, /cache: 200 images \(\d+ decoded, 0 skipped\)/);
    },
  );
});

describe('signals during a cache build', () => {
  test('SIGTERM stops the build with a message and leaves it to resume', async () => {
    const cache = join(dir.path, 'cache-term');
    const args = ['pretrain', '--data', `folder:${images}`, '--image-size', '64', '--batch-size', '4', '--queue', '8'];
    const run = new Running([...args, '--workers', '1', '--cache-dir', cache, '--out', join(dir.path, 'run-term-1')]);
    await run.waitFor(/cache: building/, 60_000);
    run.child.kill('SIGTERM');
    const ended = await run.ended(30_000);
    assert.deepEqual(ended, { code: 130, signal: null }, run.stderr);
    assert.match(run.stderr, /SIGTERM: finishing the current step/);
    assert.match(run.stderr, /interrupted while building the image cache; rerun to continue where it stopped/);
    assert.deepEqual(readdirSync(sourceCacheFolder(cache, `folder:${images}`, 64)).sort(), [
      'build.jsonl',
      'pixels.bin',
    ]);
    const again = cli(...args, '--max-steps', '1', '--cache-dir', cache, '--out', join(dir.path, 'run-term-2'));
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stderr, /cache: resuming .*, \d+ already done/);
  });

  test('a second signal ends the process at once, even while an image is still being read', async () => {
    // A named pipe that nobody writes: reading it blocks in native code, as a file on a hung share does.
    const folder = join(dir.path, 'stuck');
    mkdirSync(folder);
    execFileSync('mkfifo', [join(folder, 'stuck.png')]);
    const rows = ['Path,Label', 'stuck.png,1', ...readdirSync(join(images, 'a')).map((f) => `../images/a/${f},0`)];
    writeFileSync(join(folder, 'list.csv'), `${rows.join('\n')}\n`);
    const run = new Running([
      'pretrain',
      '--data',
      `csv:${join(folder, 'list.csv')}`,
      '--image-size',
      '32',
      '--workers',
      '1',
      '--cache-dir',
      join(dir.path, 'cache-stuck'),
      '--out',
      join(dir.path, 'run-stuck'),
    ]);
    await run.waitFor(/cache: building/, 60_000);
    run.child.kill('SIGTERM');
    await run.waitFor(
      /waiting for \d+ image\(s\) still being read: .*stuck\.png.*\(a second interrupt quits at once\)/,
      30_000,
    );
    run.child.kill('SIGTERM');
    const ended = await run.ended(10_000);
    assert.deepEqual(ended, { code: null, signal: 'SIGTERM' }, run.stderr);
  });
});
