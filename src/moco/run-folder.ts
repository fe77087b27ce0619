/**
 * The pretraining run folder's bookkeeping: whether a run may be resumed with
 * its settings, its `config.json`, what a fresh start finds there, the temporary files an interrupted
 * checkpoint write leaves, and metrics rows written after the last checkpoint.
 */
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { type PretrainPosition, readCheckpointSummary } from './checkpoint.js';
import { PRETRAIN_DEFAULTS, type PretrainConfig, RESUMABLE_SETTINGS } from './settings.js';

/** One setting that differs between a stored run and a new request. */
export interface SettingChange {
  key: keyof PretrainConfig;
  stored: unknown;
  next: unknown;
  /** Why it is refused; undefined when the change is allowed. */
  refused?: string;
}

/** A cosine schedule ('cosine', 'cosine:WARMUP') spans the run's epochs, so changing them changes its rates. */
function epochsShapeSchedule(schedule: string): boolean {
  return schedule === 'cosine' || schedule.startsWith('cosine:');
}

/**
 * The settings of `next` that differ from `stored` (a run's saved config;
 * keys it lacks, written by an older version, count as `defaults`), each
 * marked refused unless a resumed run may change it.
 */
export function settingChanges(
  stored: Record<string, unknown>,
  next: PretrainConfig,
  defaults: Partial<PretrainConfig>,
): SettingChange[] {
  const changes: SettingChange[] = [];
  for (const key of Object.keys(next) as (keyof PretrainConfig)[]) {
    let before: unknown = stored[key] ?? defaults[key];
    if (key === 'cacheSize' && before === 0) before = stored.imageSize;
    const after = next[key];
    if (JSON.stringify(before) === JSON.stringify(after)) continue;
    let refused: string | undefined = RESUMABLE_SETTINGS.includes(key) ? undefined : 'it defines the run';
    if (key === 'epochs' && epochsShapeSchedule(next.schedule)) {
      refused = `the '${next.schedule}' schedule spans the epochs`;
    }
    changes.push({ key, stored: before, next: after, refused });
  }
  return changes;
}

/** `key: stored → new` lines for a message. */
export function describeChanges(changes: readonly SettingChange[]): string {
  return changes
    .map(
      (c) => `  ${c.key}: ${JSON.stringify(c.stored)} → ${JSON.stringify(c.next)}${c.refused ? ` (${c.refused})` : ''}`,
    )
    .join('\n');
}

/** Reads a run folder's `config.json`, or undefined when there is none. Errors name the file. */
export function readRunConfig(runDir: string): Record<string, unknown> | undefined {
  const file = join(runDir, 'config.json');
  if (!existsSync(file)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`${file}: unreadable (${(error as Error).message}); restore it or choose another --out`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new Error(`${file}: expected a mapping of settings; restore it or choose another --out`);
  }
  return parsed as Record<string, unknown>;
}

const CHECKPOINT_FILE = /^(last|checkpoint_\d+)\.pt$/;
/**
 * `torch.save`'s temporary names (`.last.pt.<pid>.<hex>.tmp`), the metrics
 * rewrite's (`metrics.jsonl.<pid>.tmp`) and the numbered checkpoints' copy
 * (`checkpoint_0005.pt.tmp`).
 */
const TEMPORARY_FILE =
  /^(?:\.(?:last|checkpoint_\d+)\.pt\.(\d+)\.[0-9a-f]+\.tmp|metrics\.jsonl\.(\d+)\.tmp|checkpoint_\d+\.pt\.tmp)$/;

function isRunning(pid: number): boolean {
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the temporary checkpoint files that a process killed while saving
 * left in `runDir` (only names of the checkpoint writer's own patterns, and
 * not those of a process still running). Returns the names and bytes removed.
 */
export function removeStaleTemporaries(runDir: string): { files: string[]; bytes: number } {
  const removed = { files: [] as string[], bytes: 0 };
  if (!existsSync(runDir)) return removed;
  for (const name of readdirSync(runDir)) {
    const match = TEMPORARY_FILE.exec(name);
    if (match === null) continue;
    const pid = match[1] ?? match[2];
    if (pid !== undefined && isRunning(Number(pid))) continue;
    const path = join(runDir, name);
    removed.bytes += statSync(path).size;
    rmSync(path, { force: true });
    removed.files.push(name);
  }
  return removed;
}

/**
 * Makes sure a run without `--resume` may start in `runDir`: refused when the
 * folder holds a checkpoint (work a fresh start would overwrite) or another
 * command's config; the metrics of a run that stopped before its first
 * checkpoint are discarded so the new run's rows start clean. Other files are
 * left alone. Returns a line for the log when something was discarded.
 */
export function prepareFreshRun(runDir: string): string | undefined {
  if (!existsSync(runDir)) return undefined;
  const checkpoints = readdirSync(runDir).filter((name) => CHECKPOINT_FILE.test(name));
  if (checkpoints.length > 0) {
    throw new Error(
      `run folder ${runDir} already holds a checkpoint: pass --resume to continue it, choose another --out, ` +
        `or delete the folder to start over (it holds ${checkpoints.sort().join(', ')})`,
    );
  }
  const stored = readRunConfig(runDir);
  if (stored !== undefined && stored.command !== 'pretrain') {
    throw new Error(
      `run folder ${runDir} holds a '${String(stored.command)}' run, not a pretraining: choose another --out`,
    );
  }
  const metrics = join(runDir, 'metrics.jsonl');
  if (!existsSync(metrics)) return undefined;
  const rows = readFileSync(metrics, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '').length;
  rmSync(metrics);
  return `run folder ${runDir} holds no checkpoint: starting afresh (discarded ${rows} metrics rows of the unsaved run)`;
}

/**
 * Cuts `metrics.jsonl` back to the rows of steps up to `step` (those a run
 * killed after its last checkpoint wrote again on every resume), dropping
 * unreadable lines too, and rewrites it atomically. Returns the rows dropped.
 */
export function trimMetrics(path: string, step: number): number {
  if (!existsSync(path)) return 0;
  const lines = readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '');
  const kept = lines.filter((line) => {
    try {
      const row = JSON.parse(line) as { step?: unknown };
      return typeof row.step === 'number' && row.step <= step;
    } catch {
      return false;
    }
  });
  if (kept.length === lines.length) return 0;
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, kept.map((line) => `${line}\n`).join(''));
  renameSync(temporary, path);
  return lines.length - kept.length;
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
export function writeRunConfig(runDir: string, config: PretrainConfig, log: (line: string) => void): void {
  const file = join(runDir, 'config.json');
  const text = `${JSON.stringify({ ...config, command: 'pretrain' }, null, 2)}\n`;
  const before = existsSync(file) ? readFileSync(file, 'utf8') : undefined;
  if (before === text) return;
  writeFileSync(file, text);
  if (before !== undefined) log(`${file}: rewritten with this run's settings`);
}
