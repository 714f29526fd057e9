import { z } from 'zod';
import { Subdomain, TunnelError } from '@tunnel/protocol';

const Hostname = z
  .string()
  .min(1)
  .max(253)
  .regex(/^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i, 'must be a hostname such as example.com');

/** Every relay setting, validated once after the sources are merged. */
export const RelayConfig = z.object({
  host: z.string().min(1),
  port: z.number().int().min(0).max(65535),
  domain: Hostname,
  helloTimeoutMs: z.number().int().positive(),
  pingIntervalMs: z.number().int().positive(),
  shutdownGraceMs: z.number().int().min(0),
  maxStreamsPerTunnel: z.number().int().positive(),
  headersTimeoutMs: z.number().int().positive(),
  /** A request body that sends nothing for this long is cut (a stalled upload holds a stream). */
  bodyIdleTimeoutMs: z.number().int().positive(),
  /** Public connections one client address may hold at once. */
  maxConnectionsPerIp: z.number().int().positive(),
  /** Public connections the relay holds at once, from everyone. */
  maxConnections: z.number().int().positive(),
  keepAliveTimeoutMs: z.number().int().positive(),
  /** Path of the tokens file; without one the relay is open to any agent. */
  tokensFile: z.string().min(1).optional(),
  reservedNames: z.array(Subdomain).max(10_000),
  resumeGraceMs: z.number().int().min(0),
  /** PEM certificate (a wildcard for `*.<domain>` plus the apex) and key: serve HTTPS. */
  tlsCert: z.string().min(1).optional(),
  tlsKey: z.string().min(1).optional(),
  /** Also listen for plain HTTP on this port and redirect it to HTTPS. */
  redirectHttpPort: z.number().int().min(0).max(65535).optional(),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
});
export type RelayConfig = z.infer<typeof RelayConfig>;

/** The defaults: a relay for one machine, on loopback, for `*.localhost`. */
export const RELAY_DEFAULTS: RelayConfig = {
  host: '127.0.0.1',
  port: 7070,
  domain: 'localhost',
  helloTimeoutMs: 10_000,
  pingIntervalMs: 15_000,
  shutdownGraceMs: 10_000,
  maxStreamsPerTunnel: 1000,
  headersTimeoutMs: 30_000,
  bodyIdleTimeoutMs: 60_000,
  maxConnectionsPerIp: 256,
  maxConnections: 10_000,
  keepAliveTimeoutMs: 5_000,
  reservedNames: [],
  resumeGraceMs: 60_000,
  logLevel: 'info',
};

/** One named source of settings, e.g. `flags` or `env`, with undefined values meaning "not set". */
export interface ConfigSource {
  name: string;
  values: Partial<Record<string, unknown>>;
}

/**
 * Merges sources, later ones winning (callers pass defaults, file, env, flags), dropping
 * undefined values, then validates once. An error names the key and the source it came from.
 */
export function resolveConfig<T extends z.ZodObject>(schema: T, sources: ConfigSource[]): z.infer<T> {
  const merged: Record<string, unknown> = {};
  const origin: Record<string, string> = {};
  for (const source of sources) {
    for (const [key, value] of Object.entries(source.values)) {
      if (value === undefined) continue;
      merged[key] = value;
      origin[key] = source.name;
    }
  }
  const result = schema.safeParse(merged);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const key = String(issue.path[0] ?? '(root)');
  throw new TunnelError('CONFIG_INVALID', `Invalid ${key} (from ${origin[key] ?? 'defaults'}): ${issue.message}.`);
}
