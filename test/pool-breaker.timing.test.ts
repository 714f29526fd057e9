import { createServer, type Socket } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { Agent } from 'node:http';
import { fetchVia, type ClientResponse } from './helpers/http-client.js';
import { startInProcessTunnel } from './helpers/in-process-tunnel.js';
import { startLocalProcess } from './helpers/local-process.js';
import { eventually, freePort } from './helpers/ports.js';
import { logLines, poolFigures, startAgentProcess } from './helpers/processes.js';
import { timedRequests } from './helpers/timed-requests.js';

type ErrorBody = { error: { code: string; message: string } };

const WARM_UP = 5;
const TIMED = 20;

describe('circuit breaker and timeouts', () => {
  it('opens within 5 requests after the local server dies, fails fast without dialing, and recovers after the cooldown', async () => {
    const port = await freePort();
    const server = await startLocalProcess(port);
    // Long enough that the probe process starts and finishes well inside it on a loaded machine.
    const cooldownMs = 5000;
    const agent = await startAgentProcess([
      '--port', String(port), '--local-host', '127.0.0.1', '--relay-port', '0', '--breaker-cooldown', String(cooldownMs), '--log-level', 'info',
    ]);
    const client = new Agent({ keepAlive: true, maxSockets: 1 });
    onTestFinished(() => client.destroy());
    const get = (): Promise<ClientResponse> => fetchVia(agent.url, { headers: { accept: 'application/json' }, agent: client });
    expect((await get()).body.toString()).toBe('up');

    await server.kill();
    let opened = false;
    for (let i = 1; i <= 5 && !opened; i += 1) {
      expect((await get()).status).toBe(502);
      opened = (await poolFigures(agent)).breakerState === 'open';
    }
    expect(opened).toBe(true);

    const attemptsWhenOpened = (await poolFigures(agent)).connectAttempts;
    // The first few answers pay for the probe's own connection and JIT warm-up; the 20 after them are timed.
    const answers = await timedRequests(agent.url, WARM_UP + TIMED);
    for (const [i, answer] of answers.entries()) {
      expect(answer.status).toBe(502);
      const error = (JSON.parse(answer.body) as ErrorBody).error;
      expect(error.code).toBe('LOCAL_UNREACHABLE');
      expect(error.message).toContain(`127.0.0.1:${port} is unreachable`);
      if (i >= WARM_UP) expect(answer.ms, `fast failure ${i - WARM_UP}`).toBeLessThan(10);
    }
    const whileOpen = await poolFigures(agent);
    expect(whileOpen.connectAttempts).toBe(attemptsWhenOpened);
    expect(whileOpen.fastFailures).toBeGreaterThanOrEqual(WARM_UP + TIMED);

    await startLocalProcess(port);
    const restartedAt = performance.now();
    const back = await eventually(async () => (await get()).status === 200, 200, 50);
    expect(back).toBe(true);
    expect(performance.now() - restartedAt).toBeLessThan(cooldownMs + 1000);
    expect((await poolFigures(agent)).breakerState).toBe('closed');
    expect(logLines(agent.stderr(), 'local service circuit breaker changed state').map((line) => line.to)).toEqual(['open', 'half-open', 'closed']);
  });

  it('answers 504 after --local-timeout when the local server accepts but never answers, and closes that socket', async () => {
    const sockets: Socket[] = [];
    let closedByAgent = 0;
    const silent = createServer((socket) => {
      sockets.push(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        closedByAgent += 1;
      });
      socket.resume();
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => silent.close(() => resolve()));
    });
    const port = (silent.address() as { port: number }).port;
    const { url } = await startInProcessTunnel({ port, localTimeoutMs: 500, poolMinIdle: 0 });

    const started = performance.now();
    const response = await fetchVia(url, { headers: { accept: 'application/json' } });
    const elapsedMs = performance.now() - started;
    expect(response.status).toBe(504);
    expect((JSON.parse(response.body.toString()) as ErrorBody).error.code).toBe('LOCAL_TIMEOUT');
    expect(elapsedMs).toBeGreaterThanOrEqual(480);
    expect(elapsedMs).toBeLessThan(3000);
    expect(await eventually(async () => closedByAgent === 1, 40, 25)).toBe(true);
  });
});
