import { describe, expect, it } from 'vitest';
import { fetchVia } from './helpers/http-client.js';
import { startInProcessTunnel } from './helpers/in-process-tunnel.js';
import { startLocalServer } from './helpers/local-server.js';
import { eventually } from './helpers/ports.js';

describe('health probe', () => {
  it('stops traffic while /healthz fails and lets it through again once it passes', async () => {
    let healthy = true;
    let probes = 0;
    const local = await startLocalServer((req, res) => {
      req.resume();
      if (req.url === '/healthz') {
        probes += 1;
        res.statusCode = healthy ? 200 : 503;
        res.end(healthy ? 'ok' : 'sick');
        return;
      }
      res.end('app');
    });
    const { tunnel, url } = await startInProcessTunnel({
      port: local.port, healthPath: '/healthz', healthIntervalMs: 50, breakerFailures: 3, breakerCooldownMs: 300,
    });
    expect((await fetchVia(url)).body.toString()).toBe('app');

    healthy = false;
    expect(await eventually(async () => tunnel.upstream.figures().breakerState === 'open', 100, 20)).toBe(true);
    const refused = await fetchVia(url, { headers: { accept: 'application/json' } });
    expect(refused.status).toBe(502);
    expect(JSON.parse(refused.body.toString())).toMatchObject({ error: { code: 'LOCAL_UNREACHABLE' } });

    healthy = true;
    expect(await eventually(async () => tunnel.upstream.figures().breakerState === 'closed', 100, 20)).toBe(true);
    expect((await fetchVia(url)).body.toString()).toBe('app');
    expect(probes).toBeGreaterThanOrEqual(4);
    // Probes are not traffic: only the three requests above count.
    expect(tunnel.upstream.figures().requests).toBe(3);
  });
});
