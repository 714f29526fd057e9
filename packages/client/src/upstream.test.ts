import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { pino } from 'pino';
import type { Dispatcher } from 'undici';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { LocalTls } from './pool/dialer.js';
import { PoolRegistry, poolKey, type PoolOptions, type Upstream } from './upstream.js';

const CA_ONE = '-----BEGIN CERTIFICATE-----\nMIIBone\n-----END CERTIFICATE-----\n';
const CA_TWO = '-----BEGIN CERTIFICATE-----\nMIIBtwo\n-----END CERTIFICATE-----\n';

function tls(overrides: Partial<LocalTls> = {}): LocalTls {
  return { servername: 'app.test', ca: CA_ONE, rejectUnauthorized: true, ...overrides };
}

describe('poolKey', () => {
  it('gives equal keys for equal targets and settings', () => {
    expect(poolKey('localhost', 3000, null)).toBe(poolKey('localhost', 3000, null));
    expect(poolKey('localhost', 3000, tls())).toBe(poolKey('localhost', 3000, tls()));
  });

  it('distinguishes host, port and scheme', () => {
    const keys = new Set([
      poolKey('localhost', 3000, null),
      poolKey('127.0.0.1', 3000, null),
      poolKey('localhost', 3001, null),
      poolKey('localhost', 3000, tls()),
    ]);
    expect(keys.size).toBe(4);
  });

  it('distinguishes the SNI name', () => {
    expect(poolKey('127.0.0.1', 8443, tls({ servername: 'a.test' }))).not.toBe(poolKey('127.0.0.1', 8443, tls({ servername: 'b.test' })));
    expect(poolKey('127.0.0.1', 8443, tls({ servername: 'a.test' }))).not.toBe(poolKey('127.0.0.1', 8443, tls({ servername: undefined })));
  });

  it('distinguishes the CA, and no CA from any CA', () => {
    const keys = new Set([
      poolKey('localhost', 8443, tls({ ca: CA_ONE })),
      poolKey('localhost', 8443, tls({ ca: CA_TWO })),
      poolKey('localhost', 8443, tls({ ca: undefined })),
    ]);
    expect(keys.size).toBe(3);
  });

  it('distinguishes verification on from off', () => {
    expect(poolKey('localhost', 8443, tls({ rejectUnauthorized: true }))).not.toBe(poolKey('localhost', 8443, tls({ rejectUnauthorized: false })));
  });

  it('holds a digest of the CA, not the PEM itself', () => {
    const key = poolKey('localhost', 8443, tls({ ca: CA_ONE }));
    expect(key).not.toContain('BEGIN CERTIFICATE');
    expect(key).toMatch(/ca=[0-9a-f]{16}&/);
  });
});

/** Sends one GET through an upstream with a bare undici handler; resolves with the body. */
function get(upstream: Upstream, path = '/'): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const handler: Dispatcher.DispatchHandler = {
      onResponseData: (_controller, chunk) => {
        chunks.push(chunk);
      },
      onResponseEnd: () => resolve(Buffer.concat(chunks).toString()),
      onResponseError: (_controller, error) => reject(error),
    };
    upstream.dispatch({ method: 'GET', path }, handler);
  });
}

async function startLocalServer(): Promise<{ server: Server; port: number; sockets: Socket[] }> {
  const server = createServer((_request, response) => response.end('ok'));
  const sockets: Socket[] = [];
  server.on('connection', (socket) => sockets.push(socket));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onTestFinished(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return { server, port: (server.address() as { port: number }).port, sockets };
}

function poolOptions(port: number, overrides: Partial<PoolOptions> = {}): PoolOptions {
  return {
    host: '127.0.0.1',
    port,
    tls: null,
    connectTimeoutMs: 2_000,
    headersTimeoutMs: 5_000,
    // No warm-up, so every socket is one a request opened and the test knows when it is ready.
    minIdle: 0,
    quietMinIdle: 0,
    quietAfterMs: 600_000,
    maxSockets: 4,
    idleTimeoutMs: 30_000,
    maxWaiting: 4,
    sweepIntervalMs: 600_000,
    maxRequests: 0,
    maxLifetimeMs: 0,
    breaker: { failureThreshold: 5, cooldownMs: 1_000, maxCooldownMs: 10_000 },
    log: pino({ level: 'silent' }),
    ...overrides,
  };
}

function acquire(registry: PoolRegistry, options: PoolOptions): Upstream {
  const upstream = registry.acquire(options);
  onTestFinished(() => upstream.close());
  return upstream;
}

describe('PoolRegistry', () => {
  it('shares one pool between holders of equal keys', async () => {
    const local = await startLocalServer();
    const registry = new PoolRegistry();
    const first = acquire(registry, poolOptions(local.port));
    const second = acquire(registry, poolOptions(local.port));
    expect(registry.size).toBe(1);
    expect(first.label).toBe(`127.0.0.1:${local.port}`);
    expect(await get(first)).toBe('ok');
    expect(await get(second)).toBe('ok');
    // One pool: the second holder reused the socket the first one opened, and both see the same figures.
    expect(local.sockets).toHaveLength(1);
    expect(first.figures()).toEqual(second.figures());
    expect(second.figures()).toMatchObject({ requests: 2, connectionsOpened: 1 });
  });

  it('keeps separate pools for different keys', async () => {
    const registry = new PoolRegistry();
    acquire(registry, poolOptions(3000, { host: 'localhost', tls: tls({ servername: 'a.test' }) }));
    acquire(registry, poolOptions(3000, { host: 'localhost', tls: tls({ servername: 'b.test' }) }));
    acquire(registry, poolOptions(3000, { host: 'localhost', tls: tls({ servername: 'a.test', rejectUnauthorized: false }) }));
    acquire(registry, poolOptions(3000, { host: 'localhost', tls: null }));
    expect(registry.size).toBe(4);
  });

  it('keeps the pool open while any holder remains and closes it with the last', async () => {
    const local = await startLocalServer();
    const registry = new PoolRegistry();
    const first = registry.acquire(poolOptions(local.port));
    const second = registry.acquire(poolOptions(local.port));
    expect(await get(first)).toBe('ok');
    const [serverSocket] = local.sockets;
    let socketClosed = false;
    serverSocket!.once('close', () => {
      socketClosed = true;
    });

    await first.close();
    expect(registry.size).toBe(1);
    expect(await get(second)).toBe('ok');
    expect(second.figures().connectionsOpened).toBe(1);
    expect(socketClosed).toBe(false);

    await second.close();
    expect(registry.size).toBe(0);
    await once(serverSocket!, 'close');
    expect(second.figures().socketsRetired).toEqual({ 'pool-closed': 1 });
  });

  it('counts a holder once however often it closes', async () => {
    const local = await startLocalServer();
    const registry = new PoolRegistry();
    const first = registry.acquire(poolOptions(local.port));
    const second = acquire(registry, poolOptions(local.port));
    await first.close();
    await first.close();
    await first.close();
    expect(registry.size).toBe(1);
    expect(await get(second)).toBe('ok');
  });

  it('creates a fresh pool for a key whose last pool was closed', async () => {
    const local = await startLocalServer();
    const registry = new PoolRegistry();
    const old = registry.acquire(poolOptions(local.port));
    expect(await get(old)).toBe('ok');
    await old.close();
    const fresh = acquire(registry, poolOptions(local.port));
    expect(registry.size).toBe(1);
    expect(fresh.figures().requests).toBe(0);
    expect(await get(fresh)).toBe('ok');
    expect(local.sockets).toHaveLength(2);
  });
});
