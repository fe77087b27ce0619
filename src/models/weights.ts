/**
 * Loading pretrained weights into a model: torchvision state dicts, MoCo and
 * MoCo-CXR checkpoints, and checkpoints written by this library, with the
 * renames each needs, and grey-input adaptation of the first convolution.
 */
import { isTensor, load, noGrad, type Tensor } from '../torch/index.js';
import { sameShape, shapeText } from '../torch/shape.js';
import type { ShapeMismatch } from '../nn/module.js';
import type { Backbone, GreyMode } from './backbone.js';
import { modelNames } from './registry.js';

/** Options of `loadWeights`. */
export interface LoadWeightsOptions {
  /**
   * Channels of the images the model will see. With 1 (grey) and a file whose
   * first convolution takes RGB, `greyMode` says how to adapt. Default: the
   * model's current `inputChannels`.
   */
  inputChannels?: number;
  /**
   * How RGB weights take grey input (see `GreyMode`). By default a model
   * already arranged for grey input keeps its arrangement (a model built with
   * `inChannels: 1` gets 'sum'), and an RGB model gets 'repeat'. 'repeat' is
   * the default because it is what MoCo-CXR does (grey replicated to 3
   * channels): the first convolution keeps its shape, so checkpoints stay
   * interchangeable with torchvision and PyTorch code, and training follows the
   * reference exactly. 'sum' gives the same outputs at a third of the first
   * layer's cost, but one summed weight is stepped where 'repeat' steps three,
   * so training (with Adam especially) drifts from the reference.
   */
  greyMode?: GreyMode;
  /**
   * Throw when backbone keys are missing from the file or the file holds keys
   * the model lacks (default true). Shape mismatches outside the classifier
   * always throw.
   */
  strict?: boolean;
}

/** What `loadWeights` found and did. */
export interface LoadWeightsReport {
  /** The file, or '<state dict>' for an object. */
  source: string;
  /** What the source was recognised as. */
  format: 'state dict' | 'checkpoint' | 'moco checkpoint';
  /** Number of model keys loaded from the source. */
  loaded: number;
  /** Model keys the source did not provide (left as they were): the classifier when it was not loaded. */
  missing: string[];
  /** Source keys (after renaming) the model does not hold, ignored (only without `strict`). */
  unexpected: string[];
  /** Classifier keys whose shapes differ from the model's, not loaded. */
  mismatched: ShapeMismatch[];
  /** Source keys set aside as not part of the network: the momentum encoder, the queue, a head that does not fit. */
  dropped: string[];
  /** Whether the classifier's weights came from the source. */
  classifierLoaded: boolean;
  /** How grey input was arranged: not at all, by summing the first convolution, or by repeating the input. */
  grey: 'none' | GreyMode;
}

type Dict = Record<string, unknown>;

function isPlainObject(value: unknown): value is Dict {
  return typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype;
}

const CHECKPOINT_KEYS = ['state_dict', 'model_state_dict', 'model'];

/** Finds the state dict in a checkpoint (`{ state_dict, optimizer, epoch, ... }`) or takes the value as one. */
function unwrap(value: unknown, source: string): { dict: Dict; wrapped: boolean } {
  if (!isPlainObject(value)) {
    throw new Error(`${source}: expected a state dict or a checkpoint holding one, got ${describe(value)}`);
  }
  for (const key of CHECKPOINT_KEYS) {
    const inner = value[key];
    if (isPlainObject(inner) && Object.values(inner).some(isTensor)) return { dict: inner, wrapped: true };
  }
  if (Object.values(value).some(isTensor)) return { dict: value, wrapped: false };
  throw new Error(
    `${source}: holds no tensors at the top level nor under ${CHECKPOINT_KEYS.map((k) => `'${k}'`).join(', ')} ` +
      `(keys: ${Object.keys(value).slice(0, 8).join(', ')})`,
  );
}

function describe(value: unknown): string {
  if (value === null) return 'None';
  if (Array.isArray(value)) return 'a list';
  if (value instanceof Map) return 'a dict with non-string keys';
  return typeof value === 'object' ? (value.constructor?.name ?? 'an object') : typeof value;
}

// torchvision's original DenseNet files name 'norm.1' what the modules call 'norm1'.
const LEGACY_DENSENET = /^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$/;

/**
 * Renames keys to the model's convention: strips DataParallel's `module.`,
 * keeps MoCo's query encoder (`encoder_q.`) and sets aside the key encoder and
 * the queue, and maps legacy DenseNet names.
 */
function normalize(dict: Dict): { tensors: Map<string, Tensor>; dropped: string[]; moco: boolean } {
  const entries: [string, unknown][] = Object.entries(dict).map(([key, value]) => [
    key.startsWith('module.') ? key.slice('module.'.length) : key,
    value,
  ]);
  const moco = entries.some(([key]) => key.startsWith('encoder_q.'));
  const tensors = new Map<string, Tensor>();
  const dropped: string[] = [];
  for (const [key, value] of entries) {
    let name = key;
    if (moco) {
      if (!key.startsWith('encoder_q.')) {
        dropped.push(key);
        continue;
      }
      name = key.slice('encoder_q.'.length);
    }
    if (!isTensor(value)) {
      dropped.push(key);
      continue;
    }
    tensors.set(name.replace(LEGACY_DENSENET, '$1$2'), value);
  }
  return { tensors, dropped, moco };
}

// Blocks per stage that tell torchvision's ResNets and DenseNets apart, by the third stage.
const RESNET_BY_STAGE3: Record<string, string> = {
  'basic 2': 'resnet18',
  'basic 6': 'resnet34',
  'bottleneck 6': 'resnet50',
  'bottleneck 23': 'resnet101',
  'bottleneck 36': 'resnet152',
};
const DENSENET_BY_BLOCK3: Record<number, string> = {
  24: 'densenet121',
  32: 'densenet169',
  36: 'densenet161',
  48: 'densenet201',
};

function countIndices(keys: readonly string[], pattern: RegExp): number {
  return new Set(keys.map((key) => pattern.exec(key)?.[1]).filter((index) => index !== undefined)).size;
}

/**
 * The torchvision architecture whose key names `keys` are (after MoCo's and
 * DataParallel's prefixes are removed), or undefined when they match none:
 * `features.denseblock3` with 24 layers is a densenet121, `layer3` with two
 * basic blocks a resnet18, and so on.
 */
export function inferArchitecture(keys: readonly string[]): string | undefined {
  if (keys.some((key) => key.startsWith('features.denseblock'))) {
    return DENSENET_BY_BLOCK3[countIndices(keys, /^features\.denseblock3\.denselayer(\d+)\./)];
  }
  if (keys.some((key) => key.startsWith('layer3.'))) {
    const block = keys.some((key) => /^layer\d\.\d+\.conv3\./.test(key)) ? 'bottleneck' : 'basic';
    return RESNET_BY_STAGE3[`${block} ${countIndices(keys, /^layer3\.(\d+)\./)}`];
  }
  return undefined;
}

/** Refuses, naming both, weights whose keys are another known architecture's than the model's. */
function checkArchitecture(model: Backbone, keys: readonly string[], source: string): void {
  const found = inferArchitecture(keys);
  if (found === undefined || found === model.arch) return;
  const buildable = modelNames().includes(found);
  throw new Error(
    `${source}: these are ${found} weights (keys such as '${keys.find((key) => /^(features\.denseblock|layer\d)/.test(key)) ?? keys[0]}'), ` +
      `but the model is ${model.arch}: ` +
      (buildable
        ? `set the architecture to ${found} (--arch ${found}) or give ${model.arch} weights`
        : `moco-cxr does not build ${found} (it builds ${modelNames().join(', ')}); give ${model.arch} weights`),
  );
}

/**
 * Loads weights into `model` from a file (path) or an already loaded value:
 * - a torchvision state dict (`resnet18-f37072fd.pth`, `densenet121-a639ec97.pth`);
 * - a MoCo / MoCo-CXR checkpoint `{ epoch, arch, state_dict, optimizer }` whose
 *   keys read `module.encoder_q.conv1.weight`: the query encoder is loaded, the
 *   key encoder (`encoder_k.*`), `queue` and `queue_ptr` are set aside;
 * - a checkpoint of this library (`state_dict` or `model` holding the state dict).
 *
 * The classifier (`fc` / `classifier`) is loaded only when all its keys fit
 * the model's; otherwise (an MLP projection head, another number of classes)
 * it is set aside and the model keeps its own, reported as missing. Weights
 * of another torchvision architecture (told by their key names, see
 * `inferArchitecture`) throw naming both architectures; any other shape
 * mismatch throws naming the key and both shapes, and other foreign keys throw
 * naming the first the model lacks.
 *
 * Grey input: see `LoadWeightsOptions.inputChannels` and `greyMode`.
 */
export function loadWeights(
  model: Backbone,
  source: string | Readonly<Record<string, unknown>>,
  options: LoadWeightsOptions = {},
): LoadWeightsReport {
  const name = typeof source === 'string' ? source : '<state dict>';
  const loaded = typeof source === 'string' ? load(source) : source;
  const owned: Tensor[] = [];
  try {
    return loadInto(model, loaded, name, options, owned);
  } finally {
    // Tensors read from a file belong to this call; a dict passed in stays the caller's.
    for (const tensor of owned) tensor.dispose();
    if (typeof source === 'string') disposeTree(loaded);
  }
}

function disposeTree(value: unknown): void {
  if (isTensor(value)) value.dispose();
  else if (Array.isArray(value)) value.forEach(disposeTree);
  else if (value instanceof Map) for (const item of value.values()) disposeTree(item);
  else if (isPlainObject(value)) for (const item of Object.values(value)) disposeTree(item);
}

function loadInto(
  model: Backbone,
  value: unknown,
  source: string,
  options: LoadWeightsOptions,
  owned: Tensor[],
): LoadWeightsReport {
  const { dict, wrapped } = unwrap(value, source);
  const { tensors, dropped, moco } = normalize(dict);
  const report: LoadWeightsReport = {
    source,
    format: moco ? 'moco checkpoint' : wrapped ? 'checkpoint' : 'state dict',
    loaded: 0,
    missing: [],
    unexpected: [],
    mismatched: [],
    dropped,
    classifierLoaded: false,
    grey: 'none',
  };

  checkArchitecture(model, [...tensors.keys()], source);
  report.grey = adaptInput(model, tensors, source, options, owned);

  const own = new Map(model.stateDictShapes());
  const head = `${model.classifierName}.`;
  const isHead = (key: string): boolean => key.startsWith(head);

  // The classifier loads only as a whole and only when every key fits.
  const ownHead = [...own.keys()].filter(isHead);
  const fileHead = [...tensors.keys()].filter(isHead);
  const headFits =
    fileHead.length === ownHead.length &&
    fileHead.every((key) => {
      const shape = own.get(key);
      return shape !== undefined && sameShape(shape, (tensors.get(key) as Tensor).shape);
    });
  if (!headFits) {
    for (const key of fileHead) {
      const shape = own.get(key);
      const found = (tensors.get(key) as Tensor).shape;
      if (shape !== undefined && !sameShape(shape, found)) report.mismatched.push({ key, expected: shape, found });
      else report.dropped.push(key);
      tensors.delete(key);
    }
  }
  report.classifierLoaded = headFits && ownHead.length > 0;

  for (const [key, tensor] of tensors) {
    const shape = own.get(key);
    if (shape === undefined) {
      report.unexpected.push(key);
    } else if (!sameShape(shape, tensor.shape)) {
      throw new Error(
        `${source}: '${key}' has shape ${shapeText(tensor.shape)} in the file but ${shapeText(shape)} in ${model.arch}`,
      );
    }
  }
  for (const key of own.keys()) {
    if (tensors.has(key) || key.endsWith('.num_batches_tracked')) continue;
    report.missing.push(key);
  }
  const strict = options.strict ?? true;
  const bodyMissing = report.missing.filter((key) => !isHead(key));
  if (strict && (report.unexpected.length > 0 || bodyMissing.length > 0)) {
    const first = report.unexpected[0];
    const reason =
      first !== undefined
        ? `'${first}' is not a key of ${model.arch}` +
          (report.unexpected.length > 1 ? ` (nor are ${report.unexpected.length - 1} more)` : '')
        : `'${bodyMissing[0]}' of ${model.arch} is missing` +
          (bodyMissing.length > 1 ? ` (and ${bodyMissing.length - 1} more)` : '');
    const arch = isPlainObject(value) && typeof value.arch === 'string' ? ` (the file says arch '${value.arch}')` : '';
    throw new Error(
      `${source}: the weights do not fit ${model.arch}${arch}: ${reason}; ` +
        'are they of another architecture? (pass { strict: false } to load the keys that fit)',
    );
  }
  for (const key of report.unexpected) tensors.delete(key);

  noGrad(() => model.loadStateDict(Object.fromEntries(tensors), { strict: false }));
  report.loaded = tensors.size;
  return report;
}

/** Arranges the model's first convolution for the requested input channels; returns the grey handling used. */
function adaptInput(
  model: Backbone,
  tensors: Map<string, Tensor>,
  source: string,
  options: LoadWeightsOptions,
  owned: Tensor[],
): 'none' | GreyMode {
  const key = `${model.stemName}.weight`;
  const stem = tensors.get(key);
  const wanted = options.inputChannels ?? model.inputChannels;
  if (stem === undefined || stem.ndim !== 4) return 'none';
  const fileChannels = stem.shape[1] as number;
  if (wanted !== 1 || fileChannels === 1) {
    if (wanted !== fileChannels) {
      throw new Error(
        `${source}: '${key}' takes ${fileChannels}-channel input but ${wanted} channels were asked for ` +
          `(shape ${shapeText(stem.shape)})`,
      );
    }
    // The file's first convolution already takes `wanted` channels: use it as it is.
    model.setInputChannels(wanted, 'sum');
    return 'none';
  }
  if (fileChannels !== 3) {
    throw new Error(`${source}: '${key}' takes ${fileChannels}-channel input; grey adaptation needs 3 (RGB)`);
  }
  const mode = options.greyMode ?? (model.stem.inChannels === 1 ? 'sum' : 'repeat');
  if (mode !== 'sum' && mode !== 'repeat') {
    throw new TypeError(`greyMode must be 'sum' or 'repeat', got '${String(mode)}'`);
  }
  model.setInputChannels(1, mode);
  if (mode === 'sum') {
    const summed = noGrad(() => stem.sum(1, true));
    owned.push(summed);
    tensors.set(key, summed);
  }
  return mode;
}
