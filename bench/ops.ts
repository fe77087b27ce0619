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
 * callgrind files for `callgrind_annotate --inclusive=yes`; `--step` adds the
 * binding's share of a ResNet18 training step).
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
const withCrossings = process.argv.includes('--step');
const N = quick ? 5_000 : 20_000;
const WARMUP = 2_000;
const root = fileURLToPath(new URL('..', import.meta.url));

// One script, several variants: `add` is `a.add(b)` (the unboxed path),
// `boxed` the same operator through the boxed path (its arguments in an array),
// `method` a tensor method that reads metadata (`_dim`).
const oursScript = `
import * as torch from ${JSON.stringify(join(root, 'src', 'torch', 'index.ts'))};
import { native } from ${JSON.stringify(join(root, 'src', 'torch', 'native.ts'))};
const variant = process.argv[2];
const n = Number(process.argv[3]);
const a = torch.ones([1]);
const b = torch.ones([1]);
const id = native.resolve('aten::add', 'Tensor').id;
const runs = {
  add: () => a.add(b).dispose(),
  boxed: () => native.call(id, [a, b, 1]).dispose(),
  method: () => a._dim(),
};
const run = runs[variant];
for (let i = 0; i < ${WARMUP}; i++) run();
for (let i = 0; i < n; i++) run();
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

/** Runs `command` under callgrind; returns the total instructions (all threads) and the output file. */
function instructions(dir: string, label: string, command: string[], stub: string): { total: number; file: string } {
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
  return { total: Number(summary[1]), file: out };
}

// ATen's add below the autograd layer: the same work on both sides, so what
// a side spends outside it is its binding's cost (the autograd layer and the
// dispatcher above it count as binding here; they are the same on both sides).
const KERNEL = /at::_ops::add_Tensor::redispatch/;

/** Inclusive instructions of the first function matching `pattern` in a callgrind file (0 if absent). */
function inclusive(file: string, pattern: RegExp): number {
  const result = spawnSync('callgrind_annotate', ['--inclusive=yes', '--threshold=100', file], {
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  if (result.status !== 0) throw new Error(`callgrind_annotate ${file} failed:\n${result.stderr}`);
  for (const line of result.stdout.split('\n')) {
    const match = /^\s*([\d,]+)\s.*?\s(\S+:\S.*)$/.exec(line);
    if (match !== null && pattern.test(match[2] as string)) return Number((match[1] as string).replace(/,/g, ''));
  }
  return 0;
}

// The main thread's root. Node's background threads (V8's concurrent marking,
// sweeping and compiling, tsx's module-loader worker) run alongside, and how
// much of their work lands inside a run depends on scheduling; they are
// reported apart. PyTorch's loop has no such threads.
const MAIN = /\(below main\)/;

interface PerOp {
  /** Instructions per call on the main thread. */
  total: number;
  /** Instructions per call, all threads. */
  allThreads: number;
  /** Of those, inside ATen's add below the autograd layer. */
  kernel: number;
}

function perOp(dir: string, label: string, command: (n: number) => string[], stub: string): PerOp {
  const full = instructions(dir, `${label}.${N}`, command(N), stub);
  const empty = instructions(dir, `${label}.0`, command(0), stub);
  return {
    total: (inclusive(full.file, MAIN) - inclusive(empty.file, MAIN)) / N,
    allThreads: (full.total - empty.total) / N,
    kernel: (inclusive(full.file, KERNEL) - inclusive(empty.file, KERNEL)) / N,
  };
}

// ---- the binding's share of a training step ---------------------------------
// One ResNet18 Adam step (forward, loss, backward, update) at batch 32 on
// 1×224 px input, as in \`bench/models.ts\`. Its operator calls and
// tensor-method calls are counted (by wrapping the addon's functions) and
// priced at the per-call binding cost: callgrind gives each call's
// instructions and how many of them are the add kernel's, and the same process
// times the step and a loop of each kind of call, so the share of the step is
// (calls × binding time per call) / step time. A whole step under callgrind
// would take hours on a shared 2-core machine, and wall times there are noisy:
// read the share as an estimate of its size, not to three digits.
const STEP = { batch: 32, size: 224 };

const stepScript = `
import { native } from ${JSON.stringify(join(root, 'src', 'torch', 'native.ts'))};
const unboxed = new Map();
const resolve = native.resolve;
native.resolve = (name, overload) => {
  const made = resolve(name, overload);
  unboxed.set(made.id, made.unboxed);
  return made;
};
const torch = await import(${JSON.stringify(join(root, 'src', 'torch', 'index.ts'))});
const { createModel } = await import(${JSON.stringify(join(root, 'src', 'models', 'index.ts'))});
const { Adam } = await import(${JSON.stringify(join(root, 'src', 'optim', 'index.ts'))});
torch.manualSeed(0);
const model = createModel('resnet18', { numClasses: 1 });
model.setInputChannels(1, 'repeat');
model.train();
const optimizer = new Adam(model.parameters(), { lr: 1e-4 });
const x = torch.rand([${STEP.batch}, 1, ${STEP.size}, ${STEP.size}]);
const y = torch.tidy(() => torch.rand([${STEP.batch}, 1]).round());
const step = () =>
  torch.tidy(() => {
    const loss = torch.binaryCrossEntropyWithLogits(model.forward(x), y);
    optimizer.zeroGrad(true);
    loss.backward();
    optimizer.step();
  });
step(); // warm-up: operators resolve, the allocator fills
const stepMs = [];
for (let i = 0; i < 3; i++) {
  const start = performance.now();
  step();
  stepMs.push(performance.now() - start);
}
stepMs.sort((p, q) => p - q);
const a = torch.ones([1]);
const b = torch.ones([1]);
const id = native.resolve('aten::add', 'Tensor').id;
const perCallUs = (run) => {
  for (let i = 0; i < 2000; i++) run();
  const start = performance.now();
  for (let i = 0; i < 20000; i++) run();
  return ((performance.now() - start) * 1000) / 20000;
};
const times = {
  stepMs: stepMs[1],
  addUs: perCallUs(() => a.add(b).dispose()),
  boxedUs: perCallUs(() => native.call(id, [a, b, 1]).dispose()),
  methodUs: perCallUs(() => a._dim()),
};
const counts = { unboxed: 0, boxed: 0, method: 0, dispose: 0, other: 0 };
for (const key of Object.keys(native)) {
  const fn = native[key];
  if (typeof fn !== 'function' || key === 'TensorHandle') continue;
  native[key] = (...args) => {
    if (key === 'invoke' || key === 'invokeInPlace') counts[unboxed.get(args[0]) ? 'unboxed' : 'boxed']++;
    else if (key === 'call') counts.boxed++;
    else counts.other++;
    return fn(...args);
  };
}
const proto = native.TensorHandle.prototype;
for (const key of Object.getOwnPropertyNames(proto)) {
  const fn = proto[key];
  if (typeof fn !== 'function' || key === 'constructor') continue;
  Object.defineProperty(proto, key, {
    value: function (...args) {
      counts[key === 'dispose' ? 'dispose' : 'method']++;
      return fn.apply(this, args);
    },
    writable: true,
    configurable: true,
  });
}
step();
console.log(JSON.stringify({ counts, times }));
`;

interface StepReport {
  counts: { unboxed: number; boxed: number; method: number; dispose: number; other: number };
  times: { stepMs: number; addUs: number; boxedUs: number; methodUs: number };
}

/** Prices one step's addon calls; `kernelShare` is the add kernel's part of an add's instructions. */
function stepShare(dir: string, prices: { unboxed: number; boxed: number; method: number }, kernelShare: number): void {
  const file = join(dir, 'step.mts');
  writeFileSync(file, stepScript);
  const result = spawnSync(process.execPath, ['--import', 'tsx', file], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 1 << 26,
  });
  if (result.status !== 0) throw new Error(`the step measurement failed:\n${result.stderr}`);
  const lines = result.stdout.trim().split('\n');
  const { counts, times } = JSON.parse(lines[lines.length - 1] as string) as StepReport;
  // Binding time per call: an add's time less its kernel's share; the boxed
  // call runs the same kernel; a method call is all binding.
  const kernelUs = times.addUs * kernelShare;
  const bindingUs =
    counts.unboxed * (times.addUs - kernelUs) +
    counts.boxed * (times.boxedUs - kernelUs) +
    counts.method * times.methodUs;
  const instructions = counts.unboxed * prices.unboxed + counts.boxed * prices.boxed + counts.method * prices.method;
  console.log(
    `ResNet18 Adam step, batch ${STEP.batch}, 1x${STEP.size}: ${counts.unboxed} unboxed + ${counts.boxed} boxed operator calls, ` +
      `${counts.method} tensor-method calls, ${counts.dispose} disposes (priced with their adds), ${counts.other} other addon calls`,
  );
  console.log(
    `  binding ${(instructions / 1e6).toFixed(2)} M instructions, ${(bindingUs / 1000).toFixed(2)} ms of a ` +
      `${times.stepMs.toFixed(0)} ms step = ${((100 * bindingUs) / 1000 / times.stepMs).toFixed(2)}% ` +
      `(per call: add ${times.addUs.toFixed(2)} us, boxed add ${times.boxedUs.toFixed(2)} us, method ${times.methodUs.toFixed(2)} us)`,
  );
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
    const node = (variant: string) => (n: number) => [
      process.execPath,
      '--import',
      'tsx',
      oursFile,
      variant,
      String(n),
    ];
    const ours = perOp(dir, 'ours.add', node('add'), stub);
    const theirs = perOp(dir, 'pytorch', (n) => [PYTHON, pythonFile, String(n)], stub);
    const ratio = ours.total / theirs.total;
    console.log(
      `${'1-element add, instructions per op (main thread)'.padEnd(44)} ours ${ours.total.toFixed(0).padStart(10)}  pytorch ${theirs.total
        .toFixed(0)
        .padStart(10)}  ratio ${ratio.toFixed(3)}x  target <= 1.00x ${ratio <= 1 ? 'MET' : 'NOT MET'}`,
    );
    console.log(
      `${'  all threads'.padEnd(44)} ours ${ours.allThreads.toFixed(0).padStart(10)}  pytorch ${theirs.allThreads
        .toFixed(0)
        .padStart(10)}`,
    );
    console.log(
      `${'  of which ATen add below autograd'.padEnd(44)} ours ${ours.kernel.toFixed(0).padStart(10)}  pytorch ${theirs.kernel
        .toFixed(0)
        .padStart(10)}`,
    );
    console.log(
      `${'  the rest (binding, dispatch, autograd)'.padEnd(44)} ours ${(ours.total - ours.kernel).toFixed(0).padStart(10)}  pytorch ${(
        theirs.total - theirs.kernel
      )
        .toFixed(0)
        .padStart(10)}  ratio ${((ours.total - ours.kernel) / (theirs.total - theirs.kernel)).toFixed(3)}x`,
    );
    if (withCrossings) {
      const boxed = perOp(dir, 'ours.boxed', node('boxed'), stub);
      const method = perOp(dir, 'ours.method', node('method'), stub);
      console.log(`${'boxed add (arguments in an array)'.padEnd(44)} ours ${boxed.total.toFixed(0).padStart(10)}`);
      console.log(`${'tensor method (_dim)'.padEnd(44)} ours ${method.total.toFixed(0).padStart(10)}`);
      stepShare(
        dir,
        { unboxed: ours.total - ours.kernel, boxed: boxed.total - boxed.kernel, method: method.total },
        ours.kernel / ours.total,
      );
    }
    if (keepFiles) console.log(`callgrind files kept in ${dir}`);
  } finally {
    if (!keepFiles) rmSync(dir, { recursive: true, force: true });
  }
}
