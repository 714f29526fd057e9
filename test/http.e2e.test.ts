import { once } from 'node:events';
import { request } from 'node:http';
import { beforeAll, describe, expect, it } from 'vitest';
import { fetchVia } from './helpers/http-client.js';
import { patternBytes, sha256, startLocalServer, type LocalServer } from './helpers/local-server.js';
import { startAgentProcess, type RunningProcess } from './helpers/processes.js';
import { suiteScope } from './helpers/suite-scope.js';

const MiB = 1024 * 1024;
const scope = suiteScope();
let local: LocalServer;
let tunnel: RunningProcess & { url: URL };
/** Resolved by the streaming test when its client has seen the first chunk. */
let releaseSecondChunk: () => void = () => undefined;

/** The local app: echoes bodies back, serves patterned blobs, streams, and shows what it got. */
function app(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://local');
  if (url.pathname === '/echo') {
    res.setHeader('x-method', req.method ?? '');
    req.pipe(res);
    return;
  }
  if (url.pathname === '/blob') {
    const size = Number(url.searchParams.get('size'));
    const body = patternBytes(size, Number(url.searchParams.get('seed')));
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size, 'x-sha256': sha256(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
    return;
  }
  if (url.pathname === '/stream') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('first;');
    void new Promise<void>((resolve) => {
      releaseSecondChunk = resolve;
    }).then(() => res.end('second'));
    return;
  }
  if (url.pathname === '/headers') {
    res.writeHead(200, [
      'Set-Cookie', 'a=1',
      'X-Order', 'one',
      'Set-Cookie', 'b=2',
      'Connection', 'x-secret',
      'X-Secret', 'hop-by-hop',
      'X-Order', 'two',
    ]);
    res.end(JSON.stringify({ rawHeaders: req.rawHeaders }));
    return;
  }
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(`${req.method} ${req.url}`);
}

beforeAll(async () => {
  local = await startLocalServer(app, scope);
  tunnel = await startAgentProcess(['--port', String(local.port), '--local-host', '127.0.0.1', '--relay-port', '0'], scope);
});

describe('HTTP through the tunnel', () => {
  it('prints the public URL alone on the first stdout line, on a *.localhost subdomain', () => {
    expect(tunnel.firstLine).toMatch(/^http:\/\/[a-z0-9-]+\.localhost:\d+$/);
  });

  it.each([0, 1, 64 * 1024 + 1, MiB, 50 * MiB])('echoes a %i-byte body byte-exact for POST, PUT and DELETE', async (size) => {
    const body = patternBytes(size, size + 7);
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const response = await fetchVia(tunnel.url, { method, path: '/echo', body, headers: { 'content-length': String(size) } });
      expect(response.status).toBe(200);
      expect(response.headers['x-method']).toBe(method);
      expect(response.sha256).toBe(sha256(body));
    }
  });

  it('streams a chunked 3 MiB upload whose length is not announced', async () => {
    const body = patternBytes(3 * MiB, 99);
    const response = await new Promise<{ hash: string; status: number }>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: tunnel.url.port, method: 'POST', path: '/echo', headers: { host: tunnel.url.host, 'transfer-encoding': 'chunked' } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, hash: sha256(Buffer.concat(chunks)) }));
        },
      );
      req.on('error', reject);
      for (let offset = 0; offset < body.length; offset += 100_000) req.write(body.subarray(offset, offset + 100_000));
      req.end();
    });
    expect(response.status).toBe(200);
    expect(response.hash).toBe(sha256(body));
  });

  it.each([0, 1, 64 * 1024 + 1, MiB, 50 * MiB])('downloads a %i-byte body byte-exact with GET, and HEAD has no body', async (size) => {
    const get = await fetchVia(tunnel.url, { path: `/blob?size=${size}&seed=3` });
    expect(get.status).toBe(200);
    expect(get.headers['content-length']).toBe(String(size));
    expect(get.sha256).toBe(get.headers['x-sha256']);
    const head = await fetchVia(tunnel.url, { method: 'HEAD', path: `/blob?size=${size}&seed=3` });
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(size));
    expect(head.body.length).toBe(0);
  });

  it('delivers the first chunk of a response before the local server has ended it', async () => {
    const req = request({ host: '127.0.0.1', port: tunnel.url.port, path: '/stream', headers: { host: tunnel.url.host } });
    req.end();
    const [res] = (await once(req, 'response')) as [import('node:http').IncomingMessage];
    res.setEncoding('utf8');
    const [first] = (await once(res, 'data')) as [string];
    expect(first).toBe('first;');
    // Only now may the local server finish: a tunnel that buffered to the end would hang here.
    releaseSecondChunk();
    let rest = '';
    for await (const chunk of res) rest += chunk;
    expect(rest).toBe('second');
  });

  it('serves 100 concurrent requests on one tunnel', async () => {
    const responses = await Promise.all(
      Array.from({ length: 100 }, (_, i) => fetchVia(tunnel.url, { path: `/blob?size=${1000 + i * 997}&seed=${i}` })),
    );
    for (const [i, response] of responses.entries()) {
      expect(response.status).toBe(200);
      expect(response.body.length).toBe(1000 + i * 997);
      expect(response.sha256).toBe(response.headers['x-sha256']);
    }
  });

  it('keeps repeated headers and their order, and drops hop-by-hop ones both ways', async () => {
    const response = await fetchVia(tunnel.url, {
      path: '/headers',
      headers: { connection: 'keep-alive, x-private', 'x-private': 'secret', 'keep-alive': 'timeout=5', 'x-first': '1', 'x-second': '2' },
    });
    const pairs: Array<[string, string]> = [];
    for (let i = 0; i < response.rawHeaders.length; i += 2) pairs.push([response.rawHeaders[i]!.toLowerCase(), response.rawHeaders[i + 1]!]);
    const names = pairs.map(([name]) => name);
    expect(pairs.filter(([name]) => name === 'set-cookie').map(([, value]) => value)).toEqual(['a=1', 'b=2']);
    expect(pairs.filter(([name]) => name === 'x-order').map(([, value]) => value)).toEqual(['one', 'two']);
    expect(names.indexOf('set-cookie')).toBeLessThan(names.indexOf('x-order'));
    expect(names).not.toContain('x-secret');
    const seen = (JSON.parse(response.body.toString()) as { rawHeaders: string[] }).rawHeaders
      .filter((_, i) => i % 2 === 0)
      .map((name) => name.toLowerCase());
    expect(seen).not.toContain('x-private');
    expect(seen).not.toContain('keep-alive');
    expect(seen.indexOf('x-first')).toBeLessThan(seen.indexOf('x-second'));
  });

  it('sets X-Forwarded-For/-Proto/-Host itself and ignores what the public client claimed', async () => {
    const response = await fetchVia(tunnel.url, {
      path: '/headers',
      headers: { 'x-forwarded-for': '6.6.6.6', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' },
    });
    const raw = (JSON.parse(response.body.toString()) as { rawHeaders: string[] }).rawHeaders;
    const values = (name: string): string[] => raw.filter((_, i) => i % 2 === 1 && raw[i - 1]!.toLowerCase() === name);
    expect(values('x-forwarded-for')).toEqual(['127.0.0.1']);
    expect(values('x-forwarded-proto')).toEqual(['http']);
    expect(values('x-forwarded-host')).toEqual([tunnel.url.host]);
    expect(values('host')).toEqual([tunnel.url.host]);
  });
});
