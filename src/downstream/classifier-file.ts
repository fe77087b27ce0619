/**
 * A trained classifier as one PyTorch-format file: the network's weights under
 * torchvision's names (`state_dict`, so `torchvision.models.resnet18(num_classes=1)
 * .load_state_dict(torch.load(f)['state_dict'])` works), the architecture, the
 * tasks its outputs score, the preprocessing it was trained with, and where it
 * came from. `moco-cxr finetune` writes one per cell; `moco-cxr predict` reads it.
 */
import { PREPROCESSING_KEY, type Preprocessing, preprocessingEntry, readPreprocessing } from '../data/preprocessing.js';
import { type Backbone, createModel, loadWeights, modelNames } from '../models/index.js';
import * as torch from '../torch/index.js';

/** The `format` tag of a classifier file. */
export const CLASSIFIER_FORMAT = 'moco-cxr classifier';

/** What a classifier file says about its model besides the weights. */
export interface ClassifierInfo {
  arch: string;
  /** One name per output of the network, e.g. `['Pleural Effusion']`. */
  tasks: string[];
  preprocessing: Preprocessing;
  /** How it was trained (starting weights, label fraction, draw, selected epoch and its validation AUC). */
  origin?: Record<string, string | number>;
}

/** Writes `weights` (a state dict of `info.arch` with `info.tasks.length` outputs) and `info` to `path`. */
export function writeClassifier(path: string, weights: Record<string, torch.Tensor>, info: ClassifierInfo): void {
  torch.save(
    {
      format: CLASSIFIER_FORMAT,
      version: 1,
      arch: info.arch,
      tasks: [...info.tasks],
      state_dict: weights,
      [PREPROCESSING_KEY]: preprocessingEntry(info.preprocessing),
      ...(info.origin === undefined
        ? {}
        : {
            origin: Object.fromEntries(
              Object.entries(info.origin).map(
                ([k, v]) => [k, typeof v === 'number' && !Number.isInteger(v) ? torch.pyFloat(v) : v] as const,
              ),
            ),
          }),
    },
    path,
  );
}

/** A classifier read from a file: the network in eval mode (the caller's to dispose) and its description. */
export interface LoadedClassifier extends ClassifierInfo {
  model: Backbone;
  file: string;
}

function describe(saved: unknown): string {
  if (saved === null || typeof saved !== 'object') return `a ${saved === null ? 'None' : typeof saved}`;
  if (torch.isTensor(saved)) return 'a single tensor';
  if (Array.isArray(saved)) return 'a list';
  if (saved instanceof Map) return 'a dict with non-text keys';
  const dict = saved as Record<string, unknown>;
  if ('queue' in dict || (typeof dict.state_dict === 'object' && dict.state_dict !== null && 'optimizer' in dict)) {
    return "a pretraining checkpoint (fine-tune it first: 'moco-cxr finetune --init FILE' writes models/*.pt)";
  }
  const keys = Object.keys(dict);
  if (keys.length > 0 && Object.values(dict).every((v) => torch.isTensor(v))) {
    return 'only weights (a state dict), without the tasks and preprocessing of a classifier';
  }
  return `the keys ${keys.slice(0, 8).join(', ')}${keys.length > 8 ? ', …' : ''}`;
}

/**
 * Reads a classifier file and builds its network with the weights loaded (in
 * eval mode, on the CPU). A file that is not a classifier (a pretraining
 * checkpoint, a bare state dict, anything else) is an error naming the file,
 * what was expected and what it holds.
 */
export function readClassifier(file: string): LoadedClassifier {
  const saved = torch.load(file, { unknownClasses: 'keep' });
  try {
    const dict = saved as Record<string, unknown>;
    const isDict = saved !== null && typeof saved === 'object' && !Array.isArray(saved) && !torch.isTensor(saved);
    if (!isDict || dict.format !== CLASSIFIER_FORMAT) {
      throw new Error(
        `${file} is not a moco-cxr classifier: expected a file written by 'moco-cxr finetune' ` +
          `(its run folder's models/*.pt), but it holds ${describe(saved)}`,
      );
    }
    const arch = dict.arch;
    if (typeof arch !== 'string' || !modelNames().includes(arch)) {
      throw new Error(`${file}: arch ${JSON.stringify(arch)} is not one of ${modelNames().join(', ')}`);
    }
    const tasks = dict.tasks;
    if (!Array.isArray(tasks) || tasks.length === 0 || !tasks.every((t) => typeof t === 'string')) {
      throw new Error(`${file}: tasks: expected a non-empty list of names, got ${JSON.stringify(tasks)}`);
    }
    const preprocessing = readPreprocessing(saved, file);
    if (preprocessing === undefined) throw new Error(`${file}: the classifier records no ${PREPROCESSING_KEY}`);
    const model = createModel(arch, { numClasses: tasks.length });
    try {
      const report = loadWeights(model, { state_dict: dict.state_dict }, { strict: true });
      if (!report.classifierLoaded) {
        throw new Error(`its ${model.classifierName} layer does not fit ${tasks.length} output(s) of ${arch}`);
      }
    } catch (error) {
      model.dispose();
      throw new Error(`${file}: ${(error as Error).message}`);
    }
    model.eval();
    const origin = dict.origin as Record<string, string | number> | undefined;
    return { file, model, arch, tasks, preprocessing, ...(origin === undefined ? {} : { origin }) };
  } finally {
    torch.dispose(saved);
  }
}
