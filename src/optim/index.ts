/**
 * Optimizers and learning-rate schedules, computing what PyTorch 1.13's
 * `torch.optim` computes and saving state in its layout.
 *
 * ```ts
 * const opt = new optim.Adam(net.parameters(), { lr: 1e-4, weightDecay: 1e-4 });
 * const schedule = new optim.MultiStepLR(opt, { milestones: [12, 18, 24], gamma: 0.1 });
 * for (let epoch = 0; epoch < 20; epoch++) {
 *   for (const batch of loader) {
 *     opt.zeroGrad();
 *     lossOf(batch).backward();
 *     opt.step();
 *   }
 *   schedule.step(); // once per epoch, after the epoch's steps
 * }
 * torch.save({ optimizer: opt.stateDict(), scheduler: schedule.stateDict() }, 'checkpoint.pt');
 * ```
 */
export {
  Optimizer,
  type ParamGroup,
  type ParamGroupInput,
  type ParamsInput,
  type OptimizerStateDict,
  type GroupKey,
  type HasParamGroups,
} from './optimizer.js';
export { SGD, type SGDGroup, type SGDState } from './sgd.js';
export { Adam, AdamBase, type AdamGroup, type AdamState } from './adam.js';
export { AdamW } from './adamw.js';
export { LRScheduler } from './scheduler.js';
export {
  StepLR,
  MultiStepLR,
  ConstantLR,
  CosineAnnealingLR,
  WarmupCosineLR,
  createScheduler,
  type WarmupCosineOptions,
  type ScheduleSpec,
} from './schedules.js';
export { GradScaler, type GradScalerState } from './grad-scaler.js';
