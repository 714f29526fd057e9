import type { Dispatcher } from 'undici';
import { TunnelError } from '@tunnel/protocol';
import type { Logger } from 'pino';
import { Breaker, type BreakerOptions } from './breaker.js';
import { needsNodeHttp, sendWithNodeHttp } from './node-exchange.js';
import { systemClock, type Clock } from './clock.js';
import type { PooledConnection } from './pooled-connection.js';
import { isKeepAliveRace, isTimeout, mayRetry } from './retry-policy.js';
import { SocketPool, type SocketPoolOptions } from './socket-pool.js';
import { SampleWindow, type PoolFigures } from './stats.js';

export interface PoolOptions extends Omit<SocketPoolOptions, 'clock' | 'log'> {
  breaker: Omit<BreakerOptions, 'onTransition' | 'random'>;
  log: Logger;
  clock?: Clock;
}

type Handler = Dispatcher.DispatchHandler;

/** How one request went through the pool, carried across a retry. */
interface Attempt {
  options: Dispatcher.DispatchOptions;
  handler: Handler;
  isRetry: boolean;
  /** Needs a socket of its own (a retry, or an upgrade or 100-continue exchange that takes it over). */
  fresh: boolean;
  /** Sent with node:http over the socket it takes (what undici cannot send; see needsNodeHttp). */
  viaNodeHttp: boolean;
  /** This request is the breaker's half-open trial: it must end in a verdict. */
  isTrial: boolean;
  /** Which statuses show the service is well (probes: below 500; requests: any). */
  isHealthy: (status: number) => boolean;
}

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
 * Requests to one local target (host, port and TLS settings) over a SocketPool, behind a
 * circuit breaker: fast failure while the service is down, one retry of the keep-alive race
 * when it is safe, and figures for logs and the benchmark. See docs/architecture.md.
 */
export class LocalPool {
  readonly label: string;
  readonly #options: PoolOptions;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #breaker: Breaker;
  readonly #sockets: SocketPool;
  readonly #acquireMs = new SampleWindow();
  #closed = false;
  #figures = { requests: 0, retries: 0, timeouts: 0, fastFailures: 0 };

  constructor(options: PoolOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#log = options.log;
    this.#breaker = new Breaker({
      ...options.breaker,
      onTransition: (from, to, reason) => this.#log.warn({ from, to, reason, target: this.label }, 'local service circuit breaker changed state'),
    }, this.#clock);
    this.#sockets = new SocketPool({ ...options, clock: this.#clock }, {
      onRequestDialFailure: (reason) => this.#breaker.recordFailure(reason),
      mayWarm: () => this.#breaker.state === 'closed',
    });
    this.label = this.#sockets.label;
  }

  /** Sends one request to the local service through the pool. */
  dispatch(options: Dispatcher.DispatchOptions, handler: Handler): void {
    this.#figures.requests += 1;
    const viaNodeHttp = !options.upgrade && needsNodeHttp(options);
    this.#send({ options, handler, isRetry: false, fresh: Boolean(options.upgrade) || viaNodeHttp, viaNodeHttp, isTrial: false, isHealthy: anyStatus });
  }

  /**
   * Sends a health probe (`GET path`) through the breaker and the pool, without counting it as
   * traffic. Resolves true for a status below 500; failures feed the breaker like any request.
   */
  probe(path: string): Promise<boolean> {
    return new Promise((resolve) => {
      const handler: Handler = {
        onResponseStart: (_controller, status) => resolve(status < 500),
        onResponseData: () => undefined,
        onResponseError: () => resolve(false),
      };
      const options: Dispatcher.DispatchOptions = { method: 'GET', path, headers: ['user-agent', 'tunnel-health-probe'] };
      this.#send({ options, handler, isRetry: false, fresh: false, viaNodeHttp: false, isTrial: false, isHealthy: (status) => status < 500 });
    });
  }

  /** The pool's figures now. */
  figures(): PoolFigures {
    const sockets = this.#sockets.counts();
    const f = this.#figures;
    return {
      ...f,
      ...sockets,
      reuseRate: f.requests === 0 ? 0 : Math.max(0, 1 - sockets.connectionsOpened / f.requests),
      acquireMsP50: this.#acquireMs.percentile(50),
      acquireMsP99: this.#acquireMs.percentile(99),
      breakerState: this.#breaker.state,
      breakerTransitions: this.#breaker.transitions,
    };
  }

  /** Closes every socket at once; streams were ended before this. Safe to call twice. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#sockets.close();
  }

  #send(attempt: Attempt): void {
    if (this.#closed) {
      attempt.handler.onResponseError?.(NO_CONTROLLER, new TunnelError('LOCAL_UNREACHABLE', 'The tunnel is shutting down.'));
      return;
    }
    if (!attempt.isRetry) {
      const admission = this.#breaker.admit();
      if (!admission.allowed) {
        this.#figures.fastFailures += 1;
        const seconds = (admission.retryInMs / 1000).toFixed(1);
        attempt.handler.onResponseError?.(NO_CONTROLLER, new TunnelError(
          'LOCAL_UNREACHABLE',
          `The local service at ${this.label} is unreachable: its last connections failed, so the tunnel is not trying it again for ${seconds} s.`,
        ));
        return;
      }
      attempt.isTrial = admission.trial;
    }
    const started = this.#clock.now();
    this.#sockets.acquire(attempt.fresh).then(
      (connection) => {
        this.#acquireMs.add(this.#clock.now() - started);
        this.#run(connection, attempt);
      },
      (error: unknown) => {
        this.#settleTrial(attempt, error);
        attempt.handler.onResponseError?.(NO_CONTROLLER, error as Error);
      },
    );
  }

  #run(connection: PooledConnection, attempt: Attempt): void {
    const { options, handler } = attempt;
    connection.requests += 1;
    connection.busy = true;
    // A warm socket sat idle before its first request, so it can meet the race as a reused one can.
    const reused = connection.requests > 1 || connection.warm;
    // What undici cannot send (Expect: 100-continue, request trailers), node:http sends on this socket.
    const handedOff = attempt.viaNodeHttp;
    let responded = false;
    let released = false;
    const release = (broken: boolean): void => {
      if (released) return;
      released = true;
      // A handed-over socket counts as active until its exchange ends, then the exchange closes it.
      if (handedOff) this.#sockets.forget(connection, 'node-http');
      else this.#sockets.release(connection, broken);
    };
    const wrapped: Handler = {
      onRequestStart: (controller, context) => handler.onRequestStart?.(controller, context),
      onResponseStart: (controller, status, headers, message) => {
        responded = true;
        if (attempt.isHealthy(status)) this.#breaker.recordSuccess();
        else this.#breaker.recordFailure(`answered ${status}`);
        const raw = (controller.rawHeaders as Buffer[] | null | undefined)?.map((part) => part.toString('latin1')) ?? [];
        this.#sockets.learn(connection, raw);
        handler.onResponseStart?.(controller, status, headers, message);
      },
      onRequestUpgrade: (controller, status, headers, socket) => {
        responded = true;
        released = true;
        this.#breaker.recordSuccess();
        this.#sockets.forget(connection, 'upgraded');
        handler.onRequestUpgrade?.(controller, status, headers, socket);
      },
      onResponseData: (controller, chunk) => handler.onResponseData?.(controller, chunk),
      onResponseEnd: (controller, trailers) => {
        release(false);
        handler.onResponseEnd?.(controller, trailers);
      },
      onResponseError: (controller, error) => {
        release(true);
        if (!responded && reused && !attempt.isRetry && isKeepAliveRace(error) && mayRetry(options.method, options.body != null, error)) {
          this.#figures.retries += 1;
          this.#log.debug({ code: (error as NodeJS.ErrnoException).code, method: options.method }, 'reused socket was closed under the request; retrying on a fresh one');
          this.#send({ ...attempt, isRetry: true, fresh: true });
          return;
        }
        if (isTimeout(error)) {
          this.#figures.timeouts += 1;
          this.#breaker.recordFailure('the local service timed out');
        }
        if (!responded) this.#settleTrial(attempt, error);
        handler.onResponseError?.(controller, error);
      },
    };
    if (handedOff) {
      sendWithNodeHttp({ socket: connection.socket, request: options, handler: wrapped, headersTimeoutMs: this.#options.headersTimeoutMs });
    } else {
      connection.client.dispatch(this.#withServername(options), wrapped);
    }
  }

  /**
   * A half-open trial must end in a verdict, or the breaker would wait for it forever: a trial
   * that failed in a way not counted above (a reset after connect, no free socket) is a failure.
   * Recording it twice is harmless, as an open breaker ignores failures.
   */
  #settleTrial(attempt: Attempt, error: unknown): void {
    if (!attempt.isTrial) return;
    const code = (error as NodeJS.ErrnoException | undefined)?.code ?? 'error';
    this.#breaker.recordFailure(`trial request failed (${code})`);
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
}
