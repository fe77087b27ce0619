/**
 * The target set every experiment script starts from: the flags that name it
 * and its preparation (split, cache), declared once for all of them.
 */
import { prepareDownstreamData } from '../../src/downstream/setup.js';

/** The flags (`node:util` parseArgs options) naming an experiment's target set. */
export const TARGET_DATA_OPTIONS = {
  train: { type: 'string' },
  test: { type: 'string' },
  'val-split': { type: 'string', default: '0.15' },
  'cache-size': { type: 'string', default: '72' },
  'cache-dir': { type: 'string', default: '.moco-cxr-cache' },
} as const;

/** Progress and notes go to standard error, so that standard output holds only the table. */
export const log = (line: string): void => void process.stderr.write(`${line}\n`);

/** Splits and caches the target set named by the parsed flags (seed 0, decoding in this thread). */
export function targetData(values: {
  train?: string;
  test?: string;
  'val-split'?: string;
  'cache-size'?: string;
  'cache-dir'?: string;
}): ReturnType<typeof prepareDownstreamData> {
  if (values.train === undefined || values.test === undefined) throw new Error('--train and --test are required');
  return prepareDownstreamData(
    {
      train: values.train,
      test: values.test,
      valSplit: Number(values['val-split']),
      uncertain: 'ignore',
      seed: 0,
      cacheSize: Number(values['cache-size']),
      cacheDir: values['cache-dir'] ?? '.moco-cxr-cache',
      workers: 0,
    },
    { log },
  );
}
