/** `moco-cxr serve DIR`: a static file server for an exported page (Ctrl-C stops it). */
import { flagsOf } from '../config/settings.js';
// The server's own module, not the export's index: serving needs no libtorch.
import { SERVE_SETTINGS, serveFolder } from '../export/serve.js';
import type { Command } from './command.js';
import { type Flag, helpText, parseFlags } from './options.js';

const FLAGS: Flag[] = flagsOf(SERVE_SETTINGS);

export const command: Command = {
  async run(argv) {
    const { values, help, positionals } = parseFlags(argv, FLAGS);
    if (help) {
      console.log(helpText('usage: moco-cxr serve DIR [--port N] [--host ADDRESS]', FLAGS));
      return 0;
    }
    const [dir, extra] = positionals;
    if (dir === undefined) throw new TypeError('the folder to serve is required (moco-cxr serve DIR)');
    if (extra !== undefined) throw new TypeError(`one folder only, got also '${extra}'`);
    const running = await serveFolder(dir, values);
    console.log(`serving ${dir} at ${running.url} (Ctrl-C to stop)`);
    await new Promise<void>((done) => {
      const stop = (): void => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        void running.close().then(done);
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    return 0;
  },
};
