import { TunnelError } from '@tunnel/protocol';
import type { Logger } from 'pino';
import type { Clock } from './clock.js';
import { dial, type DialTarget } from './dialer.js';
import { closesConnection, idleTimeoutFor, keepAliveHintMs } from './keep-alive.js';
import { PooledConnection, type ConnectionLimits, type RetireReason } from './pooled-connection.js';

export interface SocketPoolOptions extends DialTarget, ConnectionLimits {
  headersTimeoutMs: number;
  /** Idle sockets kept ready while traffic flows. */
  minIdle: number;
  /** Idle sockets kept ready after `quietAfterMs` without a request. */
  quietMinIdle: number;
  quietAfterMs: number;
  maxSockets: number;
  /** Idle timeout when the server sends no Keep-Alive hint. */
  idleTimeoutMs: number;
  /** Requests that may wait for a socket when all `maxSockets` are busy. */
  maxWaiting: number;
  sweepIntervalMs: number;
  log: Logger;
  clock: Clock;
}

/** What the socket pool tells its owner. */
export interface SocketPoolHooks {
  /** A dial made for a request failed (warm-up failures are not reported: see docs). */
  onRequestDialFailure(reason: string): void;
  /** Whether warm-up may dial now (not while the breaker holds traffic back). */
  mayWarm(): boolean;
}

/** A request waiting for a socket; `fresh` when it needs one never used (see acquire). */
type Waiter = { resolve: (connection: PooledConnection) => void; reject: (error: Error) => void; fresh: boolean };

/** Counts the socket pool keeps. */
export interface SocketCounts {
  connectionsOpened: number;
  connectAttempts: number;
  connectFailures: number;
  idle: number;
  active: number;
  dialing: number;
  waiting: number;
  socketsRetired: Record<string, number>;
}

/**
 * The sockets to one local target: idle ones (most recently used on top), active ones (lent to
 * a request, counted from the moment they are chosen), dials in flight, and requests waiting
 * for a socket. Keeps a warm floor, retires sockets before the server would close them, and
 * never holds more than `maxSockets`.
 */
export class SocketPool {
  readonly label: string;
  readonly #options: SocketPoolOptions;
  readonly #hooks: SocketPoolHooks;
  readonly #origin: string;
  readonly #idle: PooledConnection[] = [];
  readonly #active = new Set<PooledConnection>();
  readonly #waiters: Waiter[] = [];
  readonly #retired: Record<string, number> = {};
  readonly #cancelSweep: () => void;
  #dialing = 0;
  #learnedIdleMs: number;
  #lastDemandAt: number;
  #closed = false;
  #counts = { connectionsOpened: 0, connectAttempts: 0, connectFailures: 0 };

  constructor(options: SocketPoolOptions, hooks: SocketPoolHooks) {
    this.#options = options;
    this.#hooks = hooks;
    const host = options.host.includes(':') ? `[${options.host}]` : options.host;
    this.label = `${host}:${options.port}`;
    this.#origin = `${options.tls ? 'https' : 'http'}://${this.label}`;
    this.#learnedIdleMs = options.idleTimeoutMs;
    this.#lastDemandAt = options.clock.now();
    const sweep = (): void => {
      this.#sweep();
      if (!this.#closed) cancel = options.clock.setTimeout(sweep, options.sweepIntervalMs);
    };
    let cancel = options.clock.setTimeout(sweep, options.sweepIntervalMs);
    this.#cancelSweep = () => cancel();
    this.maintainFloor();
  }

  /**
   * Lends a socket: an idle one, most recently used first, else a new one. `fresh` always means
   * a new one (its request takes the socket over), within maxSockets like any other: the oldest
   * idle socket makes room for it, or it waits.
   */
  acquire(fresh: boolean): Promise<PooledConnection> {
    if (this.#closed) return Promise.reject(new TunnelError('LOCAL_UNREACHABLE', 'The tunnel is shutting down.'));
    const now = this.#options.clock.now();
    this.#lastDemandAt = now;
    while (!fresh && this.#idle.length > 0) {
      const connection = this.#idle.pop()!;
      const unusable = connection.unusableReason(now, this.#options);
      if (unusable !== null) {
        this.#retire(connection, unusable);
        continue;
      }
      this.#active.add(connection);
      this.maintainFloor();
      return Promise.resolve(connection);
    }
    if (fresh && this.#size() >= this.#options.maxSockets && this.#idle.length > 0) this.#retire(this.#idle.shift()!, 'evicted');
    if (this.#size() < this.#options.maxSockets) return this.#dialForRequest();
    if (this.#waiters.length >= this.#options.maxWaiting) {
      return Promise.reject(new TunnelError('TOO_MANY_STREAMS', `All ${this.#options.maxSockets} connections to ${this.label} are busy and ${this.#waiters.length} requests wait.`));
    }
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject, fresh }));
  }

  /** Takes a socket back after a request; a broken or spent one is retired. */
  release(connection: PooledConnection, broken: boolean): void {
    connection.busy = false;
    connection.lastUsedAt = this.#options.clock.now();
    this.#active.delete(connection);
    const unusable = this.#closed ? 'pool-closed' : broken ? 'error' : connection.unusableReason(connection.lastUsedAt, this.#options);
    if (unusable !== null) {
      this.#retire(connection, unusable);
      this.#serveWaiters();
      return;
    }
    this.#lend(connection);
  }

  /** Lets go of a socket another owner took over: no longer counted, never closed by the pool. */
  forget(connection: PooledConnection, reason: 'upgraded' | 'node-http'): void {
    this.#active.delete(connection);
    connection.detach();
    this.#count(connection, reason);
    this.#serveWaiters();
  }

  /** Learns from a response head: `Connection: close`, and the server's Keep-Alive hint. */
  learn(connection: PooledConnection, rawHeaders: string[]): void {
    if (closesConnection(rawHeaders)) connection.serverWillClose = true;
    const hint = keepAliveHintMs(rawHeaders);
    if (hint === null) return;
    connection.idleTimeoutMs = idleTimeoutFor(hint, this.#options.idleTimeoutMs);
    this.#learnedIdleMs = connection.idleTimeoutMs;
  }

  /** Dials in the background until the idle floor is met; never blocks a request. */
  maintainFloor(): void {
    if (this.#closed || !this.#hooks.mayWarm()) return;
    const quiet = this.#options.clock.now() - this.#lastDemandAt >= this.#options.quietAfterMs;
    const floor = quiet ? this.#options.quietMinIdle : this.#options.minIdle;
    const deficit = Math.min(floor - this.#idle.length - this.#dialing, this.#options.maxSockets - this.#size());
    for (let i = 0; i < deficit; i += 1) {
      this.#dial().then(
        (connection) => {
          connection.warm = true;
          this.release(connection, false);
        },
        (error: NodeJS.ErrnoException) => {
          this.#options.log.debug({ code: error.code, target: this.label }, 'warm-up dial failed');
          // A request may have queued behind this dial: it now dials for itself (and a failure
          // of that dial reaches it and the breaker).
          this.#serveWaiters();
        },
      );
    }
  }

  /** The counts now. */
  counts(): SocketCounts {
    return {
      ...this.#counts,
      idle: this.#idle.length,
      active: this.#active.size,
      dialing: this.#dialing,
      waiting: this.#waiters.length,
      socketsRetired: { ...this.#retired },
    };
  }

  /** Closes every socket at once and fails waiting requests; dials still in flight are closed on arrival. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#cancelSweep();
    const reason = new TunnelError('LOCAL_UNREACHABLE', 'The tunnel is shutting down.');
    for (const waiter of this.#waiters.splice(0)) waiter.reject(reason);
    for (const connection of this.#idle.splice(0)) this.#retire(connection, 'pool-closed');
    for (const connection of [...this.#active]) this.#retire(connection, 'pool-closed');
    this.#active.clear();
  }

  /** Gives a usable socket to the first waiter, or back to the idle stack. */
  #lend(connection: PooledConnection): void {
    const waiter = this.#waiters.shift();
    if (!waiter) {
      this.#idle.push(connection);
    } else if (waiter.fresh && connection.requests === 0) {
      // Never used (a warm-up dial that just arrived): nothing has spoken HTTP on it yet, so it
      // is as good as new for a request that takes its socket over.
      this.#active.add(connection);
      waiter.resolve(connection);
    } else if (waiter.fresh) {
      // This waiter needs a socket of its own: the freed one makes room for it.
      this.#retire(connection, 'evicted');
      this.#dialForRequest().then(waiter.resolve, waiter.reject);
    } else {
      this.#active.add(connection);
      waiter.resolve(connection);
    }
  }

  #dialForRequest(): Promise<PooledConnection> {
    return this.#dial().then(
      (connection) => {
        this.#active.add(connection);
        return connection;
      },
      (error: NodeJS.ErrnoException) => {
        this.#hooks.onRequestDialFailure(`connect failed (${error.code ?? error.message})`);
        // The dial that failed may have been the one a waiter was counting on.
        this.#serveWaiters();
        throw error;
      },
    );
  }

  #dial(): Promise<PooledConnection> {
    this.#counts.connectAttempts += 1;
    this.#dialing += 1;
    return dial(this.#options).then(
      (socket) => {
        this.#dialing -= 1;
        this.#counts.connectionsOpened += 1;
        const { clock, headersTimeoutMs } = this.#options;
        const connection = new PooledConnection(socket, this.#origin, clock.now(), this.#learnedIdleMs, headersTimeoutMs, (c, reason) => this.#onClosed(c, reason));
        if (this.#closed) {
          this.#retire(connection, 'pool-closed');
          throw new TunnelError('LOCAL_UNREACHABLE', 'The tunnel is shutting down.');
        }
        return connection;
      },
      (error: NodeJS.ErrnoException) => {
        this.#dialing -= 1;
        this.#counts.connectFailures += 1;
        throw error;
      },
    );
  }

  #onClosed(connection: PooledConnection, reason: RetireReason): void {
    const index = this.#idle.indexOf(connection);
    if (index === -1) return;
    this.#idle.splice(index, 1);
    this.#count(connection, reason);
  }

  #retire(connection: PooledConnection, reason: RetireReason): void {
    this.#count(connection, reason);
    connection.destroy();
  }

  #count(connection: PooledConnection, reason: RetireReason): void {
    if (connection.retired) return;
    connection.retired = true;
    this.#retired[reason] = (this.#retired[reason] ?? 0) + 1;
  }

  #size(): number {
    return this.#idle.length + this.#active.size + this.#dialing;
  }

  #serveWaiters(): void {
    while (!this.#closed && this.#waiters.length > 0 && this.#size() < this.#options.maxSockets) {
      const waiter = this.#waiters.shift()!;
      this.#dialForRequest().then(waiter.resolve, waiter.reject);
    }
  }

  #sweep(): void {
    const now = this.#options.clock.now();
    for (const connection of [...this.#idle]) {
      const unusable = connection.unusableReason(now, this.#options);
      if (unusable === null) continue;
      this.#idle.splice(this.#idle.indexOf(connection), 1);
      this.#retire(connection, unusable);
    }
    this.maintainFloor();
  }
}
