/**
 * Per-study aggregation: a study (one patient visit, often several views) is
 * predicted by the maximum over its images, as MoCo-CXR scores CheXpert.
 */

/** Collapses image-level scores to one score (the max) and one label per study. */
export function aggregateByStudy(
  studyIds: readonly string[],
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
): { studyIds: string[]; scores: Float64Array; labels: Float64Array } {
  if (studyIds.length !== scores.length || scores.length !== labels.length) {
    throw new RangeError('aggregateByStudy: study ids, scores and labels must be equally long');
  }
  const index = new Map<string, number>();
  const maxScores: number[] = [];
  const studyLabels: number[] = [];
  for (let i = 0; i < studyIds.length; i++) {
    const id = studyIds[i] as string;
    const score = scores[i] as number;
    const label = labels[i] as number;
    const at = index.get(id);
    if (at === undefined) {
      index.set(id, maxScores.length);
      maxScores.push(score);
      studyLabels.push(label);
    } else {
      if (studyLabels[at] !== label) {
        throw new RangeError(`aggregateByStudy: study '${id}' has images with different labels`);
      }
      if (score > (maxScores[at] as number)) maxScores[at] = score;
    }
  }
  return { studyIds: [...index.keys()], scores: Float64Array.from(maxScores), labels: Float64Array.from(studyLabels) };
}
