/**
 * Predictions as files: CSV (one row per input; RFC 4180 quoting) or JSON
 * (the model, its preprocessing, every image and the per-study scores).
 */
import { writeFileSync } from 'node:fs';

import { type Predictions } from './predict.js';

/** A CSV field, quoted when it holds a comma, a quote or a line break. */
function field(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/**
 * The CSV text: columns `id`, `path`, one per task (the probability), with
 * per-study scores `study_id` and `<task> (study max)`, then `error` (empty
 * when the image was scored; its probabilities are then empty).
 */
export function predictionsCsv(result: Predictions): string {
  const withStudies = result.studies.length > 0;
  const studyMax = new Map(result.studies.map((study) => [study.studyId, study.probabilities]));
  const header = [
    'id',
    'path',
    ...result.tasks,
    ...(withStudies ? ['study_id', ...result.tasks.map((task) => `${task} (study max)`)] : []),
    'error',
  ];
  const lines = [header.map(field).join(',')];
  for (const image of result.images) {
    const scores = result.tasks.map((_, t) =>
      image.probabilities === undefined ? '' : String(image.probabilities[t]),
    );
    const study = withStudies
      ? [
          image.studyId ?? '',
          ...result.tasks.map((_, t) => {
            const max = image.probabilities === undefined ? undefined : studyMax.get(image.studyId ?? '');
            return max === undefined ? '' : String(max[t]);
          }),
        ]
      : [];
    lines.push([image.id, image.path, ...scores, ...study, image.error ?? ''].map(field).join(','));
  }
  return `${lines.join('\n')}\n`;
}

/** The JSON text: `{ model, tasks, preprocessing, failed, images: [...], studies: [...] }`. */
export function predictionsJson(result: Predictions): string {
  return `${JSON.stringify(
    {
      model: result.model,
      tasks: result.tasks,
      preprocessing: result.preprocessing,
      failed: result.failed,
      images: result.images,
      studies: result.studies,
    },
    null,
    2,
  )}\n`;
}

/** Writes `result` to `file`, as JSON for a `.json` name and CSV otherwise. */
export function writePredictions(file: string, result: Predictions): void {
  writeFileSync(file, /\.json$/i.test(file) ? predictionsJson(result) : predictionsCsv(result));
}
