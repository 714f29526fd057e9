import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { fetchVia } from './helpers/http-client.js';
import { startLocalServer } from './helpers/local-server.js';
import { eventually } from './helpers/ports.js';
import { startAgentProcess, startRelayProcess } from './helpers/processes.js';
import { sendRaw } from './helpers/raw-http.js';

describe('relay limits', () => {
  it('closes a connection that has not finished its request head within --headers-timeout, with 408', async () => {
    const relay = await startRelayProcess(['--port', '0', '--headers-timeout', '1000']);
    const started = performance.now();
    const outcome = await sendRaw(Number(relay.url.port), 'GET / HTTP/1.1\r\nHost: slow.localhost\r\n', 5000);
    expect(outcome.closed).toBe(true);
    expect(outcome.statusLine).toMatch(/^HTTP\/1\.1 408 /);
    expect(performance.now() - started).toBeLessThan(3000);
  });

  it('cuts an upload that goes silent for --body-idle-timeout, and the local request with it', async () => {
    let localAborted = false;
    const local = await startLocalServer((req) => {
      req.on('aborted', () => {
        localAborted = true;
      });
      req.on('close', () => {
        if (!req.complete) localAborted = true;
      });
      req.resume();
    });
    const relay = await startRelayProcess(['--port', '0', '--body-idle-timeout', '1000']);
    const agent = await startAgentProcess(['--port', String(local.port), '--local-host', '127.0.0.1', '--server', relay.url.href]);
    const socket = connect(Number(agent.url.port), '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write(`POST /upload HTTP/1.1\r\nHost: ${agent.url.host}\r\nContent-Length: 100\r\n\r\n0123456789`);
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const started = performance.now();
    await closed;
    expect(performance.now() - started).toBeLessThan(4000);
    expect(await eventually(async () => localAborted, 40, 50)).toBe(true);
  });

  it('answers 503 with Retry-After beyond --max-streams requests in flight on one tunnel', async () => {
    const held: Array<() => void> = [];
    const local = await startLocalServer((_req, res) => held.push(() => res.end('done')));
    const relay = await startRelayProcess(['--port', '0', '--max-streams', '2']);
    const agent = await startAgentProcess(['--port', String(local.port), '--local-host', '127.0.0.1', '--server', relay.url.href]);
    const first = fetchVia(agent.url);
    const second = fetchVia(agent.url);
    await expect.poll(() => held.length).toBe(2);
    const third = await fetchVia(agent.url, { headers: { accept: 'application/json' } });
    expect(third.status).toBe(503);
    expect(third.headers['retry-after']).toBe('1');
    expect(JSON.parse(third.body.toString())).toMatchObject({ error: { code: 'TOO_MANY_STREAMS' } });
    for (const release of held) release();
    expect((await first).status).toBe(200);
    expect((await second).status).toBe(200);
  });
});
