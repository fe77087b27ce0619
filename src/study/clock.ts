/**
 * What a study remembers of time across invocations: when it started, and how
 * long its pretraining has run in all. A rerun that continues a study reports
 * the first invocation's start and the real pretraining time instead of its
 * own (a reused pretraining takes no time in the rerun, but did take time).
 * Downstream time needs no record: every cell's draws keep their own seconds.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The study's clock, kept in `clock.json` in the study folder. */
export interface StudyClock {
  /** When the study's first invocation started (ISO 8601). */
  createdAt: string;
  /** Seconds of pretraining over every invocation. */
  pretrainSeconds: number;
}

const FILE = 'clock.json';

/** The study's clock: the one saved in `dir`, or a new one starting now. */
export function readStudyClock(dir: string, now = new Date()): StudyClock {
  const path = join(dir, FILE);
  const fresh = { createdAt: now.toISOString(), pretrainSeconds: 0 };
  if (!existsSync(path)) return fresh;
  try {
    const saved = JSON.parse(readFileSync(path, 'utf8')) as Partial<StudyClock>;
    if (typeof saved.createdAt !== 'string' || typeof saved.pretrainSeconds !== 'number') return fresh;
    return { createdAt: saved.createdAt, pretrainSeconds: saved.pretrainSeconds };
  } catch {
    // A clock cut by a killed write only loses the record of time, never work.
    return fresh;
  }
}

/** Saves the clock (through a temporary file, so a kill never leaves half of it). */
export function writeStudyClock(dir: string, clock: StudyClock): void {
  const path = join(dir, FILE);
  writeFileSync(`${path}.tmp`, `${JSON.stringify(clock)}\n`);
  renameSync(`${path}.tmp`, path);
}
