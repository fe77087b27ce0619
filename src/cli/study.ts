/** `moco-cxr study --config study.yaml`: the paper's protocol as one command. */
import { readStudyConfig } from '../study/config.js';
import { runStudy } from '../study/grid.js';
import type { Command } from './command.js';
import { type Flag, helpText, parseFlags, withInterrupt } from './options.js';

const FLAGS: Flag[] = [
  { name: 'out', key: 'out', type: 'string', help: "study folder (overrides the config's out)" },
  { name: 'plain', key: 'plain', type: 'boolean', help: 'plain progress lines even on a terminal' },
];

export const command: Command = {
  async run(argv) {
    const configIndex = argv.indexOf('--config');
    const path = configIndex >= 0 ? argv[configIndex + 1] : undefined;
    const rest = configIndex >= 0 ? [...argv.slice(0, configIndex), ...argv.slice(configIndex + 2)] : argv;
    const { values, help } = parseFlags(rest, FLAGS);
    if (help || path === undefined) {
      console.log(helpText('usage: moco-cxr study --config study.yaml [options]\n\nSee examples/study.yaml.', FLAGS));
      return help ? 0 : 2;
    }
    const config = readStudyConfig(path);
    if (typeof values.out === 'string') config.out = values.out;
    const outcome = await withInterrupt((signal) => runStudy(config, { signal, plainProgress: values.plain === true }));
    console.log(outcome.message);
    return outcome.status === 'finished' ? 0 : outcome.status === 'interrupted' ? 130 : 1;
  },
};
