import type { Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { AgentEndpoint } from './agent-endpoint.js';
import { RELAY_DEFAULTS, RelayConfig, resolveConfig } from './config.js';
import { createRequestHandler, createUpgradeHandler } from './ingress.js';
import { createLogger, type Logger } from './logger.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TunnelError } from '@tunnel/protocol';
import { ConnectionLimits } from './connection-limits.js';
import { Registry } from './registry.js';
import { createPublicServer, createRedirectServer } from './tls-files.js';
import { loadTokens } from './tokens.js';

export interface RelayOptions extends Partial<RelayConfig> {
  /** A logger to use instead of a new one on stderr. */
  logger?: Logger;
}

/** A running relay. */
export interface Relay {
  /** The relay's own URL, e.g. `http://localhost:7070`; agents connect to it. */
  readonly url: string;
  readonly port: number;
  readonly domain: string;
  /** Tunnel names online now. */
  tunnelNames(): string[];
  /** Open streams and sockets, for tests and status pages. */
  stats(): { tunnels: number; reconnecting: number; streams: number; publicConnections: number };
  /**
   * Stops gracefully: stops accepting, sends goaway, lets open streams finish until the grace
   * deadline, then closes everything. Safe to call twice; later calls wait for the first.
   */
  close(graceMs?: number): Promise<void>;
}

/** The public URL for a host and port: the port is left out when it is the scheme's default. */
export function publicUrl(proto: 'http' | 'https', host: string, port: number): string {
  const defaultPort = proto === 'https' ? 443 : 80;
  return `${proto}://${host}${port === defaultPort ? '' : `:${port}`}`;
}

/** Starts a relay and resolves once it listens. */
export async function startRelay(options: RelayOptions = {}): Promise<Relay> {
  const { logger, ...settings } = options;
  const config = resolveConfig(RelayConfig, [
    { name: 'defaults', values: RELAY_DEFAULTS },
    { name: 'options', values: settings },
  ]);
  const log = (logger ?? createLogger(config.logLevel, 'tunnel-server')).child({ component: 'relay' });
  const tokens = config.tokensFile === undefined ? null : loadTokens(config.tokensFile);
  if (!tokens && !isLoopback(config.host)) {
    log.warn({ host: config.host }, 'relay is open: any agent may connect; pass --tokens to require tokens');
  }
  const registry = new Registry();
  let port = config.port;
  let shuttingDown = false;
  const endpoint = new AgentEndpoint({
    registry,
    log,
    helloTimeoutMs: config.helloTimeoutMs,
    pingIntervalMs: config.pingIntervalMs,
    maxStreamsPerTunnel: config.maxStreamsPerTunnel,
    tokens,
    reservedNames: config.reservedNames,
    resumeGraceMs: config.resumeGraceMs,
    urlFor: (name) => publicUrl(proto, `${name}.${config.domain}`, port),
  });
  // Node checks the headers timeout on a timer of its own (30 s by default): check every second,
  // so a slowloris connection is cut close to the limit, not up to 30 s after it.
  const serverOptions = {
    headersTimeout: config.headersTimeoutMs,
    requestTimeout: 0,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    connectionsCheckingInterval: Math.min(1000, config.headersTimeoutMs),
  };
  // The handler needs `proto`, which depends on the server made; it is bound once both exist.
  let handle: (req: IncomingMessage, res: ServerResponse, expectsContinue?: boolean) => void = () => undefined;
  const { server, proto } = createPublicServer({ certFile: config.tlsCert, keyFile: config.tlsKey }, serverOptions, (req, res) => handle(req, res));
  const ingress = { domain: config.domain, registry, endpoint, proto, bodyIdleTimeoutMs: config.bodyIdleTimeoutMs, isShuttingDown: () => shuttingDown } as const;
  handle = createRequestHandler(ingress);
  // With a listener here, Node leaves the 100 Continue to us: it comes from the local service.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => handle(req, res, true));
  server.on('upgrade', createUpgradeHandler(ingress));
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => answerClientError(error, socket, log));
  const connections = new Set<Socket>();
  const limits = new ConnectionLimits(config.maxConnections, config.maxConnectionsPerIp);
  server.on('connection', (socket: Socket) => {
    if (!limits.admit(socket)) {
      log.debug({ address: socket.remoteAddress }, 'public connection over the limit; closed');
      return;
    }
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
  });
  server.maxConnections = config.maxConnections;
  await listen(server, config.host, config.port);
  port = (server.address() as AddressInfo).port;
  const redirect = config.redirectHttpPort === undefined ? null : createRedirectServer(port);
  if (redirect) {
    if (proto !== 'https') throw new TunnelError('CONFIG_INVALID', '--redirect-http needs HTTPS: pass --tls-cert and --tls-key.');
    await listen(redirect, config.host, config.redirectHttpPort!);
  }
  const url = publicUrl(proto, config.domain, port);
  log.info({ url, host: config.host, port, domain: config.domain }, 'relay listening');

  let closing: Promise<void> | null = null;
  const close = (graceMs = config.shutdownGraceMs): Promise<void> => {
    closing ??= (async () => {
      shuttingDown = true;
      log.info({ graceMs }, 'relay shutting down');
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      redirect?.close();
      redirect?.closeAllConnections();
      server.closeIdleConnections();
      endpoint.closePending();
      const sessions = registry.sessions();
      for (const session of sessions) session.goAway('The relay is shutting down.', graceMs);
      await waitWithDeadline(Promise.all(sessions.map((session) => session.whenIdle())), graceMs);
      for (const session of sessions) session.close(1001, 'relay shutting down');
      registry.clear();
      server.closeAllConnections();
      for (const socket of connections) socket.destroy();
      await serverClosed;
      log.info('relay stopped');
    })();
    return closing;
  };

  return {
    url,
    port,
    domain: config.domain,
    tunnelNames: () => registry.sessions().map((session) => session.name),
    stats: () => ({
      tunnels: registry.size,
      reconnecting: registry.reconnecting,
      streams: registry.sessions().reduce((sum, session) => sum + session.streamCount, 0),
      publicConnections: connections.size,
    }),
    close,
  };
}

/** Whether an address only this machine can reach. */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/** Answers a public connection Node's parser gave up on: a status if the socket can take one. */
function answerClientError(error: NodeJS.ErrnoException, socket: Socket, log: Logger): void {
  if (error.code === 'ECONNRESET' || !socket.writable || socket.destroyed) {
    log.debug({ code: error.code }, 'public client connection reset');
    socket.destroy();
    return;
  }
  const status = error.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large'
    : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout'
    : '400 Bad Request';
  log.debug({ code: error.code, status }, 'malformed public request');
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

async function waitWithDeadline(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  await Promise.race([work, deadline]);
  clearTimeout(timer);
}
