/**
 * The MoCo pretraining loop: data → two augmented views → MoCo step → Adam,
 * with a run folder (resolved config, metrics, checkpoints in the reference
 * code's format), progress, Ctrl-C that saves, exact resume, and a stop on a
 * non-finite loss that keeps the last good checkpoint.
 */
import { appendFileSync, copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { mocoCxrAugmentation } from '../data/augment.js';
import { buildCache } from '../data/cache.js';
import { checkImageSize } from '../data/limits.js';
import { BatchLoader } from '../data/loader.js';
import { combineSeeds } from '../data/prng.js';
import { openSource, skippedNote } from '../data/sources/index.js';
import { loadWeights } from '../models/index.js';
import { Adam, createScheduler, type ScheduleSpec, SGD } from '../optim/index.js';
import * as torch from '../torch/index.js';
import { GradScaler } from '../optim/grad-scaler.js';
import { Progress } from '../util/progress.js';
import {
  type PretrainPosition,
  readCheckpointSummary,
  restorePretrainCheckpoint,
  writePretrainCheckpoint,
} from './checkpoint.js';
import { MoCo } from './model.js';
import { KnnMonitor } from './monitor.js';
import {
  describeChanges,
  prepareFreshRun,
  readRunConfig,
  removeStaleTemporaries,
  RESUMABLE_SETTINGS,
  type SettingChange,
  settingChanges,
  trimMetrics,
} from './run-folder.js';

/** Everything a pretraining run is defined by. Defaults follow MoCo-CXR's published run. */
export interface PretrainConfig {
  /** The images, as `KIND:PATH` (labels are ignored). */
  data: string;
  arch: string;
  /** 'random', or a torchvision / MoCo checkpoint file to start the encoders from. */
  init: string;
  /** Side of the training crop. */
  imageSize: number;
  /** Side of the cached images (the crop is drawn from them); default the image size. */
  cacheSize: number;
  batchSize: number;
  epochs: number;
  optimizer: 'adam' | 'sgd';
  lr: number;
  weightDecay: number;
  /** 'step:12,18,24' (×0.1 at those epochs), 'cosine', 'cosine:WARMUP', or 'constant'. */
  schedule: string;
  queue: number;
  momentum: number;
  temperature: number;
  /** Output dimension of the projection head. */
  mlpDim: number;
  /** 'off' or 'split:N' (see `MoCoOptions.shuffleSplits`). */
  shuffleBn: string;
  seed: number;
  /** Threads that decode images into the cache. */
  workers: number;
  device: string;
  /** The run folder. */
  out: string;
  /** Where decoded images are kept between runs. */
  cacheDir: string;
  /** Write `checkpoint_XXXX.pt` every this many epochs (and after the last). */
  checkpointEvery: number;
  /** Append a metrics line every this many steps. */
  logEvery: number;
  /** Stop after this many steps in all (for smoke tests); 0 for no limit. */
  maxSteps: number;
  /**
   * Memory layout of weights and inputs: 'channelsLast' (NHWC, which oneDNN's
   * convolutions prefer: about 10% faster MoCo steps on CPU here), 'contiguous',
   * or 'auto' (channels-last on CPU, contiguous elsewhere).
   */
  memoryFormat: 'auto' | 'channelsLast' | 'contiguous';
  /**
   * Arithmetic of the forward pass: 'fp32', or autocast with 'bf16' (CPU or
   * CUDA) or 'fp16' (CUDA, with dynamic loss scaling).
   */
  precision: 'fp32' | 'bf16' | 'fp16';
  /** A small labelled set (`KIND:PATH`) whose kNN AUC is reported after every epoch; '' for none. */
  monitor: string;
  /** The monitor's label (default: its source's own task). */
  monitorTask: string;
}

export const PRETRAIN_DEFAULTS: Omit<PretrainConfig, 'data'> = {
  arch: 'resnet18',
  init: 'random',
  imageSize: 320,
  cacheSize: 0,
  batchSize: 16,
  epochs: 20,
  optimizer: 'adam',
  lr: 1e-4,
  weightDecay: 1e-4,
  schedule: 'step:12,18,24',
  queue: 24576,
  momentum: 0.999,
  temperature: 0.2,
  mlpDim: 128,
  shuffleBn: 'off',
  seed: 0,
  workers: 0,
  device: 'cpu',
  out: 'runs/pretrain',
  cacheDir: '.moco-cxr-cache',
  checkpointEvery: 5,
  logEvery: 10,
  maxSteps: 0,
  memoryFormat: 'auto',
  precision: 'fp32',
  monitor: '',
  monitorTask: '',
};

/** How a run ended. */
export interface PretrainResult {
  status: 'finished' | 'interrupted' | 'diverged';
  runDir: string;
  /** Path of the last good checkpoint. */
  checkpoint: string | undefined;
  epochsDone: number;
  steps: number;
  lastLoss: number;
  message: string;
}

/** Hooks for the caller: a stop signal (Ctrl-C) and where progress goes. */
export interface PretrainHooks {
  signal?: AbortSignal;
  log?: (line: string) => void;
  /** Force plain progress lines. */
  plainProgress?: boolean;
  /** Called after every step with its loss (after the optimizer step). */
  onStep?: (step: number, loss: number) => void;
}

/** Parses a schedule string such as 'step:12,18,24' or 'cosine'. */
export function parseSchedule(text: string, epochs: number): ScheduleSpec {
  const [kind, rest] = text.split(':', 2) as [string, string | undefined];
  if (kind === 'constant' && rest === undefined) return { kind: 'constant' };
  if (kind === 'cosine') {
    const warmup = rest === undefined ? 0 : Number(rest);
    if (!Number.isInteger(warmup) || warmup < 0) throw new RangeError(`schedule '${text}': warmup must be an integer`);
    return { kind: 'cosine', epochs, warmupEpochs: warmup };
  }
  if (kind === 'step' && rest !== undefined) {
    const milestones = rest.split(',').map(Number);
    if (milestones.some((m) => !Number.isInteger(m) || m < 1)) {
      throw new RangeError(`schedule '${text}': milestones must be positive integers, as in step:12,18,24`);
    }
    return { kind: 'multistep', milestones, gamma: 0.1 };
  }
  throw new RangeError(`schedule '${text}': expected 'step:E1,E2,...', 'cosine', 'cosine:WARMUP' or 'constant'`);
}

/** Parses 'off' or 'split:N' into a number of sub-batches. */
export function parseShuffleBn(text: string): number {
  if (text === 'off') return 1;
  const match = /^split:(\d+)$/.exec(text);
  if (match === null || Number(match[1]) < 1) throw new RangeError(`shuffle-bn '${text}': expected 'off' or 'split:N'`);
  return Number(match[1]);
}

/** Checks a configuration and fills its defaults; errors name the key. */
export function resolvePretrainConfig(partial: Partial<PretrainConfig> & { data: string }): PretrainConfig {
  const config: PretrainConfig = { ...PRETRAIN_DEFAULTS, ...partial };
  const positiveInts: (keyof PretrainConfig)[] = [
    'imageSize',
    'batchSize',
    'epochs',
    'queue',
    'mlpDim',
    'checkpointEvery',
    'logEvery',
  ];
  for (const key of positiveInts) {
    const value = config[key];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
      throw new RangeError(`${key} must be a positive integer, got ${String(value)}`);
    }
  }
  for (const key of ['cacheSize', 'seed', 'workers', 'maxSteps'] as const) {
    const value = config[key];
    if (!Number.isInteger(value) || value < 0)
      throw new RangeError(`${key} must be a non-negative integer, got ${value}`);
  }
  for (const key of ['lr', 'temperature'] as const) {
    if (!(config[key] > 0)) throw new RangeError(`${key} must be positive, got ${config[key]}`);
  }
  if (!(config.weightDecay >= 0)) throw new RangeError(`weightDecay must be non-negative, got ${config.weightDecay}`);
  if (!(config.momentum >= 0 && config.momentum <= 1))
    throw new RangeError(`momentum must be in [0, 1], got ${config.momentum}`);
  if (config.optimizer !== 'adam' && config.optimizer !== 'sgd') {
    throw new RangeError(`optimizer must be 'adam' or 'sgd', got '${String(config.optimizer)}'`);
  }
  if (config.queue % config.batchSize !== 0) {
    throw new RangeError(
      `queue (${config.queue}) must be a multiple of batchSize (${config.batchSize}), so that each batch of keys fits the ring`,
    );
  }
  if (!['auto', 'channelsLast', 'contiguous'].includes(config.memoryFormat)) {
    throw new RangeError(
      `memoryFormat must be 'auto', 'channelsLast' or 'contiguous', got '${String(config.memoryFormat)}'`,
    );
  }
  if (!['fp32', 'bf16', 'fp16'].includes(config.precision)) {
    throw new RangeError(`precision must be 'fp32', 'bf16' or 'fp16', got '${String(config.precision)}'`);
  }
  if (config.precision === 'fp16' && !config.device.startsWith('cuda')) {
    throw new RangeError("precision 'fp16' needs a CUDA device; on the CPU use 'bf16' or 'fp32'");
  }
  checkImageSize('imageSize', config.imageSize);
  if (config.cacheSize === 0) config.cacheSize = config.imageSize;
  checkImageSize('cacheSize', config.cacheSize);
  if (config.cacheSize < config.imageSize) {
    throw new RangeError(`cacheSize (${config.cacheSize}) must be at least imageSize (${config.imageSize})`);
  }
  parseSchedule(config.schedule, config.epochs);
  parseShuffleBn(config.shuffleBn);
  torch.checkDevice(config.device);
  if (config.init !== 'random' && !existsSync(config.init)) {
    throw new Error(`init: no such weights file '${config.init}' (use 'random' or a checkpoint path)`);
  }
  return config;
}

/**
 * Checks that a run folder may be resumed with `config`: it holds a
 * pretraining checkpoint, and no setting that defines the run differs from
 * those it was started with (the checkpoint's own record, or `config.json`
 * for checkpoints of older versions). Returns the changes that are allowed
 * (see `RESUMABLE_SETTINGS`) and the checkpoint's position; throws an Error
 * listing every refused change as `key: stored → new`.
 */
export function checkResumable(
  runDir: string,
  config: PretrainConfig,
): { allowed: SettingChange[]; position: PretrainPosition; storedIn: string | undefined } {
  const lastPath = join(runDir, 'last.pt');
  if (!existsSync(lastPath)) {
    throw new Error(
      `resume: ${lastPath} does not exist (a run saves its first checkpoint when its first epoch ends, or on ` +
        'Ctrl-C); start the run without --resume',
    );
  }
  const summary = readCheckpointSummary(lastPath);
  const fromFile = summary.config === undefined ? readRunConfig(runDir) : undefined;
  const stored = summary.config ?? fromFile;
  const storedIn =
    summary.config !== undefined ? lastPath : fromFile !== undefined ? join(runDir, 'config.json') : undefined;
  if (stored === undefined) return { allowed: [], position: summary.position, storedIn };
  const changes = settingChanges(stored, config, PRETRAIN_DEFAULTS);
  const refused = changes.filter((change) => change.refused !== undefined);
  if (refused.length > 0) {
    throw new Error(
      `resume: ${runDir} was started with other settings (recorded in ${storedIn}):\n${describeChanges(refused)}\n` +
        `A resumed run keeps the settings that define it; only ${RESUMABLE_SETTINGS.join(', ')} may change. ` +
        'Resume with the recorded values, or start a new run with another --out.',
    );
  }
  return { allowed: changes, position: summary.position, storedIn };
}

/** Writes the run's `config.json`, saying so when a resumed run's allowed changes alter it. */
function writeRunConfig(runDir: string, config: PretrainConfig, log: (line: string) => void): void {
  const file = join(runDir, 'config.json');
  const text = `${JSON.stringify({ ...config, command: 'pretrain' }, null, 2)}\n`;
  const before = existsSync(file) ? readFileSync(file, 'utf8') : undefined;
  if (before === text) return;
  writeFileSync(file, text);
  if (before !== undefined) log(`${file}: rewritten with this run's settings`);
}

/**
 * Runs (or resumes) MoCo pretraining as configured and returns how it ended.
 * Resuming from `last.pt` on the same machine with the same seed gives the
 * same losses as a run that was never interrupted: data order, augmentations
 * and the engine's generator are all seeded per step.
 */
export async function pretrain(
  input: Partial<PretrainConfig> & { data: string },
  options: { resume?: boolean } & PretrainHooks = {},
): Promise<PretrainResult> {
  const config = resolvePretrainConfig(input);
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const aborted = (): boolean => options.signal?.aborted === true;
  const runDir = resolve(config.out);
  const lastPath = join(runDir, 'last.pt');
  const metricsPath = join(runDir, 'metrics.jsonl');
  // Every check on the folder comes before anything in it changes.
  if (options.resume === true) {
    const { allowed, storedIn } = checkResumable(runDir, config);
    if (storedIn === undefined) log(`resume: ${runDir} has no record of its settings; they cannot be checked`);
    if (allowed.length > 0) log(`resume: settings changed from the run's record:\n${describeChanges(allowed)}`);
  } else {
    const fresh = prepareFreshRun(runDir);
    if (fresh !== undefined) log(fresh);
  }
  const stale = removeStaleTemporaries(runDir);
  if (stale.files.length > 0) {
    log(
      `run folder: removed ${stale.files.length} temporary file(s) of an interrupted save ` +
        `(${(stale.bytes / 1e6).toFixed(1)} MB: ${stale.files.join(', ')})`,
    );
  }
  const source = await openSource(config.data);
  mkdirSync(runDir, { recursive: true });
  writeRunConfig(runDir, config, log);
  log(`data: ${source.records.length} images from ${config.data}`);
  const notTaken = skippedNote(source, config.data);
  if (notTaken !== undefined) log(notTaken);
  let built;
  try {
    built = await buildCache(source.records, {
      dir: join(resolve(config.cacheDir), `${config.cacheSize}px`),
      size: config.cacheSize,
      workers: config.workers === 0 ? undefined : config.workers,
      signal: options.signal,
      log,
    });
  } catch (error) {
    if (!aborted()) throw error;
    const message = 'interrupted while building the image cache; rerun to continue where it stopped';
    log(message);
    return { status: 'interrupted', runDir, checkpoint: undefined, epochsDone: 0, steps: 0, lastLoss: NaN, message };
  }
  const { cache, stats } = built;
  log(
    `cache: ${cache.ids.length} images (${stats.reused ? 'reused' : `${stats.decoded} decoded`}, ${stats.skipped} skipped)`,
  );
  const loader = new BatchLoader(cache, {
    batchSize: config.batchSize,
    seed: config.seed,
    dropLast: true,
    views: 2,
    augment: mocoCxrAugmentation(config.imageSize),
  });
  if (loader.batchesPerEpoch === 0) {
    await cache.close();
    throw new Error(`data: ${loader.length} images is fewer than one batch of ${config.batchSize}`);
  }

  torch.manualSeed(config.seed);
  const model = new MoCo({
    arch: config.arch,
    dim: config.mlpDim,
    queueSize: config.queue,
    momentum: config.momentum,
    temperature: config.temperature,
    shuffleSplits: parseShuffleBn(config.shuffleBn),
  });
  if (config.init !== 'random') {
    const report = loadWeights(model.encoderQ, config.init);
    torch.tidy(() => model.encoderK.loadStateDict(model.encoderQ.stateDict()));
    log(`init: ${config.init} (${report.loaded} tensors loaded)`);
  }
  model.to(config.device as torch.Device);
  const layout: torch.MemoryFormat =
    config.memoryFormat === 'auto' ? (config.device === 'cpu' ? 'channelsLast' : 'contiguous') : config.memoryFormat;
  if (layout === 'channelsLast') model.toMemoryFormat(layout);
  model.train();
  // All parameters, as the reference passes them: the key encoder's take no
  // gradient and are skipped, and the state dict's numbering matches its tools.
  const optimizer: Adam | SGD =
    config.optimizer === 'adam'
      ? new Adam(model.parameters(), { lr: config.lr, weightDecay: config.weightDecay })
      : new SGD(model.parameters(), { lr: config.lr, momentum: 0.9, weightDecay: config.weightDecay });
  const scheduler = createScheduler(optimizer, parseSchedule(config.schedule, config.epochs));
  const scaler = config.precision === 'fp16' ? new GradScaler(config.device as torch.Device) : undefined;
  const trainable = model.encoderQ.parameters();
  const forward = (q: torch.Tensor, k: torch.Tensor): ReturnType<MoCo['step']> =>
    config.precision === 'fp32'
      ? model.step(q, k)
      : torch.autocast(config.device, config.precision === 'bf16' ? 'bfloat16' : 'float16', () => model.step(q, k));

  const state = { model, optimizer, scheduler, scaler };
  let at: PretrainPosition = { epoch: 0, batch: 0, step: 0 };
  if (options.resume === true) {
    const restored = restorePretrainCheckpoint(lastPath, state);
    at = restored.position;
    log(`resumed from ${lastPath} at epoch ${at.epoch}, batch ${at.batch}`);
    if (scaler !== undefined) {
      log(
        restored.scalerRestored
          ? `fp16 loss scale restored: ${scaler.factor}`
          : `fp16: ${lastPath} holds no loss scale (an older checkpoint); it starts again at ${scaler.factor}`,
      );
    }
    // Rows of steps after the checkpoint were written by a run that died before saving them.
    const dropped = trimMetrics(metricsPath, at.step);
    if (dropped > 0) log(`metrics: removed ${dropped} rows after step ${at.step} (not covered by the checkpoint)`);
  }

  const monitor =
    config.monitor === ''
      ? undefined
      : await KnnMonitor.open(config.monitor, {
          task: config.monitorTask === '' ? undefined : config.monitorTask,
          imageSize: config.imageSize,
          cacheDir: join(resolve(config.cacheDir), 'monitor'),
          device: config.device,
          seed: config.seed,
          log,
        });
  const perEpoch = loader.batchesPerEpoch;
  const totalSteps =
    config.maxSteps > 0 ? Math.min(config.maxSteps, perEpoch * config.epochs) : perEpoch * config.epochs;
  const progress = new Progress('pretrain', totalSteps, { plain: options.plainProgress });
  let lastLoss = NaN;
  let checkpoint: string | undefined = options.resume === true ? lastPath : undefined;
  let windowStart = performance.now();
  let windowImages = 0;
  const finish = async (status: PretrainResult['status'], message: string): Promise<PretrainResult> => {
    progress.finish();
    await cache.close();
    await monitor?.close();
    scaler?.dispose();
    model.dispose();
    log(message);
    return { status, runDir, checkpoint, epochsDone: at.epoch, steps: at.step, lastLoss, message };
  };

  for (let epoch = at.epoch; epoch < config.epochs; epoch++) {
    for await (const batch of loader.epoch(epoch, epoch === at.epoch ? at.batch : 0)) {
      try {
        // Seeding each step makes any randomness inside it (shuffle BN) repeat on resume.
        torch.manualSeed(combineSeeds(config.seed, epoch, batch.index));
        const result = torch.tidy(() => {
          const q = batch.views[0]!.to(config.device as torch.Device).contiguous(layout);
          const k = batch.views[1]!.to(config.device as torch.Device).contiguous(layout);
          const out = forward(q, k);
          const loss = out.loss.item();
          if (!Number.isFinite(loss)) return { loss, top1: out.top1 };
          optimizer.zeroGrad();
          if (scaler === undefined) {
            out.loss.backward();
            optimizer.step();
          } else {
            scaler.scaleLoss(out.loss).backward();
            scaler.step(optimizer, trainable);
          }
          return { loss, top1: out.top1 };
        });
        if (!Number.isFinite(result.loss)) {
          return await finish(
            'diverged',
            `loss became ${result.loss} at epoch ${epoch}, step ${at.step + 1}; stopped without saving. ` +
              `The last good checkpoint is ${checkpoint ?? 'none (no epoch finished)'}; lower --lr and resume from it.`,
          );
        }
        lastLoss = result.loss;
        at = { epoch, batch: batch.index + 1, step: at.step + 1 };
        options.onStep?.(at.step, result.loss);
        windowImages += batch.ids.length;
        const seconds = (performance.now() - windowStart) / 1000;
        const imagesPerSecond = windowImages / seconds;
        if (at.step % config.logEvery === 0) {
          const lr = optimizer.paramGroups[0]!.lr;
          appendFileSync(
            metricsPath,
            `${JSON.stringify({ step: at.step, epoch, batch: batch.index, loss: result.loss, top1: result.top1, lr, imagesPerSecond })}\n`,
          );
          windowStart = performance.now();
          windowImages = 0;
        }
        progress.update(
          at.step,
          `epoch ${epoch + 1}/${config.epochs} loss ${result.loss.toFixed(4)} top1 ${result.top1.toFixed(3)} ${imagesPerSecond.toFixed(1)} img/s`,
        );
      } finally {
        batch.dispose();
      }
      if (aborted()) {
        writePretrainCheckpoint(lastPath, state, config, at);
        checkpoint = lastPath;
        return await finish(
          'interrupted',
          `interrupted: saved ${lastPath} (epoch ${epoch}, batch ${at.batch}); continue with --resume`,
        );
      }
      if (config.maxSteps > 0 && at.step >= config.maxSteps) break;
    }
    const epochDone = at.batch >= perEpoch;
    if (epochDone) {
      scheduler.step();
      at = { epoch: epoch + 1, batch: 0, step: at.step };
      if (monitor !== undefined) {
        const monitorAuc = await monitor.evaluate(model.encoderQ);
        appendFileSync(metricsPath, `${JSON.stringify({ epoch: at.epoch, step: at.step, monitorAuc })}\n`);
        log(`epoch ${at.epoch}: kNN AUC on '${monitor.task}' ${monitorAuc.toFixed(4)}`);
      }
    }
    writePretrainCheckpoint(lastPath, state, config, at);
    checkpoint = lastPath;
    if (epochDone && (at.epoch % config.checkpointEvery === 0 || at.epoch === config.epochs)) {
      const numbered = join(runDir, `checkpoint_${String(at.epoch).padStart(4, '0')}.pt`);
      // The same state as last.pt: copy its bytes rather than serialize again
      // (through a temporary name, so that a numbered file is never half written).
      copyFileSync(lastPath, `${numbered}.tmp`);
      renameSync(`${numbered}.tmp`, numbered);
    }
    if (config.maxSteps > 0 && at.step >= config.maxSteps) break;
  }
  return finish(
    'finished',
    `pretraining finished: ${at.step} steps, last loss ${lastLoss.toFixed(4)}; checkpoint ${lastPath}`,
  );
}
