import assert from 'node:assert/strict';
import { test } from 'node:test';

import { optim, torch } from '../../src/index.js';
import { oracleMissing, runPython } from '../helpers/oracle.js';

const EPOCHS = 32;

interface ScheduleCase {
  name: string;
  /** PyTorch constructor call on `opt`. */
  python: string;
  make: (opt: optim.SGD) => optim.LRScheduler;
}

const CASES: ScheduleCase[] = [
  {
    name: 'MultiStepLR (MoCo-CXR)',
    python: 'torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[12, 18, 24], gamma=0.1)',
    make: (opt) => new optim.MultiStepLR(opt, { milestones: [12, 18, 24], gamma: 0.1 }),
  },
  {
    name: 'MultiStepLR repeated milestone',
    python: 'torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[3, 7, 7], gamma=0.3)',
    make: (opt) => new optim.MultiStepLR(opt, { milestones: [3, 7, 7], gamma: 0.3 }),
  },
  {
    name: 'StepLR',
    python: 'torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)',
    make: (opt) => new optim.StepLR(opt, { stepSize: 5, gamma: 0.5 }),
  },
  {
    name: 'CosineAnnealingLR past T_max',
    python: 'torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10, eta_min=1e-6)',
    make: (opt) => new optim.CosineAnnealingLR(opt, { tMax: 10, etaMin: 1e-6 }),
  },
  {
    name: 'CosineAnnealingLR',
    python: 'torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS)',
    make: (opt) => new optim.CosineAnnealingLR(opt, { tMax: EPOCHS }),
  },
  {
    name: 'ConstantLR',
    python: 'torch.optim.lr_scheduler.ConstantLR(opt, factor=0.5, total_iters=4)',
    make: (opt) => new optim.ConstantLR(opt, { factor: 0.5, totalIters: 4 }),
  },
];

const BASE_LRS = [1e-4, 0.3];

function makeOptimizer(): { opt: optim.SGD; params: torch.Tensor[] } {
  const params = [torch.zeros([2]).requiresGrad_(true), torch.zeros([3]).requiresGrad_(true)];
  const opt = new optim.SGD(
    params.map((p, i) => ({ params: [p], lr: BASE_LRS[i] })),
    { momentum: 0.9 },
  );
  return { opt, params };
}

/** The rates after construction and after each of `EPOCHS` steps, per group. */
function sequence(make: (opt: optim.SGD) => optim.LRScheduler): number[][] {
  const { opt, params } = makeOptimizer();
  const schedule = make(opt);
  const rates = [schedule.getLastLr()];
  for (let e = 0; e < EPOCHS; e++) {
    schedule.step();
    rates.push(schedule.getLastLr());
  }
  torch.dispose(params);
  return rates;
}

function assertClose(actual: number[][], expected: number[][], what: string): void {
  assert.equal(actual.length, expected.length, what);
  actual.forEach((row, e) => {
    row.forEach((value, g) => {
      const want = expected[e]?.[g] as number;
      assert.ok(
        Math.abs(value - want) <= 1e-15 * Math.abs(want),
        `${what}: epoch ${e}, group ${g}: ${value} vs ${want}`,
      );
    });
  });
}

test('schedules give PyTorch 1.13 learning-rate sequences', { skip: oracleMissing() }, () => {
  const expected = runPython<number[][][]>(
    `
import torch, warnings
warnings.filterwarnings('ignore')
EPOCHS = INPUT['epochs']
OUTPUT = []
for make in INPUT['cases']:
    params = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))]
    opt = torch.optim.SGD([{'params': [p], 'lr': lr} for p, lr in zip(params, INPUT['lrs'])], lr=0.1, momentum=0.9)
    schedule = eval(make)
    rates = [schedule.get_last_lr()]
    for _ in range(EPOCHS):
        opt.step()
        schedule.step()
        rates.append(schedule.get_last_lr())
    OUTPUT.append(rates)
`,
    { epochs: EPOCHS, lrs: BASE_LRS, cases: CASES.map((c) => c.python) },
  );
  CASES.forEach((c, i) => assertClose(sequence(c.make), expected[i] as number[][], c.name));
});

test('MoCo-CXR step decay: 1e-4 for epochs 0-11, 1e-5 for 12-17, 1e-6 for 18-19', () => {
  const { opt, params } = makeOptimizer();
  const schedule = new optim.MultiStepLR(opt, { milestones: [12, 18, 24] });
  const used: number[] = [];
  for (let epoch = 0; epoch < 20; epoch++) {
    used.push(opt.paramGroups[0]?.lr as number);
    schedule.step();
  }
  const expected = [...Array<number>(12).fill(1e-4), ...Array<number>(6).fill(1e-5), 1e-6, 1e-6];
  used.forEach((lr, e) => assert.ok(Math.abs(lr - (expected[e] as number)) < 1e-18, `epoch ${e}: ${lr}`));
  torch.dispose(params);
});

test('WarmupCosineLR follows its formula', () => {
  const { opt, params } = makeOptimizer();
  const schedule = new optim.WarmupCosineLR(opt, { warmupEpochs: 4, totalEpochs: 14, etaMin: 1e-6 });
  const rates = [schedule.getLastLr()];
  for (let e = 0; e < 16; e++) {
    schedule.step();
    rates.push(schedule.getLastLr());
  }
  const base = BASE_LRS[1] as number;
  // Warmup: base/5, 2base/5, ..., 4base/5, then the cosine from base at epoch 4.
  for (let e = 0; e < 4; e++) assert.ok(Math.abs((rates[e]?.[1] as number) - (base * (e + 1)) / 5) < 1e-15);
  assert.ok(Math.abs((rates[4]?.[1] as number) - base) < 1e-15);
  const mid = 1e-6 + (base - 1e-6) / 2; // halfway through the 10 cosine epochs
  assert.ok(Math.abs((rates[9]?.[1] as number) - mid) < 1e-15);
  for (const e of [14, 15, 16]) assert.ok(Math.abs((rates[e]?.[1] as number) - 1e-6) < 1e-18, `epoch ${e}`);
  for (let e = 1; e < 4; e++) assert.ok((rates[e]?.[0] as number) > (rates[e - 1]?.[0] as number));
  for (let e = 5; e < 14; e++) assert.ok((rates[e]?.[0] as number) < (rates[e - 1]?.[0] as number));
  torch.dispose(params);
});

test('a scheduler restored from its state dict continues the same sequence', () => {
  const makers = [
    ...CASES.map((c) => c.make),
    (opt: optim.SGD) => new optim.WarmupCosineLR(opt, { warmupEpochs: 3, totalEpochs: 20 }),
  ];
  for (const make of makers) {
    const full = sequence(make);
    const first = makeOptimizer();
    const schedule = make(first.opt);
    for (let e = 0; e < 13; e++) schedule.step();
    const optimizerState = first.opt.stateDict();
    const schedulerState = schedule.stateDict();
    // Resume as PyTorch does: build both, then load the optimizer's state, then the scheduler's.
    const second = makeOptimizer();
    const resumed = make(second.opt);
    second.opt.loadStateDict(optimizerState);
    resumed.loadStateDict(schedulerState);
    const rest = [resumed.getLastLr()];
    for (let e = 13; e < EPOCHS; e++) {
      resumed.step();
      rest.push(resumed.getLastLr());
    }
    assert.deepEqual(rest, full.slice(13), schedule.constructor.name);
    torch.dispose([first.params, second.params]);
  }
});

test('scheduler state dict uses PyTorch names', () => {
  const { opt, params } = makeOptimizer();
  const schedule = new optim.MultiStepLR(opt, { milestones: [12, 18, 24] });
  schedule.step();
  assert.deepEqual(schedule.stateDict(), {
    milestones: new Map([
      [12, 1],
      [18, 1],
      [24, 1],
    ]),
    gamma: 0.1,
    base_lrs: BASE_LRS,
    last_epoch: 1,
    verbose: false,
    _step_count: 2,
    _get_lr_called_within_step: false,
    _last_lr: BASE_LRS,
  });
  assert.deepEqual(
    opt.stateDict().param_groups.map((g) => g.initial_lr),
    BASE_LRS,
  );
  torch.dispose(params);
});

test('createScheduler builds each kind', () => {
  const { opt, params } = makeOptimizer();
  const constant = optim.createScheduler(opt, { kind: 'constant' });
  for (let e = 0; e < 5; e++) constant.step();
  assert.deepEqual(constant.getLastLr(), BASE_LRS);
  assert.ok(optim.createScheduler(opt, { kind: 'multistep', milestones: [2] }) instanceof optim.MultiStepLR);
  assert.ok(optim.createScheduler(opt, { kind: 'step', stepSize: 2 }) instanceof optim.StepLR);
  assert.ok(optim.createScheduler(opt, { kind: 'cosine', epochs: 5 }) instanceof optim.CosineAnnealingLR);
  assert.ok(optim.createScheduler(opt, { kind: 'cosine', epochs: 5, warmupEpochs: 1 }) instanceof optim.WarmupCosineLR);
  assert.throws(
    () => optim.createScheduler(opt, { kind: 'linear' } as unknown as optim.ScheduleSpec),
    /unknown schedule kind 'linear'/,
  );
  torch.dispose(params);
});
