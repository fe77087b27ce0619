/// <reference lib="dom" />
/**
 * The exported model's speed against the library's own forward, on one machine:
 *  1. onnxruntime-node (CPU) against our libtorch forward on the same batch
 *     (8 × 1 × 224 × 224 grey images, eval mode, no grad), images/s;
 *  2. the exported page in headless Chromium (onnxruntime-web, WebAssembly):
 *     page load to a ready model, the first and a second inference of one
 *     224 px image, as the page measures them and as the test driver sees them.
 *
 * Run: `npm run bench -- export` (`--quick`: ResNet-18 only, fewer repeats;
 * `--screenshot docs/viewer.png` also saves the page after its first image).
 * The figures are only as quiet as the machine: other processes share its cores.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';

import * as ort from 'onnxruntime-node';
import { chromium } from 'playwright-core';

import { normalize } from '../src/data/augment.js';
import { exportModel, exportOnnx, serveFolder } from '../src/export/index.js';
import { createModel } from '../src/models/index.js';
import * as torch from '../src/torch/index.js';

const quick = process.argv.includes('--quick');
const screenshotAt = process.argv.indexOf('--screenshot');
const screenshot = screenshotAt < 0 ? undefined : process.argv[screenshotAt + 1];
const ARCHS = quick ? ['resnet18'] : ['resnet18', 'resnet50', 'densenet121'];
const BATCH = 8;
const SIZE = 224;
const REPEATS = quick ? 2 : 5;
const KERMANY = '/work/shared/data/pneumonia-kermany-224/test/PNEUMONIA';
const threads = torch.getNumThreads();

console.log(
  `machine: ${availableParallelism()} cores, load average ${loadavg()[0]?.toFixed(1)} (shared with other jobs), ` +
    `libtorch threads ${threads}, onnxruntime intra-op threads ${threads}`,
);

/** Median seconds of `repeats` runs of `fn` after one warm-up run. */
async function median(fn: () => Promise<void> | void, repeats: number): Promise<number> {
  await fn();
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const start = performance.now();
    await fn();
    times.push((performance.now() - start) / 1000);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)] as number;
}

const images = torch.rand([BATCH, 1, SIZE, SIZE]);
const pixels = images.data() as Float32Array;
for (const arch of ARCHS) {
  torch.manualSeed(0);
  const model = createModel(arch, { numClasses: 5 });
  model.eval();
  const exportStart = performance.now();
  const { bytes } = exportOnnx(model, { imageSize: SIZE });
  const exportSeconds = (performance.now() - exportStart) / 1000;
  const forward = (format: 'contiguous' | 'channelsLast'): Promise<number> =>
    median(
      () =>
        torch.noGrad(() =>
          torch.tidy(() => void model.forward(normalize(images, 'imagenet', 3).contiguous(format)).data()),
        ),
      REPEATS,
    );
  const ours = await forward('contiguous');
  // The library's CPU default for training: weights and inputs channels-last (oneDNN skips its reorders).
  model.toMemoryFormat('channelsLast');
  const oursLast = await forward('channelsLast');
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: threads, interOpNumThreads: 1 });
  const feed = { image: new ort.Tensor('float32', pixels, [BATCH, 1, SIZE, SIZE]) };
  const theirs = await median(async () => void (await session.run(feed)), REPEATS);
  await session.release();
  model.dispose();
  console.log(
    `${arch.padEnd(12)} export ${exportSeconds.toFixed(2)} s (${(bytes.length / 2 ** 20).toFixed(1)} MiB)  ` +
      `libtorch ${(BATCH / ours).toFixed(1).padStart(6)} images/s (channels-last ${(BATCH / oursLast).toFixed(1)})  onnxruntime-node ${(BATCH / theirs).toFixed(1).padStart(6)} images/s  ` +
      `ratio onnxruntime/libtorch ${(Math.min(ours, oursLast) / theirs).toFixed(2)}x (against libtorch's faster layout)`,
  );
}
images.dispose();

// ---- the page in Chromium ------------------------------------------------------------------------
const CHROMIUM = '/usr/bin/chromium';
if (!existsSync(CHROMIUM)) {
  console.log(`page: skipped, ${CHROMIUM} is absent`);
} else {
  const work = mkdtempSync(join(tmpdir(), 'moco-cxr-bench-page-'));
  try {
    torch.manualSeed(0);
    const model = createModel('resnet18', { numClasses: 3 });
    const weights = join(work, 'model.pt');
    torch.save({ state_dict: model.stateDict(), tasks: ['Pneumonia', 'Effusion', 'Cardiomegaly'] }, weights);
    model.dispose();
    exportModel({ model: weights, web: join(work, 'page'), imageSize: SIZE, withFeatures: true });
    const server = await serveFolder(join(work, 'page'), { port: 0 });
    const context = await chromium.launchPersistentContext(join(work, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      await page.setViewportSize({ width: 960, height: 600 });
      const loadStart = performance.now();
      await page.goto(server.url);
      await page.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 120_000 });
      const loadSeconds = (performance.now() - loadStart) / 1000;
      const inPage = await page.evaluate(() => Number(document.body.dataset.loadMs));
      const xray = existsSync(KERMANY) ? join(KERMANY, readdirSync(KERMANY).sort()[0] as string) : undefined;
      if (xray === undefined) throw new Error(`${KERMANY} is absent: the page benchmark needs a real 224 px X-ray`);
      const inferences: { wall: number; page: number }[] = [];
      for (let i = 0; i < 2; i++) {
        const start = performance.now();
        await page.setInputFiles('#file', xray);
        await page.waitForFunction(() => document.body.dataset.state === 'done', null, { timeout: 120_000 });
        inferences.push({
          wall: performance.now() - start,
          page: await page.evaluate(() => Number(document.body.dataset.inferenceMs)),
        });
        if (i === 0 && screenshot !== undefined) await page.screenshot({ path: screenshot, fullPage: true });
        await page.evaluate(() => (document.body.dataset.state = 'ready'));
      }
      const [first, second] = inferences as [{ wall: number; page: number }, { wall: number; page: number }];
      console.log(
        `page (resnet18, ${SIZE} px, onnxruntime-web wasm): load to ready ${loadSeconds.toFixed(2)} s (in page ${(inPage / 1000).toFixed(2)} s); ` +
          `first inference ${first.page.toFixed(0)} ms (file to result ${first.wall.toFixed(0)} ms); ` +
          `second ${second.page.toFixed(0)} ms (${second.wall.toFixed(0)} ms)`,
      );
    } finally {
      await context.close();
      await server.close();
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
