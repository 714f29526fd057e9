import { readFileSync } from 'node:fs';
import { TunnelError } from '@tunnel/protocol';
import { startRelay, type Logger, type Relay } from '@tunnel/server';
import { startAgent, type Agent } from './agent.js';
import type { AgentConfig } from './config.js';
import { startHealthProbe } from './pool/health-probe.js';
import type { LocalTls } from './pool/dialer.js';
import type { PoolOptions } from './pool/local-pool.js';
import { sharedPools, type PoolRegistry, type Upstream } from './upstream.js';

/** A running tunnel: the agent, its local pool, and the in-process relay when no server was given. */
export interface Tunnel {
  readonly agent: Agent;
  readonly upstream: Upstream;
  /** The embedded relay, or null when the agent uses a remote one. */
  readonly relay: Relay | null;
  close(): Promise<void>;
}

function localTls(config: AgentConfig): LocalTls | null {
  if (!config.localHttps) return null;
  let ca: string | undefined;
  if (config.localCa !== undefined) {
    try {
      ca = readFileSync(config.localCa, 'utf8');
    } catch (cause) {
      throw new TunnelError('CONFIG_INVALID', `Cannot read --local-ca ${config.localCa}: ${(cause as Error).message}.`, { cause });
    }
  }
  // Without a CA, local HTTPS is not verified: dev servers use self-signed certificates, and
  // the hop is on this machine. With --local-ca, the certificate must match the SNI name.
  return { ...(config.localServername === undefined ? {} : { servername: config.localServername }), ...(ca === undefined ? {} : { ca }), rejectUnauthorized: ca !== undefined };
}

/** The pool settings a config asks for. */
export function poolOptionsFor(config: AgentConfig, log: Logger): PoolOptions {
  return {
    host: config.localHost,
    port: config.port,
    tls: localTls(config),
    connectTimeoutMs: config.connectTimeoutMs,
    headersTimeoutMs: config.localTimeoutMs,
    minIdle: config.poolMinIdle,
    quietMinIdle: Math.min(1, config.poolMinIdle),
    quietAfterMs: 30_000,
    maxSockets: config.poolMaxSockets,
    idleTimeoutMs: config.poolIdleTimeoutMs,
    maxLifetimeMs: config.poolMaxLifetimeMs,
    maxRequests: config.poolMaxRequests,
    maxWaiting: 4096,
    sweepIntervalMs: 250,
    breaker: { failureThreshold: config.breakerFailures, cooldownMs: config.breakerCooldownMs, maxCooldownMs: 30_000 },
    log: log.child({ component: 'pool' }),
  };
}

/**
 * Starts the whole tunnel for a config. With no `server`, a relay is started in-process on
 * 127.0.0.1:`relayPort` for `*.localhost`, so a newcomer needs no server and no DNS.
 */
export async function startTunnel(config: AgentConfig, log: Logger, pools: PoolRegistry = sharedPools): Promise<Tunnel> {
  const upstream = pools.acquire(poolOptionsFor(config, log));
  let relay: Relay | null = null;
  try {
    if (config.server === undefined) {
      relay = await startRelay({ host: '127.0.0.1', port: config.relayPort, domain: 'localhost', logger: log, pingIntervalMs: config.pingIntervalMs });
    }
    const agent = await startAgent({
      server: relay ? `http://127.0.0.1:${relay.port}` : config.server!,
      subdomain: config.subdomain,
      token: config.token,
      ...(config.basicAuth === undefined && config.allowIps.length === 0
        ? {}
        : { access: { ...(config.basicAuth === undefined ? {} : { basicAuth: config.basicAuth }), ...(config.allowIps.length > 0 ? { allowIps: config.allowIps } : {}) } }),
      upstream,
      log: log.child({ component: 'agent' }),
      pingIntervalMs: config.pingIntervalMs,
      handshakeTimeoutMs: config.connectTimeoutMs * 2,
      reconnect: { minDelayMs: config.reconnectMinMs, maxDelayMs: config.reconnectMaxMs },
    });
    const stopProbe = config.healthPath === undefined
      ? () => undefined
      : startHealthProbe(upstream, config.healthPath, config.healthIntervalMs, log);
    const logFigures = (): void => log.info({ pool: upstream.figures() }, 'pool figures');
    const statsTimer = config.statsIntervalMs > 0 ? setInterval(logFigures, config.statsIntervalMs).unref() : null;
    let closing: Promise<void> | null = null;
    return {
      agent,
      upstream,
      relay,
      close: () => {
        closing ??= (async () => {
          stopProbe();
          if (statsTimer) clearInterval(statsTimer);
          logFigures();
          await agent.close();
          await relay?.close(0);
          await upstream.close();
        })();
        return closing;
      },
    };
  } catch (error) {
    await relay?.close(0);
    await upstream.close();
    throw error;
  }
}
