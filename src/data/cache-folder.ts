/**
 * Where a source's image cache lives inside a cache folder: one subfolder per
 * source and size, so that two sources never share (and evict, or race for) a
 * cache, whichever command builds it.
 */
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';

import { parseSourceSpec } from './sources/registry.js';

/**
 * The cache folder of source `spec` at `size` pixels under `cacheDir`:
 * `KIND-DIGEST-SIZEpx`, the digest taken of the kind and the resolved location
 * (a phantom location is its parameters, already unique).
 */
export function sourceCacheFolder(cacheDir: string, spec: string, size: number): string {
  const { kind, location } = parseSourceSpec(spec);
  const where = kind === 'phantom' ? location : resolve(location);
  const digest = createHash('sha256').update(`${kind}:${where}`).digest('hex').slice(0, 12);
  return join(resolve(cacheDir), `${kind}-${digest}-${size}px`);
}
