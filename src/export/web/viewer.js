// The page's script: loads the exported model with onnxruntime-web, scores a dropped or chosen
// chest X-ray, and draws a class activation map from the 'features' output and the linear head.
// Everything runs here: the only requests are for the page's own files.
import * as ort from './ort/ort.wasm.min.mjs';

const $ = (id) => document.getElementById(id);
// `queue` runs one image at a time: a file dropped while another is scored waits for it.
const state = { config: null, session: null, last: null, queue: Promise.resolve() };

/** Shows `text` as the page's error (or clears it) and marks the page's state. */
function showError(text) {
  const box = $('error');
  box.textContent = text;
  box.hidden = false;
  $('status').textContent = '';
  document.body.dataset.state = 'error';
}

function clearError() {
  $('error').hidden = true;
  $('error').textContent = '';
}

// ---- reading the file -------------------------------------------------------------------------

/** 'png', 'jpeg' or null, from the first bytes. */
function sniff(bytes) {
  if (bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) {
    return 'png';
  }
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  return null;
}

/** Width and height from a PNG's IHDR or a JPEG's start-of-frame marker, read before decoding. */
function headerSize(bytes, format) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (format === 'png') {
    if (bytes.length < 25) return null;
    return { width: view.getUint32(16), height: view.getUint32(20), bitDepth: bytes[24] };
  }
  let at = 2;
  while (at + 9 < bytes.length) {
    if (bytes[at] !== 0xff) {
      at += 1;
      continue;
    }
    const marker = bytes[at + 1];
    // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { height: view.getUint16(at + 5), width: view.getUint16(at + 7) };
    }
    if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      at += 2;
      continue;
    }
    at += 2 + view.getUint16(at + 2);
  }
  return null;
}

/** The file's pixels as one grey channel (uint8), decoded by the browser without colour conversion. */
async function decodeGrey(file, bytes, format) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(new Blob([bytes], { type: `image/${format}` }), {
      colorSpaceConversion: 'none',
      premultiplyAlpha: 'none',
    });
  } catch {
    throw new Error(`${file.name}: the browser could not decode this ${format.toUpperCase()} file`);
  }
  const canvas = document.createElement('canvas');
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const context = canvas.getContext('2d', { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  const rgba = context.getImageData(0, 0, canvas.width, canvas.height).data;
  const grey = new Uint8Array(canvas.width * canvas.height);
  for (let i = 0; i < grey.length; i++) {
    const r = rgba[4 * i];
    const g = rgba[4 * i + 1];
    const b = rgba[4 * i + 2];
    // Grey files decode to r = g = b; a colour file is reduced to its luma (Rec. 601).
    grey[i] = r === g && g === b ? r : Math.round(0.299 * r + 0.587 * g + 0.114 * b);
  }
  return { width: canvas.width, height: canvas.height, grey };
}

// ---- the model's geometry: shorter side to the size, centred square (as the training cache) ----

/** Python's round(): halves go to the even neighbour. */
function roundHalfEven(value) {
  const floor = Math.floor(value);
  if (value - floor !== 0.5) return Math.round(value);
  return floor % 2 === 0 ? floor : floor + 1;
}

/** torchvision's Resize(size) then CenterCrop(size), as the training pipeline's resize plan. */
function resizePlan(width, height, size) {
  const tall = width <= height;
  const long = Math.max(size, Math.floor((size * (tall ? height : width)) / (tall ? width : height)));
  const scaled = tall ? { width: size, height: long } : { width: long, height: size };
  return {
    ...scaled,
    left: roundHalfEven((scaled.width - size) / 2),
    top: roundHalfEven((scaled.height - size) / 2),
  };
}

/**
 * Weights of a linear (triangle) filter from `inSize` samples to `outSize`, widened by the scale
 * when shrinking (antialiased, as the training pipeline's bilinear resize), for the output samples
 * `first`..`first + count - 1`. Beyond the edges the edge sample repeats, as libvips (sharp) extends
 * an image before filtering it.
 */
function filterTaps(inSize, outSize, first, count) {
  const scale = inSize / outSize;
  const support = Math.max(1, scale);
  const taps = [];
  for (let o = first; o < first + count; o++) {
    const centre = (o + 0.5) * scale;
    const indices = [];
    const weights = [];
    let total = 0;
    for (let i = Math.floor(centre - support); i <= Math.ceil(centre + support); i++) {
      const w = Math.max(0, 1 - Math.abs((i + 0.5 - centre) / support));
      if (w === 0) continue;
      indices.push(Math.min(inSize - 1, Math.max(0, i)));
      weights.push(w);
      total += w;
    }
    taps.push({ indices, weights: weights.map((w) => w / total) });
  }
  return taps;
}

/** The `size`×`size` model input (uint8 grey) cut from the image by the training geometry. */
function resizeCrop(image, size) {
  const plan = resizePlan(image.width, image.height, size);
  if (plan.width === image.width && plan.height === image.height) {
    const out = new Uint8Array(size * size);
    for (let y = 0; y < size; y++) {
      const from = (y + plan.top) * image.width + plan.left;
      out.set(image.grey.subarray(from, from + size), y * size);
    }
    return out;
  }
  const columns = filterTaps(image.width, plan.width, plan.left, size);
  const rows = filterTaps(image.height, plan.height, plan.top, size);
  // Horizontal pass over every input row, for the kept columns only; then the vertical pass.
  const wide = new Float32Array(image.height * size);
  for (let y = 0; y < image.height; y++) {
    const row = y * image.width;
    for (let x = 0; x < size; x++) {
      const { indices, weights } = columns[x];
      let sum = 0;
      for (let k = 0; k < weights.length; k++) sum += weights[k] * image.grey[row + indices[k]];
      wide[y * size + x] = sum;
    }
  }
  const out = new Uint8Array(size * size);
  for (let y = 0; y < size; y++) {
    const { indices, weights } = rows[y];
    for (let x = 0; x < size; x++) {
      let sum = 0;
      for (let k = 0; k < weights.length; k++) sum += weights[k] * wide[indices[k] * size + x];
      out[y * size + x] = Math.min(255, Math.max(0, Math.round(sum)));
    }
  }
  return out;
}

// ---- drawing ----------------------------------------------------------------------------------

function drawGrey(canvas, pixels, size) {
  canvas.width = size;
  canvas.height = size;
  const context = canvas.getContext('2d');
  const rgba = context.createImageData(size, size);
  for (let i = 0; i < pixels.length; i++) {
    rgba.data.set([pixels[i], pixels[i], pixels[i], 255], 4 * i);
  }
  context.putImageData(rgba, 0, 0);
}

/** A blue → cyan → yellow → red colour for t in 0..1. */
function heatColour(t) {
  const stops = [
    [0, 0, 0, 160],
    [0.35, 0, 200, 255],
    [0.65, 255, 230, 0],
    [1, 220, 20, 0],
  ];
  let i = 1;
  while (i < stops.length - 1 && t > stops[i][0]) i++;
  const [t0, ...c0] = stops[i - 1];
  const [t1, ...c1] = stops[i];
  const f = Math.min(1, Math.max(0, (t - t0) / (t1 - t0)));
  return c0.map((c, k) => Math.round(c + f * (c1[k] - c)));
}

/**
 * The class activation map of task `k` (Zhou et al., 2016): the head's weights over the feature
 * map's channels, Σ_c w_kc · F_c(y, x) + b_k, scaled to 0..1 and drawn upsampled (bilinear, by
 * the canvas) over the image.
 */
function drawCam(features, dims, k) {
  const [, channels, h, w] = dims;
  const { weight, bias } = state.config.head;
  const map = new Float32Array(h * w).fill(bias[k]);
  for (let c = 0; c < channels; c++) {
    const wc = weight[k][c];
    const offset = c * h * w;
    for (let p = 0; p < h * w; p++) map[p] += wc * features[offset + p];
  }
  let low = Infinity;
  let high = -Infinity;
  for (const v of map) {
    low = Math.min(low, v);
    high = Math.max(high, v);
  }
  const small = document.createElement('canvas');
  small.width = w;
  small.height = h;
  const context = small.getContext('2d');
  const rgba = context.createImageData(w, h);
  for (let p = 0; p < h * w; p++) {
    const t = high > low ? (map[p] - low) / (high - low) : 0;
    rgba.data.set([...heatColour(t), 255], 4 * p);
  }
  context.putImageData(rgba, 0, 0);
  const cam = $('cam');
  const size = state.config.imageSize;
  cam.width = size;
  cam.height = size;
  const target = cam.getContext('2d');
  target.imageSmoothingEnabled = true;
  target.drawImage(small, 0, 0, size, size);
  cam.dataset.task = state.config.tasks[k];
  cam.hidden = !$('cam-show').checked;
}

function showResults(probabilities) {
  const body = $('results').querySelector('tbody');
  body.replaceChildren();
  state.config.tasks.forEach((task, k) => {
    const p = probabilities[k];
    const row = document.createElement('tr');
    row.dataset.task = task;
    row.dataset.probability = String(p);
    const name = document.createElement('td');
    name.textContent = task;
    const value = document.createElement('td');
    value.textContent = `${(100 * p).toFixed(1)} %`;
    const bar = document.createElement('td');
    bar.className = 'bar';
    const fill = document.createElement('span');
    fill.style.width = `${(100 * p).toFixed(1)}%`;
    bar.append(fill);
    row.append(name, value, bar);
    body.append(row);
  });
}

// ---- scoring ----------------------------------------------------------------------------------

async function handleFile(file) {
  clearError();
  if (state.session === null) {
    showError('The model is not loaded yet.');
    return;
  }
  document.body.dataset.state = 'running';
  $('status').textContent = `Reading ${file.name}…`;
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    const format = sniff(bytes);
    if (format === null) throw new Error(`${file.name}: not a PNG or JPEG image`);
    const header = headerSize(bytes, format);
    if (header === null) throw new Error(`${file.name}: the ${format.toUpperCase()} header is damaged`);
    const limit = state.config.maxImageSide;
    if (header.width > limit || header.height > limit || header.width < 1 || header.height < 1) {
      throw new Error(
        `${file.name}: the image is ${header.width}×${header.height} px; this page takes sides of 1 to ${limit} px`,
      );
    }
    const image = await decodeGrey(file, bytes, format);
    const size = state.config.imageSize;
    const pixels = resizeCrop(image, size);
    const input = new Float32Array(size * size);
    for (let i = 0; i < input.length; i++) input[i] = pixels[i] / 255;
    $('status').textContent = 'Running the model…';
    const started = performance.now();
    const outputs = await state.session.run({ image: new ort.Tensor('float32', input, [1, 1, size, size]) });
    const elapsed = performance.now() - started;
    const probabilities = Array.from(outputs.probabilities.data);
    state.last = { pixels, probabilities, features: outputs.features ?? null };
    drawGrey($('image'), pixels, size);
    showResults(probabilities);
    $('caption').textContent =
      `${file.name}: ${image.width}×${image.height} px, shown as the model sees it (${size}×${size})`;
    const camReady = outputs.features !== undefined && state.config.head !== null;
    $('cam-controls').hidden = !camReady;
    $('cam').hidden = !camReady;
    if (camReady) {
      const select = $('cam-task');
      const best = probabilities.indexOf(Math.max(...probabilities));
      select.value = String(best);
      drawCam(outputs.features.data, outputs.features.dims, best);
    }
    $('output').hidden = false;
    // The canvas holds 8 bits: a 16-bit PNG loses its low byte here, where the training cache stretches
    // it over its own darkest..brightest value first, so such a file is scored on other pixels.
    const wide =
      header.bitDepth === 16
        ? ' This 16-bit PNG was reduced to 8 bits by the browser, without the training contrast stretch: convert it to 8 bits for the training view.'
        : '';
    $('status').textContent = `Scored in ${elapsed.toFixed(0)} ms.${wide}`;
    document.body.dataset.inferenceMs = elapsed.toFixed(1);
    document.body.dataset.state = 'done';
  } catch (error) {
    showError(error instanceof Error ? error.message : String(error));
  }
}

function enqueue(file) {
  document.body.dataset.state = 'running';
  state.queue = state.queue.then(() => handleFile(file));
}

// ---- start ------------------------------------------------------------------------------------

async function start() {
  const started = performance.now();
  const response = await fetch('model.json');
  if (!response.ok) throw new Error(`model.json: ${response.status} ${response.statusText}`);
  state.config = await response.json();
  ort.env.wasm.wasmPaths = new URL('./ort/', window.location.href).href;
  state.session = await ort.InferenceSession.create(state.config.model, { executionProviders: ['wasm'] });
  const { arch, tasks, imageSize } = state.config;
  $('model-line').textContent =
    `${arch}, ${tasks.length} task${tasks.length === 1 ? '' : 's'} at ${imageSize}×${imageSize} px, running on onnxruntime-web (WebAssembly).`;
  const select = $('cam-task');
  tasks.forEach((task, k) => select.append(new Option(task, String(k))));
  select.addEventListener('change', () => {
    const last = state.last;
    if (last?.features) drawCam(last.features.data, last.features.dims, Number(select.value));
  });
  $('cam-show').addEventListener('change', () => {
    $('cam').hidden = !$('cam-show').checked;
  });
  document.body.dataset.loadMs = (performance.now() - started).toFixed(1);
  document.body.dataset.state = 'ready';
  $('status').textContent = 'Ready.';
}

$('file').addEventListener('change', (event) => {
  const file = event.target.files?.[0];
  if (file !== undefined) enqueue(file);
  event.target.value = '';
});
const drop = $('drop');
drop.addEventListener('dragover', (event) => {
  event.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (event) => {
  event.preventDefault();
  drop.classList.remove('over');
  const file = event.dataTransfer?.files?.[0];
  if (file !== undefined) enqueue(file);
});
window.addEventListener('unhandledrejection', (event) => showError(String(event.reason?.message ?? event.reason)));
start().catch((error) =>
  showError(`Could not load the model: ${error instanceof Error ? error.message : String(error)}`),
);
