import { AGENT_DEFAULTS, startTunnel, PoolRegistry, type AgentConfig, type Tunnel } from '@tunnel/client';
import { createLogger } from '@tunnel/server';
import { onTestFinished } from 'vitest';

/**
 * Starts a tunnel (embedded relay + agent) inside the test process, for tests that read the
 * pool's figures directly. Sockets are real; the local service is whatever the test started.
 */
export async function startInProcessTunnel(
  settings: Partial<AgentConfig> & { port: number },
  pools: PoolRegistry = new PoolRegistry(),
): Promise<{ tunnel: Tunnel; url: URL }> {
  const config: AgentConfig = { ...AGENT_DEFAULTS, localHost: '127.0.0.1', relayPort: 0, logLevel: 'silent', ...settings };
  const tunnel = await startTunnel(config, createLogger(config.logLevel), pools);
  onTestFinished(() => tunnel.close());
  return { tunnel, url: new URL(tunnel.agent.url) };
}
