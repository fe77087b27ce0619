import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args], { encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

test('doctor reports the engine and exits 0', () => {
  const { status, stdout } = cli('doctor', '--json');
  assert.equal(status, 0);
  const report = JSON.parse(stdout) as { libtorch: string; threads: number; selfTest: string; devices: string[] };
  assert.match(report.libtorch, /^\d+\.\d+/);
  assert.ok(report.threads >= 1);
  assert.equal(report.selfTest, 'ok');
  assert.ok(report.devices.includes('cpu'));
});

test('demo --quick trains and the loss falls', () => {
  const { status, stdout } = cli('demo', '--quick');
  assert.equal(status, 0, stdout);
  const match = /loss ([\d.]+) -> ([\d.]+)/.exec(stdout);
  assert.ok(match, stdout);
  assert.ok(Number(match[2]) < Number(match[1]) * 0.9, stdout);
});

test('an unknown command exits 2 with a message', () => {
  const { status, stderr } = cli('no-such-command');
  assert.equal(status, 2);
  assert.match(stderr, /unknown command 'no-such-command'/);
});
