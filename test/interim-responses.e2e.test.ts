import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { request, type IncomingMessage } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import { fetchVia } from './helpers/http-client.js';
import { patternBytes, startLocalServer } from './helpers/local-server.js';
import { poolFigures, startAgentProcess, type RunningProcess } from './helpers/processes.js';
import { openRaw } from './helpers/raw-http.js';
import { suiteScope } from './helpers/suite-scope.js';

const CONTINUE_DELAY_MS = 300;
const BODY = patternBytes(3 * 1024 * 1024, 7);
const BODY_SHA = createHash('sha256').update(BODY).digest('hex');
const LINKS = ['</app.css>; rel=preload; as=style', '</app.js>; rel=preload; as=script'];

const scope = suiteScope();
let tunnel: RunningProcess & { url: URL };
/** What the local service saw of requests it refused before their body. */
const refused: Array<{ bodyBytes: number }> = [];
let headersSeenAt = 0;

async function sha256Of(req: IncomingMessage): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of req) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

beforeAll(async () => {
  const local = await startLocalServer((req, res) => {
    if (req.url === '/hint-flood') {
      // A service (or a hostile agent) sending interim answers without end.
      for (let i = 0; i < 200; i += 1) res.writeEarlyHints({ link: `</asset-${i}.js>; rel=preload; as=script` });
      res.end('flood over');
      return;
    }
    if (req.url === '/hints') {
      res.writeEarlyHints({ link: LINKS });
      setTimeout(() => res.end('page'), 50);
      return;
    }
    if (req.url === '/slow-download') {
      res.write('slow and ');
      setTimeout(() => res.end('steady'), 300);
      return;
    }
    const status = /^\/status\/(\d+)$/.exec(req.url ?? '');
    if (status) {
      // Answers the protocol cannot carry: a 101 nobody asked for, a status beyond 599, a huge reason.
      const code = Number(status[1]);
      res.writeHead(code, code === 299 ? 'x'.repeat(1000) : undefined).end();
      return;
    }
    sha256Of(req).then((sha) => res.end(sha), () => res.destroy());
  }, scope);
  // With a checkContinue listener the local service decides, per request, whether it wants the body.
  local.server.on('checkContinue', (req: IncomingMessage, res) => {
    headersSeenAt = performance.now();
    if (req.url === '/refuse') {
      const seen = { bodyBytes: 0 };
      refused.push(seen);
      req.on('data', (chunk: Buffer) => {
        seen.bodyBytes += chunk.length;
      });
      res.writeHead(413, { 'content-type': 'text/plain' }).end('too big');
      return;
    }
    if (req.url === '/hints') res.writeEarlyHints({ link: LINKS });
    if (req.url === '/many-hints') for (let i = 0; i < 40; i += 1) res.writeEarlyHints({ link: LINKS });
    setTimeout(() => {
      res.writeContinue();
      sha256Of(req).then((sha) => res.end(sha), () => res.destroy());
    }, CONTINUE_DELAY_MS);
  });
  tunnel = await startAgentProcess(['--port', String(local.port), '--local-host', '127.0.0.1', '--relay-port', '0', '--log-level', 'info'], scope);
});

function uploadHead(path: string, host: string, length: number): string {
  return `PUT ${path} HTTP/1.1\r\nHost: ${host}\r\nContent-Length: ${length}\r\nExpect: 100-continue\r\n\r\n`;
}

describe('Expect: 100-continue', () => {
  it('passes on the local service\'s own 100 Continue, so the body waits until the service asks for it', async () => {
    const client = await openRaw(Number(tunnel.url.port));
    scope(async () => client.destroy());
    const sentAt = performance.now();
    client.write(uploadHead('/slow', tunnel.url.host, BODY.length));
    const beforeContinue = await client.waitFor('HTTP/1.1 100 Continue\r\n\r\n');
    const continuedAt = performance.now();
    expect(beforeContinue.startsWith('HTTP/1.1 100 Continue\r\n\r\n')).toBe(true);
    // The 100 came after the local service held it back, not from the relay at once.
    expect(continuedAt - sentAt).toBeGreaterThanOrEqual(CONTINUE_DELAY_MS - 20);
    expect(continuedAt).toBeGreaterThanOrEqual(headersSeenAt);
    client.write(BODY);
    const answer = await client.waitFor(BODY_SHA);
    expect(answer).toContain('HTTP/1.1 200 OK');
  });

  it('lets the local service refuse before the body: the client gets its 413 without a 100, and no body byte reaches it', async () => {
    const before = refused.length;
    const client = await openRaw(Number(tunnel.url.port));
    scope(async () => client.destroy());
    client.write(uploadHead('/refuse', tunnel.url.host, 50 * 1024 * 1024));
    const answer = await client.waitFor('too big');
    expect(answer.startsWith('HTTP/1.1 413 Payload Too Large\r\n')).toBe(true);
    expect(answer).not.toContain('100 Continue');
    expect(answer.toLowerCase()).toContain('connection: close');
    // A client that never got its 100 may send the body anyway: the relay closes instead of passing it on.
    client.write(BODY);
    await client.closed;
    expect(refused.length).toBe(before + 1);
    expect(refused.at(-1)!.bodyBytes).toBe(0);
    expect((await fetchVia(tunnel.url)).status).toBe(200);
  });

  it('carries 103 Early Hints and the 100 in the order the local service sent them, then the final answer', async () => {
    const client = await openRaw(Number(tunnel.url.port));
    scope(async () => client.destroy());
    client.write(uploadHead('/hints', tunnel.url.host, BODY.length));
    const interim = await client.waitFor('HTTP/1.1 100 Continue\r\n\r\n');
    expect(interim.indexOf('HTTP/1.1 103 Early Hints')).toBe(0);
    expect(interim).toContain(`Link: ${LINKS.join(', ')}`);
    client.write(BODY);
    expect(await client.waitFor(BODY_SHA)).toContain('HTTP/1.1 200 OK');
  });

  it('still passes on the 100 after the cap on other interim answers is reached', async () => {
    const client = await openRaw(Number(tunnel.url.port));
    scope(async () => client.destroy());
    client.write(uploadHead('/many-hints', tunnel.url.host, BODY.length));
    const interim = await client.waitFor('HTTP/1.1 100 Continue\r\n\r\n');
    expect(interim.split('HTTP/1.1 103 Early Hints').length - 1).toBe(32);
    client.write(BODY);
    expect(await client.waitFor(BODY_SHA)).toContain('HTTP/1.1 200 OK');
  });

  it('uses a socket of its own for each such request, and counts it', async () => {
    const handedOver = async (): Promise<number> => ((await poolFigures(tunnel)).socketsRetired as unknown as Record<string, number>)['node-http'] ?? 0;
    const before = await handedOver();
    const client = await openRaw(Number(tunnel.url.port));
    scope(async () => client.destroy());
    client.write(uploadHead('/slow', tunnel.url.host, BODY.length));
    await client.waitFor('100 Continue');
    client.write(BODY);
    await client.waitFor(BODY_SHA);
    expect(await handedOver()).toBe(before + 1);
  });
});

describe('answers the tunnel cannot carry', () => {
  it.each([101, 600, 299])('turns a local %i it cannot carry into a 502 for that request alone, and the tunnel stays up', async (code) => {
    const slow = fetchVia(tunnel.url, { path: '/slow-download' });
    const answer = await fetchVia(tunnel.url, { path: `/status/${code}`, headers: { accept: 'application/json' } });
    expect(answer.status).toBe(502);
    expect((JSON.parse(answer.body.toString()) as { error: { code: string } }).error.code).toBe('LOCAL_ERROR');
    // A request in flight on the same tunnel is untouched: the agent did not lose its session.
    expect((await slow).body.toString()).toBe('slow and steady');
  });
});

describe('informational answers to ordinary requests', () => {
  it('never sends an interim answer to an HTTP/1.0 client', async () => {
    const client = await openRaw(Number(tunnel.url.port));
    scope(async () => client.destroy());
    client.write(`GET /hints HTTP/1.0\r\nHost: ${tunnel.url.host}\r\n\r\n`);
    await client.closed;
    expect(client.received().startsWith('HTTP/1.1 200 OK\r\n')).toBe(true);
    expect(client.received()).not.toContain('103');
    expect(client.received().endsWith('page')).toBe(true);
  });

  it('passes on at most 32 interim answers per response, so a flood of them cannot grow the relay', async () => {
    const client = await openRaw(Number(tunnel.url.port));
    scope(async () => client.destroy());
    client.write(`GET /hint-flood HTTP/1.1\r\nHost: ${tunnel.url.host}\r\n\r\n`);
    const answer = await client.waitFor('flood over');
    expect(answer.split('HTTP/1.1 103 Early Hints').length - 1).toBe(32);
    expect(answer).toContain('HTTP/1.1 200 OK');
  });

  it('passes 103 Early Hints to the client before the final response', async () => {
    const hints: Array<{ status: number; link: string | string[] | undefined }> = [];
    const req = request({ host: '127.0.0.1', port: tunnel.url.port, path: '/hints', headers: { host: tunnel.url.host } });
    req.on('information', (info) => hints.push({ status: info.statusCode, link: info.headers.link }));
    req.end();
    const [res] = (await once(req, 'response')) as [IncomingMessage];
    const chunks: Buffer[] = [];
    for await (const chunk of res) chunks.push(chunk as Buffer);
    expect(hints).toEqual([{ status: 103, link: LINKS.join(', ') }]);
    expect(res.statusCode).toBe(200);
    expect(Buffer.concat(chunks).toString()).toBe('page');
  });
});

describe('Expect: 100-continue against services that do not answer it', () => {
  it('reaches a service that never sends 100 once the client sends its body anyway, as curl does after a second', async () => {
    // A bare HTTP/1.1 server that ignores Expect: it reads the whole body, then answers.
    const server = createTcpServer((socket: Socket) => {
      let buffered = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        const end = buffered.indexOf('\r\n\r\n');
        if (end === -1) return;
        const length = Number(/content-length: *(\d+)/i.exec(buffered.subarray(0, end).toString('latin1'))?.[1] ?? 0);
        const body = buffered.subarray(end + 4);
        if (body.length < length) return;
        const sha = createHash('sha256').update(body.subarray(0, length)).digest('hex');
        socket.end(`HTTP/1.1 200 OK\r\nContent-Length: ${sha.length}\r\nConnection: close\r\n\r\n${sha}`);
      });
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    scope(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const port = (server.address() as AddressInfo).port;
    const silent = await startAgentProcess(['--port', String(port), '--local-host', '127.0.0.1', '--relay-port', '0'], scope);

    const client = await openRaw(Number(silent.url.port));
    scope(async () => client.destroy());
    client.write(uploadHead('/', silent.url.host, BODY.length));
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(client.received()).toBe('');
    client.write(BODY);
    expect(await client.waitFor(BODY_SHA)).toContain('HTTP/1.1 200 OK');
  });

  it('refuses at the relay without a 100 when the tunnel needs a password, so the body is never sent', async () => {
    let reached = 0;
    const local = await startLocalServer((req, res) => {
      reached += 1;
      req.resume();
      res.end('secret');
    }, scope);
    const guarded = await startAgentProcess(['--port', String(local.port), '--local-host', '127.0.0.1', '--relay-port', '0', '--basic-auth', 'ann:s3cret'], scope);
    const client = await openRaw(Number(guarded.url.port));
    scope(async () => client.destroy());
    client.write(uploadHead('/', guarded.url.host, BODY.length));
    const answer = await client.waitFor('\r\n\r\n');
    expect(answer.startsWith('HTTP/1.1 401 ')).toBe(true);
    expect(answer).not.toContain('100 Continue');
    await client.closed;
    expect(reached).toBe(0);
  });
});
