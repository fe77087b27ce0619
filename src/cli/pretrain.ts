/** `moco-cxr pretrain`: MoCo v2 pretraining on unlabeled chest X-rays. */
import { resolve } from 'node:path';

import { flagsOf } from '../config/settings.js';
import { PRETRAIN_DEFAULTS, PRETRAIN_SETTINGS, pretrain, type PretrainConfig } from '../moco/pretrain.js';
import { readRunConfig } from '../moco/run-folder.js';
import type { Command } from './command.js';
import { type Flag, helpText, parseFlags, withInterrupt } from './options.js';

/** The pretraining settings' flags, and `--resume`, which is the command's own. */
const FLAGS: Flag[] = [
  ...flagsOf(PRETRAIN_SETTINGS),
  {
    name: 'resume',
    key: 'resume',
    type: 'boolean',
    help: "continue the run in --out from its last.pt; settings not given are the run's own (its config.json)",
  },
];

export const command: Command = {
  async run(argv) {
    const { values, help } = parseFlags(argv, FLAGS);
    if (help) {
      console.log(helpText('usage: moco-cxr pretrain --data KIND:PATH [options]', FLAGS));
      return 0;
    }
    const { resume, ...given } = values as Partial<PretrainConfig> & { resume?: boolean };
    // A resumed run starts from its recorded settings; what is given on the
    // command line is checked against them (a change that alters the run is refused).
    const out = given.out ?? PRETRAIN_DEFAULTS.out;
    const recorded = resume === true ? readRunConfig(resolve(out)) : undefined;
    const { command: _command, ...settings } = recorded ?? {};
    const config = { ...(settings as Partial<PretrainConfig>), ...given, out };
    const result = await withInterrupt((signal) =>
      pretrain(config as PretrainConfig, { resume: resume === true, signal }),
    );
    return result.status === 'finished' ? 0 : result.status === 'interrupted' ? 130 : 1;
  },
};
