/**
 * `moco-cxr predict --model FILE [--out FILE.csv|.json] IMAGES_OR_SOURCE…`:
 * scores image files, folders and `KIND:PATH` sources with a classifier that
 * `moco-cxr finetune` wrote (or its `moco-cxr export` ONNX file), with the
 * preprocessing its file records.
 */
import { flagsOf } from '../config/settings.js';
import { readClassifier } from '../downstream/classifier-file.js';
import {
  camWriter,
  isOnnxFile,
  PREDICT_SETTINGS,
  predict,
  predictionsCsv,
  readOnnxClassifier,
  resolveInputs,
  resolvePredictConfig,
  writePredictions,
  type PredictConfig,
} from '../predict/index.js';
import type { Command } from './command.js';
import { type Flag, helpText, parseFlags, withInterrupt } from './options.js';

/** The options of `predict`. */
export const PREDICT_FLAGS: Flag[] = flagsOf(PREDICT_SETTINGS);

const USAGE = 'usage: moco-cxr predict --model FILE [--out FILE.csv|FILE.json] IMAGE|FOLDER|KIND:PATH ...';

export const command: Command = {
  async run(argv) {
    const { values, help, positionals } = parseFlags(argv, PREDICT_FLAGS);
    if (help) {
      console.log(helpText(USAGE, PREDICT_FLAGS));
      return 0;
    }
    const config = resolvePredictConfig(values as Partial<PredictConfig>);
    if (positionals.length === 0) throw new Error(`no images given\n${USAGE}`);
    const { inputs, passedOver } = await resolveInputs(positionals);
    if (passedOver.length > 0) {
      process.stderr.write(
        `passed over ${passedOver.length} files that are not images, e.g. ${passedOver.slice(0, 3).join(', ')}\n`,
      );
    }
    if (inputs.length === 0) throw new Error(`no image files in ${positionals.join(', ')}`);
    const onnx = isOnnxFile(config.model);
    if (onnx && config.cam !== undefined) {
      throw new RangeError(
        `cam: ${config.model} is an ONNX model; Grad-CAM needs the PyTorch classifier file it was exported from`,
      );
    }
    const classifier = onnx ? await readOnnxClassifier(config.model) : readClassifier(config.model);
    let result;
    try {
      const forward =
        config.cam === undefined || 'score' in classifier ? undefined : camWriter(config.cam, classifier.tasks);
      result = await withInterrupt((signal) =>
        predict(classifier, inputs, {
          normalize: config.normalize,
          imageSize: config.imageSize,
          batchSize: config.batchSize,
          device: config.device,
          progress: 'predict',
          signal,
          forward,
        }),
      );
    } finally {
      if ('score' in classifier) await classifier.release();
      else classifier.model.dispose();
    }
    if (config.out === undefined) process.stdout.write(predictionsCsv(result));
    else writePredictions(config.out, result);
    process.stderr.write(
      `scored ${result.images.length - result.failed} of ${result.images.length} images` +
        (config.out === undefined ? '' : ` into ${config.out}`) +
        (result.failed > 0 ? `; ${result.failed} bad files` : '') +
        (config.cam === undefined ? '' : `; Grad-CAM overlays in ${config.cam}`) +
        '\n',
    );
    return result.failed === result.images.length ? 1 : 0;
  },
};
