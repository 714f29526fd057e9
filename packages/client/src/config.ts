import { z } from 'zod';
import { Subdomain } from '@tunnel/protocol';

/** Every agent setting, validated once after flags, env and defaults are merged. */
export const AgentConfig = z.object({
  port: z.number().int().min(1).max(65535),
  localHost: z.string().min(1).max(253),
  localHttps: z.boolean(),
  localServername: z.string().min(1).max(253).optional(),
  localCa: z.string().min(1).optional(),
  server: z.string().optional(),
  subdomain: Subdomain.optional(),
  token: z.string().min(1).max(1024).optional(),
  basicAuth: z.string().regex(/^[^:]+:.+$/, 'must be user:password').max(512).optional(),
  allowIps: z.array(z.string()).max(256),
  relayPort: z.number().int().min(0).max(65535),
  localTimeoutMs: z.number().int().positive(),
  connectTimeoutMs: z.number().int().positive(),
  pingIntervalMs: z.number().int().positive(),
  reconnectMinMs: z.number().int().positive(),
  reconnectMaxMs: z.number().int().positive(),
  poolMinIdle: z.number().int().min(0),
  poolMaxSockets: z.number().int().positive(),
  poolIdleTimeoutMs: z.number().int().positive(),
  poolMaxLifetimeMs: z.number().int().min(0),
  poolMaxRequests: z.number().int().min(0),
  breakerFailures: z.number().int().positive(),
  breakerCooldownMs: z.number().int().positive(),
  healthPath: z.string().regex(/^\/[^\s]*$/, 'must be a path starting with /').optional(),
  healthIntervalMs: z.number().int().positive(),
  statsIntervalMs: z.number().int().min(0),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
}).refine((config) => config.poolMinIdle <= config.poolMaxSockets, { message: 'must not exceed poolMaxSockets', path: ['poolMinIdle'] });
export type AgentConfig = z.infer<typeof AgentConfig>;

/** Defaults: forward to localhost, embedded relay on 7070, a warm pool of 4 to 64 sockets. */
export const AGENT_DEFAULTS: Omit<AgentConfig, 'port'> = {
  localHost: 'localhost',
  localHttps: false,
  allowIps: [],
  relayPort: 7070,
  localTimeoutMs: 60_000,
  connectTimeoutMs: 5_000,
  pingIntervalMs: 15_000,
  reconnectMinMs: 250,
  reconnectMaxMs: 30_000,
  poolMinIdle: 4,
  poolMaxSockets: 64,
  poolIdleTimeoutMs: 4_000,
  poolMaxLifetimeMs: 10 * 60_000,
  poolMaxRequests: 0,
  breakerFailures: 5,
  breakerCooldownMs: 2_000,
  healthIntervalMs: 5_000,
  statsIntervalMs: 60_000,
  logLevel: 'info',
};
