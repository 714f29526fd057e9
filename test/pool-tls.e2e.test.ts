import { createServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { PoolRegistry } from '@tunnel/client';
import { describe, expect, it, onTestFinished } from 'vitest';
import { makeCertificate } from './helpers/certificate.js';
import { fetchVia } from './helpers/http-client.js';
import { startInProcessTunnel } from './helpers/in-process-tunnel.js';

describe('HTTPS local service', () => {
  it('keeps sockets apart by SNI name, sends each request with its own name, and reuses within a name', async () => {
    const certificate = makeCertificate(['alpha.test', 'beta.test']);
    const handshakes: Record<string, number> = {};
    const server = createServer({ key: certificate.key, cert: certificate.cert }, (req, res) => {
      req.resume();
      res.end((req.socket as TLSSocket).servername || '(none)');
    });
    server.on('secureConnection', (socket: TLSSocket) => {
      const name = socket.servername || '(none)';
      handshakes[name] = (handshakes[name] ?? 0) + 1;
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const port = (server.address() as { port: number }).port;

    const pools = new PoolRegistry();
    const tls = { port, localHttps: true, localCa: certificate.certPath, poolMinIdle: 2 };
    const alpha = await startInProcessTunnel({ ...tls, localServername: 'alpha.test' }, pools);
    const beta = await startInProcessTunnel({ ...tls, localServername: 'beta.test' }, pools);
    const alphaAgain = await startInProcessTunnel({ ...tls, localServername: 'alpha.test' }, pools);
    expect(pools.size).toBe(2);

    for (let i = 0; i < 20; i += 1) {
      const [a, b, c] = await Promise.all([fetchVia(alpha.url), fetchVia(beta.url), fetchVia(alphaAgain.url)]);
      expect(a.body.toString()).toBe('alpha.test');
      expect(b.body.toString()).toBe('beta.test');
      expect(c.body.toString()).toBe('alpha.test');
    }
    expect(Object.keys(handshakes).sort()).toEqual(['alpha.test', 'beta.test']);
    // 40 requests under alpha and 20 under beta; reuse keeps each to a handful of TLS handshakes.
    expect(handshakes['alpha.test']).toBeLessThanOrEqual(6);
    expect(handshakes['beta.test']).toBeLessThanOrEqual(6);
    const figures = alpha.tunnel.upstream.figures();
    expect(figures.reuseRate).toBeGreaterThan(0.85);
    expect(figures.retries).toBe(0);
  });

  it('refuses a local certificate that does not match the SNI name when a CA is given', async () => {
    const certificate = makeCertificate(['alpha.test']);
    const server = createServer({ key: certificate.key, cert: certificate.cert }, (_req, res) => res.end('should not be reached'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const port = (server.address() as { port: number }).port;
    const wrong = await startInProcessTunnel({ port, localHttps: true, localCa: certificate.certPath, localServername: 'other.test', poolMinIdle: 0 });
    const response = await fetchVia(wrong.url, { headers: { accept: 'application/json' } });
    expect(response.status).toBe(502);
    expect(response.body.toString()).toContain('other.test');
  });
});
