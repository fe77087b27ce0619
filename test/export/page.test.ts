/// <reference lib="dom" />
/**
 * The exported page in real headless Chromium (Debian's chromium, driven by
 * playwright-core): served by `serveFolder`, it loads the model with
 * onnxruntime-web, scores an X-ray set on its file input, and shows the same
 * probabilities as our libtorch forward on the same pixels; a non-image file
 * and an oversized image show an error and leave the page usable; it requests
 * nothing but its own files.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { chromium, type BrowserContext, type Page } from 'playwright-core';
import sharp from 'sharp';

import { normalize } from '../../src/data/augment.js';
import { decodeResized } from '../../src/data/decode.js';
import { exportModel, serveFolder, type RunningServer } from '../../src/export/index.js';
import { createModel, type Backbone } from '../../src/models/index.js';
import * as torch from '../../src/torch/index.js';
import { assertClose, chainLength } from '../helpers/tolerance.js';

const CHROMIUM = '/usr/bin/chromium';
const SIZE = 64;
const XRAYS = '/work/shared/data/tb-shenzhen-montgomery-128/test';
const TASKS = ['Tuberculosis', 'Effusion'];

const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is absent (apt-get install chromium)`;

let work: string;
let server: RunningServer;
let context: BrowserContext;
let page: Page;
let model: Backbone;
const requested: string[] = [];

/** A smooth synthetic grey radiograph-like image of `side` px, for machines without the shared data. */
async function syntheticPng(path: string, side: number): Promise<string> {
  const pixels = new Uint8Array(side * side);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) pixels[y * side + x] = Math.round(128 + 100 * Math.sin(x / 7) * Math.cos(y / 11));
  }
  await sharp(pixels, { raw: { width: side, height: side, channels: 1 } })
    .png()
    .toFile(path);
  return path;
}

/** A real 128 px radiograph from the shared data, or a synthetic one of that size. */
async function largerXray(): Promise<string> {
  const real = existsSync(XRAYS)
    ? readdirSync(XRAYS)
        .filter((f) => f.endsWith('.png'))
        .sort()[0]
    : undefined;
  if (real !== undefined) return join(XRAYS, real);
  process.stderr.write(`${XRAYS} is absent: using a synthetic image\n`);
  return syntheticPng(join(work, 'synthetic-128.png'), 128);
}

/** A grey PNG at the model's size: the larger X-ray resized by the training pipeline's own decode. */
async function xrayAtModelSize(path: string): Promise<void> {
  const pixels = await decodeResized(await largerXray(), { size: SIZE });
  await sharp(pixels, { raw: { width: SIZE, height: SIZE, channels: 1 } })
    .png()
    .toFile(path);
}

/** Our probabilities for a grey uint8 square: normalize as in training, forward, sigmoid. */
function libtorchProbabilities(pixels: Uint8Array): number[] {
  return torch.noGrad(() =>
    torch.tidy(() => {
      const x = torch.tensor(
        Float32Array.from(pixels, (v) => v / 255),
        [1, 1, SIZE, SIZE],
      );
      const logits = model.forward(normalize(x, 'imagenet', 3)).data() as Float32Array;
      return Array.from(logits, (z) => 1 / (1 + Math.exp(-z)));
    }),
  );
}

async function score(path: string): Promise<{ state: string; probabilities: number[]; error: string }> {
  await page.setInputFiles('#file', path);
  await page.waitForFunction(() => document.body.dataset.state === 'done' || document.body.dataset.state === 'error');
  return page.evaluate(() => ({
    state: document.body.dataset.state ?? '',
    probabilities: Array.from(document.querySelectorAll('#results tbody tr')).map((row) =>
      Number((row as HTMLElement).dataset.probability),
    ),
    error:
      document.getElementById('error')?.hidden === false ? (document.getElementById('error')?.textContent ?? '') : '',
  }));
}

before(async () => {
  if (skip !== false) return;
  work = mkdtempSync(join(tmpdir(), 'moco-cxr-page-'));
  torch.manualSeed(3);
  model = createModel('resnet18', { numClasses: TASKS.length });
  model.eval();
  const weights = join(work, 'model.pt');
  torch.save({ state_dict: model.stateDict(), tasks: TASKS }, weights);
  exportModel({ model: weights, web: join(work, 'page'), imageSize: SIZE, withFeatures: true });
  server = await serveFolder(join(work, 'page'), { port: 0 });
  context = await chromium.launchPersistentContext(join(work, 'profile'), {
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
  page = context.pages()[0] ?? (await context.newPage());
  page.on('request', (request) => requested.push(request.url()));
  await page.setViewportSize({ width: 960, height: 640 });
  await page.goto(server.url);
  await page.waitForFunction(
    () => document.body.dataset.state === 'ready' || document.body.dataset.state === 'error',
    null,
    {
      timeout: 60_000,
    },
  );
});

after(async () => {
  if (skip !== false) return;
  await context?.close();
  await server?.close();
  model?.dispose();
  rmSync(work, { recursive: true, force: true });
});

test(
  'the page loads the model and shows the libtorch probabilities for an X-ray at the model size',
  { skip },
  async () => {
    assert.equal(await page.evaluate(() => document.body.dataset.state), 'ready');
    const png = join(work, 'xray.png');
    await xrayAtModelSize(png);
    const shown = await score(png);
    assert.equal(shown.state, 'done', shown.error);
    // At the model's size the page takes the decoded pixels as they are (no resampling), so only
    // float32 rounding separates onnxruntime-web's wasm kernels from libtorch's: the tolerance of the ONNX tests.
    const expected = libtorchProbabilities(await decodeResized(png, { size: SIZE }));
    const ops = chainLength(model.parameters().map((p) => p.shape));
    assertClose(shown.probabilities, expected, 'page probabilities', { ops, k: 4, scale: 1 });
    const cam = await page.evaluate(() => document.getElementById('cam')?.dataset.task);
    assert.ok(TASKS.includes(cam as string), 'a heat map is drawn for one of the tasks');
    if (process.env.VIEWER_SCREENSHOT !== undefined)
      await page.screenshot({ path: process.env.VIEWER_SCREENSHOT, fullPage: true });
  },
);

test('a larger image is resized as the training cache resizes it, to within a grey level', { skip }, async () => {
  const original = await largerXray();
  const shown = await score(original);
  assert.equal(shown.state, 'done', shown.error);
  // The page's own antialiased linear filter against sharp's (libvips): the same geometry, other arithmetic.
  const pagePixels = await page.evaluate(() => {
    const canvas = document.getElementById('image') as HTMLCanvasElement;
    const rgba = canvas.getContext('2d')?.getImageData(0, 0, canvas.width, canvas.height).data ?? [];
    return Array.from({ length: rgba.length / 4 }, (_, i) => rgba[4 * i] as number);
  });
  const ours = await decodeResized(original, { size: SIZE });
  let worst = 0;
  let total = 0;
  for (let i = 0; i < ours.length; i++) {
    const d = Math.abs((pagePixels[i] as number) - (ours[i] as number));
    worst = Math.max(worst, d);
    total += d;
  }
  process.stderr.write(`resize: worst ${worst} grey levels, mean ${(total / ours.length).toFixed(3)}\n`);
  assert.ok(worst <= 1, `page and sharp resize differ by up to ${worst} grey levels`);
  assert.ok(total / ours.length < 0.5, 'most pixels are equal');
});

test('a non-image file and an oversized image show an error, and the page stays usable', { skip }, async () => {
  const text = join(work, 'notes.png');
  writeFileSync(text, 'not an image at all\n');
  const bad = await score(text);
  assert.equal(bad.state, 'error');
  assert.match(bad.error, /notes\.png: not a PNG or JPEG image/);

  // A PNG header announcing 100000 × 100000 pixels: refused before any decoding.
  const huge = Buffer.alloc(33);
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(huge, 0);
  huge.writeUInt32BE(13, 8);
  huge.write('IHDR', 12, 'latin1');
  huge.writeUInt32BE(100000, 16);
  huge.writeUInt32BE(100000, 20);
  huge[24] = 8;
  writeFileSync(join(work, 'huge.png'), huge);
  const big = await score(join(work, 'huge.png'));
  assert.equal(big.state, 'error');
  assert.match(big.error, /huge\.png: the image is 100000×100000 px; this page takes sides of 1 to \d+ px/);

  const png = join(work, 'again.png');
  await xrayAtModelSize(png);
  const again = await score(png);
  assert.equal(again.state, 'done', again.error);
  assert.equal(again.probabilities.length, TASKS.length);
});

test('the page requested only its own files', { skip }, () => {
  assert.ok(requested.length > 0);
  const foreign = requested.filter(
    (url) => !url.startsWith(server.url) && !url.startsWith('blob:') && !url.startsWith('data:'),
  );
  assert.deepEqual(foreign, []);
});
