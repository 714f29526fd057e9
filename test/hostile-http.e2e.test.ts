import { beforeAll, describe, expect, it } from 'vitest';
import { startLocalServer } from './helpers/local-server.js';
import { startAgentProcess, type RunningProcess } from './helpers/processes.js';
import { sendRaw } from './helpers/raw-http.js';
import { suiteScope } from './helpers/suite-scope.js';

const scope = suiteScope();
let agent: RunningProcess & { url: URL };
let reached: string[] = [];

beforeAll(async () => {
  const local = await startLocalServer((req, res) => {
    reached.push(`${req.method} ${req.url}`);
    req.resume();
    res.end('local');
  }, scope);
  agent = await startAgentProcess(['--port', String(local.port), '--local-host', '127.0.0.1', '--relay-port', '0', '--subdomain', 'target'], scope);
});

const host = (): string => agent.url.host;

describe('hostile public requests', () => {
  it.each([
    ['two Host headers', () => `GET / HTTP/1.1\r\nHost: ${host()}\r\nHost: other.localhost\r\n\r\n`, '400'],
    ['a Host with a space', () => `GET / HTTP/1.1\r\nHost: tar get.localhost\r\n\r\n`, '400'],
    ['a Host with @', () => `GET / HTTP/1.1\r\nHost: user@${host()}\r\n\r\n`, '400'],
    ['a Host with other characters', () => `GET / HTTP/1.1\r\nHost: target.localhost/evil\r\n\r\n`, '400'],
    ['no Host', () => `GET / HTTP/1.1\r\n\r\n`, '400'],
    ['an absolute target for another host', () => `GET http://evil.example/ HTTP/1.1\r\nHost: ${host()}\r\n\r\n`, '400'],
    ['Content-Length and Transfer-Encoding', () => `POST / HTTP/1.1\r\nHost: ${host()}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, '400'],
    ['Transfer-Encoding on HTTP/1.0', () => `POST / HTTP/1.0\r\nHost: ${host()}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, '400'],
    ['Transfer-Encoding other than chunked', () => `POST / HTTP/1.1\r\nHost: ${host()}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`, '400'],
    ['two Transfer-Encoding headers', () => `POST / HTTP/1.1\r\nHost: ${host()}\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, '400'],
    ['an obs-fold header line', () => `GET / HTTP/1.1\r\nHost: ${host()}\r\nX-A: a\r\n b\r\n\r\n`, '400'],
    ['an invalid chunk size', () => `POST / HTTP/1.1\r\nHost: ${host()}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`, '400'],
    ['headers over the limit', () => `GET / HTTP/1.1\r\nHost: ${host()}\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, '431'],
  ])('refuses %s with %s, closes the connection, and forwards nothing', async (_what, bytes, status) => {
    reached = [];
    const outcome = await sendRaw(Number(agent.url.port), bytes());
    expect(outcome.statusLine).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
    expect(outcome.closed).toBe(true);
    expect(reached).toEqual([]);
  });

  it('accepts an absolute target that names the Host, and forwards it as a path', async () => {
    reached = [];
    const outcome = await sendRaw(Number(agent.url.port), `GET http://${host()}/abs?q=1 HTTP/1.1\r\nHost: ${host()}\r\nConnection: close\r\n\r\n`);
    expect(outcome.statusLine).toMatch(/^HTTP\/1\.1 200 /);
    expect(reached).toEqual(['GET /abs?q=1']);
  });
});
