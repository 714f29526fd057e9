import { createServer as createTcpServer, type Socket } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { fetchVia } from './helpers/http-client.js';
import { startLocalServer } from './helpers/local-server.js';
import { startAgentProcess } from './helpers/processes.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A raw HTTP/1.1 server that plays the keep-alive race on purpose: it answers the first
 * request on each connection with keep-alive, and on the second request it closes the socket
 * without answering, as a server whose idle timeout fired at that instant would.
 */
async function startRacingServer(): Promise<{ port: number; received: string[] }> {
  const received: string[] = [];
  const server = createTcpServer((socket: Socket) => {
    let requests = 0;
    let buffer = '';
    socket.on('error', () => undefined);
    socket.on('data', (chunk) => {
      buffer += chunk.toString('latin1');
      for (;;) {
        const headEnd = buffer.indexOf('\r\n\r\n');
        if (headEnd === -1) return;
        const head = buffer.slice(0, headEnd);
        const length = Number(/content-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
        if (buffer.length < headEnd + 4 + length) return;
        buffer = buffer.slice(headEnd + 4 + length);
        requests += 1;
        received.push(head.split(' ').slice(0, 2).join(' '));
        if (requests >= 2) {
          socket.destroy();
          return;
        }
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { port: (server.address() as { port: number }).port, received };
}

describe('keep-alive edge cases', () => {
  it('loses no GET against a server with a 1 s keep-alive timeout, requests spaced around that edge for 30 s', async () => {
    const local = await startLocalServer((req, res) => {
      req.resume();
      res.end('fine');
    });
    local.server.keepAliveTimeout = 1000;
    const agent = await startAgentProcess(['--port', String(local.port), '--local-host', '127.0.0.1', '--relay-port', '0']);
    const gaps = [950, 1050, 990, 1010, 900, 1100, 999, 1001];
    const failures: string[] = [];
    let sent = 0;
    const started = performance.now();
    for (let i = 0; performance.now() - started < 30_000 && i < 100; i += 1) {
      const burst = await Promise.allSettled(Array.from({ length: 5 }, () => fetchVia(agent.url, { path: `/burst-${i}` })));
      for (const outcome of burst) {
        sent += 1;
        if (outcome.status === 'rejected') failures.push(String(outcome.reason));
        else if (outcome.value.status !== 200) failures.push(`status ${outcome.value.status}: ${outcome.value.body.toString()}`);
      }
      await sleep(gaps[i % gaps.length]!);
    }
    expect(sent).toBeGreaterThanOrEqual(100);
    expect(failures).toEqual([]);
  }, 60_000);

  it('retries a GET that meets the race once on a fresh socket, and never sends a POST twice', async () => {
    const racing = await startRacingServer();
    const agent = await startAgentProcess(['--port', String(racing.port), '--local-host', '127.0.0.1', '--relay-port', '0', '--pool-min-idle', '0']);

    expect((await fetchVia(agent.url, { path: '/get-1' })).status).toBe(200);
    const get = await fetchVia(agent.url, { path: '/get-2' });
    expect(get.body.toString()).toBe('ok');
    // The second GET reached the server twice: once on the reused socket that was cut, once fresh.
    expect(racing.received.filter((line) => line === 'GET /get-2')).toHaveLength(2);

    // The retried GET left a socket that has served one request; the POST reuses it and is cut.
    const post = await fetchVia(agent.url, { method: 'POST', path: '/post-2', body: Buffer.from('pay once'), headers: { accept: 'application/json' } });
    expect(post.status).toBe(502);
    const error = (JSON.parse(post.body.toString()) as { error: { code: string; message: string } }).error;
    expect(error.code).toBe('LOCAL_ERROR');
    expect(error.message).toContain('closed the connection before answering');
    expect(error.message).toContain('POST request was not sent again');
    expect(racing.received.filter((line) => line === 'POST /post-2')).toHaveLength(1);
  });
});
