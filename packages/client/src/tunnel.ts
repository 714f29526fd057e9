import { startRelay, type Logger, type Relay } from '@tunnel/server';
import { startAgent, type Agent } from './agent.js';
import type { AgentConfig } from './config.js';
import { createUpstream } from './upstream.js';

/** A running tunnel: the agent, and the in-process relay when no server was given. */
export interface Tunnel {
  readonly agent: Agent;
  /** The embedded relay, or null when the agent uses a remote one. */
  readonly relay: Relay | null;
  close(): Promise<void>;
}

/**
 * Starts the whole tunnel for a config. With no `server`, a relay is started in-process on
 * 127.0.0.1:`relayPort` for `*.localhost`, so a newcomer needs no server and no DNS.
 */
export async function startTunnel(config: AgentConfig, log: Logger): Promise<Tunnel> {
  const relay = config.server === undefined
    ? await startRelay({ host: '127.0.0.1', port: config.relayPort, domain: 'localhost', logger: log, pingIntervalMs: config.pingIntervalMs })
    : null;
  const upstream = createUpstream({
    host: config.localHost,
    port: config.port,
    headersTimeoutMs: config.localTimeoutMs,
    connectTimeoutMs: config.connectTimeoutMs,
  });
  try {
    const agent = await startAgent({
      server: relay ? `http://127.0.0.1:${relay.port}` : config.server!,
      subdomain: config.subdomain,
      token: config.token,
      upstream,
      log: log.child({ component: 'agent' }),
      pingIntervalMs: config.pingIntervalMs,
      handshakeTimeoutMs: config.connectTimeoutMs * 2,
      reconnect: { minDelayMs: config.reconnectMinMs, maxDelayMs: config.reconnectMaxMs },
    });
    let closing: Promise<void> | null = null;
    return {
      agent,
      relay,
      close: () => {
        closing ??= (async () => {
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
