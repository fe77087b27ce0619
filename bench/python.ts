/**
 * Runs the PyTorch side of a benchmark in Debian's python3 (same libtorch) and
 * returns what the script printed as JSON on its last line.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export const PYTHON = '/usr/bin/python3';

/** Runs `script` with the given thread count; the script prints one JSON line last. */
export function runPythonBench<T>(script: string, threads: number): T {
  // The script goes in on standard input: a long one would exceed the limit on one argument's length.
  const result = spawnSync(PYTHON, ['-'], {
    input: script,
    encoding: 'utf8',
    maxBuffer: 1 << 26,
    env: { ...process.env, OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) },
  });
  if (result.status !== 0) {
    const why =
      result.error?.message ?? (result.signal !== null ? `killed by ${result.signal}` : `exit ${result.status}`);
    throw new Error(`python benchmark failed (${why}):\n${result.stderr ?? ''}`);
  }
  const lines = result.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1] ?? 'null') as T;
}

/**
 * Peak resident memory of this process so far, in MB: the kernel's high-water
 * mark of this program's memory (`VmHWM`). Not `getrusage`'s `maxRSS`, which
 * Linux carries across fork and exec, so a child started by a large process
 * reports its parent's size.
 */
export function peakRssMb(): number {
  try {
    const line = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (line !== null) return Number(line[1]) / 1024;
  } catch {
    // not Linux: fall back below
  }
  return process.resourceUsage().maxRSS / 1024;
}

/**
 * Formats a row of a side-by-side table. With a target, the row says whether
 * ours/pytorch meets it: at least `target` (a rate, higher is better) or, with
 * `atMost`, at most `target` (a cost such as time or memory, lower is better).
 */
export function row(
  label: string,
  ours: number,
  theirs: number,
  unit: string,
  target?: number,
  direction: 'atLeast' | 'atMost' = 'atLeast',
): string {
  const ratio = ours / theirs;
  const met = direction === 'atLeast' ? ratio >= target! : ratio <= target!;
  const goal =
    target === undefined
      ? ''
      : `  target ${direction === 'atLeast' ? '>=' : '<='} ${target.toFixed(2)}x ${met ? 'MET' : 'NOT MET'}`;
  return `${label.padEnd(44)} ours ${ours.toFixed(2).padStart(10)} ${unit}  pytorch ${theirs.toFixed(2).padStart(10)} ${unit}  ratio ${ratio.toFixed(3)}x${goal}`;
}

/** PyTorch's rate in both memory layouts; rows compare against the better one. */
export interface LayoutRates {
  contiguous: number;
  channelsLast: number;
}

/**
 * A row of a rate against PyTorch's better layout, followed by both of PyTorch's
 * figures, so that ours never looks better for PyTorch having run its slower setting.
 */
export function rowBestLayout(label: string, ours: number, theirs: LayoutRates, unit: string, target?: number): string {
  const best = Math.max(theirs.contiguous, theirs.channelsLast);
  const which = best === theirs.channelsLast ? 'channels-last' : 'contiguous';
  return (
    `${row(label, ours, best, unit, target)}\n${''.padEnd(44)} pytorch contiguous ${theirs.contiguous.toFixed(2)}, ` +
    `channels-last ${theirs.channelsLast.toFixed(2)} ${unit}; ratio against the better (${which})`
  );
}
