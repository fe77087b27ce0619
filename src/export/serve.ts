/**
 * A plain static file server over node:http, for the exported page: GET and
 * HEAD of files under one folder, with the MIME types a browser needs
 * (application/wasm for WebAssembly's streaming compile, text/javascript for
 * modules), and no way out of the folder. A bad request gets its status code
 * and the server keeps serving.
 */
import { createReadStream, realpathSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { extname, join, resolve, sep } from 'node:path';

import { resolve as resolveSettings, type Setting, type SettingsOf } from '../config/settings.js';

/** Every setting of the static file server. */
export const SERVE_SETTINGS = [
  {
    key: 'port',
    type: 'int',
    range: 'non-negative',
    max: 65535,
    maxReason: 'the largest TCP port',
    default: 8080,
    defaultHelp: '8080; 0 takes a free one',
    help: 'TCP port',
  },
  {
    key: 'host',
    type: 'string',
    default: '127.0.0.1',
    help: 'address to listen on (0.0.0.0 for every interface)',
  },
] as const satisfies readonly Setting[];

/** The server's configuration. */
export type ServeConfig = SettingsOf<typeof SERVE_SETTINGS>;

/** Fills the defaults into `partial` and checks every value. */
export function resolveServeConfig(partial: Readonly<Record<string, unknown>>, where = ''): ServeConfig {
  return resolveSettings(SERVE_SETTINGS, partial, where);
}

/** Content types by file extension; anything else is application/octet-stream. */
export const MIME_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.onnx': 'application/octet-stream',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
};

/** The file under `root` a request path names, or a status code: 400 malformed, 403 outside, 404 absent. */
export function resolveRequestPath(root: string, urlPath: string): string | 400 | 403 | 404 {
  let path: string;
  try {
    path = decodeURIComponent(new URL(urlPath, 'http://localhost').pathname);
  } catch {
    return 400;
  }
  if (path.includes('\0')) return 400;
  const base = realpathSync(root);
  const wanted = resolve(base, `.${path.endsWith('/') ? `${path}index.html` : path}`);
  if (wanted !== base && !wanted.startsWith(base + sep)) return 403;
  let real: string;
  try {
    real = realpathSync(wanted);
  } catch {
    return 404;
  }
  // A link inside the folder may point out of it: follow it only to within.
  if (!real.startsWith(base + sep)) return 403;
  try {
    const file = statSync(real).isDirectory() ? join(real, 'index.html') : real;
    return statSync(file).isFile() ? file : 404;
  } catch {
    return 404;
  }
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
};

/** A server (not yet listening) for the files under `root`. */
export function createStaticServer(root: string): Server {
  const base = resolve(root);
  let folder = false;
  try {
    folder = statSync(base).isDirectory();
  } catch {
    // reported below
  }
  if (!folder) throw new Error(`no such folder '${root}'`);
  return createServer((request, response) => {
    const fail = (status: number): void => {
      response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
      response.end(`${status} ${REASONS[status] ?? ''}\n`);
    };
    try {
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        response.setHeader('allow', 'GET, HEAD');
        fail(405);
        return;
      }
      const found = resolveRequestPath(base, request.url ?? '/');
      if (typeof found === 'number') {
        fail(found);
        return;
      }
      response.writeHead(200, {
        'content-type': MIME_TYPES[extname(found).toLowerCase()] ?? 'application/octet-stream',
        'content-length': statSync(found).size,
        'cache-control': 'no-cache',
        // Cross-origin isolation lets onnxruntime-web use threads (SharedArrayBuffer); the page loads only its own files.
        'cross-origin-opener-policy': 'same-origin',
        'cross-origin-embedder-policy': 'require-corp',
        'x-content-type-options': 'nosniff',
      });
      if (request.method === 'HEAD') {
        response.end();
        return;
      }
      const stream = createReadStream(found);
      stream.on('error', () => response.destroy());
      stream.pipe(response);
    } catch {
      if (!response.headersSent) fail(400);
      else response.destroy();
    }
  });
}

/** A listening server and its address. */
export interface RunningServer {
  server: Server;
  url: string;
  close(): Promise<void>;
}

/** Serves `root` (see {@link createStaticServer}) on the configured host and port (0: any free port). */
export async function serveFolder(
  root: string,
  partial: Readonly<Record<string, unknown>> = {},
): Promise<RunningServer> {
  const { port, host } = resolveServeConfig(partial);
  const server = createStaticServer(root);
  // A client that sends garbage gets a 400 from node:http and the server goes on.
  server.on('clientError', (_error, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
    else socket.destroy();
  });
  await new Promise<void>((done, failed) => {
    server.once('error', failed);
    server.listen(port, host, () => {
      server.off('error', failed);
      done();
    });
  });
  const address = server.address();
  const actual = typeof address === 'object' && address !== null ? address.port : port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    server,
    url: `http://${shownHost}:${actual}/`,
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}
