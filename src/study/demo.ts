/**
 * The built-in demonstration: the paper's study in miniature on phantom
 * radiographs (`phantom:` source), so that it runs anywhere without data. MoCo
 * pretrains on unlabeled phantoms; linear probes and fine-tuning at a few label
 * fractions compare it with the same network from random weights, on pleural
 * effusion and, as a transfer target, cardiomegaly.
 */
import { type Setting } from '../config/settings.js';
import { resolveStudyConfig, type StudyConfig } from './config.js';

/** The demo's settings (`moco-cxr demo` flags). */
export const DEMO_SETTINGS = [
  { key: 'out', type: 'string', default: 'runs/demo', help: 'demo folder; a rerun continues it' },
  { key: 'quick', type: 'boolean', default: false, help: 'the one-minute version (fewer images, one draw)' },
  { key: 'seed', type: 'int', range: 'non-negative', default: 0, help: 'seed of the phantoms’ pretraining and draws' },
  { key: 'plain', type: 'boolean', default: false, help: 'plain progress lines even on a terminal' },
] as const satisfies readonly Setting[];

/** The demo's study settings; `quick` is a one-minute version used by the tests. */
export function demoStudyConfig(options: {
  out: string;
  quick?: boolean;
  seed?: number;
  cacheDir?: string;
}): StudyConfig {
  const quick = options.quick === true;
  const size = quick ? 48 : 64;
  return resolveStudyConfig(
    {
      name: quick ? 'demo (quick)' : 'demo',
      out: options.out,
      seed: options.seed ?? 0,
      imageSize: size,
      cacheDir: options.cacheDir ?? `${options.out}/cache`,
      pretrain: {
        data: `phantom:${quick ? 256 : 1536},101,${size + 8}`,
        imageSize: size,
        cacheSize: size + 8,
        epochs: quick ? 1 : 5,
        batchSize: 32,
        queue: quick ? 256 : 1024,
        lr: 1e-3,
        schedule: 'constant',
        logEvery: 5,
        checkpointEvery: 100,
      },
      baseline: 'random',
      modes: ['linear', 'finetune'],
      fractions: quick ? [0.1, 1] : [0.02, 0.1, 1],
      draws: quick ? 1 : 2,
      bootstrap: quick ? 200 : 1000,
      training: quick
        ? { linearEpochs: 30, finetuneEpochs: 2, lr: 1e-3, ensemble: 1, batchSize: 16 }
        : { lr: 1e-3, ensemble: 3, batchSize: 16 },
      targets: [
        {
          name: 'source',
          train: `phantom:${quick ? 160 : 500},202,${size}`,
          test: `phantom:${quick ? 80 : 300},303,${size}`,
          task: 'Pleural Effusion',
        },
        ...(quick
          ? []
          : [
              {
                name: 'cardiomegaly',
                train: `phantom:300,404,${size}`,
                test: `phantom:200,505,${size}`,
                task: 'Cardiomegaly',
                fractions: [0.05, 1],
              },
            ]),
      ],
    },
    'demo',
  );
}
