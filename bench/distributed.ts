/**
 * Data-parallel pretraining on this machine: MoCo steps (ResNet18, phantom
 * radiographs, global batch 16 at 128 px) as one process with 2 engine
 * threads, and as 2 processes with 1 thread each over Gloo on loopback:
 * images/s (after warm-up), peak memory of each process, and the time of the
 * gradient allreduce per step (the encoder's gradients, 45 MB in fp32, in
 * 25 MB buckets) measured apart. The machine is shared with other work: read
 * the load average printed with the figures.
 *
 * Run: `npm run bench -- distributed` (`--quick` for fewer steps).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { allreduceFlat, ProcessGroup } from '../src/distributed/index.js';
import { MoCo } from '../src/moco/model.js';
import { pretrain } from '../src/moco/pretrain.js';
import * as torch from '../src/torch/index.js';

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
}

/** One process of a run: pretrain, then (in a group) time the gradient allreduce. */
async function rankMain(dir: string): Promise<void> {
  const group = process.env.WORLD_SIZE === undefined ? undefined : await ProcessGroup.fromEnv();
  const out = join(dir, `run-${group?.size ?? 1}`);
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
    },
    { group, log: () => undefined, plainProgress: true },
  );
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
  if (group !== undefined) {
    await allreduceFlat(group, grads);
    const start = performance.now();
    for (let i = 0; i < ALLREDUCE_REPEATS; i++) await allreduceFlat(group, grads);
    allreduceMs = (performance.now() - start) / ALLREDUCE_REPEATS;
    group.destroy();
  }
  torch.dispose(grads);
  model.dispose();
  const figures: RankFigures = {
    rank: group?.rank ?? 0,
    imagesPerSecond,
    peakRssMb: process.resourceUsage().maxRSS / 1024,
    allreduceMs,
    allreduceMb,
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
async function run(dir: string, world: number, threads: number): Promise<RankFigures[]> {
  const port = await freePort();
  const ranks = Array.from({ length: world }, (_, rank) => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      BENCH_DIST_DIR: dir,
      BENCH_DIST_QUICK: quick ? '1' : '0',
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
    const one = await run(dir, 1, 2);
    const two = await run(dir, 2, 1);
    const r0 = one[0]!;
    console.log(
      `world size 1 (2 threads):   ${r0.imagesPerSecond.toFixed(2)} images/s, peak RSS ${r0.peakRssMb.toFixed(0)} MB`,
    );
    console.log(
      `world size 2 (1 thread each): ${two[0]!.imagesPerSecond.toFixed(2)} images/s (global), peak RSS ` +
        `${two.map((r) => r.peakRssMb.toFixed(0)).join(' + ')} MB`,
    );
    console.log(
      `gradient allreduce: ${two[0]!.allreduceMb.toFixed(1)} MB per step, ${two[0]!.allreduceMs!.toFixed(1)} ms ` +
        `(${((two[0]!.allreduceMb * 2 * 0.5) / (two[0]!.allreduceMs! / 1000) / 1000).toFixed(2)} GB/s bus bandwidth, ring of 2)`,
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
