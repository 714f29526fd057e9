// LocalPool retiring sockets before the server does, and retrying the keep-alive race only when that is safe.
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { FakeClock } from './fake-clock.test-helper.js';
import { allConnected, createPool, send, startLocalServer, startRacingServer, watchClientSockets } from './local-pool.test-helper.js';

describe('LocalPool', () => {
  describe('retiring sockets', () => {
    it('retires each socket after a response that says Connection: close', async () => {
      const local = await startLocalServer((_request, response) => {
        response.setHeader('connection', 'close');
        response.end('bye');
      });
      const pool = createPool(local.port);
      for (let i = 0; i < 3; i++) expect((await send(pool)).body).toBe('bye');
      const figures = pool.figures();
      expect(local.sockets).toHaveLength(3);
      expect(figures.socketsRetired['server-close']).toBe(3);
      expect(figures.idle).toBe(0);
      expect(figures.retries).toBe(0);
    });

    it('closes an idle socket before the server does when told Keep-Alive: timeout=1', async () => {
      const local = await startLocalServer();
      local.server.keepAliveTimeout = 1_000;
      const pool = createPool(local.port, { sweepIntervalMs: 20 });
      const reply = await send(pool);
      const idleSince = performance.now();
      expect(reply.headers['keep-alive']).toBe('timeout=1');
      const [serverSocket] = await local.connections(1);
      let closedByClient = false;
      serverSocket!.once('end', () => {
        closedByClient = true;
      });
      await once(serverSocket!, 'close');
      const idleMs = performance.now() - idleSince;
      // The server's own timeout would destroy the socket without an 'end' from the client.
      expect(closedByClient).toBe(true);
      expect(idleMs).toBeLessThan(1_000);
      expect(idleMs).toBeGreaterThanOrEqual(700);
      expect(pool.figures().socketsRetired).toEqual({ idle: 1 });
    });

    it('keeps a socket idle for exactly three quarters of a 1 s hint, by the injected clock', async () => {
      const local = await startLocalServer();
      local.server.keepAliveTimeout = 1_000;
      const clock = new FakeClock();
      const pool = createPool(local.port, { clock, sweepIntervalMs: 10 });
      await send(pool);
      const [serverSocket] = await local.connections(1);
      clock.advance(740);
      expect(pool.figures().idle).toBe(1);
      clock.advance(10);
      expect(pool.figures().idle).toBe(0);
      expect(pool.figures().socketsRetired).toEqual({ idle: 1 });
      await once(serverSocket!, 'end');
    });

    it('keeps a socket idle for idleTimeoutMs when the server gives no hint', async () => {
      const local = await startLocalServer();
      local.server.keepAliveTimeout = 0;
      const clock = new FakeClock();
      const pool = createPool(local.port, { clock, idleTimeoutMs: 4_000, sweepIntervalMs: 100 });
      const reply = await send(pool);
      expect(reply.headers['keep-alive']).toBeUndefined();
      clock.advance(3_900);
      expect(pool.figures().idle).toBe(1);
      clock.advance(100);
      expect(pool.figures().socketsRetired).toEqual({ idle: 1 });
      // The next request finds no socket to reuse and dials a new one.
      await send(pool);
      expect(local.sockets).toHaveLength(2);
    });

    it('drops an idle socket at once when the server closes it, and the next request succeeds', async () => {
      const local = await startLocalServer();
      const clientSockets = watchClientSockets();
      const pool = createPool(local.port);
      await send(pool);
      expect(pool.figures().idle).toBe(1);
      local.server.closeIdleConnections();
      await once(clientSockets[0]!, 'close');
      expect(pool.figures().idle).toBe(0);
      expect(pool.figures().socketsRetired).toEqual({ 'peer-closed': 1 });
      const reply = await send(pool);
      expect(reply.status).toBe(200);
      expect(pool.figures().retries).toBe(0);
      expect(local.sockets).toHaveLength(2);
    });

    it('drops a warm socket the server closes before its first request', async () => {
      const local = await startLocalServer();
      const clientSockets = watchClientSockets();
      const pool = createPool(local.port, { minIdle: 1 });
      const [serverSocket] = await local.connections(1);
      await allConnected(clientSockets);
      serverSocket!.destroy();
      await once(clientSockets[0]!, 'close');
      expect(pool.figures().socketsRetired).toEqual({ 'peer-closed': 1 });
      expect((await send(pool)).status).toBe(200);
      expect(pool.figures().retries).toBe(0);
    });

    it('retires a socket after maxRequests requests', async () => {
      const served = new Map<Socket, number>();
      const local = await startLocalServer((request, response) => {
        served.set(request.socket, (served.get(request.socket) ?? 0) + 1);
        response.end('ok');
      });
      const pool = createPool(local.port, { maxRequests: 3 });
      for (let i = 0; i < 7; i++) await send(pool);
      expect([...served.values()]).toEqual([3, 3, 1]);
      expect(pool.figures().socketsRetired).toEqual({ requests: 2 });
      expect(pool.figures().idle).toBe(1);
    });

    it('retires a socket older than maxLifetimeMs, by the injected clock', async () => {
      const local = await startLocalServer();
      // No Keep-Alive hint, so only the lifetime limit applies.
      local.server.keepAliveTimeout = 0;
      const clock = new FakeClock();
      const pool = createPool(local.port, { clock, maxLifetimeMs: 10_000, sweepIntervalMs: 1_000 });
      await send(pool);
      clock.advance(5_000);
      await send(pool);
      clock.advance(5_000);
      expect(pool.figures().socketsRetired).toEqual({ lifetime: 1 });
      expect(local.sockets).toHaveLength(1);
    });
  });

  describe('the keep-alive race', () => {
    it('retries a GET once on a fresh socket when a reused socket is closed under it', async () => {
      const local = await startRacingServer();
      const pool = createPool(local.port);
      expect((await send(pool, { path: '/first' })).body).toBe('ok');
      const reply = await send(pool, { path: '/again' });
      expect(reply.status).toBe(200);
      expect(pool.figures().retries).toBe(1);
      expect(local.received).toEqual(['GET /first HTTP/1.1', 'GET /again HTTP/1.1', 'GET /again HTTP/1.1']);
      expect(local.sockets).toHaveLength(2);
    });

    it('fails a POST with a body in the same situation and never sends it twice', async () => {
      const local = await startRacingServer();
      const pool = createPool(local.port);
      await send(pool, { path: '/first' });
      const failure = await send(pool, { method: 'POST', path: '/submit', body: 'payload' }).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(Error);
      expect(failure).toMatchObject({ code: 'UND_ERR_SOCKET' });
      expect(pool.figures().retries).toBe(0);
      expect(local.received).toEqual(['GET /first HTTP/1.1', 'POST /submit HTTP/1.1 payload']);
      expect(local.sockets).toHaveLength(1);
    });
  });
});
