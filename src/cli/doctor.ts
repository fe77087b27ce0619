/** `moco-cxr doctor`: what engine this is, and whether it works. */
import { createRequire } from 'node:module';

import * as torch from '../torch/index.js';
import type { Command } from './command.js';
import { flagsOf, type Setting } from '../config/settings.js';
import { helpText, parseFlags } from './options.js';

/** The doctor's settings. */
export const DOCTOR_SETTINGS = [
  { key: 'json', type: 'boolean', default: false, help: 'print JSON for scripts' },
] as const satisfies readonly Setting[];
const FLAGS = flagsOf(DOCTOR_SETTINGS);

function blasInUse(config: string): string {
  const match = /BLAS_INFO=([^,\s]+)/.exec(config);
  return match?.[1] ?? 'unknown';
}

/** Runs a tiny forward and backward pass; returns an error message or undefined. */
function selfTest(): string | undefined {
  try {
    return torch.tidy(() => {
      const x = torch.randn([2, 3, 8, 8]);
      const w = torch.randn([4, 3, 3, 3], { requiresGrad: true });
      const loss = torch.conv2d(x, w, null, { padding: 1 }).relu().mean();
      loss.backward();
      const grad = w.grad;
      if (grad === null || !Number.isFinite(grad.sum().item())) return 'backward produced no finite gradient';
      return undefined;
    });
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

export const command: Command = {
  run(argv) {
    const { values, help, positionals } = parseFlags(argv, FLAGS);
    if (positionals.length > 0) throw new TypeError(`unexpected argument '${positionals[0]}'`);
    if (help) {
      console.log(
        helpText(
          'usage: moco-cxr doctor [--json]\n\nPrints the engine build, threads and devices; exit 0 when it works.',
          FLAGS,
        ),
      );
      return Promise.resolve(0);
    }
    const info = torch.buildInfo();
    const require = createRequire(import.meta.url);
    const pkg = require('../../package.json') as { version: string };
    const failure = selfTest();
    const report = {
      mocoCxr: pkg.version,
      node: process.version,
      napi: process.versions.napi,
      libtorch: info.version,
      cuda: info.cudaCompiled ? `built with CUDA, ${info.cudaDeviceCount} device(s) visible` : 'not built with CUDA',
      cudnn: info.cudnnAvailable,
      oneDNN: info.mkldnn,
      mkl: info.mkl,
      openmp: info.openmp,
      blas: blasInUse(info.config),
      threads: info.threads,
      interopThreads: info.interopThreads,
      devices: ['cpu', ...Array.from({ length: info.cudaDeviceCount }, (_, i) => `cuda:${i}`)],
      selfTest: failure === undefined ? 'ok' : `FAILED: ${failure}`,
    };
    if (values.json === true) {
      console.log(JSON.stringify(report, null, 2));
    } else {
      for (const [key, value] of Object.entries(report)) {
        console.log(`${key.padEnd(15)} ${Array.isArray(value) ? value.join(', ') : String(value)}`);
      }
    }
    return Promise.resolve(failure === undefined ? 0 : 1);
  },
};
