import { describe, expect, it } from 'vitest';
import { runLoad, timeWaitToward } from './helpers/load.js';
import { startLocalServer } from './helpers/local-server.js';
import { logLines, startAgentProcess } from './helpers/processes.js';

const POOL_MAX = 64;

describe('local connection reuse', () => {
  it('reuses sockets for 10,000 requests at 10 connections, leaving few TIME_WAIT sockets', async () => {
    let connections = 0;
    const local = await startLocalServer((req, res) => {
      req.resume();
      res.end('x'.repeat(100));
    });
    local.server.on('connection', () => {
      connections += 1;
    });
    const agent = await startAgentProcess([
      '--port', String(local.port), '--local-host', '127.0.0.1', '--relay-port', '0', '--log-level', 'info', '--stats-interval', '0',
    ]);
    const result = await runLoad(agent.url, 10_000, 10, 90_000);
    expect(result.errors).toEqual([]);
    expect(result.statuses).toEqual({ 200: 10_000 });
    expect(await timeWaitToward(local.port)).toBeLessThanOrEqual(2 * POOL_MAX);

    agent.kill('SIGTERM');
    expect(await agent.exited).toBe(0);
    const [figures] = logLines(agent.stderr(), 'pool figures').map((entry) => entry.pool as Record<string, number>);
    expect(figures).toBeDefined();
    expect(figures!.requests).toBe(10_000);
    expect(figures!.reuseRate).toBeGreaterThanOrEqual(0.99);
    expect(figures!.connectionsOpened).toBe(connections);
    // Closing the pool at exit makes the agent the active closer of every socket it held.
    expect(await timeWaitToward(local.port)).toBeLessThanOrEqual(2 * POOL_MAX);
  });
});
