/** MoCo v2: the model, its tensor pieces, and the pretraining loop. */
export { MoCo, type MoCoOptions, type MoCoOutput } from './model.js';
export { distributedMoCoStep } from './distributed-step.js';
export { contrastiveLogits, infoNce, enqueueKeys, momentumUpdate } from './contrastive.js';
export { pretrain, type PretrainResult, type PretrainHooks } from './pretrain.js';
export {
  resolvePretrainConfig,
  parseSchedule,
  parseShuffleBn,
  PRETRAIN_DEFAULTS,
  PRETRAIN_SETTINGS,
  RESUMABLE_SETTINGS,
  type PretrainConfig,
} from './settings.js';
export { checkResumable, type SettingChange } from './run-folder.js';
