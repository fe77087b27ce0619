/**
 * The set-up of a pretraining run, as `main_moco.py` lays it out before its
 * epochs: the run folder (checked, cleared of what a killed run left), the
 * images and their cache, the two-view loader, the model with its optimizer,
 * schedule and fp16 scaler, the state a resume restores, and the settings of
 * a data-parallel run. `pretrain.ts` runs the epochs over what this makes.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { mocoCxrAugmentation } from '../data/augment.js';
import { EventWriter, removeEvents, rowScalars, trimEvents } from '../util/tensorboard.js';
import { GradientSync, type ProcessGroup, SETUP_TIMEOUT_MS } from '../distributed/index.js';
import { buildCache, type ImageCache } from '../data/cache.js';
import { sourceCacheFolder } from '../data/cache-folder.js';
import { BatchLoader } from '../data/loader.js';
import { type XrayRecord } from '../data/records.js';
import { openSource, skippedNote } from '../data/sources/index.js';
import { loadWeights } from '../models/index.js';
import { Adam, createScheduler, type LRScheduler, SGD } from '../optim/index.js';
import * as torch from '../torch/index.js';
import { GradScaler } from '../optim/grad-scaler.js';
import { type PretrainPosition, type PretrainState, restorePretrainCheckpoint } from './checkpoint.js';
import { MoCo } from './model.js';
import {
  checkResumable,
  describeChanges,
  prepareFreshRun,
  removeStaleTemporaries,
  trimMetrics,
  writeRunConfig,
} from './run-folder.js';
import { parseSchedule, parseShuffleBn, type PretrainConfig } from './settings.js';

/** The run folder's files. */
export interface RunPaths {
  runDir: string;
  lastPath: string;
  metricsPath: string;
  /** This invocation's TensorBoard event file, which gets the scalars of every metrics row (rank 0 only). */
  events?: EventWriter;
}

/** Appends a row to `metrics.jsonl` and its scalars to the event file; in a group only rank 0 has them. */
export function logMetrics(run: RunPaths, row: Record<string, unknown> & { step: number }): void {
  if (run.events === undefined) return;
  appendFileSync(run.metricsPath, `${JSON.stringify(row)}\n`);
  run.events.scalars(row.step, rowScalars(row));
}

/** What one run trains with, made by {@link setUpTraining}. */
export interface Training {
  /** The data-parallel group, or undefined for one process. */
  group: ProcessGroup | undefined;
  model: MoCo;
  optimizer: Adam | SGD;
  scheduler: LRScheduler;
  scaler: GradScaler | undefined;
  state: PretrainState;
  layout: torch.MemoryFormat;
  /** The encoder's parameters, whose gradients the fp16 scaler unscales. */
  trainable: torch.Tensor[];
  /** In a group: backward with the encoder's gradients averaged across ranks (during it or after it, as `gradSync` says). */
  gradSync: GradientSync | undefined;
  forward: (q: torch.Tensor, k: torch.Tensor) => ReturnType<MoCo['step']>;
}

/**
 * Checks the run folder before anything in it changes: a resume must fit the
 * recorded settings, a fresh start must not overwrite a checkpoint; then clears
 * what an interrupted save left.
 */
export function openRunFolder(
  config: PretrainConfig,
  resume: boolean,
  log: (line: string) => void,
  main = true,
): RunPaths {
  const runDir = resolve(config.out);
  const paths = { runDir, lastPath: join(runDir, 'last.pt'), metricsPath: join(runDir, 'metrics.jsonl') };
  // In a group, rank 0 alone checks and tidies the folder it alone writes.
  if (!main) return paths;
  if (resume) {
    const { allowed, storedIn } = checkResumable(runDir, config);
    if (storedIn === undefined) log(`resume: ${runDir} has no record of its settings; they cannot be checked`);
    if (allowed.length > 0) log(`resume: settings changed from the run's record:\n${describeChanges(allowed)}`);
  } else {
    const fresh = prepareFreshRun(runDir);
    if (fresh !== undefined) log(fresh);
    // Event files of an unsaved run go with its metrics rows.
    removeEvents(runDir);
  }
  const stale = removeStaleTemporaries(runDir);
  if (stale.files.length > 0) {
    log(
      `run folder: removed ${stale.files.length} temporary file(s) of an interrupted save ` +
        `(${(stale.bytes / 1e6).toFixed(1)} MB: ${stale.files.join(', ')})`,
    );
  }
  mkdirSync(runDir, { recursive: true });
  return { ...paths, events: new EventWriter(runDir) };
}

/** Opens the images, writes the run's config, and builds the cache; undefined when interrupted during the build. */
export async function setUpData(
  config: PretrainConfig,
  run: RunPaths,
  signal: AbortSignal | undefined,
  log: (line: string) => void,
  main = true,
): Promise<{ cache: ImageCache; records: readonly XrayRecord[] } | undefined> {
  const source = await openSource(config.data);
  if (main) {
    mkdirSync(run.runDir, { recursive: true });
    writeRunConfig(run.runDir, config, log);
  }
  log(`data: ${source.records.length} images from ${config.data}`);
  const notTaken = skippedNote(source, config.data);
  if (notTaken !== undefined) log(notTaken);
  let built;
  try {
    built = await buildCache(source.records, {
      dir: sourceCacheFolder(config.cacheDir, config.data, config.cacheSize),
      size: config.cacheSize,
      workers: config.workers === 0 ? undefined : config.workers,
      signal,
      log,
    });
  } catch (error) {
    if (signal?.aborted !== true) throw error;
    return undefined;
  }
  const { cache, stats } = built;
  log(
    `cache: ${cache.ids.length} images (${stats.reused ? 'reused' : `${stats.decoded} decoded`}, ${stats.skipped} skipped)`,
  );
  return { cache, records: source.records };
}

/** The two-view loader of MoCo-CXR's augmentation; a cache of fewer images than one batch is an error. */
export async function setUpLoader(
  config: PretrainConfig,
  cache: ImageCache,
  records: readonly XrayRecord[],
  group: ProcessGroup | undefined,
  log: (line: string) => void,
): Promise<BatchLoader> {
  const pairing = config.positives;
  // Records are passed only when pairing needs their patients: without them the loader reads the cache's
  // own order, exactly as before.
  const inCache =
    pairing === 'image' ? undefined : records.filter((record) => cache.positionOfId(record.id) !== undefined);
  const loader = new BatchLoader(cache, {
    shard: group === undefined ? undefined : { rank: group.rank, count: group.size },
    batchSize: config.batchSize,
    seed: config.seed,
    dropLast: true,
    views: 2,
    augment: mocoCxrAugmentation(config.imageSize),
    records: inCache,
    pairGroups: inCache?.map((record) => (pairing === 'patient' ? record.patientId : record.studyId)),
  });
  if (inCache !== undefined) {
    const sizes = new Map<string, number>();
    for (const record of inCache) {
      const group = pairing === 'patient' ? record.patientId : record.studyId;
      sizes.set(group, (sizes.get(group) ?? 0) + 1);
    }
    const alone = [...sizes.values()].filter((size) => size === 1).length;
    log(
      `positives: two images of one ${pairing}: ${inCache.length} images, ${sizes.size} ${pairing === 'patient' ? 'patients' : 'studies'}; ` +
        `${inCache.length - alone} images have a partner, ${alone} pair with themselves`,
    );
  }
  if (loader.batchesPerEpoch === 0) {
    await cache.close();
    throw new Error(`data: ${loader.length} images is fewer than one batch of ${config.batchSize}`);
  }
  return loader;
}

/** The model (from its starting weights, on the device, in its layout), optimizer, schedule and fp16 scaler. */
export function setUpTraining(config: PretrainConfig, log: (line: string) => void, group?: ProcessGroup): Training {
  // In a group each rank is one BatchNorm group (see dataParallelConfig): no split inside a rank.
  const shuffleSplits = group !== undefined && group.size > 1 ? 1 : parseShuffleBn(config.shuffleBn);
  torch.manualSeed(config.seed);
  const model = new MoCo({
    arch: config.arch,
    dim: config.mlpDim,
    queueSize: config.queue,
    momentum: config.momentum,
    temperature: config.temperature,
    shuffleSplits,
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
  const forward = (q: torch.Tensor, k: torch.Tensor): ReturnType<MoCo['step']> =>
    config.precision === 'fp32'
      ? model.step(q, k)
      : torch.autocast(config.device, config.precision === 'bf16' ? 'bfloat16' : 'float16', () => model.step(q, k));
  return {
    group,
    model,
    optimizer,
    scheduler,
    scaler,
    state: { model, optimizer, scheduler, scaler },
    layout,
    trainable: model.encoderQ.parameters(),
    gradSync:
      group === undefined
        ? undefined
        : new GradientSync(group, model.encoderQ.parameters(), { mode: config.gradSync, op: 'avg' }),
    forward,
  };
}

/** Restores the state of `last.pt` and drops metrics rows the checkpoint does not cover; returns its position. */
export function resumeTraining(
  run: RunPaths,
  training: Training,
  log: (line: string) => void,
  main = true,
): PretrainPosition {
  const { lastPath } = run;
  const restored = restorePretrainCheckpoint(lastPath, training.state);
  const at = restored.position;
  log(`resumed from ${lastPath} at epoch ${at.epoch}, batch ${at.batch}`);
  const scaler = training.scaler;
  if (scaler !== undefined) {
    log(
      restored.scalerRestored
        ? `fp16 loss scale restored: ${scaler.factor}`
        : `fp16: ${lastPath} holds no loss scale (an older checkpoint); it starts again at ${scaler.factor}`,
    );
  }
  // Rows of steps after the checkpoint were written by a run that died before saving them.
  if (!main) return at;
  const dropped = trimMetrics(run.metricsPath, at.step);
  if (dropped > 0) log(`metrics: removed ${dropped} rows after step ${at.step} (not covered by the checkpoint)`);
  trimEvents(run.runDir, at.step);
  return at;
}

/** How long the other ranks wait for rank 0 to build the image cache. */
export const CACHE_BUILD_TIMEOUT_MS = SETUP_TIMEOUT_MS;

/**
 * The settings of a run of `world` processes: the batch is the global one,
 * split across them, and BN is shuffled across them as in the original under
 * DDP — which is what the one-process split-batch stand-in over `world`
 * groups computes, so the run records `shuffleBn: split:<world>`, and a
 * one-process resume of its checkpoint continues the same computation.
 */
export function dataParallelConfig(config: PretrainConfig, world: number): PretrainConfig {
  if (world === 1) return config;
  const splits = parseShuffleBn(config.shuffleBn);
  if (splits !== 1 && splits !== world) {
    throw new RangeError(
      `shuffleBn '${config.shuffleBn}': with ${world} processes the batch is shuffled across them; ` +
        `give 'off' or 'split:${world}'`,
    );
  }
  if (config.precision !== 'fp32') {
    throw new RangeError(`precision '${config.precision}': data-parallel training runs in fp32 only`);
  }
  if (config.batchSize % world !== 0) {
    throw new RangeError(`batchSize ${config.batchSize} (the global batch) is not divisible by the ${world} processes`);
  }
  return { ...config, shuffleBn: `split:${world}` };
}
