/**
 * Pretraining checkpoints: written in the reference code's format (`epoch`,
 * `arch`, `state_dict` with `module.*` names, `optimizer`) plus what an exact
 * resume needs (`scheduler`, `batch`, `step`, the run's `config`, and for
 * float16 the loss scaler under PyTorch's `scaler` key) and the preprocessing
 * the encoder was trained with (MoCo-CXR's normalization, the crop side, grey
 * replicated to 3 channels: see `data/preprocessing.ts`), and read back with
 * a check that the file is such a checkpoint.
 */
import { PREPROCESSING_KEY, preprocessingEntry } from '../data/preprocessing.js';
import { type Adam, type LRScheduler, type SGD } from '../optim/index.js';
import * as torch from '../torch/index.js';
import { type GradScaler } from '../optim/grad-scaler.js';
import { type MoCo } from './model.js';
import { type PretrainConfig } from './settings.js';

/** Where a run stands: finished epochs, batches done in the current epoch, steps in all. */
export interface PretrainPosition {
  epoch: number;
  batch: number;
  step: number;
}

/** The objects a checkpoint saves and restores. */
export interface PretrainState {
  model: MoCo;
  optimizer: Adam | SGD;
  scheduler: LRScheduler;
  /** The float16 loss scaler, when the run has one. */
  scaler?: GradScaler;
}

/** What a pretraining checkpoint holds besides the tensors. */
export interface CheckpointSummary {
  position: PretrainPosition;
  /** The settings the run was started with; absent in checkpoints of older versions. */
  config: Record<string, unknown> | undefined;
  /** The loss scaler's state, in checkpoints of float16 runs. */
  scaler: unknown;
}

const REQUIRED = ['state_dict', 'optimizer', 'scheduler', 'epoch', 'batch', 'step'] as const;

/** MoCo-CXR's checkpoints hold the model as `module.*`, as saved from a data-parallel wrapper. */
function prefixed(dict: Record<string, torch.Tensor>): Record<string, torch.Tensor> {
  return Object.fromEntries(Object.entries(dict).map(([k, v]) => [`module.${k}`, v]));
}

function unprefixed(dict: Record<string, unknown>): Record<string, torch.Tensor> {
  const out: Record<string, torch.Tensor> = {};
  for (const [key, value] of Object.entries(dict)) {
    if (!torch.isTensor(value)) continue;
    out[key.startsWith('module.') ? key.slice('module.'.length) : key] = value;
  }
  return out;
}

/** Writes `state` at `at` to `path` (atomically: see `torch.save`). */
export function writePretrainCheckpoint(
  path: string,
  state: PretrainState,
  config: PretrainConfig,
  at: PretrainPosition,
): void {
  torch.tidy(() =>
    torch.save(
      {
        // `epoch` counts finished epochs, as the reference code's resume expects.
        epoch: at.epoch,
        arch: config.arch,
        state_dict: prefixed(state.model.stateDict()),
        optimizer: state.optimizer.stateDict(),
        scheduler: state.scheduler.stateDict(),
        batch: at.batch,
        step: at.step,
        config: { ...config },
        // The pretraining augmentation's view: mocoCxrAugmentation(imageSize) normalizes with MoCo-CXR's statistics.
        [PREPROCESSING_KEY]: preprocessingEntry({ normalize: 'moco-cxr', imageSize: config.imageSize, channels: 3 }),
        ...(state.scaler === undefined ? {} : { scaler: scalerEntry(state.scaler) }),
      },
      path,
    ),
  );
}

/** PyTorch keeps `scale` and the factors as Python floats. */
function scalerEntry(scaler: GradScaler): Record<string, unknown> {
  const state = scaler.stateDict();
  return {
    scale: torch.pyFloat(state.scale),
    growth_factor: torch.pyFloat(state.growth_factor),
    backoff_factor: torch.pyFloat(state.backoff_factor),
    growth_interval: state.growth_interval,
    _growth_tracker: state._growth_tracker,
  };
}

function describeContent(value: unknown): string {
  if (value === null || typeof value !== 'object') return `a ${value === null ? 'None' : typeof value}`;
  if (torch.isTensor(value)) return 'a single tensor';
  if (Array.isArray(value)) return 'a list';
  if (value instanceof Map) return 'a dict with non-text keys';
  const keys = Object.keys(value);
  if (keys.length > 0 && Object.values(value).every((v) => torch.isTensor(v))) {
    return `only weights (a state dict such as torchvision's: ${keys.slice(0, 3).join(', ')}, …)`;
  }
  return `the keys ${keys.slice(0, 8).join(', ')}${keys.length > 8 ? ', …' : ''}`;
}

/**
 * Loads `path` and checks that it is a pretraining checkpoint of this tool;
 * the result's tensors are the caller's to dispose. Errors name the file,
 * what was expected, and what it holds instead.
 */
function loadChecked(path: string): Record<string, unknown> {
  const saved = torch.load(path);
  const dict = saved as Record<string, unknown>;
  const isDict = saved !== null && typeof saved === 'object' && !Array.isArray(saved) && !(saved instanceof Map);
  const missing = isDict && !torch.isTensor(saved) ? REQUIRED.filter((key) => !(key in dict)) : [...REQUIRED];
  const wellFormed =
    missing.length === 0 &&
    typeof dict.state_dict === 'object' &&
    dict.state_dict !== null &&
    ['epoch', 'batch', 'step'].every((key) => Number.isInteger(dict[key]) && (dict[key] as number) >= 0);
  if (!wellFormed) {
    const holds = describeContent(saved);
    torch.dispose(saved);
    throw new Error(
      `${path} is not a moco-cxr pretraining checkpoint: expected a dict with ${REQUIRED.join(', ')} ` +
        `(as 'moco-cxr pretrain' writes), but it holds ${holds}. ` +
        `To start a new run from its weights, pass --init ${path} with another --out.`,
    );
  }
  return dict;
}

/** Reads a checkpoint's position and settings (its tensors are freed at once). */
export function readCheckpointSummary(path: string): CheckpointSummary {
  const saved = loadChecked(path);
  try {
    const config = saved.config;
    return {
      position: { epoch: saved.epoch as number, batch: saved.batch as number, step: saved.step as number },
      config:
        config !== null && typeof config === 'object' && !Array.isArray(config)
          ? { ...(config as Record<string, unknown>) }
          : undefined,
      scaler: saved.scaler,
    };
  } finally {
    torch.dispose(saved);
  }
}

/**
 * Loads a checkpoint into `state` and returns its position. A float16 run
 * gets its loss scale back; a checkpoint without one (written before the
 * scaler was saved) leaves the scaler at its initial scale, and the result says so.
 */
export function restorePretrainCheckpoint(
  path: string,
  state: PretrainState,
): { position: PretrainPosition; scalerRestored: boolean } {
  const saved = loadChecked(path);
  try {
    state.model.loadStateDict(unprefixed(saved.state_dict as Record<string, unknown>));
    state.optimizer.loadStateDict(saved.optimizer);
    state.scheduler.loadStateDict(saved.scheduler);
    const scalerRestored = state.scaler !== undefined && saved.scaler !== undefined;
    if (scalerRestored) state.scaler!.loadStateDict(saved.scaler, `${path}: scaler`);
    return {
      position: { epoch: saved.epoch as number, batch: saved.batch as number, step: saved.step as number },
      scalerRestored,
    };
  } finally {
    torch.dispose(saved);
  }
}
