/**
 * Runs a study: MoCo pretraining on the source images (or a given checkpoint),
 * then for every target, mode and starting point — MoCo or the baseline — the
 * label-fraction grid of draws, then the report. Every step writes into the
 * study folder, and a rerun picks up where the last one stopped: a finished
 * pretraining and finished cells are reused.
 *
 * Across the ranks of a process group (under `moco-cxr launch` or torchrun)
 * the pretraining is data-parallel, and the downstream cells, independent of
 * one another, are spread over the ranks (each runs its cells one-process and
 * the results are gathered over the group's collectives); rank 0 alone writes
 * the study folder and the report. The ranks share the study folder (one
 * machine, or a shared file system): the others read the pretrained
 * checkpoint and the caches rank 0 wrote.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { broadcastJson, inLaunchGroup, type ProcessGroup } from '../distributed/index.js';
import { checkResumable, dataParallelConfig, pretrain, resolvePretrainConfig } from '../moco/pretrain.js';
import { runDownstream, type DownstreamResult } from '../downstream/index.js';
import { readStudyClock, writeStudyClock } from './clock.js';
import { modeGrid, type StudyConfig, targetModes } from './config.js';
import { TARGET_SOURCE_KEYS } from './settings.js';
import { cellKey } from './format.js';
import { writeReport, type WrittenReport } from './report.js';
import {
  type Initialization,
  type StudyCell,
  type StudyResults,
  type StudyTestSet,
  type TrainingMode,
} from './results.js';

export interface StudyHooks {
  signal?: AbortSignal;
  log?: (line: string) => void;
  plainProgress?: boolean;
  /** The process group this study is a rank of (default: the launch environment's when WORLD_SIZE > 1). */
  group?: ProcessGroup;
}

export interface StudyOutcome {
  status: 'finished' | 'interrupted' | 'failed';
  dir: string;
  /** The report's files, when the grid finished. */
  report?: WrittenReport;
  results?: StudyResults;
  message: string;
}

/** Pretrains (or resumes, or reuses) and returns the MoCo checkpoint to start from. */
async function pretrainedCheckpoint(
  config: StudyConfig,
  hooks: StudyHooks,
  group: ProcessGroup | undefined,
): Promise<{ checkpoint?: string; seconds: number; message?: string }> {
  if ('checkpoint' in config.pretrain) return { checkpoint: config.pretrain.checkpoint, seconds: 0 };
  const out = join(config.out, 'pretrain');
  const last = join(out, 'last.pt');
  const settings = {
    seed: config.seed,
    device: config.device,
    arch: config.arch,
    imageSize: config.imageSize,
    cacheDir: config.cacheDir,
    ...config.pretrain,
    out,
  };
  // A data-parallel pretraining records the settings it ran with (its batch-norm shuffle across the ranks).
  const resolved = dataParallelConfig(resolvePretrainConfig(settings), group?.size ?? 1);
  // A pretraining already in the study folder is reused or continued only if
  // it was made with these settings; the check lists every difference.
  let done: number | undefined;
  if ((group === undefined || group.rank === 0) && existsSync(last)) {
    try {
      done = checkResumable(out, resolved).position.epoch;
      if (done > resolved.epochs) {
        throw new Error(`its checkpoint has ${done} epochs of pretraining, more than the ${resolved.epochs} asked for`);
      }
    } catch (error) {
      throw new Error(
        `the pretraining in ${out} does not match the study's pretrain settings: ${(error as Error).message}\n` +
          `Restore those settings in the study file, or pretrain anew (another out, or remove ${out}).`,
      );
    }
  }
  // Rank 0's reading of the folder decides for all.
  if (group !== undefined) done = (await broadcastJson(group, done ?? null)) ?? undefined;
  if (done !== undefined && done === resolved.epochs) {
    hooks.log?.(`pretraining: reusing ${last} (${done} epochs)`);
    return { checkpoint: last, seconds: 0 };
  }
  const started = performance.now();
  const result = await pretrain(settings, {
    resume: done !== undefined,
    signal: hooks.signal,
    log: hooks.log,
    plainProgress: hooks.plainProgress,
    group,
  });
  const seconds = (performance.now() - started) / 1000;
  if (result.status !== 'finished') return { seconds, message: result.message };
  return { checkpoint: last, seconds };
}

/** The test set of a target, from any of its finished cells (they all share it). */
function testSetOf(result: DownstreamResult): StudyTestSet {
  return { ids: result.test.ids, studyIds: result.test.studyIds, labels: result.test.labels };
}

/** Runs the whole study described by `config` and writes its report. */
export async function runStudy(config: StudyConfig, hooks: StudyHooks = {}): Promise<StudyOutcome> {
  return inLaunchGroup(hooks.group, (group) =>
    runStudyIn(config, hooks, group !== undefined && group.size > 1 ? group : undefined),
  );
}

/** The study on one process, or as one rank of `group`. */
async function runStudyIn(
  config: StudyConfig,
  hooks: StudyHooks,
  group: ProcessGroup | undefined,
): Promise<StudyOutcome> {
  const main = group === undefined || group.rank === 0;
  const baseLog = hooks.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const log = main ? baseLog : () => undefined;
  const clock = readStudyClock(config.out);
  if (main) {
    mkdirSync(config.out, { recursive: true });
    writeFileSync(join(config.out, 'study.json'), `${JSON.stringify(config, null, 2)}\n`);
    writeStudyClock(config.out, clock);
  }
  const timings: Record<string, number> = {};

  log(`study '${config.name}': pretraining`);
  const pretrained = await pretrainedCheckpoint(config, { ...hooks, log }, group);
  // The others read the checkpoint rank 0 wrote.
  await group?.barrier();
  clock.pretrainSeconds += pretrained.seconds;
  if (main) writeStudyClock(config.out, clock);
  timings.pretrain = clock.pretrainSeconds;
  if (pretrained.checkpoint === undefined) {
    const interrupted = hooks.signal?.aborted === true;
    return {
      status: interrupted ? 'interrupted' : 'failed',
      dir: config.out,
      message: `pretraining did not finish: ${pretrained.message ?? ''}`,
    };
  }
  const inits: Record<Initialization, string> = { moco: `moco:${pretrained.checkpoint}`, baseline: config.baseline };

  const cells = new Map<string, StudyCell>();
  const tests: Record<string, StudyTestSet> = {};
  const fractionsByTarget: Record<string, Partial<Record<TrainingMode, number[]>>> = {};
  for (const target of config.targets) {
    fractionsByTarget[target.name] = {};
    for (const mode of targetModes(config, target)) {
      const grid = modeGrid(config, target, mode);
      fractionsByTarget[target.name]![mode] = grid.fractions;
      for (const init of ['moco', 'baseline'] as const) {
        // In a group the ranks agree on stopping inside the run (each may see the signal at another moment).
        if (group === undefined && hooks.signal?.aborted === true) break;
        log(`study '${config.name}': ${target.name} / ${mode} / ${init}`);
        const run = await runDownstream(
          mode,
          {
            train: target.train,
            test: target.test,
            val: target.val,
            valSplit: target.valSplit,
            task: target.task,
            uncertain: target.uncertain,
            ...Object.fromEntries(TARGET_SOURCE_KEYS.map((key) => [key, target[key]])),
            fractions: grid.fractions,
            draws: grid.draws,
            per: config.per,
            seed: config.seed,
            init: inits[init],
            arch: config.arch,
            imageSize: config.imageSize,
            normalize: config.normalize,
            epochs: grid.epochs,
            lr: config.training.lr,
            batchSize: config.training.batchSize,
            ensemble: config.training.ensemble,
            evalEvery: config.training.evalEvery,
            patience: config.training.patience,
            probe: config.training.probe,
            bnStats: config.training.bnStats,
            trunkLr: config.training.trunkLr,
            warmup: config.training.warmup,
            bootstrap: 0,
            device: config.device,
            out: join(config.out, target.name, `${mode}-${init}`),
            cacheDir: config.cacheDir,
          },
          { signal: hooks.signal, log: baseLog, plainProgress: hooks.plainProgress, group, spreadCells: true },
        );
        for (const result of run.results) {
          // The cells' own seconds: a cell finished by an earlier invocation counts its real time.
          timings[mode] = (timings[mode] ?? 0) + result.seconds;
          tests[target.name] ??= testSetOf(result);
          const name = cellKey(target.name, mode, init, result.fraction);
          let cell = cells.get(name);
          if (cell === undefined) {
            cell = { target: target.name, task: result.task, mode, init, fraction: result.fraction, draws: [] };
            cells.set(name, cell);
          }
          cell.draws.push({
            draw: result.draw,
            trainIds: result.trainIds,
            valAuc: result.valAuc,
            scores: alignScores(result, tests[target.name]!),
            seconds: result.seconds,
          });
        }
        if (run.status === 'interrupted') break;
      }
    }
  }

  const results: StudyResults = {
    name: config.name,
    createdAt: clock.createdAt,
    settings: config as unknown as Record<string, unknown>,
    tests,
    cells: [...cells.values()],
    timings,
  };
  const interrupted = hooks.signal?.aborted === true;
  if (!main) {
    return {
      status: interrupted ? 'interrupted' : 'finished',
      dir: config.out,
      results,
      message: `study: rank ${group.rank}'s cells done; rank 0 writes the report`,
    };
  }
  writeFileSync(join(config.out, 'results.json'), JSON.stringify(results));
  const report = await writeReport(results, config.out, {
    replicates: config.bootstrap,
    seed: config.seed,
    fractions: fractionsByTarget,
  });
  const message = interrupted
    ? `interrupted; the report covers the cells finished so far: ${join(config.out, 'report.html')}. Rerun to continue.`
    : `study finished: ${join(config.out, 'report.md')} and ${join(config.out, 'report.html')}`;
  return { status: interrupted ? 'interrupted' : 'finished', dir: config.out, report, results, message };
}

/** A cell's scores in the order of the target's test ids (all cells share one order). */
function alignScores(result: DownstreamResult, test: StudyTestSet): number[] {
  const ids = result.test.ids;
  if (ids.length === test.ids.length && ids.every((id, i) => id === test.ids[i])) return result.test.scores;
  const byId = new Map(ids.map((id, i) => [id, result.test.scores[i]!]));
  return test.ids.map((id) => {
    const score = byId.get(id);
    if (score === undefined)
      throw new Error(`study: test image '${id}' has no score in ${result.mode} fraction ${result.fraction}`);
    return score;
  });
}
