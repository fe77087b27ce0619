/** MoCo v2: the model, its tensor pieces, and the pretraining loop. */
export { MoCo, type MoCoOptions, type MoCoOutput } from './model.js';
export { contrastiveLogits, infoNce, enqueueKeys, momentumUpdate } from './contrastive.js';
export {
  pretrain,
  checkResumable,
  resolvePretrainConfig,
  parseSchedule,
  parseShuffleBn,
  PRETRAIN_DEFAULTS,
  type PretrainConfig,
  type PretrainResult,
  type PretrainHooks,
} from './pretrain.js';
export { RESUMABLE_SETTINGS, type SettingChange } from './run-folder.js';
