/**
 * Instructions per operator call, ours against PyTorch: N one-element adds
 * (`a.add(b)` here, `torch.add(a, b)` in Python) counted under
 * `valgrind --tool=callgrind`. Each side runs twice after the same warm-up,
 * once with N adds and once with none, and the difference over N is the cost
 * of one add: start-up, module loading and the warm-up cancel out. Instruction
 * counts do not depend on what else the machine is doing, so they are the
 * stable figure where timings on a shared machine are not.
 * Target: ours ≤ PyTorch's (ratio ≤ 1.0).
 *
 * Run: `npm run bench -- ops` (`--quick` for fewer adds; `--keep` keeps the
 * callgrind files for `callgrind_annotate --inclusive=yes`).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { printMachine } from './machine.js';
import { PYTHON } from './python.js';

const quick = process.argv.includes('--quick');
const keepFiles = process.argv.includes('--keep');
const N = quick ? 5_000 : 20_000;
const WARMUP = 2_000;
const root = fileURLToPath(new URL('..', import.meta.url));

const oursScript = `
import * as torch from ${JSON.stringify(join(root, 'src', 'torch', 'index.ts'))};
const n = Number(process.argv[2]);
const a = torch.ones([1]);
const b = torch.ones([1]);
for (let i = 0; i < ${WARMUP}; i++) a.add(b).dispose();
for (let i = 0; i < n; i++) a.add(b).dispose();
`;

const pythonScript = `
import sys, torch
n = int(sys.argv[1])
a = torch.ones(1); b = torch.ones(1)
for _ in range(${WARMUP}): torch.add(a, b)
for _ in range(n): torch.add(a, b)
`;

// libhwy (loaded with libtorch's Debian dependencies) calibrates a timer with
// rdtscp when it loads, an instruction valgrind 3.19 cannot decode; Node has no
// SIGILL handler to survive it. A preloaded stub of that one function lets
// both processes load the same libraries under callgrind.
const HWY_STUB = 'namespace hwy { namespace platform { unsigned long TimerResolution() { return 1; } } }\n';

function buildStub(dir: string): string {
  const source = join(dir, 'hwy-stub.cc');
  const library = join(dir, 'hwy-stub.so');
  writeFileSync(source, HWY_STUB);
  const result = spawnSync('c++', ['-shared', '-fPIC', '-O2', '-o', library, source], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`building ${library} failed:\n${result.stderr}`);
  return library;
}

function valgrindPresent(): boolean {
  return spawnSync('valgrind', ['--version'], { encoding: 'utf8' }).status === 0;
}

/** Instructions callgrind counted over the whole run of `command` (all threads). */
function instructions(dir: string, label: string, command: string[], stub: string): number {
  const out = join(dir, `callgrind.${label}.out`);
  const result = spawnSync('valgrind', ['--tool=callgrind', `--callgrind-out-file=${out}`, ...command], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 1 << 26,
    env: { ...process.env, OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1', LD_PRELOAD: stub },
  });
  if (result.status !== 0) throw new Error(`${command.join(' ')} under callgrind failed:\n${result.stderr}`);
  const summary = /^summary:\s*(\d+)/m.exec(readFileSync(out, 'utf8'));
  if (summary === null) throw new Error(`no summary line in ${out}`);
  return Number(summary[1]);
}

function perOp(dir: string, side: string, command: (n: number) => string[], stub: string): number {
  const base = instructions(dir, `${side}.0`, command(0), stub);
  const full = instructions(dir, `${side}.${N}`, command(N), stub);
  return (full - base) / N;
}

printMachine();
if (!valgrindPresent()) {
  console.log('ops benchmark skipped: valgrind is not installed (apt-get install valgrind)');
} else {
  const dir = mkdtempSync(join(tmpdir(), 'moco-cxr-ops-'));
  try {
    const oursFile = join(dir, 'ours.ts');
    const pythonFile = join(dir, 'theirs.py');
    writeFileSync(oursFile, oursScript);
    writeFileSync(pythonFile, pythonScript);
    console.log(`ops benchmark: ${N} one-element adds after ${WARMUP} warm-up, instructions counted by callgrind`);
    const stub = buildStub(dir);
    const ours = perOp(dir, 'ours', (n) => [process.execPath, '--import', 'tsx', oursFile, String(n)], stub);
    const theirs = perOp(dir, 'pytorch', (n) => [PYTHON, pythonFile, String(n)], stub);
    const ratio = ours / theirs;
    console.log(
      `${'1-element add, instructions per op'.padEnd(44)} ours ${ours.toFixed(0).padStart(10)}  pytorch ${theirs
        .toFixed(0)
        .padStart(10)}  ratio ${ratio.toFixed(3)}x  target <= 1.00x ${ratio <= 1 ? 'MET' : 'NOT MET'}`,
    );
    if (keepFiles) console.log(`callgrind files kept in ${dir}`);
  } finally {
    if (!keepFiles) rmSync(dir, { recursive: true, force: true });
  }
}
