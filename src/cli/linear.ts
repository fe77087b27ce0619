/**
 * `moco-cxr linear`: the linear probe on frozen features at every label
 * fraction and draw. The options are those of `moco-cxr finetune` too.
 */
import { flagsOf } from '../config/settings.js';
import { isDistributedEnv, readLaunchEnv } from '../distributed/env.js';
import { type DownstreamMode } from '../downstream/cell.js';
import { DOWNSTREAM_SETTINGS, runDownstream, type DownstreamInput } from '../downstream/runner.js';
import type { Command } from './command.js';
import { type Flag, helpText, parseFlags, withInterrupt } from './options.js';

/** The options of both downstream commands. */
export const DOWNSTREAM_FLAGS: Flag[] = flagsOf(DOWNSTREAM_SETTINGS);

/** A downstream command: parses the flags, runs the grid, and returns the exit code. */
export function downstreamCommand(mode: DownstreamMode): Command {
  return {
    async run(argv) {
      const { values, help } = parseFlags(argv, DOWNSTREAM_FLAGS);
      if (help) {
        console.log(helpText(`usage: moco-cxr ${mode} --train KIND:PATH --test KIND:PATH [options]`, DOWNSTREAM_FLAGS));
        return 0;
      }
      const input = { out: `runs/${mode}`, ...values } as DownstreamInput;
      const run = await withInterrupt((signal) => runDownstream(mode, input, { signal }));
      if (run.status === 'interrupted') return 130;
      // Under a launcher every rank holds the same results; one summary line is enough.
      if (isDistributedEnv() && readLaunchEnv().rank !== 0) return 0;
      console.log(
        JSON.stringify({
          runDir: run.runDir,
          metrics: run.metrics.fractions.map((f) => ({
            fraction: f.fraction,
            meanAuc: f.meanAuc,
            ci: f.ci === undefined ? undefined : [f.ci.lower, f.ci.upper],
          })),
        }),
      );
      return 0;
    },
  };
}

export const command: Command = downstreamCommand('linear');
