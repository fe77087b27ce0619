/** `moco-cxr export`: a model as an ONNX file, and with --web a page that runs it in the browser. */
import { flagsOf } from '../config/settings.js';
import { EXPORT_SETTINGS, exportModel } from '../export/index.js';
import type { Command } from './command.js';
import { type Flag, helpText, parseFlags } from './options.js';

const FLAGS: Flag[] = flagsOf(EXPORT_SETTINGS);

export const command: Command = {
  async run(argv) {
    const { values, help, positionals } = parseFlags(argv, FLAGS);
    if (help) {
      console.log(
        helpText('usage: moco-cxr export --model FILE [--format onnx] [--out model.onnx] [--web DIR] [options]', FLAGS),
      );
      return 0;
    }
    if (positionals.length > 0)
      throw new TypeError(`unexpected argument '${positionals[0]}' (options are flags: --model FILE)`);
    const result = await Promise.resolve(exportModel(values));
    console.log(
      JSON.stringify(
        result.web === undefined ? result : { ...result, web: { dir: result.web.dir, files: result.web.files.length } },
      ),
    );
    if (result.web !== undefined) console.error(`serve the page with: moco-cxr serve ${result.web.dir}`);
    return 0;
  },
};
