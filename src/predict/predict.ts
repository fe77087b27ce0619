/**
 * Scoring images with a trained classifier: each file decoded as the data path
 * decodes it (`decodeResized`: shorter side to the input side, centred square,
 * grey), shown to the network with the preprocessing its file records, and
 * given one probability per task. A file that cannot be read is reported with
 * its reason and the rest are scored; images with study ids also get per-study
 * scores (the max over a study's images, as MoCo-CXR scores CheXpert).
 */
import { type NormalizationName } from '../data/augment.js';
import { decodeResized } from '../data/decode.js';
import { errorText } from '../data/image-error.js';
import { evaluationView } from '../data/images.js';
import { type Preprocessing, withCheckpointPreprocessing } from '../data/preprocessing.js';
import { type LoadedClassifier, readClassifier } from '../downstream/classifier-file.js';
import { aggregateByStudy } from '../eval/studies.js';
import * as torch from '../torch/index.js';
import { abortError } from '../util/abort.js';
import { Progress } from '../util/progress.js';
import { type PredictInput } from './inputs.js';
import { isOnnxFile, type OnnxClassifier, readOnnxClassifier } from './onnx-model.js';

type Tensor = torch.Tensor;

/**
 * How to score. Unset `normalize` and `imageSize` are the model's; an ONNX
 * model takes no `normalize` (its graph holds it), no `forward` and only the CPU.
 */
export interface PredictOptions {
  normalize?: NormalizationName;
  imageSize?: number;
  /** Images per forward pass (default 16). */
  batchSize?: number;
  device?: string;
  /** Where warnings and bad files are reported (default: standard error). */
  log?: (line: string) => void;
  /** Label of a progress line on standard error; none when undefined. */
  progress?: string;
  plainProgress?: boolean;
  signal?: AbortSignal;
  /**
   * Called once per batch instead of the plain forward pass, to compute more
   * than the probabilities (Grad-CAM): returns the `[B, tasks]` probabilities.
   */
  forward?: (model: LoadedClassifier, images: Tensor, batch: DecodedImage[]) => Promise<Tensor> | Tensor;
}

/** An image of a batch: the input and its decoded grey square (`imageSize`², row-major). */
export interface DecodedImage {
  input: PredictInput;
  pixels: Uint8Array;
}

/** The scores of one image, or why it has none. */
export interface ImagePrediction extends PredictInput {
  /** One probability per task, in the model's task order; absent when the file could not be read. */
  probabilities?: number[];
  /** Why the file could not be scored (`not found`, `not an image: ...`). */
  error?: string;
}

/** A study's scores: per task the max over its scored images. */
export interface StudyPrediction {
  studyId: string;
  images: number;
  probabilities: number[];
}

/** What a prediction run gives. */
export interface Predictions {
  /** The model file. */
  model: string;
  tasks: string[];
  /** The preprocessing the images were scored with. */
  preprocessing: Preprocessing;
  /** Every input, in order, scored or with its error. */
  images: ImagePrediction[];
  /** Per-study scores, where some study holds more than one scored image; else empty. */
  studies: StudyPrediction[];
  /** Inputs that could not be scored. */
  failed: number;
}

async function decodeBatch(inputs: readonly PredictInput[], size: number): Promise<(Uint8Array | Error)[]> {
  return Promise.all(
    inputs.map((input) =>
      decodeResized(input.path, { size, name: input.id }).catch((error: unknown) =>
        error instanceof Error ? error : new Error(errorText(error)),
      ),
    ),
  );
}

/** The reason of a decode failure without the file name in front (the output names the file). */
function reasonOf(error: Error, input: PredictInput): string {
  const message = (error as { reason?: unknown }).reason;
  if (typeof message === 'string') return message;
  return error.message.startsWith(`${input.id}: `) ? error.message.slice(input.id.length + 2) : error.message;
}

/** Per-study maxima over the scored images that carry a study id; empty unless a study holds two or more. */
export function studyScores(images: readonly ImagePrediction[], tasks: readonly string[]): StudyPrediction[] {
  const scored = images.filter((image) => image.probabilities !== undefined && image.studyId !== undefined);
  const studyIds = scored.map((image) => image.studyId!);
  if (new Set(studyIds).size === studyIds.length) return [];
  const zeros = new Float64Array(scored.length);
  const perTask = tasks.map((_, t) =>
    aggregateByStudy(
      studyIds,
      scored.map((image) => image.probabilities![t]!),
      zeros,
    ),
  );
  const counts = new Map<string, number>();
  for (const id of studyIds) counts.set(id, (counts.get(id) ?? 0) + 1);
  return perTask[0]!.studyIds.map((studyId, s) => ({
    studyId,
    images: counts.get(studyId)!,
    probabilities: perTask.map((task) => task.scores[s]!),
  }));
}

/** The ONNX model's refusals of options only a PyTorch classifier has. */
function checkOnnxOptions(file: string, options: PredictOptions): void {
  if (options.normalize !== undefined) {
    throw new RangeError(`normalize: ${file} is an ONNX model, whose graph holds its normalization; leave it unset`);
  }
  if (options.forward !== undefined) {
    throw new RangeError(`${file} is an ONNX model: Grad-CAM needs the PyTorch classifier file it was exported from`);
  }
  if ((options.device ?? 'cpu') !== 'cpu') {
    throw new RangeError(`device: ${file} is an ONNX model, which runs on the CPU (onnxruntime-web's wasm backend)`);
  }
}

/**
 * Scores `inputs` with the classifier in `model`: a file (a PyTorch
 * classifier, or an `.onnx` file that `moco-cxr export` wrote), or one already
 * read with `readClassifier` or `readOnnxClassifier`, which stays the
 * caller's. Decoding of the next batch overlaps the network's pass over the
 * current one. Bad files are reported through `log` and in the result, never
 * thrown; a wrong model file throws, naming it.
 */
export async function predict(
  model: string | LoadedClassifier | OnnxClassifier,
  inputs: readonly PredictInput[],
  options: PredictOptions = {},
): Promise<Predictions> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const onnx = typeof model === 'string' ? isOnnxFile(model) : 'score' in model;
  // Refused before an ONNX file is read, so a wrong option costs no session.
  if (onnx) checkOnnxOptions(typeof model === 'string' ? model : model.file, options);
  const classifier = typeof model !== 'string' ? model : onnx ? await readOnnxClassifier(model) : readClassifier(model);
  try {
    const chosen = withCheckpointPreprocessing(
      { normalize: options.normalize, imageSize: options.imageSize },
      classifier.preprocessing,
      classifier.file,
      log,
    );
    const preprocessing: Preprocessing = {
      normalize: chosen.normalize!,
      imageSize: chosen.imageSize!,
      channels: classifier.preprocessing.channels,
    };
    const batchSize = options.batchSize ?? 16;
    const size = preprocessing.imageSize;
    let score: (good: DecodedImage[]) => Promise<Float32Array>;
    if ('score' in classifier) {
      // pixels / 255 as the graph expects; the graph normalizes and replicates grey itself.
      score = (good) => classifier.score(batchPixels(good, size), good.length, size);
    } else {
      const device = torch.checkDevice(options.device ?? 'cpu');
      const view = evaluationView(preprocessing.imageSize, preprocessing.normalize);
      classifier.model.to(device);
      classifier.model.eval();
      score = (good) => scoreBatch(classifier, good, size, device, view, options.forward);
    }

    const images: ImagePrediction[] = [];
    let failed = 0;
    const progress =
      options.progress === undefined
        ? undefined
        : new Progress(options.progress, inputs.length, { plain: options.plainProgress });
    const batches: PredictInput[][] = [];
    for (let i = 0; i < inputs.length; i += batchSize) batches.push(inputs.slice(i, i + batchSize));
    try {
      let next = batches.length > 0 ? decodeBatch(batches[0]!, size) : undefined;
      for (let b = 0; b < batches.length; b++) {
        const batch = batches[b]!;
        const decoded = await next!;
        next = b + 1 < batches.length ? decodeBatch(batches[b + 1]!, size) : undefined;
        const good: DecodedImage[] = [];
        const rows: ImagePrediction[] = batch.map((input, i) => {
          const result = decoded[i]!;
          if (result instanceof Error) {
            failed++;
            const error = reasonOf(result, input);
            log(`bad file ${input.id}: ${error}`);
            return { ...input, error };
          }
          good.push({ input, pixels: result });
          return { ...input };
        });
        if (good.length > 0) {
          const probabilities = await score(good);
          let k = 0;
          for (const row of rows) {
            if (row.error !== undefined) continue;
            row.probabilities = Array.from(
              probabilities.subarray(k * classifier.tasks.length, (k + 1) * classifier.tasks.length),
            );
            k++;
          }
        }
        images.push(...rows);
        progress?.update(images.length, `${failed} bad`);
        if (options.signal?.aborted === true) {
          await next; // Let the decodes in flight finish before leaving.
          throw abortError();
        }
      }
    } finally {
      progress?.finish();
    }
    if (failed > 0) log(`${failed} of ${inputs.length} files could not be scored (listed above and in the output)`);
    return {
      model: classifier.file,
      tasks: [...classifier.tasks],
      preprocessing,
      images,
      studies: studyScores(images, classifier.tasks),
      failed,
    };
  } finally {
    if (typeof model === 'string') {
      if ('score' in classifier) await classifier.release();
      else classifier.model.dispose();
    }
  }
}

/** The batch's grey squares, one after another. */
function batchPixels(good: DecodedImage[], size: number): Uint8Array {
  const pixels = new Uint8Array(good.length * size * size);
  good.forEach((image, i) => pixels.set(image.pixels, i * size * size));
  return pixels;
}

async function scoreBatch(
  classifier: LoadedClassifier,
  good: DecodedImage[],
  size: number,
  device: torch.Device,
  view: ReturnType<typeof evaluationView>,
  forward: PredictOptions['forward'],
): Promise<Float32Array> {
  const pixels = batchPixels(good, size);
  const images = torch.tidy(() => {
    const raw = torch.tensor(pixels, [good.length, 1, size, size]);
    return view.evaluate((device === 'cpu' ? raw : raw.to(device)).float().div_(255));
  });
  try {
    const probabilities =
      forward === undefined
        ? torch.noGrad(() => torch.tidy(() => classifier.model.forward(images).sigmoid().to('cpu').contiguous()))
        : await forward(classifier, images, good);
    try {
      return probabilities.data() as Float32Array;
    } finally {
      probabilities.dispose();
    }
  } finally {
    images.dispose();
  }
}
