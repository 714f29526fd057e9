import { Command } from 'commander';
import { isTunnelError } from '@tunnel/protocol';
import { exitOnSignals, fromEnv, parseMilliseconds, parsePort } from './cli-options.js';
import { startRelay } from './relay.js';
import { RelayConfig } from './config.js';

interface RelayFlags {
  domain?: string;
  port?: number;
  host?: string;
  shutdownGrace?: number;
  logLevel?: string;
}

/** Entry point of `tunnel-server`. */
export async function main(argv: string[]): Promise<void> {
  const program = new Command('tunnel-server')
    .description('Run a tunnel relay: public HTTP on *.<domain>, agents on /_tunnel.')
    .option('--domain <apex>', 'apex domain; tunnels are <name>.<apex> (env TUNNEL_SERVER_DOMAIN)', fromEnv('TUNNEL_SERVER_DOMAIN'))
    .option('--port <n>', 'port to listen on, 0 for any free port (env TUNNEL_SERVER_PORT)', parsePort(true))
    .option('--host <addr>', 'address to listen on (env TUNNEL_SERVER_HOST)', fromEnv('TUNNEL_SERVER_HOST'))
    .option('--shutdown-grace <ms>', 'how long open streams may finish after SIGTERM', parseMilliseconds)
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (env LOG_LEVEL)', fromEnv('LOG_LEVEL'))
    .showHelpAfterError(false)
    .configureOutput({ outputError: (text, write) => write(`tunnel-server: ${text.replace(/^error: /, '')}`) });
  program.exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : 2));
  program.parse(argv);
  const flags = program.opts<RelayFlags>();
  const envPort = fromEnv('TUNNEL_SERVER_PORT');
  const portFromEnv = envPort === undefined ? undefined : Number(envPort);

  let relay;
  try {
    const settings = {
      domain: flags.domain,
      port: flags.port ?? portFromEnv,
      host: flags.host,
      shutdownGraceMs: flags.shutdownGrace,
      logLevel: flags.logLevel as RelayConfig['logLevel'] | undefined,
    };
    relay = await startRelay(Object.fromEntries(Object.entries(settings).filter(([, value]) => value !== undefined)));
  } catch (error) {
    const reason = isTunnelError(error) ? error.message : error instanceof Error ? error.message : String(error);
    process.stderr.write(`tunnel-server: ${reason}\n`);
    process.exit(1);
  }
  if (process.stdout.isTTY) {
    process.stdout.write(`Relay listening at ${relay.url}\nAgents connect with: tunnel --port <local port> --server ${relay.url}\n`);
  } else {
    process.stdout.write(`${relay.url}\n`);
  }
  exitOnSignals(() => relay.close());
}
