/**
 * Resident memory over a long pretraining: a tiny MoCo run on phantoms (32 px,
 * batch 8, ResNet18, Adam, `last.pt` saved after every epoch) whose RSS is
 * sampled every few steps. Target: after the first epoch, RSS stays within 10%
 * of its level then (max ≤ 1.10× the level), checkpoint saves included.
 *
 * With `--compare`, the same short run is repeated in child processes under
 * glibc malloc settings (environment tunables), to weigh their memory against
 * their speed (steps/s) on the same machine in the same run. The library
 * adopts none of them: see ARCHITECTURE.md (tensor lifetimes).
 *
 * Run: `npm run bench -- memory` (`--steps N`, default 10000; `--quick` for 300;
 * `--compare` adds the malloc settings table, each at `--compare-steps N`, default 600).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { pretrain } from '../src/moco/pretrain.js';
import { printMachine } from './machine.js';

const IMAGES = 400;
const BATCH = 8;
const STEPS_PER_EPOCH = IMAGES / BATCH;
const SAMPLE_EVERY = 10;
const PROGRESS_EVERY = 250;
const TARGET = 1.1;

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  if (at < 0) return fallback;
  const value = Number(process.argv[at + 1]);
  if (!Number.isInteger(value) || value < 1) {
    console.error(`${name} must be followed by a positive integer, got '${process.argv[at + 1] ?? ''}'`);
    process.exit(2);
  }
  return value;
}

interface Measurement {
  steps: number;
  seconds: number;
  /** [step, RSS in MB] every SAMPLE_EVERY steps. */
  series: [number, number][];
  /** RSS right after the first epoch (and its checkpoint). */
  afterEpoch1: number;
  max: number;
  maxAtStep: number;
}

/** Runs the pretraining here and samples this process's RSS. */
async function measure(steps: number): Promise<Measurement> {
  const dir = mkdtempSync(join(tmpdir(), 'moco-cxr-bench-memory-'));
  const series: [number, number][] = [];
  const rss = (): number => process.memoryUsage.rss() / 2 ** 20;
  let afterEpoch1 = NaN;
  let max = 0;
  let maxAtStep = 0;
  const start = performance.now();
  try {
    const result = await pretrain(
      {
        data: `phantom:${IMAGES},5,40`,
        imageSize: 32,
        cacheSize: 40,
        batchSize: BATCH,
        queue: 1024,
        epochs: Math.ceil(steps / STEPS_PER_EPOCH),
        maxSteps: steps,
        checkpointEvery: 1_000_000,
        logEvery: 1_000_000,
        out: join(dir, 'run'),
        cacheDir: join(dir, 'cache'),
      },
      {
        log: () => undefined,
        plainProgress: true,
        onStep: (step) => {
          // The step's hook runs before that epoch's checkpoint: the first sample
          // of epoch 2 is the level once epoch 1 and its save are behind.
          const now = rss();
          if (step > STEPS_PER_EPOCH && Number.isNaN(afterEpoch1)) afterEpoch1 = now;
          if (now > max) [max, maxAtStep] = [now, step];
          if (step % SAMPLE_EVERY === 0) series.push([step, Math.round(now)]);
          if (step % PROGRESS_EVERY === 0) {
            const rate = step / ((performance.now() - start) / 1000);
            process.stderr.write(`  step ${step}/${steps}: RSS ${now.toFixed(0)} MB, ${rate.toFixed(1)} steps/s\n`);
          }
        },
      },
    );
    if (result.status !== 'finished') throw new Error(`pretraining ended '${result.status}': ${result.message}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { steps, seconds: (performance.now() - start) / 1000, series, afterEpoch1, max, maxAtStep };
}

/** A run of this file in a child process under `env`, returning its measurement. */
function measureIn(env: Record<string, string>, steps: number): Measurement {
  const self = fileURLToPath(import.meta.url);
  const child = spawnSync(process.execPath, ['--import', 'tsx', self, '--child', '--steps', String(steps)], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 28,
  });
  if (child.status !== 0) throw new Error(`child run failed (exit ${String(child.status)})`);
  return JSON.parse(child.stdout.trim().split('\n').pop() ?? '') as Measurement;
}

function summary(m: Measurement): string {
  const ratio = m.max / m.afterEpoch1;
  return (
    `${(m.steps / m.seconds).toFixed(2)} steps/s, RSS after epoch 1 ${m.afterEpoch1.toFixed(0)} MB, ` +
    `max ${m.max.toFixed(0)} MB (step ${m.maxAtStep}), ratio ${ratio.toFixed(3)}`
  );
}

if (process.argv.includes('--child')) {
  const m = await measure(option('--steps', 600));
  process.stdout.write(`${JSON.stringify(m)}\n`);
} else {
  printMachine();
  const steps = process.argv.includes('--quick') ? 300 : option('--steps', 10_000);
  if (process.argv.includes('--compare')) {
    const compareSteps = option('--compare-steps', 600);
    // Setting any of these fixes glibc's otherwise adaptive mmap threshold.
    const settings: [string, Record<string, string>][] = [
      ['glibc defaults', {}],
      ['MALLOC_ARENA_MAX=2', { MALLOC_ARENA_MAX: '2' }],
      ['MALLOC_MMAP_THRESHOLD_=131072', { MALLOC_MMAP_THRESHOLD_: '131072' }],
      ['MALLOC_MMAP_THRESHOLD_=1048576', { MALLOC_MMAP_THRESHOLD_: '1048576' }],
      ['MALLOC_TRIM_THRESHOLD_=134217728', { MALLOC_TRIM_THRESHOLD_: '134217728' }],
    ];
    console.log(`malloc settings, ${compareSteps} steps each (a child process per setting):`);
    for (const [label, env] of settings) console.log(`  ${label.padEnd(42)} ${summary(measureIn(env, compareSteps))}`);
  }
  console.log(`pretraining ${steps} steps at 32 px, batch ${BATCH}, last.pt after each of its epochs:`);
  const m = measureIn({}, steps);
  const stride = Math.max(1, Math.round(m.series.length / 40));
  const shown = m.series.filter((_, i) => i % stride === 0 || i === m.series.length - 1);
  console.log(`  RSS (step:MB) ${shown.map(([s, mb]) => `${s}:${mb}`).join(' ')}`);
  const ratio = m.max / m.afterEpoch1;
  console.log(`  ${summary(m)}`);
  console.log(`  target: max ≤ ${TARGET.toFixed(2)}× the level after epoch 1 — ${ratio <= TARGET ? 'met' : 'NOT met'}`);
}
