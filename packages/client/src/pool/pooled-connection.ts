import type { Socket } from 'node:net';
import { Client } from 'undici';

export interface ConnectionLimits {
  /** Retire a socket after this many requests; 0 = no limit. */
  maxRequests: number;
  /** Retire a socket this long after it was opened; 0 = no limit. */
  maxLifetimeMs: number;
}

/** Why a socket left the pool, as counted in the figures. */
export type RetireReason = 'idle' | 'lifetime' | 'requests' | 'server-close' | 'peer-closed' | 'error' | 'pool-closed' | 'upgraded' | 'node-http' | 'evicted';

let nextId = 1;

/**
 * One socket to the local service and the undici Client that speaks HTTP on it. The Client is
 * given exactly this socket and never dials another: when the socket goes, so does this
 * connection, and the pool decides whether to replace it.
 */
export class PooledConnection {
  readonly id = nextId++;
  readonly client: Client;
  readonly socket: Socket;
  readonly openedAt: number;
  requests = 0;
  lastUsedAt: number;
  /** How long this socket may sit idle; learned from the server's Keep-Alive hint. */
  idleTimeoutMs: number;
  /** Set when the server said `Connection: close`: no further request may use this socket. */
  serverWillClose = false;
  /** A request is using the socket; undici, not the pool, then handles its end. */
  busy = false;
  /** Dialed ahead of demand: its first request is on a socket that sat idle, like a reused one. */
  warm = false;
  /** The pool has let go of this socket (and counted why); later retirements are no-ops. */
  retired = false;
  #handedOver = false;
  #closed = false;
  #detachListeners: () => void = () => undefined;

  constructor(
    socket: Socket,
    origin: string,
    now: number,
    idleTimeoutMs: number,
    headersTimeoutMs: number,
    onClosed: (connection: PooledConnection, reason: RetireReason) => void,
  ) {
    this.socket = socket;
    this.openedAt = now;
    this.lastUsedAt = now;
    this.idleTimeoutMs = idleTimeoutMs;
    this.client = new Client(origin, {
      connect: (_options, callback) => {
        if (this.#handedOver || socket.destroyed) {
          // undici asks again only after the socket died; this connection is done, never redial.
          const error: NodeJS.ErrnoException = new Error('the pooled socket closed before the request was written');
          error.code = 'POOL_SOCKET_CLOSED';
          process.nextTick(callback, error, null);
          return;
        }
        this.#handedOver = true;
        // undici sets up its side of the connect after calling the connector, so the callback
        // must come later, never synchronously (a synchronous call leaves the request hanging).
        process.nextTick(callback, null, socket);
      },
      pipelining: 1,
      // The pool retires idle sockets itself, ahead of the server; undici should never beat it.
      keepAliveTimeout: 600_000,
      keepAliveMaxTimeout: 600_000,
      keepAliveTimeoutThreshold: 0,
      headersTimeout: headersTimeoutMs,
      bodyTimeout: 0,
    });
    // The peer's FIN or RST on an idle socket drops it at once, before a request can meet it.
    // On a busy socket undici reads the end itself (a close-delimited body ends there).
    let failed = false;
    const onEnd = (): void => {
      if (!this.busy) this.#closeWith(onClosed, 'peer-closed');
    };
    const onError = (): void => {
      failed = true;
    };
    const onClose = (): void => this.#closeWith(onClosed, failed ? 'error' : 'peer-closed');
    socket.once('end', onEnd);
    socket.on('error', onError);
    socket.once('close', onClose);
    this.#detachListeners = () => {
      socket.off('end', onEnd);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
  }

  /** Whether the socket is open. */
  get isOpen(): boolean {
    return !this.#closed && !this.socket.destroyed;
  }

  /** Why this idle socket should not take another request at `now`, or null if it may. */
  unusableReason(now: number, limits: ConnectionLimits): RetireReason | null {
    if (!this.isOpen) return 'peer-closed';
    if (this.serverWillClose) return 'server-close';
    if (limits.maxRequests > 0 && this.requests >= limits.maxRequests) return 'requests';
    if (limits.maxLifetimeMs > 0 && now - this.openedAt >= limits.maxLifetimeMs) return 'lifetime';
    if (now - this.lastUsedAt >= this.idleTimeoutMs) return 'idle';
    return null;
  }

  /**
   * Gives the socket up to a new owner (a protocol switch, or a 100-continue exchange) that
   * reads and closes it, so the pool stops watching it and never closes it.
   */
  detach(): void {
    this.#closed = true;
    this.#detachListeners();
    // undici has already let go of the socket; closing the Client frees only the Client.
    this.client.close().catch(() => undefined);
  }

  /** Closes the socket now (the pool only retires idle sockets this way). */
  destroy(): void {
    this.#closed = true;
    this.client.destroy().catch(() => undefined);
    this.socket.destroy();
  }

  #closeWith(onClosed: (connection: PooledConnection, reason: RetireReason) => void, reason: RetireReason): void {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.socket.destroyed) this.socket.destroy();
    // A busy socket's request learns of the close from undici itself, with the real cause; the
    // pool retires this connection when the request is released.
    if (!this.busy) this.client.destroy().catch(() => undefined);
    onClosed(this, reason);
  }
}
