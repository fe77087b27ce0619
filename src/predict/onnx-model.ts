/**
 * A classifier that `moco-cxr export` wrote as ONNX, run with onnxruntime-web
 * (its wasm backend runs in Node as in the browser, so no native runtime is
 * needed). The tasks and the input side come from the file's `moco_cxr.*`
 * metadata; the graph takes grey pixels / 255 and normalizes them itself, so
 * the caller only decodes, resizes and crops.
 */
import { readFileSync } from 'node:fs';

import type * as OnnxRuntime from 'onnxruntime-web';

import { NORMALIZATIONS, type NormalizationName } from '../data/augment.js';
import { type Preprocessing } from '../data/preprocessing.js';
import { decodeModel, type ModelMessage } from '../export/onnx-proto.js';
import { ONNX_NAMES } from '../export/onnx.js';

type Ort = typeof OnnxRuntime;
type Session = OnnxRuntime.InferenceSession;

/** A loaded ONNX classifier (see {@link readOnnxClassifier}); `release` frees its session. */
export interface OnnxClassifier {
  file: string;
  tasks: string[];
  /** What the file records: the input side and the normalization its graph applies. */
  preprocessing: Preprocessing;
  /** Probabilities `[count, tasks]` (row-major) of `count` grey squares of side `size` (8-bit, row-major). */
  score(pixels: Uint8Array, count: number, size: number): Promise<Float32Array>;
  release(): Promise<void>;
}

/** Whether `file` names an ONNX model (by its extension, as `predict --model` tells them apart). */
export function isOnnxFile(file: string): boolean {
  return /\.onnx$/i.test(file);
}

function metadataOf(model: ModelMessage, file: string): Map<string, string> {
  const entries = new Map((model.metadataProps ?? []).map((entry) => [entry.key, entry.value]));
  if (!entries.has('moco_cxr.tasks')) {
    throw new Error(`${file}: no 'moco_cxr.tasks' metadata; expected an ONNX file that moco-cxr export wrote`);
  }
  return entries;
}

function parsedTasks(text: string, file: string): string[] {
  let tasks: unknown;
  try {
    tasks = JSON.parse(text);
  } catch {
    tasks = undefined;
  }
  if (!Array.isArray(tasks) || tasks.length === 0 || !tasks.every((task) => typeof task === 'string')) {
    throw new Error(`${file}: metadata 'moco_cxr.tasks' is not a JSON list of task names: ${text}`);
  }
  return tasks;
}

function parsedImageSize(text: string | undefined, file: string): number {
  const size = Number(text);
  if (text === undefined || !Number.isInteger(size) || size < 1) {
    throw new Error(`${file}: metadata 'moco_cxr.image_size' is not a positive integer: ${String(text)}`);
  }
  return size;
}

/** The named normalization whose statistics the graph records (the names the checkpoint format allows). */
function normalizationName(text: string | undefined, file: string): NormalizationName {
  let stats: { mean?: unknown; std?: unknown } | undefined;
  try {
    stats = JSON.parse(text ?? '') as typeof stats;
  } catch {
    stats = undefined;
  }
  // The exporter writes the named statistics' own doubles, so a match is exact up to JSON's round trip.
  const same = (a: unknown, b: readonly number[]): boolean =>
    Array.isArray(a) && a.length === b.length && a.every((v, i) => Math.abs(Number(v) - b[i]!) <= 1e-12);
  for (const [name, known] of Object.entries(NORMALIZATIONS)) {
    if (same(stats?.mean, known.mean) && same(stats?.std, known.std)) return name as NormalizationName;
  }
  throw new Error(
    `${file}: metadata 'moco_cxr.normalization' ${String(text)} is none of ${Object.keys(NORMALIZATIONS).join(', ')}`,
  );
}

let ortModule: Promise<Ort> | undefined;

/** onnxruntime-web, loaded on first use so that scoring PyTorch files never loads it. */
async function onnxRuntime(): Promise<Ort> {
  ortModule ??= import('onnxruntime-web').then((ort) => {
    // One wasm thread: the single-threaded build needs no worker script, which Node would have to locate.
    ort.env.wasm.numThreads = 1;
    return ort;
  });
  return ortModule;
}

/**
 * Reads an ONNX classifier that `moco-cxr export` wrote and opens an
 * onnxruntime-web session on it. A file that is missing, not ONNX, or
 * lacking moco-cxr's metadata throws an error naming it.
 */
export async function readOnnxClassifier(file: string): Promise<OnnxClassifier> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(readFileSync(file));
  } catch (error) {
    throw new Error(`${file}: cannot read the ONNX model (${(error as Error).message})`);
  }
  let model: ModelMessage;
  try {
    model = decodeModel(bytes);
  } catch (error) {
    throw new Error(`${file}: not an ONNX model (${(error as Error).message})`);
  }
  const metadata = metadataOf(model, file);
  const tasks = parsedTasks(metadata.get('moco_cxr.tasks')!, file);
  const imageSize = parsedImageSize(metadata.get('moco_cxr.image_size'), file);
  const normalize = normalizationName(metadata.get('moco_cxr.normalization'), file);
  // The exporter's normalization constants are [1, C, 1, 1]: C is the first convolution's input channels.
  const scale = model.graph?.initializer?.find((tensor) => tensor.name === 'normalize.scale');
  const channels = scale?.dims?.[1] === 1 ? 1 : 3;
  const ort = await onnxRuntime();
  let session: Session;
  try {
    session = await ort.InferenceSession.create(bytes);
  } catch (error) {
    throw new Error(`${file}: onnxruntime cannot load the model (${(error as Error).message})`);
  }
  if (!session.inputNames.includes(ONNX_NAMES.input) || !session.outputNames.includes(ONNX_NAMES.probabilities)) {
    await session.release();
    throw new Error(
      `${file}: expected input '${ONNX_NAMES.input}' and output '${ONNX_NAMES.probabilities}', ` +
        `got inputs ${session.inputNames.join(', ')} and outputs ${session.outputNames.join(', ')}`,
    );
  }
  return {
    file,
    tasks,
    preprocessing: { normalize, imageSize, channels },
    async score(pixels, count, size) {
      const input = Float32Array.from(pixels, (value) => value / 255);
      const feeds = { [ONNX_NAMES.input]: new ort.Tensor('float32', input, [count, 1, size, size]) };
      const outputs = await session.run(feeds, [ONNX_NAMES.probabilities]);
      const probabilities = outputs[ONNX_NAMES.probabilities]!;
      if (
        probabilities.dims.length !== 2 ||
        probabilities.dims[0] !== count ||
        probabilities.dims[1] !== tasks.length
      ) {
        throw new Error(
          `${file}: output '${ONNX_NAMES.probabilities}' is [${probabilities.dims.join(', ')}], ` +
            `expected [${count}, ${tasks.length}] (one per task of the metadata)`,
        );
      }
      return probabilities.data as Float32Array;
    },
    release: () => session.release(),
  };
}
