// The "local service" for the benchmark, run as a child process by bench/run.mjs.
//   GET /small -> 100-byte body
//   GET /big   -> 100 MiB, streamed in 64 KiB chunks, respecting backpressure
//   GET /pattern?bytes=N&seed=S -> N bytes of the deterministic body of bench/pattern.mjs,
//                                  streamed with backpressure (N at most 4 GiB)
//   POST /upload -> reads the body, hashing it, and answers {"bytes":N,"sha256":"..."}
// Listens on 127.0.0.1 only (port from a numeric argument, default 0 = any free port) and prints one JSON
// line `{"port":N}` on stdout once listening. Keep-alive stays on (Node's default), with a
// generous idle timeout so wrk's connections are not cut between requests.
import { createHash } from 'node:crypto';
import http from 'node:http';
import { writePattern } from './pattern.mjs';

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

const MAX_PATTERN_BYTES = 4 * 1024 ** 3;

async function sendPattern(url, res) {
  const bytes = Number(url.searchParams.get('bytes'));
  const seed = Number(url.searchParams.get('seed') ?? 1);
  if (!Number.isInteger(bytes) || bytes < 0 || bytes > MAX_PATTERN_BYTES || !Number.isInteger(seed)) {
    res.writeHead(400, { 'content-type': 'text/plain' });
    res.end('bytes must be an integer from 0 to 4 GiB, seed an integer\n');
    return;
  }
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(bytes) });
  const { completed } = await writePattern(res, bytes, seed);
  if (completed) res.end();
}

function receiveUpload(req, res) {
  const hash = createHash('sha256');
  let bytes = 0;
  req.on('data', (chunk) => {
    hash.update(chunk);
    bytes += chunk.length;
  });
  req.on('end', () => {
    const body = JSON.stringify({ bytes, sha256: hash.digest('hex') });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
    res.end(body);
  });
  req.on('error', () => res.destroy());
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
  if (req.method === 'GET' && path === '/pattern') {
    sendPattern(new URL(req.url, 'http://local'), res).catch((error) => {
      process.stderr.write(`local-server: /pattern failed: ${error?.stack ?? error}\n`);
      res.destroy();
    });
    return;
  }
  if (req.method === 'POST' && path === '/upload') {
    receiveUpload(req, res);
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
