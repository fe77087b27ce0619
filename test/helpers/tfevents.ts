/** The tests' independent reader of TensorBoard event files (`tfevents.py`, Debian's python3-protobuf). */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { PYTHON } from './oracle.js';

const SCRIPT = fileURLToPath(new URL('./tfevents.py', import.meta.url));

/** Why the reader cannot run here, or undefined when it can. */
export function tfeventsReaderMissing(): string | undefined {
  const probe = spawnSync(PYTHON, ['-c', 'import google.protobuf'], { encoding: 'utf8' });
  return probe.status === 0 ? undefined : `${PYTHON} lacks google.protobuf (Debian's python3-protobuf)`;
}

/** What the reader found in a run folder and what its jsonl file says should be there. */
export interface EventsCheck {
  files: string[];
  firstVersions: string[];
  found: [string, number, number][];
  expected: [string, number, number][];
  duplicates: [string, number][];
}

/** Reads `runDir`'s event files in Python (every CRC checked) and compares them with `metrics.jsonl` or `cells.jsonl`. */
export function checkEvents(runDir: string, kind: 'metrics' | 'cells'): EventsCheck {
  const run = spawnSync(PYTHON, [SCRIPT, runDir, kind], { encoding: 'utf8' });
  assert.equal(run.status, 0, `tfevents.py failed:\n${run.stderr}`);
  const check = JSON.parse(run.stdout) as EventsCheck;
  assert.ok(check.files.length > 0, `no event files in ${runDir}`);
  assert.ok(
    check.firstVersions.every((v) => v === 'brain.Event:2'),
    `first events: ${check.firstVersions.join(', ')}`,
  );
  assert.deepEqual(check.duplicates, [], 'a step logged twice for one tag');
  assert.deepEqual(check.found, check.expected, 'the scalars of the event files against the jsonl file');
  return check;
}
