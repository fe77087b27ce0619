/**
 * Runs the named benchmarks (all when none is named), one after another:
 * `npm run bench -- engine models`. Each prints its figures beside PyTorch's.
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { printMachine } from './machine.js';

const here = dirname(fileURLToPath(import.meta.url));
const available = readdirSync(here)
  .filter((name) => name.endsWith('.ts') && !['run.ts', 'python.ts', 'machine.ts'].includes(name))
  .map((name) => name.slice(0, -3))
  .sort();
const requested = process.argv.slice(2).filter((arg) => !arg.startsWith('--'));
const chosen = requested.length === 0 ? available : requested;
for (const name of chosen) {
  if (!available.includes(name)) {
    console.error(`unknown benchmark '${name}': available are ${available.join(', ')}`);
    process.exit(2);
  }
}
printMachine();
for (const name of chosen) {
  console.log(`\n== ${name} ==`);
  await import(join(here, `${name}.ts`));
}
