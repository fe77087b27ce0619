/**
 * `moco-cxr launch [options] -- <command> [args]`: runs a moco-cxr command
 * (such as `pretrain`) as several data-parallel processes on this machine, with
 * torchrun's environment; on several machines, once per machine with its
 * `--node-rank`.
 */
import { flagsOf } from '../config/settings.js';
import { launch, LAUNCH_SETTINGS, type LaunchConfig, resolveLaunchConfig } from '../distributed/launch.js';
import type { Command } from './command.js';
import { type Flag, helpText, parseFlags } from './options.js';

const FLAGS: Flag[] = flagsOf(LAUNCH_SETTINGS);

export const command: Command = {
  async run(argv) {
    const split = argv.indexOf('--');
    const own = split < 0 ? argv : argv.slice(0, split);
    const rest = split < 0 ? [] : argv.slice(split + 1);
    const { values, help } = parseFlags(own, FLAGS);
    if (help) {
      console.log(helpText('usage: moco-cxr launch --nproc-per-node N [options] -- <command> [its options]', FLAGS));
      return 0;
    }
    if (rest.length === 0) {
      console.error("moco-cxr launch: give the command to run after '--', e.g. -- pretrain --data KIND:PATH");
      return 2;
    }
    const config = resolveLaunchConfig(values as Partial<LaunchConfig>);
    // The same program that runs this command runs each process: node, its flags (tsx), and the entry script.
    const self = [process.execPath, ...process.execArgv, process.argv[1]!];
    const result = await launch(config, [...self, ...rest], { handleSignals: true });
    console.error(result.message);
    return result.code;
  },
};
