import type { Dispatcher } from 'undici';
import { TunnelError } from '@tunnel/protocol';
import type { Logger } from 'pino';
import { Breaker, type BreakerOptions } from './breaker.js';
import { systemClock, type Clock } from './clock.js';
import { dial, type DialTarget } from './dialer.js';
import { closesConnection, idleTimeoutFor, keepAliveHintMs } from './keep-alive.js';
import { PooledConnection, type ConnectionLimits, type RetireReason } from './pooled-connection.js';
import { isKeepAliveRace, isTimeout, mayRetry } from './retry-policy.js';
import { SampleWindow, type PoolFigures } from './stats.js';

export interface PoolOptions extends DialTarget, ConnectionLimits {
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
  breaker: Omit<BreakerOptions, 'onTransition' | 'random'>;
  log: Logger;
  clock?: Clock;
}

/** A dispatch handler plus what the pool needs to know to retry it. */
type Handler = Dispatcher.DispatchHandler;
type Waiter = { resolve: (connection: PooledConnection) => void; reject: (error: Error) => void };

/** Any answer at all shows the service is up: a 500 is the app's business, not the pool's. */
const anyStatus = (): boolean => true;

/** A controller for a request that never reached a socket. */
const NO_CONTROLLER: Dispatcher.DispatchController = {
  aborted: false,
  paused: false,
  reason: null,
  abort: () => undefined,
  pause: () => undefined,
  resume: () => undefined,
};

/**
 * Warm, reused connections to one local target (host, port and TLS settings), behind a circuit
 * breaker. Sockets are dialed ahead of demand, reused most-recent-first, retired before the
 * server would close them, and dropped as soon as the server closes one. See docs/architecture.md.
 */
export class LocalPool {
  readonly label: string;
  readonly #options: PoolOptions;
  readonly #origin: string;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #breaker: Breaker;
  readonly #idle: PooledConnection[] = [];
  readonly #active = new Set<PooledConnection>();
  readonly #waiters: Waiter[] = [];
  readonly #acquireMs = new SampleWindow();
  readonly #retired: Record<string, number> = {};
  readonly #cancelSweep: () => void;
  #dialing = 0;
  #learnedIdleMs: number;
  #lastRequestAt: number;
  #closed = false;
  #figures = { requests: 0, connectionsOpened: 0, connectAttempts: 0, connectFailures: 0, retries: 0, timeouts: 0, fastFailures: 0 };

  constructor(options: PoolOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#log = options.log;
    const host = options.host.includes(':') ? `[${options.host}]` : options.host;
    this.label = `${host}:${options.port}`;
    this.#origin = `${options.tls ? 'https' : 'http'}://${this.label}`;
    this.#learnedIdleMs = options.idleTimeoutMs;
    this.#lastRequestAt = this.#clock.now();
    this.#breaker = new Breaker({
      ...options.breaker,
      onTransition: (from, to, reason) => this.#log.warn({ from, to, reason, target: this.label }, 'local service circuit breaker changed state'),
    }, this.#clock);
    const sweep = (): void => {
      this.#sweep();
      if (!this.#closed) cancel = this.#clock.setTimeout(sweep, options.sweepIntervalMs);
    };
    let cancel = this.#clock.setTimeout(sweep, options.sweepIntervalMs);
    this.#cancelSweep = () => cancel();
    this.#warmUp();
  }

  /** Sends one request to the local service through the pool. */
  dispatch(options: Dispatcher.DispatchOptions, handler: Handler): void {
    this.#figures.requests += 1;
    this.#lastRequestAt = this.#clock.now();
    this.#send(options, handler, false);
  }

  /**
   * Sends a health probe (`GET path`) through the breaker and the pool, without counting it as
   * traffic. Resolves true for a status below 500; failures feed the breaker like any request.
   */
  probe(path: string): Promise<boolean> {
    return new Promise((resolve) => {
      this.#send({ method: 'GET', path, headers: ['user-agent', 'tunnel-health-probe'] }, {
        onResponseStart: (_controller, status) => resolve(status < 500),
        onResponseData: () => undefined,
        onResponseError: () => resolve(false),
      }, false, (status) => status < 500);
    });
  }

  /** The pool's figures now. */
  figures(): PoolFigures {
    const f = this.#figures;
    return {
      ...f,
      reuseRate: f.requests === 0 ? 0 : Math.max(0, 1 - f.connectionsOpened / f.requests),
      idle: this.#idle.length,
      active: this.#active.size,
      dialing: this.#dialing,
      waiting: this.#waiters.length,
      acquireMsP50: this.#acquireMs.percentile(50),
      acquireMsP99: this.#acquireMs.percentile(99),
      breakerState: this.#breaker.state,
      breakerTransitions: this.#breaker.transitions,
      socketsRetired: { ...this.#retired },
    };
  }

  /**
   * Closes every socket at once and fails waiting requests; streams were ended before this, so
   * nothing worth waiting for is left on them. Safe to call twice.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#cancelSweep();
    const reason = new TunnelError('LOCAL_UNREACHABLE', 'The tunnel is shutting down.');
    for (const waiter of this.#waiters.splice(0)) waiter.reject(reason);
    for (const connection of this.#idle.splice(0)) this.#retire(connection, 'pool-closed');
    for (const connection of [...this.#active]) this.#retire(connection, 'pool-closed');
    this.#active.clear();
  }

  /** `isHealthy` says which statuses count as the service answering well (probes: below 500). */
  #send(options: Dispatcher.DispatchOptions, handler: Handler, isRetry: boolean, isHealthy: (status: number) => boolean = anyStatus): void {
    const admission = this.#breaker.admit();
    if (!admission.allowed) {
      this.#figures.fastFailures += 1;
      const seconds = (admission.retryInMs / 1000).toFixed(1);
      handler.onResponseError?.(NO_CONTROLLER, new TunnelError(
        'LOCAL_UNREACHABLE',
        `The local service at ${this.label} is unreachable: its last connections failed, so the tunnel is not trying it again for ${seconds} s.`,
      ));
      return;
    }
    const started = this.#clock.now();
    this.#acquire(isRetry).then(
      (connection) => {
        this.#acquireMs.add(this.#clock.now() - started);
        this.#run(connection, options, handler, isRetry, isHealthy);
      },
      (error: unknown) => handler.onResponseError?.(NO_CONTROLLER, error as Error),
    );
  }

  #run(connection: PooledConnection, options: Dispatcher.DispatchOptions, handler: Handler, isRetry: boolean, isHealthy: (status: number) => boolean): void {
    connection.requests += 1;
    connection.busy = true;
    this.#active.add(connection);
    const reused = connection.requests > 1;
    let responded = false;
    let released = false;
    const release = (broken: boolean): void => {
      if (released) return;
      released = true;
      this.#release(connection, broken);
    };
    connection.client.dispatch(this.#withServername(options), {
      onRequestStart: (controller, context) => handler.onRequestStart?.(controller, context),
      onResponseStart: (controller, status, headers, message) => {
        responded = true;
        if (isHealthy(status)) this.#breaker.recordSuccess();
        else this.#breaker.recordFailure(`answered ${status}`);
        const raw = (controller.rawHeaders as Buffer[] | null | undefined)?.map((part) => part.toString('latin1')) ?? [];
        this.#learn(connection, raw);
        handler.onResponseStart?.(controller, status, headers, message);
      },
      onResponseData: (controller, chunk) => handler.onResponseData?.(controller, chunk),
      onResponseEnd: (controller, trailers) => {
        release(false);
        handler.onResponseEnd?.(controller, trailers);
      },
      onResponseError: (controller, error) => {
        release(true);
        if (!responded && reused && !isRetry && isKeepAliveRace(error) && mayRetry(options.method, options.body != null, error)) {
          this.#figures.retries += 1;
          this.#log.debug({ code: (error as NodeJS.ErrnoException).code, method: options.method }, 'reused socket was closed under the request; retrying on a fresh one');
          this.#send(options, handler, true, isHealthy);
          return;
        }
        if (isTimeout(error)) {
          this.#figures.timeouts += 1;
          this.#breaker.recordFailure('the local service timed out');
        }
        handler.onResponseError?.(controller, error);
      },
    });
  }

  /**
   * For HTTPS, undici drops a socket whenever a request's servername (taken from its Host
   * header, here the public tunnel host) differs from the last one. The pool's sockets are
   * already keyed by SNI name, so every request states the pool's own name.
   */
  #withServername(options: Dispatcher.DispatchOptions): Dispatcher.DispatchOptions {
    if (!this.#options.tls) return options;
    return { ...options, servername: this.#options.tls.servername ?? this.#options.host } as Dispatcher.DispatchOptions;
  }

  #learn(connection: PooledConnection, rawHeaders: string[]): void {
    if (closesConnection(rawHeaders)) connection.serverWillClose = true;
    const hint = keepAliveHintMs(rawHeaders);
    if (hint === null) return;
    connection.idleTimeoutMs = idleTimeoutFor(hint, this.#options.idleTimeoutMs);
    this.#learnedIdleMs = connection.idleTimeoutMs;
  }

  /** Takes an idle socket, most recently used first, or dials one; `fresh` always dials. */
  #acquire(fresh: boolean): Promise<PooledConnection> {
    const now = this.#clock.now();
    while (!fresh && this.#idle.length > 0) {
      const connection = this.#idle.pop()!;
      const unusable = connection.unusableReason(now, this.#options);
      if (unusable === null) {
        this.#maintainFloor();
        return Promise.resolve(connection);
      }
      this.#retire(connection, unusable);
    }
    if (fresh || this.#size() < this.#options.maxSockets) return this.#dial(true);
    if (this.#waiters.length >= this.#options.maxWaiting) {
      return Promise.reject(new TunnelError('TOO_MANY_STREAMS', `All ${this.#options.maxSockets} connections to ${this.label} are busy and ${this.#waiters.length} requests wait.`));
    }
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  #release(connection: PooledConnection, broken: boolean): void {
    connection.busy = false;
    connection.lastUsedAt = this.#clock.now();
    this.#active.delete(connection);
    const unusable = broken ? 'error' : connection.unusableReason(connection.lastUsedAt, this.#options);
    if (unusable !== null) {
      this.#retire(connection, unusable);
      this.#serveWaiters();
      return;
    }
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve(connection);
    else this.#idle.push(connection);
  }

  /** Dials one socket; `forRequest` dials count toward the breaker, warm-up dials do not. */
  #dial(forRequest: boolean): Promise<PooledConnection> {
    this.#figures.connectAttempts += 1;
    this.#dialing += 1;
    return dial(this.#options).then(
      (socket) => {
        this.#dialing -= 1;
        this.#figures.connectionsOpened += 1;
        return new PooledConnection(socket, this.#origin, this.#clock.now(), this.#learnedIdleMs, this.#options.headersTimeoutMs, (c, reason) => this.#onClosed(c, reason));
      },
      (error: NodeJS.ErrnoException) => {
        this.#dialing -= 1;
        this.#figures.connectFailures += 1;
        if (forRequest) this.#breaker.recordFailure(`connect failed (${error.code ?? error.message})`);
        throw error;
      },
    );
  }

  #onClosed(connection: PooledConnection, reason: RetireReason): void {
    const index = this.#idle.indexOf(connection);
    if (index !== -1) {
      this.#idle.splice(index, 1);
      this.#count(reason);
    }
  }

  #retire(connection: PooledConnection, reason: RetireReason): void {
    this.#count(reason);
    connection.destroy();
  }

  #count(reason: RetireReason): void {
    this.#retired[reason] = (this.#retired[reason] ?? 0) + 1;
  }

  #size(): number {
    return this.#idle.length + this.#active.size + this.#dialing;
  }

  #serveWaiters(): void {
    while (this.#waiters.length > 0 && this.#size() < this.#options.maxSockets) {
      const waiter = this.#waiters.shift()!;
      this.#dial(true).then(waiter.resolve, waiter.reject);
    }
  }

  #sweep(): void {
    const now = this.#clock.now();
    for (const connection of [...this.#idle]) {
      const unusable = connection.unusableReason(now, this.#options);
      if (unusable === null) continue;
      this.#idle.splice(this.#idle.indexOf(connection), 1);
      this.#retire(connection, unusable);
    }
    this.#maintainFloor();
  }

  /** Dials in the background until the idle floor is met; never blocks a request. */
  #maintainFloor(): void {
    if (this.#closed || this.#breaker.state !== 'closed') return;
    const quiet = this.#clock.now() - this.#lastRequestAt >= this.#options.quietAfterMs;
    const floor = quiet ? this.#options.quietMinIdle : this.#options.minIdle;
    const deficit = Math.min(floor - this.#idle.length - this.#dialing, this.#options.maxSockets - this.#size());
    for (let i = 0; i < deficit; i += 1) {
      this.#dial(false).then(
        (connection) => this.#release(connection, false),
        (error: NodeJS.ErrnoException) => this.#log.debug({ code: error.code, target: this.label }, 'warm-up dial failed'),
      );
    }
  }

  #warmUp(): void {
    this.#maintainFloor();
  }
}
