import { describe, expect, it } from 'vitest';
import { runLoad } from './helpers/load.js';
import { startNginx } from './helpers/nginx.js';
import { startAgentProcess } from './helpers/processes.js';

describe('local pool against nginx', () => {
  it('serves 5,000 GETs at 20 connections with keepalive_requests 100: no errors, few connections', async () => {
    const nginx = await startNginx(100);
    const agent = await startAgentProcess(['--port', String(nginx.port), '--local-host', '127.0.0.1', '--relay-port', '0']);
    const result = await runLoad(agent.url, 5000, 20, 60_000);
    expect(result.errors).toEqual([]);
    expect(result.statuses).toEqual({ 200: 5000 });
    expect(nginx.requestsSeen()).toBe(5000);
    // nginx closes each connection after 100 requests, so at least 50 are needed; the pool may
    // add its own warm sockets (at most 64) and a few that were warm when nginx closed others.
    const connections = nginx.connectionsSeen();
    expect(connections).toBeGreaterThanOrEqual(50);
    expect(connections).toBeLessThanOrEqual(5000 / 100 + 64 + 10);
  });
});
