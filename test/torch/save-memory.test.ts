import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import * as torch from '../../src/torch/index.js';
import { tempDir } from '../helpers/oracle.js';

/** This process's resident and peak resident memory in MiB, from /proc (Linux). */
function memory(): { rss: number; peak: number } {
  const status = readFileSync('/proc/self/status', 'utf8');
  const field = (name: string): number => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN) / 1024;
  return { rss: field('VmRSS'), peak: field('VmHWM') };
}

/** Resets the peak (VmHWM) to the current RSS; false where the kernel does not allow it. */
function resetPeak(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return Math.abs(memory().peak - memory().rss) < 8;
  } catch {
    return false;
  }
}

const unsupported = process.platform !== 'linux' || !resetPeak() ? 'needs Linux /proc/self/clear_refs' : undefined;

test('saving streams tensor bytes to the file instead of copying them all first', { skip: unsupported }, () => {
  const dir = tempDir();
  try {
    // 256 MiB in four tensors, one of them channels-last (saved through a contiguous copy).
    const tensors = {
      a: torch.ones([16, 1024, 1024]),
      b: torch.ones([16, 1024, 1024]).mul_(2),
      c: torch.ones([16, 4, 1024, 256]).contiguous('channelsLast'),
      d: torch.ones([4, 1024, 1024, 4]).contiguous('channelsLast'),
    };
    const path = join(dir.path, 'big.pt');
    resetPeak();
    const before = memory().rss;
    torch.save(tensors, path);
    const growth = memory().peak - before;
    // A few MiB of buffers; a copy of everything would be 256 MiB, a contiguous
    // copy of one channels-last tensor 64 MiB.
    assert.ok(growth < 32, `saving 256 MiB of tensors raised peak RSS by ${growth.toFixed(0)} MiB`);
    const loaded = torch.load(path) as Record<string, torch.Tensor>;
    for (const [name, t] of Object.entries(tensors)) {
      const equal = torch.tidy(() => loaded[name]!.eq(t).all().item());
      assert.equal(equal, 1, `${name} reloads equal`);
    }
    torch.dispose([loaded, tensors]);
  } finally {
    dir.cleanup();
  }
});
