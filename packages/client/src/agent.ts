import { EventEmitter } from 'node:events';
import { PROTOCOL_VERSION, TunnelError, type Hello } from '@tunnel/protocol';
import type { Logger } from 'pino';
import { backoffDelay, type BackoffOptions } from './backoff.js';
import { RelayConnection } from './connection.js';
import { agentEndpointUrl } from './relay-url.js';
import type { Upstream } from './upstream.js';

/** The agent's version, sent in hello so relay logs can tell old agents apart. */
export const CLIENT_VERSION = '0.1.0';

export interface AgentOptions {
  /** The relay's base URL. */
  server: string;
  subdomain?: string;
  token?: string;
  /** Who may use the public URL: checked by the relay. */
  access?: { basicAuth?: string; allowIps?: string[] };
  upstream: Upstream;
  log: Logger;
  pingIntervalMs: number;
  handshakeTimeoutMs: number;
  reconnect: BackoffOptions;
}

/** Events: `online` (url) after each (re)connect, `offline` (reason, delayMs) before each retry. */
export interface Agent extends EventEmitter {
  /** The public URL, as the relay last assigned it. */
  readonly url: string;
  readonly name: string;
  /** Streams open now. */
  streamCount(): number;
  /** Stops reconnecting and closes the connection. Safe to call twice. */
  close(): Promise<void>;
}

/**
 * Connects to the relay and keeps the tunnel up: a lost connection is retried with exponential
 * backoff and jitter, asking for the same name again so the URL survives. The first connection
 * must succeed; its failure (refused hello, unreachable relay) is thrown to the caller.
 */
export async function startAgent(options: AgentOptions): Promise<Agent> {
  const endpoint = agentEndpointUrl(options.server);
  const log = options.log;
  const hello = (subdomain: string | undefined, resume: string | undefined): Hello => ({
    type: 'hello',
    protocol: PROTOCOL_VERSION,
    clientVersion: CLIENT_VERSION,
    ...(options.token === undefined ? {} : { token: options.token }),
    ...(subdomain === undefined ? {} : { subdomain }),
    ...(resume === undefined ? {} : { resume }),
    ...(options.access === undefined ? {} : { access: options.access }),
  });
  const dial = (subdomain: string | undefined, resume?: string): Promise<RelayConnection> =>
    RelayConnection.open({
      url: endpoint,
      hello: hello(subdomain, resume),
      upstream: options.upstream,
      log,
      pingIntervalMs: options.pingIntervalMs,
      handshakeTimeoutMs: options.handshakeTimeoutMs,
    });

  let connection = await dial(options.subdomain);
  let closing = false;
  let wake: (() => void) | null = null;
  const emitter = new EventEmitter();
  log.info({ url: connection.ready.url }, 'tunnel online');

  const keepAlive = async (): Promise<void> => {
    while (!closing) {
      const end = await connection.ended;
      if (closing) return;
      let attempt = 0;
      let reason = end.wentAway ? 'the relay went away' : `connection closed (${end.code}${end.reason ? `: ${end.reason}` : ''})`;
      for (;;) {
        const delayMs = backoffDelay(attempt, options.reconnect);
        log.warn({ attempt: attempt + 1, delayMs, reason }, 'lost the relay; reconnecting');
        emitter.emit('offline', reason, delayMs);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delayMs);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = null;
        if (closing) return;
        try {
          // The resume secret reclaims the name the relay holds for us during its grace period.
          const previous = connection.ready;
          connection = await dial(previous.name, previous.resume);
          log.info({ url: connection.ready.url, attempts: attempt + 1 }, 'reconnected');
          emitter.emit('online', connection.ready.url);
          break;
        } catch (error) {
          reason = error instanceof TunnelError ? `${error.code}: ${error.message}` : String(error);
          attempt += 1;
        }
      }
    }
  };
  const loop = keepAlive();

  return Object.assign(emitter, {
    get url() {
      return connection.ready.url;
    },
    get name() {
      return connection.ready.name;
    },
    streamCount: () => connection.streamCount,
    close: async () => {
      closing = true;
      wake?.();
      connection.close();
      await loop;
    },
  });
}
