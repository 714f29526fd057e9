// LocalPool lending sockets: warm-up, reuse, the limits on sockets and waiters, and close.
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { TunnelError } from '@tunnel/protocol';
import { describe, expect, it } from 'vitest';
import { allConnected, closedPort, createPool, send, startHoldingServer, startLocalServer, watchClientSockets } from './local-pool.test-helper.js';

describe('LocalPool', () => {
  describe('warm-up and reuse', () => {
    it('opens minIdle sockets before any request', async () => {
      const local = await startLocalServer();
      const clientSockets = watchClientSockets();
      const pool = createPool(local.port, { minIdle: 3 });
      await local.connections(3);
      await allConnected(clientSockets);
      const figures = pool.figures();
      expect(figures.requests).toBe(0);
      expect(figures.connectAttempts).toBe(3);
      expect(figures.connectionsOpened).toBe(3);
      expect(figures.idle).toBe(3);
      expect(local.sockets).toHaveLength(3);
    });

    it('serves 200 sequential requests on at most minIdle + 1 sockets', async () => {
      const local = await startLocalServer();
      const pool = createPool(local.port, { minIdle: 1 });
      for (let i = 0; i < 200; i++) {
        const reply = await send(pool, { path: `/${i}` });
        expect(reply.status).toBe(200);
        expect(reply.body).toBe('ok');
      }
      const figures = pool.figures();
      expect(local.sockets.length).toBeLessThanOrEqual(2);
      expect(figures.connectionsOpened).toBeLessThanOrEqual(2);
      expect(figures.requests).toBe(200);
      expect(figures.reuseRate).toBeGreaterThanOrEqual(0.99);
      expect(figures.retries).toBe(0);
      expect(figures.active).toBe(0);
    });

    it('reuses the most recently released socket first', async () => {
      const local = await startHoldingServer();
      const pool = createPool(local.port);
      const replies = new Map([['/a', send(pool, { path: '/a' })], ['/b', send(pool, { path: '/b' })]]);
      const [older, newer] = await local.requests(2);
      // Release one socket, then the other: the second released is the most recent.
      older!.response.end();
      await replies.get(older!.path);
      newer!.response.end();
      await replies.get(newer!.path);
      const next = send(pool, { path: '/next' });
      const [, , third] = await local.requests(3);
      expect(third!.socket).toBe(newer!.socket);
      third!.response.end();
      await next;
      expect(local.sockets).toHaveLength(2);
    });
  });

  describe('limits', () => {
    it('queues a request beyond maxSockets and refuses one beyond maxWaiting', async () => {
      const local = await startHoldingServer();
      const pool = createPool(local.port, { maxSockets: 2, maxWaiting: 1 });
      const replies = new Map([['/1', send(pool, { path: '/1' })], ['/2', send(pool, { path: '/2' })]]);
      const [done, busy] = await local.requests(2);
      const queued = send(pool, { path: '/3' });
      expect(pool.figures().waiting).toBe(1);
      const refused = await send(pool, { path: '/4' }).catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(TunnelError);
      expect(refused).toMatchObject({ code: 'TOO_MANY_STREAMS' });

      done!.response.end(done!.path);
      expect((await replies.get(done!.path)!).body).toBe(done!.path);
      const [, , third] = await local.requests(3);
      expect(third!.path).toBe('/3');
      expect(third!.socket).toBe(done!.socket);
      busy!.response.end(busy!.path);
      third!.response.end('/3');
      expect((await replies.get(busy!.path)!).body).toBe(busy!.path);
      expect((await queued).body).toBe('/3');
      expect(local.sockets).toHaveLength(2);
      expect(pool.figures()).toMatchObject({ waiting: 0, active: 0, idle: 2, connectionsOpened: 2 });
    });
  });

  describe('requests that take their socket over', () => {
    it('are not left waiting behind a warm-up dial that fails', async () => {
      const port = await closedPort();
      const pool = createPool(port, { maxSockets: 1, minIdle: 1, quietMinIdle: 1 });
      const failure = await send(pool, { method: 'PUT', path: '/', headers: ['Host', 'app.test', 'Content-Length', '1'], body: Readable.from([Buffer.from('x')]), expectContinue: true })
        .catch((error: unknown) => error);
      expect(failure).toMatchObject({ code: 'ECONNREFUSED' });
      expect(pool.figures().waiting).toBe(0);
    });

    it('stay within maxSockets: an idle socket makes room, and beyond the limit they wait', async () => {
      const local = await startHoldingServer();
      const pool = createPool(local.port, { maxSockets: 2 });
      const plain = send(pool, { path: '/plain' });
      const [warm] = await local.requests(1);
      warm!.response.end('plain');
      await plain;
      expect(pool.figures()).toMatchObject({ idle: 1, active: 0 });

      const upload = (path: string): Promise<unknown> => send(pool, { method: 'PUT', path, headers: ['Host', 'app.test', 'Content-Length', '1'], body: Readable.from([Buffer.from('x')]), expectContinue: true });
      const replies = [upload('/a'), upload('/b'), upload('/c')];
      const [, first, second] = await local.requests(3);
      // The idle socket was closed to make room; the third upload waits for a slot.
      expect(pool.figures()).toMatchObject({ idle: 0, active: 2, waiting: 1 });
      expect(pool.figures().socketsRetired).toMatchObject({ evicted: 1 });
      first!.response.end('a');
      const [, , , third] = await local.requests(4);
      expect(third!.path).toBe('/c');
      second!.response.end('b');
      third!.response.end('c');
      await Promise.all(replies);
      expect(pool.figures()).toMatchObject({ idle: 0, active: 0, waiting: 0, connectionsOpened: 4 });
      expect(pool.figures().socketsRetired).toMatchObject({ evicted: 1, 'node-http': 3 });
    });
  });

  describe('close', () => {
    it('destroys idle sockets, which the server sees close, and is safe to call twice', async () => {
      const local = await startLocalServer();
      const pool = createPool(local.port);
      await Promise.all([send(pool), send(pool)]);
      expect(pool.figures().idle).toBe(2);
      const serverSockets = await local.connections(2);
      const closed = Promise.all(serverSockets.map((socket) => once(socket, 'close')));
      await pool.close();
      await closed;
      await pool.close();
      expect(pool.figures().idle).toBe(0);
      expect(pool.figures().socketsRetired).toEqual({ 'pool-closed': 2 });
    });

    it('fails a waiting request with LOCAL_UNREACHABLE', async () => {
      const local = await startHoldingServer();
      const pool = createPool(local.port, { maxSockets: 1, maxWaiting: 1 });
      const inFlight = send(pool).catch((error: unknown) => error);
      await local.requests(1);
      const waiting = send(pool).catch((error: unknown) => error);
      expect(pool.figures().waiting).toBe(1);
      await pool.close();
      expect(await waiting).toMatchObject({ code: 'LOCAL_UNREACHABLE' });
      expect(await inFlight).toBeInstanceOf(Error);
      expect(pool.figures().socketsRetired['pool-closed']).toBe(1);
    });
  });
});
