/**
 * Data-parallel pretraining on this machine: MoCo steps (ResNet18, phantom
 * radiographs, global batch 16 at 128 px) as one process with 2 engine
 * threads, and as 2 processes with 1 thread each over Gloo on loopback, once
 * with the gradient allreduce after backward and once overlapped with it
 * (`gradSync`): images/s (after warm-up), peak memory of each process, and per
 * step backward's own time and the reduction time backward did not hide (all
 * of the allreduce after backward; the wait for the last buckets when
 * overlapped), side by side with their ratios. The bare allreduce of the
 * encoder's gradients (45 MB in fp32, 25 MB buckets) is timed apart. The
 * machine is shared with other work: read the load average printed with the
 * figures.
 *
 * Run: `npm run bench -- distributed` (`--quick` for fewer steps).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { allreduceFlat, type GradSyncMode, type GradSyncStep, ProcessGroup } from '../src/distributed/index.js';
import { MoCo } from '../src/moco/model.js';
import { pretrain } from '../src/moco/pretrain.js';
import * as torch from '../src/torch/index.js';
import { peakRssMb } from './python.js';

const self = fileURLToPath(import.meta.url);
const quick = process.argv.includes('--quick') || process.env.BENCH_DIST_QUICK === '1';
const STEPS = quick ? 6 : 10;
const WARMUP = 2;
const ALLREDUCE_REPEATS = quick ? 3 : 10;

interface RankFigures {
  rank: number;
  imagesPerSecond: number;
  peakRssMb: number;
  allreduceMs: number | undefined;
  allreduceMb: number;
  /** Means over the steps after warm-up, in a group. */
  backwardMs: number | undefined;
  exposedMs: number | undefined;
  buckets: number | undefined;
  launchedEarly: number | undefined;
}

const mean = (values: number[]): number => values.reduce((a, v) => a + v, 0) / values.length;

/** One process of a run: pretrain, then (in a group, after backward) time the bare gradient allreduce. */
async function rankMain(dir: string): Promise<void> {
  const group = process.env.WORLD_SIZE === undefined ? undefined : await ProcessGroup.fromEnv();
  const gradSync = (process.env.BENCH_DIST_GRAD_SYNC ?? 'overlap') as GradSyncMode;
  const out = join(dir, `run-${group?.size ?? 1}-${gradSync}`);
  const syncs: GradSyncStep[] = [];
  await pretrain(
    {
      data: 'phantom:160,7,144',
      imageSize: 128,
      cacheSize: 144,
      batchSize: 16,
      queue: 256,
      epochs: 1,
      maxSteps: STEPS,
      logEvery: 1,
      cacheDir: join(dir, 'cache'),
      out,
      seed: 1,
      gradSync,
    },
    { group, log: () => undefined, plainProgress: true, onGradSync: (sync) => syncs.push(sync) },
  );
  const timedSyncs = syncs.slice(WARMUP);
  const rows = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { imagesPerSecond: number });
  const timed = rows.slice(WARMUP);
  const imagesPerSecond = timed.reduce((a, r) => a + r.imagesPerSecond, 0) / timed.length;
  // The gradient volume of one step: the query encoder's parameters (with the MLP head).
  const model = new MoCo({ arch: 'resnet18', queueSize: 256 });
  const grads = model.encoderQ.parameters().map((p) => torch.zerosLike(p));
  const allreduceMb = grads.reduce((a, g) => a + g.numel() * 4, 0) / 1e6;
  let allreduceMs: number | undefined;
  if (group !== undefined && gradSync === 'after-backward') {
    await allreduceFlat(group, grads);
    const start = performance.now();
    for (let i = 0; i < ALLREDUCE_REPEATS; i++) await allreduceFlat(group, grads);
    allreduceMs = (performance.now() - start) / ALLREDUCE_REPEATS;
  }
  group?.destroy();
  torch.dispose(grads);
  model.dispose();
  const figures: RankFigures = {
    rank: group?.rank ?? 0,
    imagesPerSecond,
    peakRssMb: peakRssMb(),
    allreduceMs,
    allreduceMb,
    backwardMs: timedSyncs.length === 0 ? undefined : mean(timedSyncs.map((s) => s.backwardMs)),
    exposedMs: timedSyncs.length === 0 ? undefined : mean(timedSyncs.map((s) => s.exposedMs)),
    buckets: timedSyncs.length === 0 ? undefined : mean(timedSyncs.map((s) => s.buckets)),
    launchedEarly: timedSyncs.length === 0 ? undefined : mean(timedSyncs.map((s) => s.launchedEarly)),
  };
  process.stdout.write(`BENCH ${JSON.stringify(figures)}\n`);
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 29500));
    });
  });
}

/** Runs `world` processes of `threads` threads each and collects their figures. */
async function run(dir: string, world: number, threads: number, gradSync: GradSyncMode): Promise<RankFigures[]> {
  const port = await freePort();
  const ranks = Array.from({ length: world }, (_, rank) => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      BENCH_DIST_DIR: dir,
      BENCH_DIST_QUICK: quick ? '1' : '0',
      BENCH_DIST_GRAD_SYNC: gradSync,
      MOCO_CXR_THREADS: String(threads),
      GLOO_SOCKET_IFNAME: 'lo',
    };
    if (world > 1) {
      Object.assign(env, {
        RANK: String(rank),
        LOCAL_RANK: String(rank),
        WORLD_SIZE: String(world),
        MASTER_ADDR: '127.0.0.1',
        MASTER_PORT: String(port),
      });
    }
    const child = spawn(process.execPath, ['--import', 'tsx', self], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    return new Promise<RankFigures>((resolve, reject) =>
      child.on('close', (code) => {
        const line = stdout.split('\n').find((l) => l.startsWith('BENCH '));
        if (code !== 0 || line === undefined) reject(new Error(`rank ${rank} of ${world} failed (exit ${code})`));
        else resolve(JSON.parse(line.slice('BENCH '.length)) as RankFigures);
      }),
    );
  });
  return Promise.all(ranks);
}

if (process.env.BENCH_DIST_DIR !== undefined) {
  await rankMain(process.env.BENCH_DIST_DIR);
} else {
  const dir = mkdtempSync(join(tmpdir(), 'moco-cxr-bench-dist-'));
  try {
    console.log(
      `machine: ${availableParallelism()} cores, load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
    );
    const one = await run(dir, 1, 2, 'after-backward');
    const after = await run(dir, 2, 1, 'after-backward');
    const overlap = await run(dir, 2, 1, 'overlap');
    const r0 = one[0]!;
    const a0 = after[0]!;
    const o0 = overlap[0]!;
    console.log(
      `world size 1 (2 threads):   ${r0.imagesPerSecond.toFixed(2)} images/s, peak RSS ${r0.peakRssMb.toFixed(0)} MB`,
    );
    const rss = (figures: RankFigures[]): string => figures.map((r) => r.peakRssMb.toFixed(0)).join(' + ');
    const ms = (value: number | undefined): string => (value === undefined ? '-' : `${value.toFixed(1)} ms`);
    const ratio = (a: number | undefined, b: number | undefined): string =>
      a === undefined || b === undefined || b === 0 ? '-' : `${(a / b).toFixed(2)}×`;
    console.log('world size 2 (1 thread each), per step, rank 0 (global images/s):');
    console.log('                        after-backward     overlap      overlap / after');
    const line = (name: string, a: string, o: string, r: string): void =>
      console.log(`  ${name.padEnd(20)}  ${a.padStart(14)}  ${o.padStart(12)}  ${r.padStart(14)}`);
    line(
      'images/s',
      a0.imagesPerSecond.toFixed(2),
      o0.imagesPerSecond.toFixed(2),
      ratio(o0.imagesPerSecond, a0.imagesPerSecond),
    );
    line('backward', ms(a0.backwardMs), ms(o0.backwardMs), ratio(o0.backwardMs, a0.backwardMs));
    line('exposed reduction', ms(a0.exposedMs), ms(o0.exposedMs), ratio(o0.exposedMs, a0.exposedMs));
    line(
      'backward + exposed',
      ms(a0.backwardMs! + a0.exposedMs!),
      ms(o0.backwardMs! + o0.exposedMs!),
      ratio(o0.backwardMs! + o0.exposedMs!, a0.backwardMs! + a0.exposedMs!),
    );
    line('buckets (early)', `${a0.buckets} (${a0.launchedEarly})`, `${o0.buckets} (${o0.launchedEarly})`, '');
    line('peak RSS', `${rss(after)} MB`, `${rss(overlap)} MB`, '');
    console.log(
      `bare gradient allreduce: ${a0.allreduceMb.toFixed(1)} MB per step, ${a0.allreduceMs!.toFixed(1)} ms ` +
        `(${((a0.allreduceMb * 2 * 0.5) / (a0.allreduceMs! / 1000) / 1000).toFixed(2)} GB/s bus bandwidth, ring of 2)`,
    );
    console.log(
      `load average after: ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
