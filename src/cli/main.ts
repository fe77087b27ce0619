/**
 * The `moco-cxr` command line: finds the command and hands it the rest of the
 * arguments. Each command lives in its own module and is loaded only when run.
 */

import type { Command } from './command.js';

const COMMANDS: Record<string, () => Promise<Command>> = {
  doctor: async () => (await import('./doctor.js')).command,
  demo: async () => (await import('./demo.js')).command,
  pretrain: async () => (await import('./pretrain.js')).command,
  study: async () => (await import('./study.js')).command,
  linear: async () => (await import('./linear.js')).command,
  finetune: async () => (await import('./finetune.js')).command,
  data: async () => (await import('./data.js')).command,
  predict: async () => (await import('./predict.js')).command,
  export: async () => (await import('./export.js')).command,
  serve: async () => (await import('./serve.js')).command,
  launch: async () => (await import('./launch.js')).command,
};

// One line per command, kept here so that help loads no command module.
const SUMMARIES: Record<string, string> = {
  doctor: 'the libtorch engine, threads and devices; exit 0 when it works',
  demo: 'the study in miniature on phantom radiographs (--quick: about a minute)',
  pretrain: 'MoCo v2 pretraining on unlabeled chest X-rays',
  study: 'the whole protocol from a YAML file: pretrain, probe, fine-tune, report',
  linear: 'linear probes on frozen features at label fractions and draws',
  finetune: 'end-to-end fine-tuning at label fractions and draws',
  data: 'look at a data source: images, patients, labels, sizes, unreadable files',
  predict: 'score X-ray files, folders or sources with a fine-tuned model (--cam: Grad-CAM)',
  export: 'a model as an ONNX file, and with --web a page that runs it in the browser',
  serve: 'a static file server for an exported page',
  launch: "run a command as several data-parallel processes (torchrun's environment)",
};

function usage(): string {
  return [
    'usage: moco-cxr <command> [options]',
    '',
    'commands:',
    ...Object.keys(COMMANDS).map((name) => `  ${name.padEnd(10)}${SUMMARIES[name] ?? ''}`),
    '',
    "Run `moco-cxr <command> --help` for a command's options.",
  ].join('\n');
}

/** Runs the CLI with `argv` (without node and the script) and sets the exit code. */
export async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    process.exitCode = name === undefined ? 1 : 0;
    return;
  }
  const load = COMMANDS[name];
  if (load === undefined) {
    console.error(`moco-cxr: unknown command '${name}'\n\n${usage()}`);
    process.exitCode = 2;
    return;
  }
  try {
    const command = await load();
    process.exitCode = await command.run(rest);
  } catch (error) {
    console.error(`moco-cxr ${name}: ${error instanceof Error ? error.message : String(error)}`);
    if (process.env.MOCO_CXR_DEBUG !== undefined && error instanceof Error) console.error(error.stack);
    process.exitCode = 1;
  }
}
