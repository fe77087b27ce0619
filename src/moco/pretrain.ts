/**
 * The MoCo pretraining loop, laid out as `main_moco.py`: set-up (`setup.ts`:
 * run folder, data, model, optimizer), one epoch (data → two augmented views →
 * MoCo step → optimizer, on one process or as a rank of a group), and save.
 * Around it: progress, Ctrl-C that saves, exact resume, and a stop on a
 * non-finite loss that keeps the last good checkpoint. The settings live in
 * `settings.ts`, the checkpoint format in `checkpoint.ts`, the run folder's
 * upkeep in `run-folder.ts`.
 */
import { copyFileSync, renameSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { broadcastTensors, type GradSyncStep, inLaunchGroup, type ProcessGroup } from '../distributed/index.js';
import { type BatchLoader } from '../data/loader.js';
import { combineSeeds } from '../data/prng.js';
import * as torch from '../torch/index.js';
import { Progress } from '../util/progress.js';
import { type PretrainPosition, writePretrainCheckpoint } from './checkpoint.js';
import { distributedMoCoStep } from './distributed-step.js';
import { KnnMonitor } from './monitor.js';
import { type PretrainConfig, resolvePretrainConfig } from './settings.js';
import {
  CACHE_BUILD_TIMEOUT_MS,
  dataParallelConfig,
  logMetrics,
  openRunFolder,
  resumeTraining,
  type RunPaths,
  setUpData,
  setUpLoader,
  setUpTraining,
  type Training,
} from './setup.js';

export { checkResumable } from './run-folder.js';
export { dataParallelConfig } from './setup.js';
export {
  parseSchedule,
  parseShuffleBn,
  PRETRAIN_DEFAULTS,
  PRETRAIN_SETTINGS,
  type PretrainConfig,
  resolvePretrainConfig,
} from './settings.js';

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
  /** Called after every step with its loss (after the optimizer step; in a group, the mean over ranks). */
  onStep?: (step: number, loss: number) => void;
  /**
   * Train data-parallel in this process group (each rank its shard of every
   * global batch of `batchSize`). Without it, a launch environment of more
   * than one process (WORLD_SIZE > 1, as torchrun and `moco-cxr launch` set)
   * joins its group; otherwise the run is one process.
   */
  group?: ProcessGroup;
  /** In a group, called after each step's backward with what the gradient reduction took (for benchmarks). */
  onGradSync?: (sync: GradSyncStep) => void;
}

/** Where a run stands while it trains, shared by the epochs. */
interface Standing {
  at: PretrainPosition;
  lastLoss: number;
  checkpoint: string | undefined;
  /** Images and start time of the throughput window since the last metrics row. */
  windowStart: number;
  windowImages: number;
}

/** How an epoch ended: it ran out of batches (or reached the step limit), was interrupted, or diverged. */
type EpochEnd = { kind: 'done' } | { kind: 'interrupted' } | { kind: 'diverged'; loss: number };

/**
 * Trains one epoch from `standing.at`, updating it after every step: MoCo step,
 * backward, optimizer step, a metrics row every `logEvery` steps, progress.
 * Saves `last.pt` and returns on an abort; returns without saving on a
 * non-finite loss.
 */
async function trainOneEpoch(
  epoch: number,
  config: PretrainConfig,
  run: RunPaths,
  training: Training,
  loader: BatchLoader,
  standing: Standing,
  progress: Pick<Progress, 'update'>,
  hooks: PretrainHooks,
): Promise<EpochEnd> {
  const { layout, group } = training;
  const device = config.device as torch.Device;
  const main = group === undefined || group.rank === 0;
  const world = group?.size ?? 1;
  const firstBatch = epoch === standing.at.epoch ? standing.at.batch : 0;
  for await (const batch of loader.epoch(epoch, firstBatch)) {
    let result: StepResult;
    try {
      // Seeding each step makes any randomness inside it (shuffle BN) repeat on resume.
      torch.manualSeed(combineSeeds(config.seed, epoch, batch.index));
      const [q, k] = torch.tidy(() => batch.views.slice(0, 2).map((view) => view.to(device).contiguous(layout))) as [
        torch.Tensor,
        torch.Tensor,
      ];
      try {
        result = group === undefined ? singleStep(training, q, k) : await distributedStep(training, group, q, k, hooks);
      } finally {
        torch.dispose([q, k]);
      }
      if (!Number.isFinite(result.loss)) return { kind: 'diverged', loss: result.loss };
      standing.lastLoss = result.loss;
      standing.at = { epoch, batch: batch.index + 1, step: standing.at.step + 1 };
      const step = standing.at.step;
      hooks.onStep?.(step, result.loss);
      standing.windowImages += batch.ids.length * world;
      const imagesPerSecond = standing.windowImages / ((performance.now() - standing.windowStart) / 1000);
      if (step % config.logEvery === 0) {
        const lr = training.optimizer.paramGroups[0]!.lr;
        logMetrics(run, { step, epoch, batch: batch.index, loss: result.loss, top1: result.top1, lr, imagesPerSecond });
        standing.windowStart = performance.now();
        standing.windowImages = 0;
      }
      progress.update(
        step,
        `epoch ${epoch + 1}/${config.epochs} loss ${result.loss.toFixed(4)} top1 ${result.top1.toFixed(3)} ${imagesPerSecond.toFixed(1)} img/s`,
      );
    } finally {
      batch.dispose();
    }
    // In a group every rank stops after the same step: the stop is decided with the step's metrics. One
    // process stops after the step in which the signal came (its hooks may raise it after the step).
    if (group === undefined ? hooks.signal?.aborted === true : result.stop === true) {
      if (main) writePretrainCheckpoint(run.lastPath, training.state, config, standing.at);
      standing.checkpoint = run.lastPath;
      return { kind: 'interrupted' };
    }
    if (reachedStepLimit(config, standing.at)) break;
  }
  return { kind: 'done' };
}

/** One step's loss and top-1 (over all ranks in a group) and, in a group, whether every rank stops after it. */
interface StepResult {
  loss: number;
  top1: number;
  stop?: boolean;
}

/** One process: MoCo step, backward, optimizer step. */
function singleStep(training: Training, q: torch.Tensor, k: torch.Tensor): StepResult {
  const { optimizer, scaler, forward, trainable } = training;
  return torch.tidy(() => {
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
}

/**
 * One data-parallel step: the MoCo step across ranks, the loss, top-1 and
 * stop flag summed over ranks in one allreduce (so every rank sees the same
 * loss, and stops or diverges at the same step), backward with the gradients
 * averaged across ranks (during backward or after it: `gradSync`), optimizer
 * step.
 */
async function distributedStep(
  training: Training,
  group: ProcessGroup,
  q: torch.Tensor,
  k: torch.Tensor,
  hooks: PretrainHooks,
): Promise<StepResult> {
  const { optimizer, model, layout, gradSync } = training;
  if (gradSync === undefined) throw new Error('pretrain: a data-parallel step needs the gradient sync of its group');
  const signal = hooks.signal;
  const out = await distributedMoCoStep(model, q, k, group, layout);
  try {
    const stats = torch.tensor([out.loss.item(), out.top1, signal?.aborted === true ? 1 : 0], [3]);
    try {
      await group.allreduce(stats, 'sum');
      const [loss, top1, stops] = Array.from(stats.data() as Float32Array);
      const result = { loss: loss! / group.size, top1: top1! / group.size, stop: stops! > 0 };
      if (!Number.isFinite(result.loss)) return result;
      optimizer.zeroGrad();
      const sync = await gradSync.backward(out.loss);
      hooks.onGradSync?.(sync);
      optimizer.step();
      return result;
    } finally {
      stats.dispose();
    }
  } finally {
    torch.dispose([out.logits, out.loss]);
  }
}

function reachedStepLimit(config: PretrainConfig, at: PretrainPosition): boolean {
  return config.maxSteps > 0 && at.step >= config.maxSteps;
}

/**
 * Saves the run's position: `last.pt` always, and every `checkpointEvery`
 * finished epochs (and after the last) a numbered copy of it.
 */
function save(config: PretrainConfig, run: RunPaths, training: Training, standing: Standing, epochDone: boolean): void {
  const { at } = standing;
  standing.checkpoint = run.lastPath;
  // In a group the replicas are equal: rank 0 alone writes.
  if (training.group !== undefined && training.group.rank !== 0) return;
  writePretrainCheckpoint(run.lastPath, training.state, config, at);
  if (epochDone && (at.epoch % config.checkpointEvery === 0 || at.epoch === config.epochs)) {
    const numbered = join(run.runDir, `checkpoint_${String(at.epoch).padStart(4, '0')}.pt`);
    // The same state as last.pt: copy its bytes rather than serialize again
    // (through a temporary name, so that a numbered file is never half written).
    copyFileSync(run.lastPath, `${numbered}.tmp`);
    renameSync(`${numbered}.tmp`, numbered);
  }
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
  const baseLog = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const resume = options.resume === true;
  return inLaunchGroup(options.group, (group) => pretrainIn(config, resume, options, group, baseLog));
}

/** The run itself, on one process or as one rank of `group`. */
async function pretrainIn(
  given: PretrainConfig,
  resume: boolean,
  options: PretrainHooks,
  group: ProcessGroup | undefined,
  baseLog: (line: string) => void,
): Promise<PretrainResult> {
  const config = dataParallelConfig(given, group?.size ?? 1);
  const main = group === undefined || group.rank === 0;
  // Other ranks say only what concerns them alone; rank 0 speaks for the run.
  const log = main ? baseLog : () => undefined;
  if (group !== undefined)
    log(`data-parallel: ${group.size} processes (${group.backend}), global batch ${config.batchSize}`);
  const run = openRunFolder(config, resume, log, main);
  // Rank 0 builds the image cache; the others wait for it and then open it.
  if (group !== undefined && !main) await group.barrier(CACHE_BUILD_TIMEOUT_MS);
  const data = await setUpData(config, run, options.signal, log, main);
  if (group !== undefined && main) await group.barrier(CACHE_BUILD_TIMEOUT_MS);
  if (data === undefined) {
    const message = 'interrupted while building the image cache; rerun to continue where it stopped';
    run.events?.close();
    log(message);
    return {
      status: 'interrupted',
      runDir: run.runDir,
      checkpoint: undefined,
      epochsDone: 0,
      steps: 0,
      lastLoss: NaN,
      message,
    };
  }
  const { cache } = data;
  const loader = await setUpLoader(config, cache, data.records, group, log);
  const training = setUpTraining(config, log, group);
  const at = resume ? resumeTraining(run, training, log, main) : { epoch: 0, batch: 0, step: 0 };
  // As DDP does on wrapping a model: every replica starts from rank 0's parameters and buffers.
  if (group !== undefined) await broadcastTensors(group, [...training.model.parameters(), ...training.model.buffers()]);
  const standing: Standing = {
    at,
    lastLoss: NaN,
    checkpoint: resume ? run.lastPath : undefined,
    windowStart: performance.now(),
    windowImages: 0,
  };
  const monitor =
    config.monitor === '' || !main
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
  const totalSteps = Math.min(config.maxSteps > 0 ? config.maxSteps : Infinity, perEpoch * config.epochs);
  const progress = main
    ? new Progress('pretrain', totalSteps, { plain: options.plainProgress })
    : { update: () => undefined, finish: () => undefined };
  const finish = async (status: PretrainResult['status'], message: string): Promise<PretrainResult> => {
    progress.finish();
    run.events?.close();
    await cache.close();
    await monitor?.close();
    training.scaler?.dispose();
    training.gradSync?.dispose();
    training.model.dispose();
    log(message);
    const { at, checkpoint, lastLoss } = standing;
    return { status, runDir: run.runDir, checkpoint, epochsDone: at.epoch, steps: at.step, lastLoss, message };
  };

  for (let epoch = standing.at.epoch; epoch < config.epochs; epoch++) {
    const end = await trainOneEpoch(epoch, config, run, training, loader, standing, progress, options);
    if (end.kind === 'diverged') {
      return finish(
        'diverged',
        `loss became ${end.loss} at epoch ${epoch}, step ${standing.at.step + 1}; stopped without saving. ` +
          `The last good checkpoint is ${standing.checkpoint ?? 'none (no epoch finished)'}; lower --lr and resume from it.`,
      );
    }
    if (end.kind === 'interrupted') {
      return finish(
        'interrupted',
        `interrupted: saved ${run.lastPath} (epoch ${epoch}, batch ${standing.at.batch}); continue with --resume`,
      );
    }
    const epochDone = standing.at.batch >= perEpoch;
    if (epochDone) {
      training.scheduler.step();
      standing.at = { epoch: epoch + 1, batch: 0, step: standing.at.step };
      if (monitor !== undefined) {
        const monitorAuc = await monitor.evaluate(training.model.encoderQ);
        logMetrics(run, { epoch: standing.at.epoch, step: standing.at.step, monitorAuc });
        log(`epoch ${standing.at.epoch}: kNN AUC on '${monitor.task}' ${monitorAuc.toFixed(4)}`);
      }
    }
    save(config, run, training, standing, epochDone);
    if (reachedStepLimit(config, standing.at)) break;
  }
  return finish(
    'finished',
    `pretraining finished: ${standing.at.step} steps, last loss ${standing.lastLoss.toFixed(4)}; checkpoint ${run.lastPath}`,
  );
}
