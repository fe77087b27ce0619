/**
 * The static server: MIME types (application/wasm above all), no way out of
 * the folder by dot segments, encoded slashes or links, and a server that
 * answers the next request after a bad one.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import {
  createStaticServer,
  resolveRequestPath,
  resolveServeConfig,
  serveFolder,
  type RunningServer,
} from '../../src/export/index.js';

let work: string;
let root: string;
let server: RunningServer;

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'moco-cxr-serve-'));
  root = join(work, 'site');
  mkdirSync(join(root, 'ort'), { recursive: true });
  writeFileSync(join(root, 'index.html'), '<!doctype html><title>t</title>');
  writeFileSync(join(root, 'ort', 'x.wasm'), Buffer.from([0, 0x61, 0x73, 0x6d]));
  writeFileSync(join(root, 'viewer.js'), 'export {};');
  writeFileSync(join(root, 'model.json'), '{}');
  writeFileSync(join(work, 'secret.txt'), 'outside');
  symlinkSync(join(work, 'secret.txt'), join(root, 'link.txt'));
  server = await serveFolder(root, { port: 0 });
});

after(async () => {
  await server.close();
  rmSync(work, { recursive: true, force: true });
});

/** A raw HTTP/1.1 request (so that paths reach the server exactly as written), returning the status line. */
function rawRequest(path: string): Promise<string> {
  const { port } = new URL(server.url);
  return new Promise((done, failed) => {
    const socket = connect(Number(port), '127.0.0.1', () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
    });
    let text = '';
    socket.on('data', (chunk) => (text += chunk.toString('latin1')));
    socket.on('end', () => done(text.split('\r\n')[0] ?? ''));
    socket.on('error', failed);
  });
}

test('files come with their MIME types; the folder gives its index.html', async () => {
  const cases: [string, string][] = [
    ['', 'text/html; charset=utf-8'],
    ['ort/x.wasm', 'application/wasm'],
    ['viewer.js', 'text/javascript; charset=utf-8'],
    ['model.json', 'application/json; charset=utf-8'],
  ];
  for (const [path, type] of cases) {
    const response = await fetch(new URL(path, server.url));
    assert.equal(response.status, 200, path);
    assert.equal(response.headers.get('content-type'), type, path);
    await response.arrayBuffer();
  }
  const wasm = new Uint8Array(await (await fetch(new URL('ort/x.wasm', server.url))).arrayBuffer());
  assert.deepEqual([...wasm], [0, 0x61, 0x73, 0x6d]);
});

test('no path leaves the folder, and the server answers after each bad request', async () => {
  for (const path of [
    '/../secret.txt',
    '/ort/../../secret.txt',
    '/%2e%2e/secret.txt',
    '/..%2fsecret.txt',
    '/link.txt',
  ]) {
    const status = await rawRequest(path);
    assert.match(status, / (403|404) /, `${path}: ${status}`);
    assert.ok((await fetch(server.url)).ok, `the server answers after ${path}`);
  }
  assert.match(await rawRequest('/%E0%A4%A'), / 400 /);
  assert.match(await rawRequest('/missing.js'), / 404 /);
  const post = await fetch(server.url, { method: 'POST', body: 'x' });
  assert.equal(post.status, 405);
  assert.ok((await fetch(server.url)).ok);
});

test('request paths resolve inside the root only', () => {
  assert.equal(resolveRequestPath(root, '/viewer.js'), join(root, 'viewer.js'));
  assert.equal(resolveRequestPath(root, '/../secret.txt'), 404);
  assert.equal(resolveRequestPath(root, '/link.txt'), 403);
  assert.equal(resolveRequestPath(root, '/a%00b'), 400);
});

test('a missing folder and a bad port are refused by name', () => {
  assert.throws(() => createStaticServer(join(work, 'nope')), /no such folder '.*nope'/);
  assert.throws(() => resolveServeConfig({ port: 70000 }), /port is 70000, above the limit of 65535/);
  assert.throws(() => resolveServeConfig({ port: -1 }), /port must be a non-negative integer/);
});
