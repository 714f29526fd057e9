import { Command } from 'commander';
import { TunnelError, isTunnelError } from '@tunnel/protocol';
import { activeResources, validateCidrs, createLogger, exitOnSignals, fromEnv, parseCount, parseMilliseconds, parsePort, parsePositive, resolveConfig } from '@tunnel/server';
import { agentEndpointUrl } from './relay-url.js';
import { AGENT_DEFAULTS, AgentConfig } from './config.js';
import { startTunnel, type Tunnel } from './tunnel.js';

interface AgentFlags {
  port?: number;
  localHost?: string;
  localHttps?: boolean;
  basicAuth?: string;
  allowIp?: string[];
  localServername?: string;
  localCa?: string;
  connectTimeout?: number;
  poolMinIdle?: number;
  poolMax?: number;
  poolIdleTimeout?: number;
  poolMaxLifetime?: number;
  poolMaxRequests?: number;
  breakerFailures?: number;
  breakerCooldown?: number;
  healthPath?: string;
  healthInterval?: number;
  statsInterval?: number;
  server?: string;
  subdomain?: string;
  token?: string;
  relayPort?: number;
  localTimeout?: number;
  pingInterval?: number;
  logLevel?: string;
}

/** Prints one line to stderr and exits: the CLI's only way to fail. */
function die(message: string, exitCode: number): never {
  process.stderr.write(`tunnel: ${message}\n`);
  process.exit(exitCode);
}

function buildProgram(): Command {
  return new Command('tunnel')
    .description('Expose a local HTTP service at a public URL through a tunnel relay.')
    .requiredOption('-p, --port <n>', 'local port to forward to (1-65535)', parsePort(false))
    .option('--local-host <host>', 'local host to forward to', AGENT_DEFAULTS.localHost)
    .option('--local-https', 'the local service speaks HTTPS')
    .option('--local-servername <name>', 'TLS SNI name for the local service, when it differs from --local-host')
    .option('--local-ca <file>', 'PEM CA to verify the local HTTPS service with (without it, not verified)')
    .option('--server <url>', 'relay URL, e.g. https://relay.example.com (env TUNNEL_SERVER); none starts an embedded relay')
    .option('--subdomain <name>', 'ask the relay for this name')
    .option('--token <token>', 'token the relay asks for (env TUNNEL_TOKEN)')
    .option('--basic-auth <user:password>', 'ask visitors for this user name and password (checked by the relay)')
    .option('--allow-ip <cidr>', 'only let visitors from this address or CIDR block in; repeatable', (value: string, previous: string[] = []) => [...previous, value])
    .option('--relay-port <n>', 'port of the embedded relay, 0 for any free port', parsePort(true))
    .option('--local-timeout <ms>', 'how long the local service may take to answer', parseMilliseconds)
    .option('--ping-interval <ms>', 'how often to check the relay is alive', parseMilliseconds)
    .option('--connect-timeout <ms>', 'how long a connection to the local service may take', parsePositive)
    .option('--pool-min-idle <n>', 'idle local connections kept warm while traffic flows', parseCount)
    .option('--pool-max <n>', 'most local connections at once', parsePositive)
    .option('--pool-idle-timeout <ms>', 'idle timeout when the local service sends no Keep-Alive hint', parsePositive)
    .option('--pool-max-lifetime <ms>', 'retire a local connection this long after it opened (0 = never)', parseMilliseconds)
    .option('--pool-max-requests <n>', 'retire a local connection after this many requests (0 = never)', parseCount)
    .option('--breaker-failures <n>', 'consecutive failures that stop traffic to the local service', parsePositive)
    .option('--breaker-cooldown <ms>', 'first wait before trying the local service again', parsePositive)
    .option('--health-path <path>', 'probe this path on the local service, e.g. /healthz')
    .option('--health-interval <ms>', 'how often to probe --health-path', parsePositive)
    .option('--stats-interval <ms>', 'how often to log pool figures (0 = only at exit)', parseMilliseconds)
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (env LOG_LEVEL)')
    .configureOutput({ outputError: (text, write) => write(`tunnel: ${text.replace(/^error: /, '')}`) });
}

/** Entry point of `tunnel`. */
export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  program.exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : 2));
  program.parse(argv);
  const flags = program.opts<AgentFlags>();
  const isTty = process.stdout.isTTY === true;

  let config: AgentConfig;
  try {
    config = resolveConfig(AgentConfig, [
      { name: 'defaults', values: { ...AGENT_DEFAULTS, logLevel: isTty ? 'warn' : 'info' } },
      { name: 'env', values: { server: fromEnv('TUNNEL_SERVER'), token: fromEnv('TUNNEL_TOKEN'), logLevel: fromEnv('LOG_LEVEL') } },
      {
        name: 'flags',
        values: {
          port: flags.port,
          localHost: flags.localHost,
          localHttps: flags.localHttps,
          localServername: flags.localServername,
          localCa: flags.localCa,
          connectTimeoutMs: flags.connectTimeout,
          poolMinIdle: flags.poolMinIdle,
          poolMaxSockets: flags.poolMax,
          poolIdleTimeoutMs: flags.poolIdleTimeout,
          poolMaxLifetimeMs: flags.poolMaxLifetime,
          poolMaxRequests: flags.poolMaxRequests,
          breakerFailures: flags.breakerFailures,
          breakerCooldownMs: flags.breakerCooldown,
          healthPath: flags.healthPath,
          healthIntervalMs: flags.healthInterval,
          statsIntervalMs: flags.statsInterval,
          server: flags.server,
          subdomain: flags.subdomain,
          token: flags.token,
          basicAuth: flags.basicAuth,
          allowIps: flags.allowIp,
          relayPort: flags.relayPort,
          localTimeoutMs: flags.localTimeout,
          pingIntervalMs: flags.pingInterval,
          logLevel: flags.logLevel,
        },
      },
    ]);
    if (config.server !== undefined) agentEndpointUrl(config.server);
    validateCidrs(config.allowIps);
  } catch (error) {
    die(isTunnelError(error) ? error.message : String(error), 2);
  }

  const log = createLogger(config.logLevel, 'tunnel');
  let tunnel: Tunnel;
  try {
    tunnel = await startTunnel(config, log);
  } catch (error) {
    die(describeStartFailure(error, config), 1);
  }
  // Handlers first: a script that reads the URL and stops us at once must get a clean exit.
  exitOnSignals(() => tunnel.close());
  // `kill -USR2 <pid>` logs the pool's figures on demand, without restarting anything.
  process.on('SIGUSR2', () =>
    log.info({ pool: tunnel.upstream.figures(), streams: tunnel.agent.streamCount(), relay: tunnel.relay?.stats(), resources: activeResources() }, 'pool figures'),
  );
  announce(tunnel, config, isTty);
}

function describeStartFailure(error: unknown, config: AgentConfig): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') {
    return `port ${config.relayPort} for the embedded relay is in use; pass --relay-port 0 for any free port, or --server to use a remote relay.`;
  }
  if (error instanceof TunnelError) {
    const refused = error.code !== 'RELAY_UNREACHABLE';
    return refused ? `the relay refused the tunnel (${error.code}): ${error.message}` : error.message;
  }
  return error instanceof Error ? error.message : String(error);
}

function announce(tunnel: Tunnel, config: AgentConfig, isTty: boolean): void {
  const local = `${config.localHttps ? 'https' : 'http'}://${config.localHost}:${config.port}`;
  const hint = tunnel.relay
    ? `Using an embedded relay on 127.0.0.1:${tunnel.relay.port}; for a public URL, run tunnel-server on a public host and pass --server https://<your relay>.`
    : null;
  if (!isTty) {
    process.stdout.write(`${tunnel.agent.url}\n`);
    if (hint) process.stderr.write(`tunnel: ${hint}\n`);
    return;
  }
  process.stdout.write(`\n  tunnel is online\n\n  Forwarding  ${tunnel.agent.url}  →  ${local}\n`);
  if (hint) process.stdout.write(`\n  ${hint}\n`);
  process.stdout.write('\n  Ctrl-C to stop.\n\n');
  tunnel.agent.on('offline', (reason: string, delayMs: number) => {
    process.stdout.write(`  relay connection lost (${reason}); retrying in ${delayMs} ms\n`);
  });
  tunnel.agent.on('online', (url: string) => process.stdout.write(`  reconnected: ${url}\n`));
}

