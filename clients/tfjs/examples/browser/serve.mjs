// A tiny development server for the browser example: serves the page, its
// script and the client bundle from localhost, and reverse-proxies /api/ to
// a fedagg server, so the page talks to the API on its own origin (no CORS).
//
//   node serve.mjs --api http://127.0.0.1:8080 [--port 8000] [--bundle ../../dist/fedagg-device.js]
//
// Prints "serving http://127.0.0.1:PORT" once it listens (--port 0 picks a
// free port). Only the fixed routes below are served; nothing else of the
// file system is reachable.
import { createReadStream, existsSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    api: { type: 'string', default: 'http://127.0.0.1:8080' },
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '8000' },
    bundle: { type: 'string', default: join(here, '..', '..', 'dist', 'fedagg-device.js') },
  },
});
const api = new URL(args.api);
if (api.protocol !== 'http:') throw new Error('--api must be an http:// URL');
const PROXY_TIMEOUT_MS = 60_000;

const FILES = {
  '/': [join(here, 'index.html'), 'text/html; charset=utf-8'],
  '/index.html': [join(here, 'index.html'), 'text/html; charset=utf-8'],
  '/main.js': [join(here, 'main.js'), 'text/javascript; charset=utf-8'],
  '/fedagg-device.js': [resolve(args.bundle), 'text/javascript; charset=utf-8'],
};
if (!existsSync(FILES['/fedagg-device.js'][0])) {
  console.error(`serve: no bundle at ${FILES['/fedagg-device.js'][0]} (run: npm run build:browser)`);
  process.exit(1);
}

function proxy(req, res) {
  const headers = { ...req.headers, host: api.host };
  delete headers.connection;
  const up = httpRequest(
    { host: api.hostname, port: api.port || 80, method: req.method, path: req.url, headers, timeout: PROXY_TIMEOUT_MS },
    (upRes) => {
      res.writeHead(upRes.statusCode, upRes.headers);
      upRes.pipe(res);
    },
  );
  up.on('timeout', () => up.destroy(new Error('upstream timeout')));
  up.on('error', (e) => {
    if (res.headersSent) {
      res.destroy(e);
      return;
    }
    res.writeHead(502, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ error: { code: 'bad_gateway', message: `fedagg is not reachable: ${e.message}` } }));
  });
  req.pipe(up);
}

const server = createServer((req, res) => {
  const path = new URL(req.url, 'http://localhost').pathname;
  if (path.startsWith('/api/')) {
    proxy(req, res);
    return;
  }
  const file = FILES[path];
  if (file === undefined || (req.method !== 'GET' && req.method !== 'HEAD')) {
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('not found\n');
    return;
  }
  res.writeHead(200, { 'Content-Type': file[1], 'Cache-Control': 'no-store' });
  if (req.method === 'HEAD') res.end();
  else createReadStream(file[0]).on('error', (e) => res.destroy(e)).pipe(res);
});
server.requestTimeout = PROXY_TIMEOUT_MS;
server.listen(Number(args.port), args.host, () => {
  const { address, port } = server.address();
  console.log(`serving http://${address}:${port} (API proxied to ${api.origin})`);
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
