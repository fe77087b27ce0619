/** `moco-cxr study --config study.yaml`: the paper's protocol as one command. */
import { resolve } from 'node:path';

import { flagsOf } from '../config/settings.js';
import { readStudyConfig } from '../study/config.js';
import { runStudy } from '../study/grid.js';
import { STUDY_SETTINGS } from '../study/settings.js';
import type { Command } from './command.js';
import { type Flag, helpText, parseFlags, withInterrupt } from './options.js';

/** The study file's top-level settings as flags (they override the file), and the command's own. */
const FLAGS: Flag[] = [
  ...flagsOf(STUDY_SETTINGS).map((flag) => ({ ...flag, help: `${flag.help}; overrides the file` })),
  { name: 'plain', key: 'plain', type: 'boolean', help: 'plain progress lines even on a terminal' },
];

const USAGE =
  'usage: moco-cxr study --config study.yaml [options]\n\n' +
  'The study file holds every setting: the top level, pretrain:, training: and targets: (see examples/study.yaml).';

/** `--config FILE` (or `--config=FILE`) taken out of `argv`: the study file and the other arguments. */
function takeConfig(argv: readonly string[]): { path?: string; rest: string[] } {
  const rest: string[] = [];
  let path: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg.startsWith('--config=')) path = arg.slice('--config='.length);
    else if (arg === '--config') {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('-')) throw new TypeError('--config needs a value (a study YAML file)');
      path = next;
      i++;
    } else rest.push(arg);
  }
  return { path, rest };
}

/** Folders given on the command line are relative to where the command runs, not to the study file. */
const PATH_KEYS = ['out', 'cacheDir'];

export const command: Command = {
  async run(argv) {
    // --config is the study file itself (blocks included), not a file of flags.
    const { path, rest } = takeConfig(argv);
    const { values, help, positionals } = parseFlags(rest, FLAGS);
    if (positionals.length > 0) throw new TypeError(`unexpected argument '${positionals[0]}'`);
    if (help || path === undefined) {
      console.log(helpText(USAGE, FLAGS));
      return help ? 0 : 2;
    }
    const { plain, ...overrides } = values;
    for (const key of PATH_KEYS) if (typeof overrides[key] === 'string') overrides[key] = resolve(overrides[key]);
    const config = readStudyConfig(path, overrides);
    const outcome = await withInterrupt((signal) => runStudy(config, { signal, plainProgress: plain === true }));
    console.log(outcome.message);
    return outcome.status === 'finished' ? 0 : outcome.status === 'interrupted' ? 130 : 1;
  },
};
