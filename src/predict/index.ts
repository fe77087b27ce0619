/**
 * Using a trained classifier: scoring image files, folders and sources
 * (`moco-cxr predict`), with the preprocessing its file records.
 *
 * ```ts
 * const { inputs } = await resolveInputs(['xrays/']);
 * const result = await predict('runs/finetune/models/f1-d0.pt', inputs);
 * console.log(result.images[0]?.probabilities);
 * ```
 */
export { resolveInputs, type PredictInput, type ResolvedInputs } from './inputs.js';
export {
  predict,
  studyScores,
  type DecodedImage,
  type ImagePrediction,
  type PredictOptions,
  type Predictions,
  type StudyPrediction,
} from './predict.js';
export { isOnnxFile, readOnnxClassifier, type OnnxClassifier } from './onnx-model.js';
export { camFileName, camOverlay, camWriter, gradCam, scaledMaps, type GradCam } from './cam.js';
export { predictionsCsv, predictionsJson, writePredictions } from './output.js';
export { PREDICT_SETTINGS, resolvePredictConfig, type PredictConfig } from './settings.js';
