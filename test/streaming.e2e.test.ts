import { once } from 'node:events';
import { request, type IncomingMessage } from 'node:http';
import { beforeAll, describe, expect, it } from 'vitest';
import { fetchVia } from './helpers/http-client.js';
import { startLocalServer, type LocalServer } from './helpers/local-server.js';
import { startAgentProcess, type RunningProcess } from './helpers/processes.js';
import { suiteScope } from './helpers/suite-scope.js';

/**
 * The real figures are a comment every 15 s for 10 minutes; the suite scales them down
 * (SSE_COMMENT_MS, SSE_DURATION_MS) and the full run is done by hand with
 * SSE_COMMENT_MS=15000 SSE_DURATION_MS=600000.
 */
const COMMENT_MS = Number(process.env.SSE_COMMENT_MS ?? 1000);
const DURATION_MS = Number(process.env.SSE_DURATION_MS ?? 8000);

const scope = suiteScope();
let local: LocalServer;
let tunnel: RunningProcess & { url: URL };
let pendingPoll: (() => void) | null = null;

beforeAll(async () => {
  local = await startLocalServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://local');
    req.resume();
    switch (url.pathname) {
      case '/events': {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        res.write(`: sent ${Date.now()}\n\n`);
        const timer = setInterval(() => res.write(`: sent ${Date.now()}\n\n`), COMMENT_MS);
        res.on('close', () => clearInterval(timer));
        return;
      }
      case '/no-content':
        res.writeHead(204).end();
        return;
      case '/cached':
        if (req.headers['if-none-match'] === '"v1"') res.writeHead(304, { etag: '"v1"' }).end();
        else res.writeHead(200, { etag: '"v1"' }).end('fresh');
        return;
      case '/trailers':
        res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
        res.write('body;');
        res.addTrailers({ 'x-checksum': 'abc123' });
        res.end();
        return;
      case '/upload':
        res.end(`got ${req.headers['content-length']}`);
        return;
      case '/request-trailers': {
        let bytes = 0;
        req.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
        });
        req.on('end', () => res.end(JSON.stringify({ bytes, trailers: req.trailers })));
        return;
      }
      case '/poll':
        pendingPoll = () => res.end('news');
        return;
      default:
        res.end('ok');
    }
  }, scope);
  tunnel = await startAgentProcess(['--port', String(local.port), '--local-host', '127.0.0.1', '--relay-port', '0'], scope);
});

function open(path: string, headers: Record<string, string> = {}): Promise<IncomingMessage> {
  const req = request({ host: '127.0.0.1', port: tunnel.url.port, path, headers: { host: tunnel.url.host, ...headers } });
  req.end();
  return once(req, 'response').then(([res]) => res as IncomingMessage);
}

describe('streaming responses', () => {
  it(`keeps a server-sent event stream open for ${DURATION_MS} ms, each comment arriving as it is sent`, async () => {
    const res = await open('/events', { accept: 'text/event-stream' });
    expect(res.headers['content-type']).toBe('text/event-stream');
    res.setEncoding('utf8');
    const delaysMs: number[] = [];
    const started = Date.now();
    let buffer = '';
    for await (const chunk of res) {
      buffer += chunk as string;
      for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
        const sentAt = Number(/: sent (\d+)/.exec(buffer.slice(0, end))?.[1]);
        delaysMs.push(Date.now() - sentAt);
        buffer = buffer.slice(end + 2);
      }
      if (Date.now() - started >= DURATION_MS) break;
    }
    res.destroy();
    expect(delaysMs.length).toBeGreaterThanOrEqual(Math.floor(DURATION_MS / COMMENT_MS));
    // Every comment arrives at once, not held back until more data or the end.
    expect(Math.max(...delaysMs)).toBeLessThan(500);
  }, DURATION_MS + 30_000);

  it('passes 204 and 304 without a body, and HEAD with the headers of a GET', async () => {
    const noContent = await fetchVia(tunnel.url, { path: '/no-content' });
    expect(noContent.status).toBe(204);
    expect(noContent.body.length).toBe(0);
    const notModified = await fetchVia(tunnel.url, { path: '/cached', headers: { 'if-none-match': '"v1"' } });
    expect(notModified.status).toBe(304);
    expect(notModified.headers.etag).toBe('"v1"');
    expect(notModified.body.length).toBe(0);
    const head = await fetchVia(tunnel.url, { method: 'HEAD', path: '/cached' });
    expect(head.status).toBe(200);
    expect(head.headers.etag).toBe('"v1"');
    expect(head.body.length).toBe(0);
  });

  it('passes response trailers through', async () => {
    const res = await open('/trailers');
    let body = '';
    for await (const chunk of res) body += chunk;
    expect(body).toBe('body;');
    expect(res.trailers['x-checksum']).toBe('abc123');
  });

  it('passes request trailers to the local service when the request announces them, except those the relay owns', async () => {
    const req = request({
      host: '127.0.0.1', port: tunnel.url.port, method: 'POST', path: '/request-trailers',
      headers: { host: tunnel.url.host, trailer: 'x-checksum, x-forwarded-for' },
    });
    req.write('a'.repeat(100_000));
    // A trailer may not override what the relay says of the client: that one is dropped.
    req.addTrailers({ 'x-checksum': 'abc123', 'x-forwarded-for': '6.6.6.6' });
    req.end();
    const [res] = (await once(req, 'response')) as [IncomingMessage];
    let body = '';
    for await (const chunk of res) body += chunk;
    expect(res.statusCode).toBe(200);
    expect(JSON.parse(body)).toEqual({ bytes: 100_000, trailers: { 'x-checksum': 'abc123' } });
  });

  it('answers Expect: 100-continue with 100 before the body is sent', async () => {
    const req = request({
      host: '127.0.0.1', port: tunnel.url.port, method: 'POST', path: '/upload',
      headers: { host: tunnel.url.host, expect: '100-continue', 'content-length': '5' },
    });
    // The local service may send its answer right behind the 100, in the same read: listen first.
    const responded = once(req, 'response') as Promise<[IncomingMessage]>;
    await once(req, 'continue');
    req.end('hello');
    const [res] = await responded;
    let body = '';
    for await (const chunk of res) body += chunk;
    expect(res.statusCode).toBe(200);
    expect(body).toBe('got 5');
  });

  it('holds a long poll open until the local server answers', async () => {
    const pending = fetchVia(tunnel.url, { path: '/poll' });
    await expect.poll(() => pendingPoll !== null).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    pendingPoll!();
    const response = await pending;
    expect(response.status).toBe(200);
    expect(response.body.toString()).toBe('news');
  });
});
