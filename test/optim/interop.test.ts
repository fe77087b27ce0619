import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';

import { optim, torch } from '../../src/index.js';
import type { Tensor } from '../../src/torch/index.js';
import { oracleMissing, runPython, tempDir } from '../helpers/oracle.js';
import { assertClose } from '../helpers/tolerance.js';
import {
  CASES,
  PYTHON_MAKE_OPTIMIZER,
  SHAPES,
  gradientSequence,
  initialValues,
  makeOptimizer,
  makeParams,
  setGrads,
} from './fixtures.js';

const BEFORE = 3;
const AFTER = 3;
/** A few ulps per step: another order of elementwise operations, far below any wrong hyperparameter. */
const ELEMENTWISE_K = 4;
const EPOCHS = 30;
const SAVED_AT_EPOCH = 13;
const BASE_LRS = [1e-4, 0.3];

/** A type-and-shape outline of a Python value, as the oracle describes it. */
type Outline = unknown;

interface OracleResult {
  /** Our saved states, loaded into PyTorch and stepped on: parameters at the end. */
  oursContinued: number[][][];
  /** Outline of PyTorch's own state dict after the first steps, and of ours as PyTorch loads it. */
  outlines: { theirs: Outline; ours: Outline; stateDiff: number }[];
  /** PyTorch's run continued after it saved its state: parameters at the end. */
  theirsFinal: number[][][];
  /** Rates of our saved schedule continued in PyTorch, and PyTorch's schedule end to end. */
  ourScheduleContinued: number[][];
  theirSchedule: number[][];
}

function leafCopies(tensors: Tensor[]): Tensor[] {
  return tensors.map((t) => t.detach().clone().requiresGrad_(true));
}

function scheduledOptimizer(): { opt: optim.SGD; params: Tensor[]; schedule: optim.MultiStepLR } {
  const params = [torch.zeros([2]).requiresGrad_(true), torch.zeros([3]).requiresGrad_(true)];
  const opt = new optim.SGD(
    params.map((p, i) => ({ params: [p], lr: BASE_LRS[i] })),
    { momentum: 0.9 },
  );
  const schedule = new optim.MultiStepLR(opt, { milestones: [12, 18, 24], gamma: 0.1 });
  return { opt, params, schedule };
}

test(
  'optimizer and scheduler states cross between this library and PyTorch and runs continue identically',
  { skip: oracleMissing() },
  () => {
    const dir = tempDir();
    try {
      const grads = gradientSequence(BEFORE + AFTER);
      const init = initialValues();

      // Our runs: save after BEFORE steps, then keep going here.
      const oursFinal = CASES.map((c, i) => {
        const params = makeParams(init);
        const opt = makeOptimizer(c, params);
        for (const stepGrads of grads.slice(0, BEFORE)) {
          setGrads(params, stepGrads);
          opt.step();
        }
        const state = opt.stateDict();
        torch.save({ optimizer: state, params }, join(dir.path, `ours_${i}.pt`));
        torch.dispose(state);
        for (const stepGrads of grads.slice(BEFORE)) {
          setGrads(params, stepGrads);
          opt.step();
        }
        const final = params.map((p) => p.toArray());
        opt.dispose();
        torch.dispose(params);
        return final;
      });
      const ours = scheduledOptimizer();
      for (let e = 0; e < SAVED_AT_EPOCH; e++) ours.schedule.step();
      const oursState = ours.opt.stateDict();
      torch.save({ optimizer: oursState, scheduler: ours.schedule.stateDict() }, join(dir.path, 'ours_schedule.pt'));
      torch.dispose([oursState, ours.params]);

      const result = runPython<OracleResult>(
        `${PYTHON_MAKE_OPTIMIZER}
import warnings
warnings.filterwarnings('ignore')
shapes, grads = INPUT['shapes'], INPUT['grads']
B = INPUT['before']

def outline(v):
    if isinstance(v, torch.Tensor):
        return ['tensor', str(v.dtype), list(v.shape)]
    if isinstance(v, dict):
        return [type(v).__name__, [[k, outline(x)] for k, x in v.items()]]
    if isinstance(v, (list, tuple)):
        return [type(v).__name__, [outline(x) for x in v]]
    return type(v).__name__ if not isinstance(v, (int, float)) or isinstance(v, bool) else [type(v).__name__, v]

def state_diff(a, b):
    worst = 0.0
    for k in a['state']:
        for key, x in a['state'][k].items():
            if isinstance(x, torch.Tensor):
                worst = max(worst, (x.double() - b['state'][k][key].double()).abs().max().item())
    return worst

def final(params):
    return [p.detach().reshape(-1).tolist() for p in params]

OUTPUT = {'oursContinued': [], 'outlines': [], 'theirsFinal': []}
for i, case in enumerate(INPUT['cases']):
    ck = torch.load(f'{WORKDIR}/ours_{i}.pt')
    params = [torch.nn.Parameter(t.clone()) for t in ck['params']]
    opt = make_optimizer(case, params)
    opt.load_state_dict(ck['optimizer'])
    for g in grads[B:]:
        set_grads(params, g, shapes)
        opt.step()
    OUTPUT['oursContinued'].append(final(params))

    ref_params = make_params(INPUT['init'], shapes)
    ref = make_optimizer(case, ref_params)
    for g in grads[:B]:
        set_grads(ref_params, g, shapes)
        ref.step()
    ref_state = ref.state_dict()
    OUTPUT['outlines'].append({'theirs': outline(ref_state), 'ours': outline(ck['optimizer']),
                               'stateDiff': state_diff(ref_state, ck['optimizer'])})
    torch.save({'optimizer': ref_state, 'params': [p.detach() for p in ref_params]}, f'{WORKDIR}/theirs_{i}.pt')
    for g in grads[B:]:
        set_grads(ref_params, g, shapes)
        ref.step()
    OUTPUT['theirsFinal'].append(final(ref_params))

def scheduled():
    params = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))]
    opt = torch.optim.SGD([{'params': [p], 'lr': lr} for p, lr in zip(params, INPUT['lrs'])], lr=0.1, momentum=0.9)
    return opt, torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[12, 18, 24], gamma=0.1)

opt, schedule = scheduled()
ck = torch.load(f'{WORKDIR}/ours_schedule.pt')
opt.load_state_dict(ck['optimizer'])
schedule.load_state_dict(ck['scheduler'])
rates = [schedule.get_last_lr()]
for _ in range(INPUT['saved_at'], INPUT['epochs']):
    opt.step()
    schedule.step()
    rates.append(schedule.get_last_lr())
OUTPUT['ourScheduleContinued'] = rates

opt, schedule = scheduled()
rates = [schedule.get_last_lr()]
for e in range(INPUT['epochs']):
    opt.step()
    schedule.step()
    rates.append(schedule.get_last_lr())
    if e + 1 == INPUT['saved_at']:
        torch.save({'optimizer': opt.state_dict(), 'scheduler': schedule.state_dict()}, f'{WORKDIR}/theirs_schedule.pt')
OUTPUT['theirSchedule'] = rates
`,
        {
          cases: CASES,
          init,
          shapes: SHAPES,
          grads,
          before: BEFORE,
          lrs: BASE_LRS,
          epochs: EPOCHS,
          saved_at: SAVED_AT_EPOCH,
        },
        dir.path,
      );

      // Ours -> PyTorch: same layout and types as PyTorch's own state, same values, same continuation.
      for (const [i, c] of CASES.entries()) {
        const { theirs, ours: outline, stateDiff } = result.outlines[i] as OracleResult['outlines'][number];
        assert.deepEqual(outline, theirs, `${c.name}: state dict outline`);
        // The states come from the same elementwise steps on both sides; their
        // entries are at most the largest gradient (3), or its square (Adam's second moment).
        assertClose(stateDiff, 0, `${c.name}: state tensors`, { ops: BEFORE, k: ELEMENTWISE_K, scale: 9 });
        for (let p = 0; p < SHAPES.length; p++) {
          assertClose(
            result.oursContinued[i]?.[p] ?? [],
            oursFinal[i]?.[p] ?? [],
            `${c.name}: param ${p} resumed in PyTorch`,
            {
              ops: AFTER,
              k: ELEMENTWISE_K,
            },
          );
        }
      }

      // PyTorch -> ours: load PyTorch's state and continue here.
      for (const [i, c] of CASES.entries()) {
        const checkpoint = torch.load(join(dir.path, `theirs_${i}.pt`)) as { optimizer: unknown; params: Tensor[] };
        const params = leafCopies(checkpoint.params);
        const opt = makeOptimizer(c, params);
        opt.loadStateDict(checkpoint.optimizer);
        torch.dispose(checkpoint);
        for (const stepGrads of grads.slice(BEFORE)) {
          setGrads(params, stepGrads);
          opt.step();
        }
        params.forEach((param, p) => {
          assertClose(param.toArray(), result.theirsFinal[i]?.[p] ?? [], `${c.name}: param ${p} resumed here`, {
            ops: AFTER,
            k: ELEMENTWISE_K,
          });
        });
        opt.dispose();
        torch.dispose(params);
      }

      // Schedules: ours continued in PyTorch, and PyTorch's (its milestones a Counter) continued here.
      assert.deepEqual(result.ourScheduleContinued, result.theirSchedule.slice(SAVED_AT_EPOCH));
      const theirs = scheduledOptimizer();
      const checkpoint = torch.load(join(dir.path, 'theirs_schedule.pt'), { unknownClasses: 'keep' }) as {
        optimizer: unknown;
        scheduler: unknown;
      };
      theirs.opt.loadStateDict(checkpoint.optimizer);
      theirs.schedule.loadStateDict(checkpoint.scheduler);
      torch.dispose(checkpoint);
      const rates = [theirs.schedule.getLastLr()];
      for (let e = SAVED_AT_EPOCH; e < EPOCHS; e++) {
        theirs.schedule.step();
        rates.push(theirs.schedule.getLastLr());
      }
      assert.deepEqual(rates, result.theirSchedule.slice(SAVED_AT_EPOCH));
      torch.dispose(theirs.params);
    } finally {
      dir.cleanup();
    }
  },
);
