// The "local service" for the benchmark, run as a child process by bench/run.mjs.
//   GET /small -> 100-byte body
//   GET /big   -> 100 MiB, streamed in 64 KiB chunks, respecting backpressure
// Listens on 127.0.0.1 only (port from a numeric argument, default 0 = any free port) and prints one JSON
// line `{"port":N}` on stdout once listening. Keep-alive stays on (Node's default), with a
// generous idle timeout so wrk's connections are not cut between requests.
import http from 'node:http';

const SMALL_BODY = Buffer.alloc(100, 'x');
const BIG_BYTES = 100 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 'y');
const MAX_CHUNKS = Math.ceil(BIG_BYTES / CHUNK.length); // 1600: the write loop's hard bound

async function sendBig(req, res) {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(BIG_BYTES) });
  let closed = false;
  res.once('close', () => {
    closed = true;
  });
  let sent = 0;
  for (let i = 0; i < MAX_CHUNKS && sent < BIG_BYTES && !closed; i++) {
    const size = Math.min(CHUNK.length, BIG_BYTES - sent);
    const ok = res.write(size === CHUNK.length ? CHUNK : CHUNK.subarray(0, size));
    sent += size;
    if (!ok && !closed) {
      // Wait for the socket to drain, or for the client to go away.
      await new Promise((resolve) => {
        const done = () => {
          res.off('drain', done);
          res.off('close', done);
          resolve();
        };
        res.on('drain', done);
        res.on('close', done);
      });
    }
  }
  if (!closed) res.end();
}

const server = http.createServer((req, res) => {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method === 'GET' && path === '/small') {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(SMALL_BODY.length) });
    res.end(SMALL_BODY);
    return;
  }
  if (req.method === 'GET' && path === '/big') {
    sendBig(req, res).catch((error) => {
      process.stderr.write(`local-server: /big failed: ${error?.stack ?? error}\n`);
      res.destroy();
    });
    return;
  }
  res.writeHead(404, { 'content-type': 'text/plain', 'content-length': '10' });
  res.end('not found\n');
});
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;
server.requestTimeout = 0;
server.on('clientError', (_error, socket) => socket.destroy());

const portArg = process.argv.slice(2).find((arg) => /^\d+$/.test(arg));
const port = Number(portArg ?? 0);
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});

function shutdown() {
  server.close();
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 200).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
// With --exit-with-stdin (as bench/run.mjs starts us, holding our stdin open): if the benchmark
// dies without stopping us (even by SIGKILL), the pipe closes and we go too, leaving no stray.
if (process.argv.includes('--exit-with-stdin')) {
  process.stdin.on('end', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
}
