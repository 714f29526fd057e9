import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { EventEmitter, once } from 'node:events';
import { createServer as createHttpServer, type IncomingHttpHeaders, type RequestListener, type ServerResponse, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { TunnelError } from '@tunnel/protocol';
import { pino } from 'pino';
import type { Dispatcher } from 'undici';
import { describe, expect, it, onTestFinished } from 'vitest';
import { FakeClock } from './fake-clock.test-helper.js';
import { LocalPool, type PoolOptions } from './local-pool.js';

const log = pino({ level: 'silent' });


interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** Sends one request through the pool with a bare undici handler, as the forwarder does. */
function send(pool: LocalPool, options: Partial<Dispatcher.DispatchOptions> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    let status = 0;
    let headers: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    pool.dispatch({ method: 'GET', path: '/', ...options }, {
      onRequestStart: () => undefined,
      onResponseStart: (_controller, statusCode, responseHeaders) => {
        status = statusCode;
        headers = responseHeaders;
      },
      onResponseData: (_controller, chunk) => {
        chunks.push(chunk);
      },
      onResponseEnd: () => resolve({ status, headers, body: Buffer.concat(chunks).toString() }),
      onResponseError: (_controller, error) => reject(error),
    });
  });
}

function createPool(port: number, overrides: Partial<PoolOptions> = {}): LocalPool {
  const pool = new LocalPool({
    host: '127.0.0.1',
    port,
    tls: null,
    connectTimeoutMs: 2_000,
    headersTimeoutMs: 5_000,
    minIdle: 0,
    quietMinIdle: 0,
    quietAfterMs: 600_000,
    maxSockets: 8,
    idleTimeoutMs: 30_000,
    maxWaiting: 16,
    // Long enough that the sweep never runs unless a test asks for it.
    sweepIntervalMs: 600_000,
    maxRequests: 0,
    maxLifetimeMs: 0,
    breaker: { failureThreshold: 5, cooldownMs: 1_000, maxCooldownMs: 10_000 },
    log,
    ...overrides,
  });
  onTestFinished(() => pool.close());
  return pool;
}

interface LocalServer {
  server: HttpServer;
  port: number;
  /** Server-side sockets, in the order they were accepted. */
  sockets: Socket[];
  /** Resolves once the server has accepted `count` connections in all. */
  connections(count: number): Promise<Socket[]>;
}

const answerOk: RequestListener = (_request, response) => response.end('ok');

async function startLocalServer(handler: RequestListener = answerOk, port = 0): Promise<LocalServer> {
  const server = createHttpServer(handler);
  const sockets: Socket[] = [];
  server.on('connection', (socket) => sockets.push(socket));
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  onTestFinished(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return { server, port: (server.address() as { port: number }).port, sockets, connections: (count) => countReached(server, sockets, count) };
}

function countReached<T>(emitter: EventEmitter, items: T[], count: number, event = 'connection'): Promise<T[]> {
  return new Promise((resolve) => {
    const check = (): void => {
      if (items.length < count) return;
      emitter.off(event, check);
      resolve(items.slice(0, count));
    };
    emitter.on(event, check);
    check();
  });
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createNetServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Client sockets this process opens during the test, seen through Node's `net.client.socket` channel. */
function watchClientSockets(): Socket[] {
  const sockets: Socket[] = [];
  const onSocket = (message: unknown): void => {
    sockets.push((message as { socket: Socket }).socket);
  };
  subscribe('net.client.socket', onSocket);
  onTestFinished(() => {
    unsubscribe('net.client.socket', onSocket);
  });
  return sockets;
}

/** Waits until every client socket has connected and the pool has taken it in. */
async function allConnected(sockets: Socket[]): Promise<void> {
  await Promise.all(sockets.filter((socket) => socket.connecting).map((socket) => once(socket, 'connect')));
  // The pool's promise callbacks run after the connect event; one turn of the loop drains them.
  await nextTurn();
}

/** An HTTP server that answers only when the test says so. */
async function startHoldingServer() {
  const held: { response: ServerResponse; socket: Socket; path: string }[] = [];
  const arrivals = new EventEmitter();
  const local = await startLocalServer((request, response) => {
    held.push({ response, socket: request.socket, path: request.url ?? '' });
    arrivals.emit('request');
  });
  return { ...local, held, requests: (count: number) => countReached(arrivals, held, count, 'request') };
}

/**
 * A raw HTTP server that answers the first request on each socket with keep-alive and, on the
 * next request on that socket, closes it without answering: the keep-alive race on demand.
 */
async function startRacingServer() {
  const received: string[] = [];
  const sockets: Socket[] = [];
  const server: NetServer = createNetServer((socket) => {
    sockets.push(socket);
    let buffered = '';
    let served = 0;
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      for (;;) {
        const headEnd = buffered.indexOf('\r\n\r\n');
        if (headEnd === -1) return;
        const head = buffered.slice(0, headEnd);
        const bodyLength = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
        if (buffered.length < headEnd + 4 + bodyLength) return;
        received.push(`${head.split('\r\n')[0]!} ${buffered.slice(headEnd + 4, headEnd + 4 + bodyLength)}`.trim());
        buffered = buffered.slice(headEnd + 4 + bodyLength);
        served += 1;
        if (served > 1) {
          socket.destroy();
          return;
        }
        socket.write('HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok');
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onTestFinished(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return { port: (server.address() as { port: number }).port, received, sockets };
}

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

  describe('circuit breaker', () => {
    it('fails fast after the threshold without dialing, then closes after a successful trial', async () => {
      const port = await closedPort();
      const clock = new FakeClock();
      const pool = createPool(port, { clock, breaker: { failureThreshold: 3, cooldownMs: 1_000, maxCooldownMs: 10_000 } });
      for (let i = 0; i < 3; i++) {
        await expect(send(pool)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      }
      expect(pool.figures()).toMatchObject({ connectAttempts: 3, connectFailures: 3, breakerState: 'open' });

      let failure: unknown;
      pool.dispatch({ method: 'GET', path: '/' }, {
        onResponseError: (_controller, error) => {
          failure = error;
        },
      });
      // Failed before dispatch returned: no socket, no timer, no tick.
      expect(failure).toBeInstanceOf(TunnelError);
      expect(failure).toMatchObject({ code: 'LOCAL_UNREACHABLE' });
      expect((failure as Error).message).toContain(`127.0.0.1:${port}`);
      expect((failure as Error).message).toContain('1.0 s');
      expect(pool.figures()).toMatchObject({ connectAttempts: 3, fastFailures: 1 });

      await startLocalServer(answerOk, port);
      clock.advance(999);
      await expect(send(pool)).rejects.toMatchObject({ code: 'LOCAL_UNREACHABLE' });
      clock.advance(1);
      expect(pool.figures().breakerState).toBe('half-open');
      const trial = send(pool);
      // Only the trial goes through while half-open.
      await expect(send(pool)).rejects.toMatchObject({ code: 'LOCAL_UNREACHABLE' });
      expect((await trial).body).toBe('ok');
      expect(pool.figures()).toMatchObject({ breakerState: 'closed', breakerTransitions: 3, connectAttempts: 4, fastFailures: 3 });
      expect((await send(pool)).status).toBe(200);
    });

    it('reopens when the trial cannot connect either', async () => {
      const port = await closedPort();
      const clock = new FakeClock();
      const pool = createPool(port, { clock, breaker: { failureThreshold: 1, cooldownMs: 1_000, maxCooldownMs: 10_000 } });
      await expect(send(pool)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      clock.advance(1_000);
      await expect(send(pool)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      expect(pool.figures()).toMatchObject({ breakerState: 'open', breakerTransitions: 3, connectAttempts: 2 });
      // The cooldown grew (about doubled), so the old one is no longer enough.
      clock.advance(1_000);
      await expect(send(pool)).rejects.toMatchObject({ code: 'LOCAL_UNREACHABLE' });
      expect(pool.figures().connectAttempts).toBe(2);
    });

    it('does not count failed warm-up dials toward the breaker', async () => {
      const port = await closedPort();
      const clientSockets = watchClientSockets();
      const pool = createPool(port, { minIdle: 4, breaker: { failureThreshold: 1, cooldownMs: 1_000, maxCooldownMs: 10_000 } });
      expect(clientSockets).toHaveLength(4);
      await Promise.all(clientSockets.map((socket) => new Promise((resolve) => socket.once('close', resolve))));
      await nextTurn();
      expect(pool.figures()).toMatchObject({ connectAttempts: 4, connectFailures: 4, breakerState: 'closed' });
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

  describe('probe', () => {
    it('reports a status below 500 as healthy without counting it as traffic', async () => {
      const local = await startLocalServer((request, response) => {
        response.statusCode = request.url === '/health' ? 204 : 404;
        response.end();
      });
      const pool = createPool(local.port);
      expect(await pool.probe('/health')).toBe(true);
      expect(await pool.probe('/missing')).toBe(true);
      expect(pool.figures().requests).toBe(0);
    });

    it('reports a 5xx answer or a refused connection as unhealthy', async () => {
      const local = await startLocalServer((_request, response) => {
        response.statusCode = 503;
        response.end();
      });
      expect(await createPool(local.port).probe('/health')).toBe(false);
      expect(await createPool(await closedPort()).probe('/health')).toBe(false);
    });

    it('opens the breaker after failureThreshold probes in a row answer 5xx', async () => {
      const local = await startLocalServer((_request, response) => {
        response.statusCode = 503;
        response.end();
      });
      const pool = createPool(local.port, { breaker: { failureThreshold: 2, cooldownMs: 1_000, maxCooldownMs: 10_000 } });
      await pool.probe('/health');
      expect(pool.figures().breakerState).toBe('closed');
      await pool.probe('/health');
      expect(pool.figures().breakerState).toBe('open');
      await expect(send(pool)).rejects.toMatchObject({ code: 'LOCAL_UNREACHABLE' });
    });

    it('counts a 5xx answer to an ordinary request as the service answering', async () => {
      const local = await startLocalServer((_request, response) => {
        response.statusCode = 500;
        response.end('app error');
      });
      const pool = createPool(local.port, { breaker: { failureThreshold: 1, cooldownMs: 1_000, maxCooldownMs: 10_000 } });
      for (let i = 0; i < 3; i++) expect((await send(pool)).status).toBe(500);
      expect(pool.figures().breakerState).toBe('closed');
    });
  });
});
