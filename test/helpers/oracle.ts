/**
 * The PyTorch oracle: runs Python code in Debian's python3 (which carries
 * python3-torch and python3-torchvision over the same libtorch as the addon)
 * and exchanges JSON with it. Tests that need it skip with a reason when it is
 * absent.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Debian's interpreter; the first python3 on PATH may be another one without torch. */
export const PYTHON = '/usr/bin/python3';

let available: string | undefined;

/** Why the oracle cannot run, or undefined when it can (use as `{ skip: oracleMissing() }`). */
export function oracleMissing(): string | undefined {
  if (available === undefined) {
    if (!existsSync(PYTHON)) {
      available = `${PYTHON} not found`;
    } else {
      const probe = spawnSync(PYTHON, ['-c', 'import torch, torchvision'], { encoding: 'utf8' });
      available =
        probe.status === 0 ? '' : `PyTorch oracle unavailable: ${probe.stderr.trim().split('\n').pop() ?? ''}`;
    }
  }
  return available === '' ? undefined : available;
}

/**
 * The oracle's environment: this process's, with `ORACLE_<NAME>=value`
 * setting `<NAME>` for Python alone (an empty value unsets it). So one side can
 * run other kernels than the other, as on another CPU:
 * `ATEN_CPU_CAPABILITY=avx2 ORACLE_ATEN_CPU_CAPABILITY= node --test ...`
 * restricts ATen's vector kernels here and leaves PyTorch's alone.
 */
function pythonEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: process.env['OMP_NUM_THREADS'] ?? '2' };
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('ORACLE_')) continue;
    const name = key.slice('ORACLE_'.length);
    if (value === undefined || value === '') delete env[name];
    else env[name] = value;
  }
  return env;
}

/**
 * Runs `script` in python3. The script reads `INPUT` (the JSON-decoded `input`)
 * and `WORKDIR` (a temporary folder shared with the test), and its value of
 * `OUTPUT` is returned JSON-decoded. float32 values survive the trip exactly.
 */
export function runPython<T = unknown>(script: string, input: unknown = null, workdir?: string): T {
  const prelude = [
    'import json, sys, os',
    'INPUT = json.loads(sys.stdin.read())',
    `WORKDIR = ${JSON.stringify(workdir ?? '')}`,
    'OUTPUT = None',
  ].join('\n');
  const epilogue = '\nsys.stdout.write("\\n@@OUTPUT@@" + json.dumps(OUTPUT))\n';
  const result = spawnSync(PYTHON, ['-c', `${prelude}\n${script}\n${epilogue}`], {
    input: JSON.stringify(input),
    encoding: 'utf8',
    maxBuffer: 1 << 30,
    env: pythonEnvironment(),
  });
  if (result.status !== 0) {
    throw new Error(`python oracle failed (exit ${String(result.status)}):\n${result.stderr}`);
  }
  const marker = result.stdout.lastIndexOf('@@OUTPUT@@');
  if (marker < 0) throw new Error(`python oracle printed no output:\n${result.stdout}\n${result.stderr}`);
  return JSON.parse(result.stdout.slice(marker + '@@OUTPUT@@'.length)) as T;
}

/** A fresh temporary folder, removed by the returned cleanup function. */
export function tempDir(prefix = 'moco-cxr-test-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** Largest absolute difference between two equally long numeric arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs((a[i] as number) - (b[i] as number));
    if (Number.isNaN(d)) return Infinity;
    if (d > worst) worst = d;
  }
  return worst;
}
