import { Command } from 'commander';
import { isTunnelError } from '@tunnel/protocol';
import { exitOnSignals, fromEnv, parseMilliseconds, parsePort, parsePositive } from './cli-options.js';
import { createLogger } from './logger.js';
import { startRelay } from './relay.js';
import { activeResources } from './resources.js';
import { RELAY_DEFAULTS, RelayConfig, resolveConfig } from './config.js';

interface RelayFlags {
  domain?: string;
  port?: number;
  host?: string;
  shutdownGrace?: number;
  tokens?: string;
  reserved?: string[];
  resumeGrace?: number;
  tlsCert?: string;
  tlsKey?: string;
  redirectHttp?: number;
  headersTimeout?: number;
  bodyIdleTimeout?: number;
  maxConnectionsPerIp?: number;
  maxStreams?: number;
  logLevel?: string;
}

/** Entry point of `tunnel-server`. */
export async function main(argv: string[]): Promise<void> {
  const program = new Command('tunnel-server')
    .description('Run a tunnel relay: public HTTP on *.<domain>, agents on /_tunnel.')
    .option('--domain <apex>', 'apex domain; tunnels are <name>.<apex> (env TUNNEL_SERVER_DOMAIN)')
    .option('--port <n>', 'port to listen on, 0 for any free port (env TUNNEL_SERVER_PORT)', parsePort(true))
    .option('--host <addr>', 'address to listen on (env TUNNEL_SERVER_HOST)')
    .option('--shutdown-grace <ms>', 'how long open streams may finish after SIGTERM', parseMilliseconds)
    .option('--tokens <file>', 'JSON file of agent tokens, the names and limits of each (env TUNNEL_SERVER_TOKENS); without it any agent may connect')
    .option('--reserved <name...>', 'names no agent may take, besides www, api, admin, mail and the like')
    .option('--resume-grace <ms>', 'how long a lost agent keeps its name to reconnect to', parseMilliseconds)
    .option('--tls-cert <file>', 'PEM certificate for HTTPS: a wildcard for *.<domain> and the apex')
    .option('--tls-key <file>', 'PEM private key for --tls-cert')
    .option('--redirect-http <port>', 'also answer plain HTTP on this port with a redirect to HTTPS', parsePort(true))
    .option('--headers-timeout <ms>', 'time a public client has to send its request head', parsePositive)
    .option('--body-idle-timeout <ms>', 'how long a request body may send nothing before it is cut', parsePositive)
    .option('--max-connections-per-ip <n>', 'public connections one client address may hold', parsePositive)
    .option('--max-streams <n>', 'requests in flight per tunnel; more get 503 with Retry-After', parsePositive)
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (env LOG_LEVEL)')
    .showHelpAfterError(false)
    .configureOutput({ outputError: (text, write) => write(`tunnel-server: ${text.replace(/^error: /, '')}`) });
  program.exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : 2));
  program.parse(argv);
  const flags = program.opts<RelayFlags>();
  const envPort = fromEnv('TUNNEL_SERVER_PORT');

  let config: RelayConfig;
  try {
    config = resolveConfig(RelayConfig, [
      { name: 'defaults', values: RELAY_DEFAULTS },
      {
        name: 'env',
        values: {
          domain: fromEnv('TUNNEL_SERVER_DOMAIN'),
          host: fromEnv('TUNNEL_SERVER_HOST'),
          port: envPort === undefined ? undefined : /^\d+$/.test(envPort) ? Number(envPort) : envPort,
          logLevel: fromEnv('LOG_LEVEL'),
          tokensFile: fromEnv('TUNNEL_SERVER_TOKENS'),
        },
      },
      {
        name: 'flags',
        values: {
          domain: flags.domain,
          port: flags.port,
          host: flags.host,
          shutdownGraceMs: flags.shutdownGrace,
          tokensFile: flags.tokens,
          reservedNames: flags.reserved,
          resumeGraceMs: flags.resumeGrace,
          tlsCert: flags.tlsCert,
          tlsKey: flags.tlsKey,
          redirectHttpPort: flags.redirectHttp,
          headersTimeoutMs: flags.headersTimeout,
          bodyIdleTimeoutMs: flags.bodyIdleTimeout,
          maxConnectionsPerIp: flags.maxConnectionsPerIp,
          maxStreamsPerTunnel: flags.maxStreams,
          logLevel: flags.logLevel,
        },
      },
    ]);
  } catch (error) {
    process.stderr.write(`tunnel-server: ${isTunnelError(error) ? error.message : String(error)}\n`);
    process.exit(2);
  }
  const log = createLogger(config.logLevel, 'tunnel-server');
  let relay;
  try {
    relay = await startRelay({ ...config, logger: log });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = isTunnelError(error) ? error.message : code === 'EADDRINUSE' ? `port ${config.port} on ${config.host} is in use; choose another with --port (0 for any free port).`
      : error instanceof Error ? error.message : String(error);
    process.stderr.write(`tunnel-server: ${reason}\n`);
    process.exit(1);
  }
  // Handlers first: a script that reads the URL and stops us at once must get a clean exit.
  // `kill -USR2 <pid>` logs what the relay holds: tunnels, streams, connections, timers.
  process.on('SIGUSR2', () => log.info({ relay: relay.stats(), resources: activeResources() }, 'relay status'));
  exitOnSignals(() => relay.close());
  if (process.stdout.isTTY) {
    process.stdout.write(`Relay listening at ${relay.url}\nAgents connect with: tunnel --port <local port> --server ${relay.url}\n`);
  } else {
    process.stdout.write(`${relay.url}\n`);
  }
}
