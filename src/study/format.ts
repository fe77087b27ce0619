/**
 * Names and numbers as the study's report prints them: fractions, intervals,
 * differences, durations, modes and targets.
 */
import { type Interval } from '../eval/index.js';
import type { TrainingMode } from './results.js';

/** Training modes in report order. */
export const MODES: readonly TrainingMode[] = ['linear', 'finetune'];
export const MODE_TITLES: Record<TrainingMode, string> = {
  linear: 'Linear probe',
  finetune: 'Fine-tuning (end to end)',
};
/** What a table shows where there is no number. */
export const DASH = '—';

/** A fraction as a percentage without trailing zeros: 0.001 → `0.1%`, 0.0625 → `6.25%`. */
export function formatFraction(fraction: number): string {
  return `${Number((fraction * 100).toPrecision(6))}%`;
}

/** `0.776 (0.741, 0.810)`, or `—` when there is no interval. */
export function formatInterval(interval: Interval | null): string {
  if (interval === null) return DASH;
  return `${interval.estimate.toFixed(3)} (${interval.lower.toFixed(3)}, ${interval.upper.toFixed(3)})`;
}

/** Like {@link formatInterval} with the estimate's sign always shown: `+0.092 (0.061, 0.130)`. */
export function formatDifference(interval: Interval | null): string {
  if (interval === null) return DASH;
  const sign = interval.estimate >= 0 ? '+' : '';
  return `${sign}${formatInterval(interval)}`;
}

/** `h:mm:ss`. */
export function formatSeconds(seconds: number): string {
  const total = Math.round(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return `${h}:${String(m).padStart(2, '0')}:${String(s).padStart(2, '0')}`;
}

/** The key naming one (target, mode, init, fraction) cell: `source/linear/moco/0.01`. */
export const cellKey = (target: string, mode: string, init: string, fraction: number): string =>
  `${target}/${mode}/${init}/${fraction}`;

/** A target's title: its name and task. */
export function targetTitle(target: string, task: string): string {
  if (task === '') return target === 'source' ? 'Source' : target;
  return target === 'source' ? `Source: ${task}` : `${target}: ${task}`;
}
