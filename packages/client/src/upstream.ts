import { Pool, type Dispatcher } from 'undici';

/** Where the agent sends requests: the local service, and how to reach it. */
export interface LocalTarget {
  host: string;
  port: number;
  /** Longest wait for the local service's response head, in milliseconds. */
  headersTimeoutMs: number;
  connectTimeoutMs: number;
}

/**
 * The seam between the tunnel and the local service: anything that can dispatch an HTTP request
 * the undici way. Today a keep-alive undici Pool; the warmed, health-checked pool behind a
 * circuit breaker plugs in here without the forwarder changing.
 */
export interface Upstream {
  readonly dispatcher: Dispatcher;
  /** `host:port`, for messages a person reads. */
  readonly label: string;
  close(): Promise<void>;
}

/** A keep-alive connection pool to the local service. */
export function createUpstream(target: LocalTarget): Upstream {
  const host = target.host.includes(':') ? `[${target.host}]` : target.host;
  const pool = new Pool(`http://${host}:${target.port}`, {
    connections: 128,
    pipelining: 1,
    keepAliveTimeout: 4_000,
    headersTimeout: target.headersTimeoutMs,
    // Bodies may be quiet for long (server-sent events, long polls); silence is not an error here.
    bodyTimeout: 0,
    connectTimeout: target.connectTimeoutMs,
  });
  return { dispatcher: pool, label: `${host}:${target.port}`, close: () => pool.close() };
}
