/**
 * The import graph against ARCHITECTURE.md: the folders of `src/` stand on
 * floors in the order its first code block lists them, and a file imports only
 * from its own folder or from folders on lower floors. A line that says
 * "(same floor as src/x/)" puts its folder beside x: neither imports the other.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const root = fileURLToPath(new URL('..', import.meta.url));
const src = join(root, 'src');

/** Floor of each `src/` folder from ARCHITECTURE.md, 0 at the top. */
function declaredFloors(): Map<string, number> {
  const text = readFileSync(join(root, 'ARCHITECTURE.md'), 'utf8');
  const block = /```\n([\s\S]*?)```/.exec(text);
  assert.ok(block, 'ARCHITECTURE.md has no code block listing the folders');
  const floors = new Map<string, number>();
  let floor = -1;
  for (const line of (block[1] as string).split('\n')) {
    const folder = /^src\/([\w-]+)\//.exec(line)?.[1];
    if (folder === undefined) continue;
    const sibling = /\(same floor as src\/([\w-]+)\/\)/.exec(line)?.[1];
    if (sibling === undefined) floor += 1;
    else assert.equal(floors.get(sibling), floor, `ARCHITECTURE.md: ${folder} sits beside ${sibling}, the line above`);
    floors.set(folder, floor);
  }
  return floors;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

/** The relative module specifiers a file imports or re-exports (static, type-only and dynamic). */
function relativeImports(text: string): string[] {
  const specifiers: string[] = [];
  for (const match of text.matchAll(/\bfrom\s+'(\.[^']*)'|\bimport\s*\(?\s*'(\.[^']*)'/g)) {
    specifiers.push((match[1] ?? match[2]) as string);
  }
  return specifiers;
}

/** The top-level folder of `src/` that `path` lies in; '' for a file directly in `src/`. */
function folderOf(path: string): string {
  const parts = relative(src, path).split(sep);
  return parts.length > 1 ? (parts[0] as string) : '';
}

test('ARCHITECTURE.md lists every folder of src/, with moco and downstream evaluation on one floor', () => {
  const floors = declaredFloors();
  const folders = readdirSync(src).filter((name) => statSync(join(src, name)).isDirectory());
  assert.deepEqual([...floors.keys()].sort(), folders.sort());
  assert.equal(floors.get('moco'), floors.get('downstream'));
});

test('every import of src/ points down the floors ARCHITECTURE.md lists', () => {
  const floors = declaredFloors();
  const upward: string[] = [];
  for (const file of sourceFiles(src)) {
    const from = folderOf(file);
    if (from === '') continue; // the package entry stands above every folder
    for (const specifier of relativeImports(readFileSync(file, 'utf8'))) {
      const to = folderOf(resolve(dirname(file), specifier));
      if (to === from) continue;
      const fromFloor = floors.get(from) as number;
      const toFloor = to === '' ? -1 : floors.get(to);
      if (toFloor === undefined || toFloor <= fromFloor) upward.push(`${relative(root, file)} imports '${specifier}'`);
    }
  }
  assert.deepEqual(upward, []);
});

test('no file of src/ imports itself back through other files (type-only imports included)', () => {
  const files = sourceFiles(src);
  const edges = new Map<string, string[]>();
  for (const file of files) {
    const targets = relativeImports(readFileSync(file, 'utf8')).map((specifier) =>
      resolve(dirname(file), specifier.replace(/\.js$/, '.ts')),
    );
    edges.set(
      file,
      targets.filter((target) => edges.has(target) || files.includes(target)),
    );
  }
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const visit = (file: string, path: string[]): void => {
    if (state.get(file) === 'done') return;
    if (state.get(file) === 'open') {
      cycles.push([...path.slice(path.indexOf(file)), file].map((f) => relative(root, f)).join(' → '));
      return;
    }
    state.set(file, 'open');
    for (const next of edges.get(file) ?? []) visit(next, [...path, file]);
    state.set(file, 'done');
  };
  for (const file of files) visit(file, []);
  assert.deepEqual(cycles, []);
});
