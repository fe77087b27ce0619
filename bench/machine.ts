/**
 * The machine line every benchmark run starts with, printed once per process
 * however many benchmarks run: CPU, cores, threads used, libtorch's version
 * and build, Node's and PyTorch's versions. Figures from different machines or
 * builds are not comparable, so each run says which it came from.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

import * as torch from '../src/torch/index.js';
import { PYTHON } from './python.js';

let printed = false;

function cpuModel(): string {
  try {
    const line = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    return line?.[1]?.trim() ?? 'unknown CPU';
  } catch {
    return 'unknown CPU (no /proc/cpuinfo)';
  }
}

function pytorchVersion(): string {
  const result = spawnSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : `unavailable (${PYTHON} failed)`;
}

/** The few build settings that change speed, picked out of libtorch's configuration text. */
function buildFlags(info: ReturnType<typeof torch.buildInfo>): string {
  const pick = (key: string): string | undefined => new RegExp(`${key}=([^,\\s]+)`).exec(info.config)?.[1];
  const capability = /CPU capability usage: (\S+)/.exec(info.config)?.[1];
  const flags = [
    `build ${pick('BUILD_TYPE') ?? '?'}`,
    `CPU capability ${capability ?? '?'}`,
    `BLAS ${pick('BLAS_INFO') ?? '?'}`,
    `MKL ${info.mkl ? 'on' : 'off'}`,
    `MKL-DNN ${info.mkldnn ? 'on' : 'off'}`,
    `OpenMP ${info.openmp ? 'on' : 'off'}`,
    `CUDA ${info.cudaCompiled ? 'on' : 'off'}`,
  ];
  return flags.join(', ');
}

/** Prints the machine description, the first time it is called in this process. */
export function printMachine(): void {
  if (printed) return;
  printed = true;
  const info = torch.buildInfo();
  console.log(
    `machine: ${cpuModel()}, ${availableParallelism()} cores, ${torch.getNumThreads()} threads used; ` +
      `libtorch ${info.version} (${buildFlags(info)}); Node ${process.version}; PyTorch ${pytorchVersion()} (${PYTHON})`,
  );
}
