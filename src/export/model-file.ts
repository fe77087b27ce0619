/**
 * Reading a model to export from a weights file: a state dict or a
 * checkpoint holding one (ours, torchvision's, a fine-tuned PyTorch model's),
 * with its classifier. The architecture and the number of outputs come from
 * the file's keys and shapes unless given.
 */
import { createModel, inferArchitecture, loadWeights, modelNames, type Backbone } from '../models/index.js';
import { isTensor, load } from '../torch/index.js';

/** Options of {@link readModelFile}. */
export interface ModelFileOptions {
  /** The architecture; default told from the file's keys. */
  arch?: string;
}

/** A model read from a file, ready to export. */
export interface ModelFile {
  model: Backbone;
  arch: string;
  /** Outputs of the classifier. */
  classes: number;
  /** Task names the file records (a top-level `tasks` list of strings), if any. */
  tasks?: string[];
}

type Dict = Record<string, unknown>;

function isDict(value: unknown): value is Dict {
  return typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype;
}

/** The state dict inside a loaded file (the top level, or `state_dict` / `model_state_dict` / `model`). */
function stateDictOf(value: unknown): Dict | undefined {
  if (!isDict(value)) return undefined;
  for (const key of ['state_dict', 'model_state_dict', 'model']) {
    const inner = value[key];
    if (isDict(inner) && Object.values(inner).some(isTensor)) return inner;
  }
  return Object.values(value).some(isTensor) ? value : undefined;
}

/** Key names without DataParallel's `module.` and MoCo's `encoder_q.` prefixes. */
function plainKeys(dict: Dict): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const [key, value] of Object.entries(dict)) {
    out.set(key.replace(/^module\./, '').replace(/^encoder_q\./, ''), value);
  }
  return out;
}

function disposeTree(value: unknown): void {
  if (isTensor(value)) value.dispose();
  else if (Array.isArray(value)) value.forEach(disposeTree);
  else if (value instanceof Map) for (const item of value.values()) disposeTree(item);
  else if (isDict(value)) for (const item of Object.values(value)) disposeTree(item);
}

/**
 * Builds the model a weights file holds, classifier included: refuses a file
 * without a linear classifier (`fc.weight` / `classifier.weight`, e.g. a MoCo
 * checkpoint, whose head is the projection MLP) naming the file, since the
 * export would carry a random head.
 */
export function readModelFile(file: string, options: ModelFileOptions = {}): ModelFile {
  const value = load(file);
  try {
    const dict = stateDictOf(value);
    if (dict === undefined)
      throw new Error(`${file}: holds no state dict (no tensors at the top level or under 'state_dict')`);
    const keys = plainKeys(dict);
    const arch = options.arch ?? inferArchitecture([...keys.keys()]);
    if (arch === undefined || !modelNames().includes(arch)) {
      throw new Error(
        `${file}: ${arch === undefined ? 'the keys match no known architecture' : `'${arch}' is not an architecture moco-cxr builds`}; ` +
          `give --arch (${modelNames().join(', ')})`,
      );
    }
    const headName = arch.startsWith('densenet') ? 'classifier' : 'fc';
    const headWeight = keys.get(`${headName}.weight`);
    if (!isTensor(headWeight) || headWeight.ndim !== 2) {
      throw new Error(
        `${file}: holds no linear classifier ('${headName}.weight' of shape [tasks, features]); ` +
          'export needs a model with its classification head (a fine-tuned model, or a backbone with a trained linear head)',
      );
    }
    const classes = headWeight.shape[0] as number;
    const model = createModel(arch, { numClasses: classes });
    try {
      const report = loadWeights(model, value as Dict);
      if (!report.classifierLoaded) {
        throw new Error(`${file}: the classifier's weights do not fit ${arch} (${JSON.stringify(report.mismatched)})`);
      }
    } catch (error) {
      model.dispose();
      throw error;
    }
    model.eval();
    const recorded = isDict(value) ? value.tasks : undefined;
    const tasks =
      Array.isArray(recorded) && recorded.length === classes && recorded.every((t) => typeof t === 'string')
        ? recorded
        : undefined;
    return { model, arch, classes, ...(tasks === undefined ? {} : { tasks }) };
  } finally {
    disposeTree(value);
  }
}
