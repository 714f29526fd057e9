// Shared by the LocalPool tests: a bare undici request, a pool with test limits, and local servers that misbehave on demand.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { EventEmitter, once } from 'node:events';
import { createServer as createHttpServer, type IncomingHttpHeaders, type RequestListener, type ServerResponse, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { pino } from 'pino';
import type { Dispatcher } from 'undici';
import { onTestFinished } from 'vitest';
import { LocalPool, type PoolOptions } from './local-pool.js';

const log = pino({ level: 'silent' });

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** Sends one request through the pool with a bare undici handler, as the forwarder does. */
export function send(pool: LocalPool, options: Partial<Dispatcher.DispatchOptions> = {}): Promise<Reply> {
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

/** A pool to 127.0.0.1:`port` with small test limits, closed when the test ends. */
export function createPool(port: number, overrides: Partial<PoolOptions> = {}): LocalPool {
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

/** The default handler: 200 with the body "ok". */
export const answerOk: RequestListener = (_request, response) => response.end('ok');

/** An HTTP server on 127.0.0.1 that records its sockets, closed when the test ends. */
export async function startLocalServer(handler: RequestListener = answerOk, port = 0): Promise<LocalServer> {
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
export async function closedPort(): Promise<number> {
  const server = createNetServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Client sockets this process opens during the test, seen through Node's `net.client.socket` channel. */
export function watchClientSockets(): Socket[] {
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
export async function allConnected(sockets: Socket[]): Promise<void> {
  await Promise.all(sockets.filter((socket) => socket.connecting).map((socket) => once(socket, 'connect')));
  // The pool's promise callbacks run after the connect event; one turn of the loop drains them.
  await nextTurn();
}

/** An HTTP server that answers only when the test says so. */
export async function startHoldingServer() {
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
export async function startRacingServer() {
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
